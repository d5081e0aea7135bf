//! Stage 2: master data — customers, products, plan versions, subscriptions, tax rates
//! and credit memos — checked across rows and tables.
//!
//! Master data is small (thousands of rows, not millions), so it lives in ordered maps:
//! ordered so that everything derived from it (segments, invoices, journal) comes out in
//! the same order on every run. Cross-row problems (a duplicate key, a plan version
//! without a 0 tier, a subscription to an unknown plan) reject the rows at fault, with
//! their file and row, exactly like cell problems do.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Decimal128Type, Int64Type, UInt32Type, UInt64Type};
use billrun_engine::{EngineError, PlanVersion, PriceModel, Tier, minor_units};
use billrun_schemas::templates::{FILE_INDEX_COLUMN, ROW_NUMBER_COLUMN};
use billrun_schemas::{QUANTITY_SCALE, RejectCode, RowRenderer, Table};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::load::{LoadedTable, Reject};

/// A customer of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    pub currency: String,
    pub billing_day: u32,
    pub payment_terms_days: u32,
    pub tax_region: Option<String>,
    pub email: Option<String>,
}

/// A product of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub product_id: String,
    pub name: String,
    pub kind: String,
    pub revenue_account: Option<String>,
    /// Standalone selling price per unit, in any currency (the `ssp` table, which is
    /// per currency and effective-dated, takes precedence).
    pub ssp: Option<Decimal>,
}

/// One effective-dated version of a price plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanVersionEntry {
    pub plan_id: String,
    pub product_id: String,
    pub currency: String,
    pub effective_from: NaiveDate,
    /// Exclusive; the next version's `effective_from` when the file left it empty.
    pub effective_to: Option<NaiveDate>,
    pub version: PlanVersion,
}

impl PlanVersionEntry {
    /// Whether this version is in force on `day`.
    pub fn in_force_on(&self, day: NaiveDate) -> bool {
        self.effective_from <= day && self.effective_to.is_none_or(|to| day < to)
    }
}

/// A subscription (contract) of a customer to a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub subscription_id: String,
    pub customer_id: String,
    pub plan_id: String,
    /// The plan's product.
    pub product_id: String,
    /// The plan's currency.
    pub currency: String,
    pub start_date: NaiveDate,
    /// Exclusive; `None` = open-ended.
    pub end_date: Option<NaiveDate>,
    /// Seats, for flat plans (default 1).
    pub seats: Decimal,
    pub discount_percent: Option<Decimal>,
    pub min_commitment: Option<Decimal>,
}

/// A credit memo.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditMemoEntry {
    pub credit_memo_id: String,
    pub customer_id: String,
    pub currency: String,
    pub amount: Decimal,
    pub issued_on: NaiveDate,
}

/// All master data of a run, validated across rows and tables.
#[derive(Debug, Default)]
pub struct Catalog {
    pub customers: BTreeMap<String, Customer>,
    pub products: BTreeMap<String, Product>,
    /// Every valid plan version; its index is the `version_idx` used by rating.
    pub plan_versions: Vec<PlanVersionEntry>,
    /// plan_id → indices into `plan_versions`, by effective_from.
    pub plans: BTreeMap<String, Vec<usize>>,
    pub subscriptions: BTreeMap<String, Subscription>,
    /// tax_region → (effective_from, rate), by effective_from.
    pub tax_rates: BTreeMap<String, Vec<(NaiveDate, Decimal)>>,
    /// By (issued_on, credit_memo_id): the order credits are applied in.
    pub credit_memos: Vec<CreditMemoEntry>,
}

impl Catalog {
    /// The rate of `region` in force on `day`, if any.
    pub fn tax_rate(&self, region: &str, day: NaiveDate) -> Option<Decimal> {
        self.tax_rates
            .get(region)?
            .iter()
            .rev()
            .find(|(from, _)| *from <= day)
            .map(|(_, rate)| *rate)
    }

