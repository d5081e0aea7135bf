//! `ar_aging`: what each customer owes in each currency, by how long it is past due.

use std::collections::BTreeMap;

use billrun_engine::checked;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::cash::{Application, SourceKind};
use super::receivables::Receivable;
use crate::error::Result;

/// One row of `ar_aging`: a customer and currency with something open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgingRow {
    pub customer_id: String,
    pub currency: String,
    pub as_of: NaiveDate,
    /// Open and not past due (days_past_due = 0).
    pub current: Decimal,
    pub past_due_1_30: Decimal,
    pub past_due_31_60: Decimal,
    pub past_due_61_90: Decimal,
    pub past_due_over_90: Decimal,
    /// Σ of the buckets.
    pub total: Decimal,
}

impl AgingRow {
    fn new(customer_id: &str, currency: &str, as_of: NaiveDate) -> Self {
        Self {
            customer_id: customer_id.to_string(),
            currency: currency.to_string(),
            as_of,
            current: Decimal::ZERO,
            past_due_1_30: Decimal::ZERO,
            past_due_31_60: Decimal::ZERO,
            past_due_61_90: Decimal::ZERO,
            past_due_over_90: Decimal::ZERO,
            total: Decimal::ZERO,
        }
    }

    /// The bucket of an amount `days` past due.
    fn bucket(&mut self, days: u32) -> &mut Decimal {
        match days {
            0 => &mut self.current,
            1..=30 => &mut self.past_due_1_30,
            31..=60 => &mut self.past_due_31_60,
            61..=90 => &mut self.past_due_61_90,
            _ => &mut self.past_due_over_90,
        }
    }
}

/// The aging of `receivables` as of `as_of`, one row per (customer, currency) with
/// something open, in that order. Unapplied cash and credit are not netted: they are
/// customer balances, not receivables.
///
/// # Errors
/// Overflow.
pub fn ar_aging(receivables: &[Receivable], as_of: NaiveDate) -> Result<Vec<AgingRow>> {
    let mut rows: BTreeMap<(&str, &str), AgingRow> = BTreeMap::new();
    for r in receivables {
        let open = r.open()?;
        if open.is_zero() {
            continue;
        }
        let days = r.days_past_due(as_of)?;
        let row = rows
            .entry((r.customer_id.as_str(), r.currency.as_str()))
            .or_insert_with(|| AgingRow::new(&r.customer_id, &r.currency, as_of));
        let bucket = row.bucket(days);
        *bucket = checked::add(*bucket, open, "aging bucket")?;
        row.total = checked::add(row.total, open, "aging total")?;
    }
    Ok(rows.into_values().collect())
}

/// The posted invoices as they stood at the start of `on`, for `billrun report ar-aging
/// --on`: those issued on or before `on`, each paid by the payments and unapplied cash
/// paid before `on` and applied by then. Credit memos and notes are not counted again: they are `credit`
/// lines inside an invoice's total, or (a credit note) its `credited`.
///
/// # Errors
/// Overflow.
pub fn receivables_on(
    posted: &[Receivable],
    applications: &[Application],
    on: NaiveDate,
) -> Result<Vec<Receivable>> {
    let mut paid: BTreeMap<&str, Decimal> = BTreeMap::new();
    for a in applications {
        let cash = matches!(
            a.source_kind,
            SourceKind::Payment | SourceKind::UnappliedCash
        );
        // Cash counts once it is both paid before `on` and applied (on or before it:
        // unapplied cash is applied on the day an invoice is issued).
        let paid_before = a.paid_on.unwrap_or(a.applied_on) < on;
        if cash && paid_before && a.applied_on <= on {
            let sum = paid.entry(a.invoice_id.as_str()).or_default();
            *sum = checked::add(*sum, a.amount, "paid as of")?;
        }
    }
    Ok(posted
        .iter()
        .filter(|r| r.issue_date <= on)
        .map(|r| Receivable {
            paid: paid.get(r.invoice_id.as_str()).copied().unwrap_or_default(),
            ..r.clone()
        })
        .collect())
}
