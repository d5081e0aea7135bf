//! Price plans: every row with the same plan_id and effective_from is one version,
//! checked as a whole (its rows agree, its tiers make a valid plan) and then placed in
//! the plan's line of versions.

use std::collections::{BTreeMap, HashSet};

use billrun_engine::{EngineError, PlanVersion, PriceModel, Tier};
use billrun_schemas::RejectCode;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::PlanVersionEntry;
use super::build::Builder;
use crate::reasons;
use crate::rows::{RowView, ValidatedRows};

/// Why a version is refused: the column at fault, the code and the reason.
type VersionProblem = (Option<&'static str>, RejectCode, String);

impl Builder {
    pub(super) fn price_plans(&mut self, table: ValidatedRows<'_>) {
        // A version is every row with the same plan_id and effective_from.
        let mut versions: BTreeMap<(String, NaiveDate), Vec<RowView<'_>>> = BTreeMap::new();
        for row in table.iter() {
            let key = (
                row.req("plan_id"),
                row.date("effective_from").unwrap_or_default(),
            );
            versions.entry(key).or_default().push(row);
        }
        let mut accepted: BTreeMap<String, Vec<PlanVersionEntry>> = BTreeMap::new();
        for ((plan_id, effective_from), version_rows) in versions {
            match self.plan_version(
                &plan_id,
                effective_from,
                &version_rows,
                accepted.get(&plan_id),
            ) {
                Ok(entry) => accepted.entry(plan_id).or_default().push(entry),
                Err((column, code, reason)) => {
                    for row in &version_rows {
                        self.reject(row, column, code, reason.clone());
                    }
                }
            }
        }
        for (plan_id, mut entries) in accepted {
            // An open or overlapping effective_to ends where the next version starts.
            for i in 0..entries.len() {
                if let Some(next_from) = entries.get(i + 1).map(|e| e.effective_from) {
                    let to = entries[i]
                        .effective_to
                        .map_or(next_from, |to| to.min(next_from));
                    entries[i].effective_to = Some(to);
                }
            }
            let indices = entries
                .into_iter()
                .map(|entry| {
                    self.catalog.plan_versions.push(entry);
                    self.catalog.plan_versions.len() - 1
                })
                .collect();
            self.catalog.plans.insert(plan_id, indices);
        }
    }

    fn plan_version(
        &self,
        plan_id: &str,
        effective_from: NaiveDate,
        rows: &[RowView<'_>],
        earlier: Option<&Vec<PlanVersionEntry>>,
    ) -> Result<PlanVersionEntry, VersionProblem> {
        let first = &rows[0];
        let label = format!("plan `{plan_id}` version {effective_from}");
        for column in ["product_id", "currency", "model"] {
            if rows.iter().any(|r| r.text(column) != first.text(column)) {
                return Err((
                    Some(column),
                    RejectCode::InvalidPlan,
                    format!("rows of {label} disagree on `{column}`"),
                ));
            }
        }
        if rows
            .iter()
            .any(|r| r.date("effective_to") != first.date("effective_to"))
        {
            return Err((
                Some("effective_to"),
                RejectCode::InvalidPlan,
                format!("rows of {label} disagree on `effective_to`"),
            ));
        }
        let package_sizes: HashSet<Option<Decimal>> =
            rows.iter().map(|r| r.decimal("package_size")).collect();
        if package_sizes.len() > 1 {
            return Err((
                Some("package_size"),
                RejectCode::InvalidPlan,
                format!("rows of {label} disagree on `package_size`"),
            ));
        }
        let product_id = first.req("product_id");
        if !self.catalog.products.contains_key(&product_id) {
            return Err((
                Some("product_id"),
                RejectCode::UnknownReference,
                format!(
                    "{label}: {}",
                    reasons::not_in("product", &product_id, "products")
                ),
            ));
        }
        let currency = first.req("currency");
        if let Some(previous) = earlier.and_then(|e| e.last())
            && (previous.currency != currency || previous.product_id != product_id)
        {
            return Err((
                Some("currency"),
                RejectCode::InvalidPlan,
                format!(
                    "{label} changes product or currency from version {}; use a new plan_id",
                    previous.effective_from
                ),
            ));
        }
        let effective_to = first.date("effective_to");
        if effective_to.is_some_and(|to| to <= effective_from) {
            return Err((
                Some("effective_to"),
                RejectCode::OutOfRange,
                format!("{label}: effective_to must be after effective_from"),
            ));
        }
        let model_name = first.req("model");
        let model = PriceModel::parse(&model_name).ok_or_else(|| {
            (
                Some("model"),
                RejectCode::BadEnum,
                format!("{label}: unknown model `{model_name}`"),
            )
        })?;
        let tiers = rows
            .iter()
            .map(|r| Tier {
                start: r.decimal("tier_start").unwrap_or_default(),
                unit_price: r.decimal("unit_price").unwrap_or_default(),
                flat_fee: r.decimal("flat_fee").unwrap_or_default(),
            })
            .collect();
        let version =
            PlanVersion::new(model, tiers, first.decimal("package_size")).map_err(|e| match e {
                EngineError::InvalidPlan { column, reason } => (
                    Some(column),
                    RejectCode::InvalidPlan,
                    format!("{label}: {reason}"),
                ),
                other => (None, RejectCode::InvalidPlan, format!("{label}: {other}")),
            })?;
        Ok(PlanVersionEntry {
            plan_id: plan_id.to_string(),
            product_id,
            currency,
            effective_from,
            effective_to,
            version,
        })
    }
}