    /// The versions of `plan_id`, by effective_from.
    pub fn versions_of<'a>(
        &'a self,
        plan_id: &str,
    ) -> impl Iterator<Item = (usize, &'a PlanVersionEntry)> {
        self.plans
            .get(plan_id)
            .into_iter()
            .flatten()
            .map(|&i| (i, &self.plan_versions[i]))
    }

    /// The version of `plan_id` in force on `day`.
    pub fn version_on(&self, plan_id: &str, day: NaiveDate) -> Option<(usize, &PlanVersionEntry)> {
        self.versions_of(plan_id).find(|(_, v)| v.in_force_on(day))
    }
}

/// The validated master tables a catalog is built from.
#[derive(Debug)]
pub struct MasterTables<'a> {
    pub customers: &'a LoadedTable,
    pub products: &'a LoadedTable,
    pub price_plans: &'a LoadedTable,
    pub subscriptions: &'a LoadedTable,
    pub tax_rates: &'a LoadedTable,
    pub credit_memos: &'a LoadedTable,
}

/// Builds the catalog; rows that break a cross-row rule come back as rejects.
/// `file_names[i]` names the file with provenance index `i`.
pub fn build_catalog(tables: &MasterTables<'_>, file_names: &[String]) -> (Catalog, Vec<Reject>) {
    let mut builder = Builder {
        catalog: Catalog::default(),
        rejects: Vec::new(),
        file_names,
    };
    builder.customers(tables.customers);
    builder.products(tables.products);
    builder.price_plans(tables.price_plans);
    builder.subscriptions(tables.subscriptions);
    builder.tax_rates(tables.tax_rates);
    builder.credit_memos(tables.credit_memos);
    (builder.catalog, builder.rejects)
}

/// Typed access to one row of a validated batch.
pub(crate) struct RowView<'a> {
    pub(crate) batch: &'a RecordBatch,
    pub(crate) row: usize,
}

impl RowView<'_> {
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        let column = self.batch.column_by_name(name)?.as_string::<i32>();
        column
            .is_valid(self.row)
            .then(|| column.value(self.row).to_string())
    }

    /// A required column: validation guarantees it is present and non-null.
    pub(crate) fn req(&self, name: &str) -> String {
        self.text(name).unwrap_or_default()
    }

    pub(crate) fn date(&self, name: &str) -> Option<NaiveDate> {
        let column = self
            .batch
            .column_by_name(name)?
            .as_primitive::<Date32Type>();
        column
            .is_valid(self.row)
            .then(|| column.value_as_date(self.row))
            .flatten()
    }

    pub(crate) fn decimal(&self, name: &str) -> Option<Decimal> {
        let column = self
            .batch
            .column_by_name(name)?
            .as_primitive::<Decimal128Type>();
        column.is_valid(self.row).then(|| {
            Decimal::from_i128_with_scale(column.value(self.row), QUANTITY_SCALE as u32).normalize()
        })
    }

    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        let column = self.batch.column_by_name(name)?.as_primitive::<Int64Type>();
        column.is_valid(self.row).then(|| column.value(self.row))
    }

    pub(crate) fn file_index(&self) -> usize {
        let column = self.batch.column_by_name(FILE_INDEX_COLUMN);
        column.map_or(0, |c| {
            c.as_primitive::<UInt32Type>().value(self.row) as usize
        })
    }

    pub(crate) fn row_number(&self) -> u64 {
        let column = self.batch.column_by_name(ROW_NUMBER_COLUMN);
        column.map_or(0, |c| c.as_primitive::<UInt64Type>().value(self.row))
    }
}

pub(crate) fn rows(table: &LoadedTable) -> impl Iterator<Item = RowView<'_>> {
    table
        .batches
        .iter()
        .flat_map(|batch| (0..batch.num_rows()).map(move |row| RowView { batch, row }))
}

