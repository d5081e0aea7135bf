//! Reports on the books (`billrun report … --books B`): the invoice register, invoice
//! accuracy, days sales outstanding and customer statements. Pure functions over what
//! the books posted; the pipeline reads the books and renders the rows.

use std::collections::{BTreeMap, BTreeSet};

use billrun_engine::{BillingMonth, checked};
use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use super::receivables::Receivable;
use crate::error::Result;
use crate::ledger::payments::Payment;

/// A posted invoice as the reports see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredInvoice {
    /// As it stands on the report's day (`paid` as of then).
    pub receivable: Receivable,
    pub invoice_number: u64,
    /// The billing period whose run posted it (`2026-11` for a correction of October
    /// billed in November).
    pub posted_in: String,
    pub corrects_invoice_id: Option<String>,
}

/// One row of the invoice accuracy report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccuracyRow {
    pub period: String,
    /// The period's own invoices (corrections are not counted as invoices of a period).
    pub invoices: u64,
    /// Of those, the ones with at least one posted correction.
    pub corrected: u64,
    /// (invoices − corrected) / invoices × 100, rounded half away from zero to 2
    /// decimals.
    pub accuracy_percent: Decimal,
}

/// Invoice accuracy per billing period: the share of each period's invoices that no
/// correction invoice corrects (so far). `invoices` are every posted invoice; a
/// period's own invoices are those its run posted that correct nothing.
///
/// # Errors
/// Overflow.
pub fn invoice_accuracy(invoices: &[RegisteredInvoice]) -> Result<Vec<AccuracyRow>> {
    let corrected: BTreeSet<&str> = invoices
        .iter()
        .filter_map(|i| i.corrects_invoice_id.as_deref())
        .collect();
    let mut per_period: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for i in invoices.iter().filter(|i| i.corrects_invoice_id.is_none()) {
        let (n, c) = per_period.entry(i.posted_in.as_str()).or_default();
        *n += 1;
        if corrected.contains(i.receivable.invoice_id.as_str()) {
            *c += 1;
        }
    }
    per_period
        .into_iter()
        .map(|(period, (n, c))| {
            let accurate = Decimal::from(n - c);
            let percent = checked::div(
                checked::mul(accurate, Decimal::ONE_HUNDRED, "accuracy")?,
                Decimal::from(n),
                "accuracy",
            )?;
            Ok(AccuracyRow {
                period: period.to_string(),
                invoices: n,
                corrected: c,
                accuracy_percent: percent
                    .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
            })
        })
        .collect()
}

/// One posted period, as days sales outstanding needs it.
#[derive(Debug, Clone)]
pub struct PostedPeriod {
    pub period: BillingMonth,
    /// Every invoice open after the period's posting (what was receivable at its
    /// as_of, the first day after the month).
    pub open_after: Vec<Receivable>,
    /// The invoices the period's run posted (their totals: corrections included, a
    /// credit note negative).
    pub invoiced: Vec<Receivable>,
}

/// One row of the DSO report: a period and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsoRow {
    pub period: String,
    pub currency: String,
    /// Σ open at the period's end (its as_of).
    pub receivables: Decimal,
    /// Σ totals of the invoices its run posted.
    pub invoiced: Decimal,
    /// Days in the period's calendar month.
    pub days: u32,
    /// receivables / invoiced × days, to 2 decimals; `None` when nothing was invoiced.
    pub dso: Option<Decimal>,
    /// The same over the period and the two before it (Σ invoiced, Σ days), when the
    /// books hold all three.
    pub invoiced_3m: Option<Decimal>,
    pub days_3m: Option<u32>,
    pub dso_3m: Option<Decimal>,
}

/// Days sales outstanding per posted period and currency (the count-back-free
/// "receivables at month end ÷ invoiced in the month × days in the month"), and over
/// three months. `periods` in posting order.
///
/// # Errors
/// Overflow.
pub fn days_sales_outstanding(periods: &[PostedPeriod]) -> Result<Vec<DsoRow>> {
    let days_in = |m: BillingMonth| -> u32 {
        let first = NaiveDate::from_ymd_opt(m.year, m.month, 1);
        let next = if m.month == 12 {
            NaiveDate::from_ymd_opt(m.year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(m.year, m.month + 1, 1)
        };
        match (first, next) {
            (Some(a), Some(b)) => u32::try_from((b - a).num_days()).unwrap_or_default(),
            _ => 0,
        }
    };
    let ratio = |receivables: Decimal, invoiced: Decimal, days: u32| -> Result<Option<Decimal>> {
        if invoiced <= Decimal::ZERO {
            return Ok(None);
        }
        let r = checked::mul(
            checked::div(receivables, invoiced, "dso")?,
            Decimal::from(days),
            "dso",
        )?;
        Ok(Some(r.round_dp_with_strategy(
            2,
            RoundingStrategy::MidpointAwayFromZero,
        )))
    };
    let sums = |list: &[Receivable], open: bool| -> Result<BTreeMap<String, Decimal>> {
        let mut by: BTreeMap<String, Decimal> = BTreeMap::new();
        for r in list {
            let amount = if open { r.open()? } else { r.total };
            let sum = by.entry(r.currency.clone()).or_default();
            *sum = checked::add(*sum, amount, "dso sum")?;
        }
        Ok(by)
    };
    let mut invoiced_by: Vec<BTreeMap<String, Decimal>> = Vec::with_capacity(periods.len());
    let mut rows = Vec::new();
    for (k, p) in periods.iter().enumerate() {
        let receivables = sums(&p.open_after, true)?;
        let invoiced = sums(&p.invoiced, false)?;
        invoiced_by.push(invoiced.clone());
        let currencies: BTreeSet<&String> = receivables.keys().chain(invoiced.keys()).collect();
        // Three consecutive months in the books: this one and the two posted before.
        let consecutive = |a: BillingMonth, b: BillingMonth| a.next().ok() == Some(b);
        let three = (k >= 2
            && consecutive(periods[k - 2].period, periods[k - 1].period)
            && consecutive(periods[k - 1].period, p.period))
        .then(|| &periods[k - 2..=k]);
        for currency in currencies {
            let r = receivables.get(currency).copied().unwrap_or_default();
            let i = invoiced.get(currency).copied().unwrap_or_default();
            let days = days_in(p.period);
            let (invoiced_3m, days_3m, dso_3m) = match three {
                Some(window) => {
                    let mut sum = Decimal::ZERO;
                    for month in &invoiced_by[k - 2..=k] {
                        let part = month.get(currency).copied().unwrap_or_default();
                        sum = checked::add(sum, part, "dso 3 months")?;
                    }
                    let d: u32 = window.iter().map(|w| days_in(w.period)).sum();
                    (Some(sum), Some(d), ratio(r, sum, d)?)
                }
                None => (None, None, None),
            };
            rows.push(DsoRow {
                period: p.period.to_string(),
                currency: currency.clone(),
                receivables: r,
                invoiced: i,
                days,
                dso: ratio(r, i, days)?,
                invoiced_3m,
                days_3m,
                dso_3m,
            });
        }
    }
    Ok(rows)
}

/// One line of a customer statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    pub customer_id: String,
    pub currency: String,
    pub date: NaiveDate,
    /// `opening`, `invoice`, `correction`, `payment` or `closing`.
    pub kind: &'static str,
    /// The invoice or payment id; empty on opening and closing lines.
    pub reference: String,
    /// What the line adds to the balance (an invoice's total, a payment negated); the
    /// balance itself on opening and closing lines.
    pub amount: Decimal,
    /// What the customer owes after the line: invoiced − paid.
    pub balance: Decimal,
}

