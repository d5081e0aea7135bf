//! Revenue recognition (ASC 606 / IFRS 15) for contracts booked as orders.
//!
//! Orders are grouped into contracts (`contract_id`); each order line is a performance
//! obligation. A contract's price is allocated to its obligations by standalone selling
//! price, with carves applied before or after the allocation as the run is told
//! ([`CarveOrder`]); each obligation is then recognised month by month by its product's
//! policy: `ratable` by day over the service period, `point_in_time` on the first day of
//! service, `as_consumed` from this run's rated usage. A condition (acceptance, say) holds
//! an obligation's revenue until the month it is satisfied; a modification re-spreads what
//! is left prospectively. The math is `billrun-engine`'s ([`allocate_contract`],
//! [`ratable_schedule`], [`hold_until`]); this stage checks the inputs across rows, gathers
//! each contract's pieces, and lays the results out as tables and journal entries.
//!
//! Bad rows go to `rejects`; a contract that cannot be allocated or scheduled as a whole
//! (no SSP for a line, lines that disagree on customer or currency) has every line rejected
//! with the reason, so nothing is recognised from half a contract.

mod book;
mod consumed;
mod entries;
mod recognise;
mod reports;
mod rules;
mod tables;

pub use book::ContractBook;
pub use consumed::ConsumedUsage;
pub use reports::{RollForwardRow, WaterfallRow};

use std::collections::BTreeMap;

use billrun_engine::{BillingMonth, CarveOrder, RecognitionMethod, minor_units, round_money};
use billrun_schemas::Reject;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::catalog::ProductKind;
use crate::ledger::{GlAccountType, GlChart, hledger_account};
use crate::rows::ValidatedRows;

/// The deferred-revenue account when a policy names none.
pub const DEFAULT_DEFERRAL_ACCOUNT: &str = "liabilities:deferred revenue";

/// The validated accounting tables of a run.
#[derive(Debug, Clone, Copy)]
pub struct AccountingTables<'a> {
    pub orders: ValidatedRows<'a>,
    pub ssp: ValidatedRows<'a>,
    pub rev_policies: ValidatedRows<'a>,
    pub carve_rules: ValidatedRows<'a>,
    pub conditions: ValidatedRows<'a>,
    pub modifications: ValidatedRows<'a>,
}

/// Checks a policy's or carve's GL reference against the chart.
fn gl_problem(chart: &GlChart, given: Option<&str>, kind: GlAccountType) -> Option<String> {
    given.and_then(|g| chart.check(g, kind).err())
}

/// The recognition of a product without a `rev_policies` row, by its kind: `recurring`
/// ratable, `one_time` point in time, `usage` as consumed.
fn default_method(kind: ProductKind) -> RecognitionMethod {
    match kind {
        ProductKind::Recurring => RecognitionMethod::Ratable,
        ProductKind::Usage => RecognitionMethod::AsConsumed,
        ProductKind::OneTime => RecognitionMethod::PointInTime,
    }
}

/// The hledger name of a deferral account: a name with `:` is kept, a GL number `2400`
/// becomes `liabilities:deferred revenue:2400`.
fn deferral_account(given: Option<&str>) -> String {
    match given.map(hledger_account).filter(|a| !a.is_empty()) {
        Some(account) if account.contains(':') => account,
        Some(account) => format!("{DEFAULT_DEFERRAL_ACCOUNT}:{account}"),
        None => DEFAULT_DEFERRAL_ACCOUNT.to_string(),
    }
}

/// The hledger name of a revenue account given in a policy or carve rule.
fn named_revenue_account(given: &str) -> String {
    let account = hledger_account(given);
    if account.contains(':') {
        account
    } else {
        format!("revenue:{account}")
    }
}

fn money_on_grid(amount: Decimal, currency: &str) -> bool {
    minor_units(currency).is_some_and(|minor| round_money(amount, minor) == amount)
}

/// One row of `revenue_allocations`.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationRow {
    pub contract_id: String,
    pub order_id: String,
    pub line_id: String,
    pub customer_id: String,
    pub product_id: String,
    pub currency: String,
    pub method: RecognitionMethod,
    pub stated_price: Decimal,
    pub ssp: Decimal,
    pub allocated: Decimal,
    pub revenue_account: String,
    pub deferral_account: Option<String>,
    pub carve_rule_id: Option<String>,
}

/// Whether a schedule month is recognised as of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScheduleStatus {
    Recognized,
    Deferred,
}

impl ScheduleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleStatus::Recognized => "recognized",
            ScheduleStatus::Deferred => "deferred",
        }
    }
}

/// One row of `revenue_schedule`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    pub invoice_id: Option<String>,
    pub order_id: String,
    pub line_id: String,
    pub customer_id: String,
    pub product_id: String,
    pub month: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
    pub status: ScheduleStatus,
    pub contract_id: String,
    pub method: RecognitionMethod,
    pub revenue_account: String,
    pub deferral_account: Option<String>,
    pub condition_id: Option<String>,
    /// Held by an open condition.
    pub held: bool,
    /// The month the contract was billed (the waterfall's row).
    pub booked_month: NaiveDate,
}

/// One row of `contract_billings`, with the deferral credits its journal entry makes.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractBilling {
    pub billing_id: String,
    pub contract_id: String,
    pub customer_id: String,
    pub currency: String,
    pub billed_on: NaiveDate,
    pub amount: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    pub modification_id: Option<String>,
    /// Σ credited per deferral account; adds up to `amount`.
    pub deferred: BTreeMap<String, Decimal>,
}

/// What revenue recognition found.
#[derive(Debug, Default)]
pub struct Recognition {
    pub allocations: Vec<AllocationRow>,
    pub schedule: Vec<ScheduleRow>,
    pub billings: Vec<ContractBilling>,
    pub rejects: Vec<Reject>,
    /// The first day of the run's calendar month.
    pub month: Option<NaiveDate>,
}

/// What recognition is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct RecognitionOptions {
    pub period: BillingMonth,
    pub carve_order: CarveOrder,
}