struct Builder<'a> {
    catalog: Catalog,
    rejects: Vec<Reject>,
    file_names: &'a [String],
}

impl Builder<'_> {
    fn reject(
        &mut self,
        table: Table,
        row: &RowView<'_>,
        column: Option<&str>,
        code: RejectCode,
        reason: String,
    ) {
        self.rejects.push(Reject {
            table,
            source_file: self
                .file_names
                .get(row.file_index())
                .cloned()
                .unwrap_or_default(),
            row_number: Some(row.row_number()),
            column: column.map(str::to_string),
            code,
            reason,
            raw: RowRenderer::new(row.batch).row(row.row),
        });
    }

    fn duplicate_key(&mut self, table: Table, row: &RowView<'_>, key_column: &str, key: &str) {
        self.reject(
            table,
            row,
            Some(key_column),
            RejectCode::DuplicateKey,
            format!("`{key_column}` `{key}` appears more than once; the first row is kept"),
        );
    }

    fn customers(&mut self, table: &LoadedTable) {
        for row in rows(table) {
            let id = row.req("customer_id");
            if self.catalog.customers.contains_key(&id) {
                self.duplicate_key(Table::Customers, &row, "customer_id", &id);
                continue;
            }
            let customer = Customer {
                customer_id: id.clone(),
                name: row.req("name"),
                currency: row.req("currency"),
                billing_day: row.int("billing_day").unwrap_or(1) as u32,
                payment_terms_days: row.int("payment_terms_days").unwrap_or(30) as u32,
                tax_region: row.text("tax_region"),
                email: row.text("email"),
            };
            self.catalog.customers.insert(id, customer);
        }
    }

    fn products(&mut self, table: &LoadedTable) {
        for row in rows(table) {
            let id = row.req("product_id");
            if self.catalog.products.contains_key(&id) {
                self.duplicate_key(Table::Products, &row, "product_id", &id);
                continue;
            }
            let product = Product {
                product_id: id.clone(),
                name: row.req("name"),
                kind: row.req("kind"),
                revenue_account: row.text("revenue_account"),
                ssp: row.decimal("ssp"),
            };
            self.catalog.products.insert(id, product);
        }
    }

    fn price_plans(&mut self, table: &LoadedTable) {
        // A version is every row with the same plan_id and effective_from.
        let mut versions: BTreeMap<(String, NaiveDate), Vec<RowView<'_>>> = BTreeMap::new();
        for row in rows(table) {
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
                        self.reject(Table::PricePlans, row, column, code, reason.clone());
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

    #[allow(clippy::type_complexity)]
    fn plan_version(
        &self,
        plan_id: &str,
        effective_from: NaiveDate,
        rows: &[RowView<'_>],
        earlier: Option<&Vec<PlanVersionEntry>>,
    ) -> Result<PlanVersionEntry, (Option<&'static str>, RejectCode, String)> {
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
                format!("{label}: product `{product_id}` is not in products"),
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

    fn subscriptions(&mut self, table: &LoadedTable) {
        for row in rows(table) {
            let id = row.req("subscription_id");
            if self.catalog.subscriptions.contains_key(&id) {
                self.duplicate_key(Table::Subscriptions, &row, "subscription_id", &id);
                continue;
            }
            let customer_id = row.req("customer_id");
            if !self.catalog.customers.contains_key(&customer_id) {
                self.reject(
                    Table::Subscriptions,
                    &row,
                    Some("customer_id"),
                    RejectCode::UnknownReference,
                    format!("customer `{customer_id}` is not in customers (or was rejected)"),
                );
                continue;
            }
            let plan_id = row.req("plan_id");
            let Some(first_version) = self
                .catalog
                .versions_of(&plan_id)
                .next()
                .map(|(_, v)| v.clone())
            else {
                self.reject(
                    Table::Subscriptions,
                    &row,
                    Some("plan_id"),
                    RejectCode::UnknownReference,
                    format!(
                        "plan `{plan_id}` is not in price_plans (or all its versions were rejected)"
                    ),
                );
                continue;
            };
            let start_date = row.date("start_date").unwrap_or_default();
            let end_date = row.date("end_date");
            if end_date.is_some_and(|end| end <= start_date) {
                self.reject(
                    Table::Subscriptions,
                    &row,
                    Some("end_date"),
                    RejectCode::OutOfRange,
                    "`end_date` must be after `start_date` (it is exclusive)".to_string(),
                );
                continue;
            }
            let min_commitment = row.decimal("min_commitment");
            if let Some(reason) = min_commitment
                .and_then(|m| too_many_minor_digits(m, &first_version.currency, "min_commitment"))
            {
                self.reject(
                    Table::Subscriptions,
                    &row,
                    Some("min_commitment"),
                    RejectCode::TooManyDecimals,
                    reason,
                );
                continue;
            }
            let subscription = Subscription {
                subscription_id: id.clone(),
                customer_id,
                plan_id,
                product_id: first_version.product_id.clone(),
                currency: first_version.currency.clone(),
                start_date,
                end_date,
                seats: row.decimal("quantity").unwrap_or(Decimal::ONE),
                discount_percent: row.decimal("discount_percent"),
                min_commitment,
            };
            self.catalog.subscriptions.insert(id, subscription);
        }
    }

    fn tax_rates(&mut self, table: &LoadedTable) {
        for row in rows(table) {
            let region = row.req("tax_region");
            let from = row.date("effective_from").unwrap_or_default();
            let rate = row.decimal("rate").unwrap_or_default();
            let rates = self.catalog.tax_rates.entry(region.clone()).or_default();
            if rates.iter().any(|(f, _)| *f == from) {
                self.duplicate_key(
                    Table::TaxRates,
                    &row,
                    "effective_from",
                    &format!("{region} {from}"),
                );
                continue;
            }
            rates.push((from, rate));
            rates.sort_by_key(|(f, _)| *f);
        }
    }

    fn credit_memos(&mut self, table: &LoadedTable) {
        let mut seen = HashSet::new();
        for row in rows(table) {
            let id = row.req("credit_memo_id");
            if !seen.insert(id.clone()) {
                self.duplicate_key(Table::CreditMemos, &row, "credit_memo_id", &id);
                continue;
            }
            let customer_id = row.req("customer_id");
            if !self.catalog.customers.contains_key(&customer_id) {
                self.reject(
                    Table::CreditMemos,
                    &row,
                    Some("customer_id"),
                    RejectCode::UnknownReference,
                    format!("customer `{customer_id}` is not in customers (or was rejected)"),
                );
                continue;
            }
            let currency = row.req("currency");
            let amount = row.decimal("amount").unwrap_or_default();
            if let Some(reason) = too_many_minor_digits(amount, &currency, "amount") {
                self.reject(
                    Table::CreditMemos,
                    &row,
                    Some("amount"),
                    RejectCode::TooManyDecimals,
                    reason,
                );
                continue;
            }
            self.catalog.credit_memos.push(CreditMemoEntry {
                credit_memo_id: id,
                customer_id,
                currency,
                amount,
                issued_on: row.date("issued_on").unwrap_or_default(),
            });
        }
        self.catalog.credit_memos.sort_by(|a, b| {
            (a.issued_on, &a.credit_memo_id).cmp(&(b.issued_on, &b.credit_memo_id))
        });
    }
}

/// Money of an invoice currency may not be finer than the currency's minor unit: billrun
/// would otherwise have to round it, silently changing what the customer is owed.
fn too_many_minor_digits(amount: Decimal, currency: &str, column: &str) -> Option<String> {
    let minor = minor_units(currency)?;
    (amount.normalize().scale() > minor)
        .then(|| format!("`{column}` {amount} has more decimals than {currency} allows ({minor})"))
}