/// Customer statements for the days `from..=to`: per customer and currency with
/// anything to show, the opening balance (everything before `from`), each invoice
/// issued and payment received in the range in date order (on one day, invoices
/// before payments, then by id as bytes), and the closing balance. Invoices count at
/// their totals (credit memos and notes already applied inside them; a credit note is
/// not a line: its value is in the totals of the invoices that use it); payments at
/// their amount, applied or not, so the balance is what is receivable less unapplied
/// cash (credit not used yet is not in it: see `customer_balances`). `customer` keeps
/// one customer.
///
/// # Errors
/// Overflow.
pub fn statements(
    invoices: &[RegisteredInvoice],
    payments: &[Payment],
    from: NaiveDate,
    to: NaiveDate,
    customer: Option<&str>,
) -> Result<Vec<StatementLine>> {
    // (customer, currency) → (opening, [(date, order, kind, reference, amount)]).
    type Events<'a> = Vec<(NaiveDate, u8, &'static str, &'a str, Decimal)>;
    let mut by: BTreeMap<(&str, &str), (Decimal, Events<'_>)> = BTreeMap::new();
    let wanted = |c: &str| customer.is_none_or(|w| w == c);
    for i in invoices
        .iter()
        .filter(|i| wanted(&i.receivable.customer_id))
    {
        let r = &i.receivable;
        // A credit note is settled by becoming credit: its value reaches the balance
        // through the invoices that use it (their totals are after credit), so it is
        // not a line of its own.
        if r.issue_date > to || r.total.is_sign_negative() {
            continue;
        }
        let entry = by
            .entry((r.customer_id.as_str(), r.currency.as_str()))
            .or_default();
        if r.issue_date < from {
            entry.0 = checked::add(entry.0, r.total, "opening balance")?;
        } else {
            let kind = match i.corrects_invoice_id {
                None => "invoice",
                Some(_) => "correction",
            };
            entry
                .1
                .push((r.issue_date, 0, kind, r.invoice_id.as_str(), r.total));
        }
    }
    for p in payments.iter().filter(|p| wanted(&p.customer_id)) {
        if p.paid_on > to {
            continue;
        }
        let entry = by
            .entry((p.customer_id.as_str(), p.currency.as_str()))
            .or_default();
        if p.paid_on < from {
            entry.0 = checked::sub(entry.0, p.amount, "opening balance")?;
        } else {
            entry
                .1
                .push((p.paid_on, 1, "payment", p.payment_id.as_str(), -p.amount));
        }
    }
    let mut lines = Vec::new();
    for ((customer_id, currency), (opening, mut events)) in by {
        events.sort_by(|a, b| (a.0, a.1, a.3.as_bytes()).cmp(&(b.0, b.1, b.3.as_bytes())));
        let line = |date, kind, reference: &str, amount, balance| StatementLine {
            customer_id: customer_id.to_string(),
            currency: currency.to_string(),
            date,
            kind,
            reference: reference.to_string(),
            amount,
            balance,
        };
        let mut balance = opening;
        lines.push(line(from, "opening", "", opening, balance));
        for (date, _, kind, reference, amount) in events {
            balance = checked::add(balance, amount, "statement balance")?;
            lines.push(line(date, kind, reference, amount, balance));
        }
        lines.push(line(to, "closing", "", balance, balance));
    }
    Ok(lines)
}

/// The calendar day a statement of `period` ends on, and the first: the month's days.
pub fn month_days(period: BillingMonth) -> Option<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::from_ymd_opt(period.year, period.month, 1)?;
    let last = first
        .checked_add_months(chrono::Months::new(1))?
        .pred_opt()?;
    debug_assert_eq!(last.month(), period.month);
    Some((first, last))
}
