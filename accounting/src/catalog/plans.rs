//! Price plans: every row with the same plan_id and effective_from is one version,
//! checked as a whole (its rows agree, its tiers make a valid plan) and then placed in
//! the plan's line of versions.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use billrun_engine::{EngineError, PlanVersion, PriceModel, Tier};
use billrun_schemas::RejectCode;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::build::Builder;
use super::{PlanVersionEntry, RefusedRow, RefusedVersion};
use crate::reasons;
use crate::rows::{RowView, ValidatedRows};

/// A refused version before its end is known: (effective_from, effective_to as the
/// file says, why).
type Refusal = (Option<NaiveDate>, Option<NaiveDate>, String);

/// Why a version is refused: the column at fault, the code and the reason.
type VersionProblem = (Option<&'static str>, RejectCode, String);

impl Builder<'_> {
    pub(super) fn price_plans(&mut self, table: ValidatedRows<'_>, refused: &[RefusedRow]) {
        // A version is every row with the same plan_id and effective_from.
        let mut versions: BTreeMap<(String, NaiveDate), Vec<RowView<'_>>> = BTreeMap::new();
        for row in table.iter() {
            let key = (
                row.req("plan_id"),
                row.date("effective_from").unwrap_or_default(),
            );
            versions.entry(key).or_default().push(row);
        }
        // Rows validation rejected refuse the version they name; one whose effective_from
        // is unreadable refuses every version of its plan.
        let mut refused_by_plan: BTreeMap<String, Vec<Refusal>> = BTreeMap::new();
        let mut refused_keys: BTreeMap<(String, NaiveDate), String> = BTreeMap::new();
        for r in refused {
            let Some(plan_id) = &r.key else { continue };
            match r.effective_from {
                Some(from) => {
                    refused_keys
                        .entry((plan_id.clone(), from))
                        .or_insert_with(|| r.what.clone());
                }
                None => refused_by_plan.entry(plan_id.clone()).or_default().push((
                    None,
                    None,
                    r.what.clone(),
                )),
            }
        }
        for ((plan_id, from), what) in &refused_keys {
            let rows = versions
                .remove(&(plan_id.clone(), *from))
                .unwrap_or_default();
            let effective_to = rows.first().and_then(|r| r.date("effective_to"));
            for row in &rows {
                self.reject(
                    row,
                    None,
                    RejectCode::InvalidPlan,
                    format!(
                        "plan `{plan_id}` version {from} is refused: another of its rows was rejected ({what})"
                    ),
                );
            }
            refused_by_plan.entry(plan_id.clone()).or_default().push((
                Some(*from),
                effective_to,
                what.clone(),
            ));
        }
        let mut accepted: BTreeMap<String, Vec<(PlanVersionEntry, Vec<RowView<'_>>)>> =
            BTreeMap::new();
        for ((plan_id, effective_from), version_rows) in versions {
            let earlier = accepted
                .get(&plan_id)
                .and_then(|v| v.last())
                .map(|(e, _)| e);
            match self.plan_version(&plan_id, effective_from, &version_rows, earlier) {
                Ok(entry) => accepted
                    .entry(plan_id)
                    .or_default()
                    .push((entry, version_rows)),
                Err((column, code, reason)) => {
                    let at = version_rows.first().map(|r| r.origin());
                    for row in &version_rows {
                        self.reject(row, column, code, reason.clone());
                    }
                    let what = match at {
                        Some(at) => format!("{} row {}: {reason}", at.source_file, at.row_number),
                        None => reason,
                    };
                    refused_by_plan.entry(plan_id).or_default().push((
                        Some(effective_from),
                        version_rows.first().and_then(|r| r.date("effective_to")),
                        what,
                    ));
                }
            }
        }
        let plan_ids: BTreeSet<String> = accepted
            .keys()
            .chain(refused_by_plan.keys())
            .cloned()
            .collect();
        for plan_id in plan_ids {
            let mut entries = accepted.remove(&plan_id).unwrap_or_default();
            let mut refused = refused_by_plan.remove(&plan_id).unwrap_or_default();
            // Versions must not overlap: a version starting before the one before it
            // ends (its explicit effective_to) is refused, rather than one of the two
            // prices chosen for the days both claim.
            let mut kept: Vec<(PlanVersionEntry, Vec<RowView<'_>>)> = Vec::new();
            for (entry, rows) in entries.drain(..) {
                let overlapped = kept
                    .last()
                    .and_then(|(before, _)| {
                        before.effective_to.map(|to| (before.effective_from, to))
                    })
                    .filter(|(_, to)| *to > entry.effective_from);
                match overlapped {
                    Some((before_from, before_to)) => {
                        let reason = format!(
                            "plan `{plan_id}` version {} overlaps version {before_from}, which runs to {before_to}: versions of a plan must not overlap (end the earlier one on {} or start this one on {before_to})",
                            entry.effective_from, entry.effective_from
                        );
                        let at = rows.first().map(|r| r.origin());
                        for row in &rows {
                            self.reject(
                                row,
                                Some("effective_from"),
                                RejectCode::InvalidPlan,
                                reason.clone(),
                            );
                        }
                        let what = match at {
                            Some(at) => {
                                format!("{} row {}: {reason}", at.source_file, at.row_number)
                            }
                            None => reason,
                        };
                        refused.push((Some(entry.effective_from), entry.effective_to, what));
                    }
                    None => kept.push((entry, rows)),
                }
            }
            let mut entries: Vec<PlanVersionEntry> = kept.into_iter().map(|(e, _)| e).collect();
            // Every version, accepted or refused, ends where the next one starts: an open
            // or overlapping effective_to never lets a version price the days of a
            // refused one after it.
            let mut starts: Vec<NaiveDate> = entries
                .iter()
                .map(|e| e.effective_from)
                .chain(refused.iter().filter_map(|(from, _, _)| *from))
                .collect();
            starts.sort_unstable();
            starts.dedup();
            let next_start = |from: NaiveDate| starts.iter().copied().find(|s| *s > from);
            for entry in &mut entries {
                if let Some(next) = next_start(entry.effective_from) {
                    entry.effective_to = Some(entry.effective_to.map_or(next, |to| to.min(next)));
                }
            }
            let mut refused: Vec<RefusedVersion> = refused
                .into_iter()
                .map(|(from, to, why)| {
                    let effective_to = match from {
                        None => None,
                        Some(from) => match (to, next_start(from)) {
                            (Some(to), Some(next)) => Some(to.min(next)),
                            (to, next) => to.or(next),
                        },
                    };
                    RefusedVersion {
                        effective_from: from,
                        effective_to,
                        why,
                    }
                })
                .collect();
            refused.sort_by_key(|r| r.effective_from);
            if !refused.is_empty() {
                self.catalog
                    .refused_plan_versions
                    .insert(plan_id.clone(), refused);
            }
            if entries.is_empty() {
                continue;
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
        earlier: Option<&PlanVersionEntry>,
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
        if let Some(previous) = earlier
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
