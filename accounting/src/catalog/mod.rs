//! Master data — customers, products, plan versions, subscriptions, tax rates and credit
//! memos — checked across rows and tables.
//!
//! Master data lives in id order, so that everything derived from it (segments,
//! invoices, journal) comes out in the same order on every run: the small tables in
//! ordered maps, customers and subscriptions (millions of rows in a telecom's run) in
//! [`ById`], each row held once. Cross-row problems (a duplicate key, a plan version
//! without a 0 tier, a subscription to an unknown plan) reject the rows at fault, with
//! their file and row, exactly like cell problems do.

mod build;
mod plans;

use std::collections::BTreeMap;

use billrun_engine::{BillingMonth, DateWindow, PlanVersion, billing_window};
use billrun_schemas::Reject;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::error::Result;
use crate::rows::ValidatedRows;

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
    pub kind: ProductKind,
    pub revenue_account: Option<String>,
    /// Standalone selling price per unit, in any currency (the `ssp` table, which is
    /// per currency and effective-dated, takes precedence).
    pub ssp: Option<Decimal>,
}

/// What a product is sold as (`products.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProductKind {
    /// Priced by rated usage events.
    Usage,
    /// A fee per billing period (a flat plan).
    Recurring,
    /// Sold once (contracts booked as orders).
    OneTime,
}

impl ProductKind {
    /// The kind as written in `products.kind`, or `None` for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "usage" => Some(ProductKind::Usage),
            "recurring" => Some(ProductKind::Recurring),
            "one_time" => Some(ProductKind::OneTime),
            _ => None,
        }
    }

    /// The kind as written in `products.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProductKind::Usage => "usage",
            ProductKind::Recurring => "recurring",
            ProductKind::OneTime => "one_time",
        }
    }
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

/// A rejected row of an effective-dated table (price_plans, tax_rates), by the version
/// it names ([`billrun_schemas::Table::version_key`]): that version is refused, and the
/// version before it is never used in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    /// The plan_id or tax_region; `None` when that cell itself was unreadable (the row
    /// then names no version).
    pub key: Option<String>,
    /// `None` when effective_from was unreadable: which version it belongs to cannot be
    /// told, so every version of `key` is refused.
    pub effective_from: Option<NaiveDate>,
    /// Where and why: `` price_plans/plans.csv row 7: `unit_price` value … ``.
    pub what: String,
}

/// A version refused: the usage it would price is unrated, and a fee or tax it would
/// set fails the run, naming `why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedVersion {
    /// `None`: every day (the version could not be told).
    pub effective_from: Option<NaiveDate>,
    /// Exclusive.
    pub effective_to: Option<NaiveDate>,
    pub why: String,
}

impl RefusedVersion {
    /// Whether the refused version would be in force on `day`.
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.effective_from.is_none_or(|from| from <= day)
            && self.effective_to.is_none_or(|to| day < to)
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

/// A row of master data known by its id.
pub trait Identified {
    /// The row's id (`customer_id`, `subscription_id`).
    fn id(&self) -> &str;
}

impl Identified for Customer {
    fn id(&self) -> &str {
        &self.customer_id
    }
}

impl Identified for Subscription {
    fn id(&self) -> &str {
        &self.subscription_id
    }
}

/// Rows with distinct ids, in id order (byte order, as a `BTreeMap<String, _>` orders
/// them), found by binary search.
///
/// A map of a million customers and three million subscriptions held each id twice (the
/// key and the row's own) in nodes allocated beside the rows they were built from: 1.7 GB
/// at its peak. A sorted vector holds each row once and is sorted in place.
#[derive(Debug, Clone, PartialEq)]
pub struct ById<T>(Vec<T>);

impl<T> Default for ById<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Identified> ById<T> {
    /// `rows` in id order.
    ///
    /// # Panics
    /// In debug builds, if two rows have one id (the builder rejects the second).
    #[must_use]
    pub fn from_rows(mut rows: Vec<T>) -> Self {
        // Ids are distinct, so an unstable sort has one outcome.
        rows.sort_unstable_by(|a, b| a.id().cmp(b.id()));
        debug_assert!(
            rows.windows(2).all(|w| w[0].id() < w[1].id()),
            "ids must be distinct"
        );
        Self(rows)
    }

