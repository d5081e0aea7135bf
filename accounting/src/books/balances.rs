//! `customer_balances`: what each customer owes, or is owed, in each currency once
//! receivables, unapplied cash and credit are netted — the figure a statement ends on.

use std::collections::BTreeMap;

use billrun_engine::checked;
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::cash::{Credit, SourceKind};
use super::receivables::Receivable;
use crate::error::Result;

/// One row of `customer_balances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerBalance {
    pub customer_id: String,
    pub currency: String,
    pub as_of: NaiveDate,
    /// Invoices with something open.
    pub open_invoices: u64,
    /// Σ open of the customer's invoices (what `ar_aging` ages).
    pub receivable: Decimal,
    /// Cash received and not applied to any invoice yet.
    pub unapplied_cash: Decimal,
    /// What is left of credit memos and credit notes.
    pub credit: Decimal,
    /// receivable − unapplied_cash − credit: positive, the customer owes; negative, the
    /// customer is owed.
    pub balance: Decimal,
}

/// The balances after a posting: `receivables` as the run lists them (every invoice
/// it posted and every earlier one open when it started) and `credits` left (credit
/// memos, credit notes and unapplied cash). One row per (customer, currency) with
/// something open or left, in that order (as bytes).
///
/// # Errors
/// Overflow.
pub fn customer_balances(
    receivables: &[Receivable],
    credits: &[Credit],
    as_of: NaiveDate,
) -> Result<Vec<CustomerBalance>> {
    let mut rows: BTreeMap<(&str, &str), CustomerBalance> = BTreeMap::new();
    let row = |customer_id: &'_ str, currency: &'_ str| -> CustomerBalance {
        CustomerBalance {
            customer_id: customer_id.to_string(),
            currency: currency.to_string(),
            as_of,
            open_invoices: 0,
            receivable: Decimal::ZERO,
            unapplied_cash: Decimal::ZERO,
            credit: Decimal::ZERO,
            balance: Decimal::ZERO,
        }
    };
    for r in receivables {
        let open = r.open()?;
        if open.is_zero() {
            continue;
        }
        let b = rows
            .entry((r.customer_id.as_str(), r.currency.as_str()))
            .or_insert_with(|| row(&r.customer_id, &r.currency));
        b.open_invoices += 1;
        b.receivable = checked::add(b.receivable, open, "customer receivable")?;
    }
    for c in credits.iter().filter(|c| c.remaining > Decimal::ZERO) {
        let b = rows
            .entry((c.customer_id.as_str(), c.currency.as_str()))
            .or_insert_with(|| row(&c.customer_id, &c.currency));
        if c.kind == SourceKind::UnappliedCash {
            b.unapplied_cash = checked::add(b.unapplied_cash, c.remaining, "unapplied cash")?;
        } else {
            b.credit = checked::add(b.credit, c.remaining, "customer credit")?;
        }
    }
    rows.into_values()
        .map(|mut b| {
            b.balance = checked::sub(
                checked::sub(b.receivable, b.unapplied_cash, "customer balance")?,
                b.credit,
                "customer balance",
            )?;
            Ok(b)
        })
        .collect()
}