    /// The row of `id`.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&T> {
        self.0
            .binary_search_by(|row| row.id().cmp(id))
            .ok()
            .map(|i| &self.0[i])
    }

    /// Where the row of `id` is in id order.
    #[must_use]
    pub fn position(&self, id: &str) -> Option<usize> {
        self.0.binary_search_by(|row| row.id().cmp(id)).ok()
    }

    /// Whether a row has `id`.
    #[must_use]
    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// (id, row) in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &T)> + Clone {
        self.0.iter().map(|row| (row.id(), row))
    }

    /// The rows in id order.
    pub fn values(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// The rows in id order, as a slice.
    #[must_use]
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// All master data of a run, validated across rows and tables.
#[derive(Debug, Default)]
pub struct Catalog {
    pub customers: ById<Customer>,
    pub products: BTreeMap<String, Product>,
    /// Every valid plan version; its index is the `version_idx` used by rating.
    pub plan_versions: Vec<PlanVersionEntry>,
    /// plan_id → indices into `plan_versions`, by effective_from.
    pub plans: BTreeMap<String, Vec<usize>>,
    pub subscriptions: ById<Subscription>,
    /// tax_region → (effective_from, rate), by effective_from.
    pub tax_rates: BTreeMap<String, Vec<(NaiveDate, Decimal)>>,
    /// By (issued_on, credit_memo_id): the order credits are applied in.
    pub credit_memos: Vec<CreditMemoEntry>,
    /// plan_id → its refused versions, by effective_from.
    pub refused_plan_versions: BTreeMap<String, Vec<RefusedVersion>>,
    /// tax_region → its refused rates, by effective_from.
    pub refused_tax_rates: BTreeMap<String, Vec<RefusedVersion>>,
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

    /// The refused version of `plan_id` that would be in force on `day`.
    pub fn refused_plan_version(&self, plan_id: &str, day: NaiveDate) -> Option<&RefusedVersion> {
        self.refused_plan_versions
            .get(plan_id)?
            .iter()
            .find(|r| r.covers(day))
    }

    /// The refused rate of `region` that would be in force on `day`.
    pub fn refused_tax_rate(&self, region: &str, day: NaiveDate) -> Option<&RefusedVersion> {
        self.refused_tax_rates
            .get(region)?
            .iter()
            .find(|r| r.covers(day))
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

    /// Every customer's billing window for `period`, by customer id.
    ///
    /// # Errors
    /// A window past the calendar's range.
    pub fn billing_windows(&self, period: BillingMonth) -> Result<BTreeMap<String, DateWindow>> {
        self.customers
            .values()
            .map(|c| {
                Ok((
                    c.customer_id.clone(),
                    billing_window(period, c.billing_day)?,
                ))
            })
            .collect()
    }
}

/// The validated master tables a catalog is built from.
#[derive(Debug, Clone, Copy)]
pub struct MasterTables<'a> {
    pub customers: ValidatedRows<'a>,
    pub products: ValidatedRows<'a>,
    pub price_plans: ValidatedRows<'a>,
    pub subscriptions: ValidatedRows<'a>,
    pub tax_rates: ValidatedRows<'a>,
    pub credit_memos: ValidatedRows<'a>,
    /// The rows of price_plans and tax_rates that validation rejected, by the version
    /// they name.
    pub refused_price_plans: &'a [RefusedRow],
    pub refused_tax_rates: &'a [RefusedRow],
}

/// Builds the catalog; rows that break a cross-row rule come back as rejects.
///
/// # Errors
/// [`crate::AccountingError::Internal`] when a row breaks what validation guarantees.
pub fn build_catalog(tables: &MasterTables<'_>) -> Result<(Catalog, Vec<Reject>)> {
    let mut builder = build::Builder::default();
    builder.customers(tables.customers);
    builder.products(tables.products)?;
    builder.price_plans(tables.price_plans, tables.refused_price_plans);
    builder.subscriptions(tables.subscriptions);
    builder.tax_rates(tables.tax_rates, tables.refused_tax_rates);
    builder.credit_memos(tables.credit_memos);
    Ok((builder.catalog, builder.rejects))
}
