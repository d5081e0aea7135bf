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

/// A posted invoice's tax, as the tax report sums it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxedInvoice {
    pub issue_date: NaiveDate,
    pub currency: String,
    pub tax_region: Option<String>,
    pub tax_rate: Option<Decimal>,
    /// Its charge, minimum and discount lines (what tax is computed on).
    pub taxable: Decimal,
    /// Its tax line.
    pub tax: Decimal,
}

/// One row of the tax report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRow {
    /// The calendar month of the invoices' issue date (the tax point), `2026-11`.
    pub month: String,
    pub currency: String,
    pub tax_region: Option<String>,
    pub tax_rate: Option<Decimal>,
    pub invoices: u64,
    pub taxable: Decimal,
    pub tax: Decimal,
}

/// Tax by issue month, currency, region and rate (customers without a region together,
/// at no rate), in that order.
///
/// # Errors
/// Overflow.
pub fn tax_by_region(invoices: &[TaxedInvoice]) -> Result<Vec<TaxRow>> {
    type Key = (String, String, Option<String>, Option<Decimal>);
    let mut rows: BTreeMap<Key, TaxRow> = BTreeMap::new();
    for i in invoices {
        let month = format!("{:04}-{:02}", i.issue_date.year(), i.issue_date.month());
        let key = (
            month.clone(),
            i.currency.clone(),
            i.tax_region.clone(),
            i.tax_rate,
        );
        let row = rows.entry(key).or_insert_with(|| TaxRow {
            month,
            currency: i.currency.clone(),
            tax_region: i.tax_region.clone(),
            tax_rate: i.tax_rate,
            invoices: 0,
            taxable: Decimal::ZERO,
            tax: Decimal::ZERO,
        });
        row.invoices += 1;
        row.taxable = checked::add(row.taxable, i.taxable, "taxable amount")?;
        row.tax = checked::add(row.tax, i.tax, "tax")?;
    }
    Ok(rows.into_values().collect())
}

/// A period's recurring charge to a customer (Σ its invoice's `recurring` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringCharge {
    pub period: String,
    pub customer_id: String,
    pub currency: String,
    pub amount: Decimal,
}

/// One row of the MRR report: a period and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrrRow {
    pub period: String,
    pub currency: String,
    /// Customers with recurring revenue in the period.
    pub customers: u64,
    /// Σ recurring charges of the period.
    pub mrr: Decimal,
    /// From customers with none the period before.
    pub new: Decimal,
    /// Increases of customers who had some.
    pub expansion: Decimal,
    /// Decreases of customers who still have some (positive).
    pub contraction: Decimal,
    /// What customers with none any more had (positive).
    pub churn: Decimal,
    /// mrr × 12.
    pub arr: Decimal,
}

/// Monthly recurring revenue per posted period (`periods`, in posting order) and
/// currency, with its movements against the period before: mrr = the previous mrr +
/// new + expansion − contraction − churn.
///
/// # Errors
/// Overflow.
pub fn mrr_movements(charges: &[RecurringCharge], periods: &[String]) -> Result<Vec<MrrRow>> {
    // period → currency → customer → amount.
    type ByCustomer<'a> = BTreeMap<&'a str, Decimal>;
    let mut by: BTreeMap<&str, BTreeMap<&str, ByCustomer<'_>>> = BTreeMap::new();
    for c in charges {
        let amount = by
            .entry(c.period.as_str())
            .or_default()
            .entry(c.currency.as_str())
            .or_default()
            .entry(c.customer_id.as_str())
            .or_default();
        *amount = checked::add(*amount, c.amount, "recurring revenue")?;
    }
    let empty = BTreeMap::new();
    let mut rows = Vec::new();
    let mut previous: &BTreeMap<&str, ByCustomer<'_>> = &empty;
    for period in periods {
        let now = by.get(period.as_str()).unwrap_or(&empty);
        let currencies: BTreeSet<&str> = now.keys().chain(previous.keys()).copied().collect();
        for currency in currencies {
            let before = previous.get(currency);
            let after = now.get(currency);
            let customers: BTreeSet<&str> = before
                .into_iter()
                .chain(after)
                .flat_map(|m| m.keys().copied())
                .collect();
            let mut row = MrrRow {
                period: period.clone(),
                currency: currency.to_string(),
                customers: 0,
                mrr: Decimal::ZERO,
                new: Decimal::ZERO,
                expansion: Decimal::ZERO,
                contraction: Decimal::ZERO,
                churn: Decimal::ZERO,
                arr: Decimal::ZERO,
            };
            for customer in customers {
                let was = before
                    .and_then(|m| m.get(customer))
                    .copied()
                    .unwrap_or_default();
                let is = after
                    .and_then(|m| m.get(customer))
                    .copied()
                    .unwrap_or_default();
                let change = checked::sub(is, was, "mrr movement")?;
                let add = |sum: Decimal, v: Decimal| checked::add(sum, v, "mrr movement");
                if is > Decimal::ZERO {
                    row.customers += 1;
                    row.mrr = add(row.mrr, is)?;
                }
                match (was > Decimal::ZERO, is > Decimal::ZERO) {
                    (false, true) => row.new = add(row.new, is)?,
                    (true, false) => row.churn = add(row.churn, was)?,
                    (true, true) if change > Decimal::ZERO => {
                        row.expansion = add(row.expansion, change)?;
                    }
                    (true, true) => row.contraction = add(row.contraction, -change)?,
                    (false, false) => {}
                }
            }
            row.arr = checked::mul(row.mrr, Decimal::from(12), "arr")?;
            rows.push(row);
        }
        previous = now;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(period: &str, customer: &str, amount: &str) -> RecurringCharge {
        RecurringCharge {
            period: period.into(),
            customer_id: customer.into(),
            currency: "EUR".into(),
            amount: amount.parse().unwrap(),
        }
    }

    #[test]
    fn mrr_moves_by_new_expansion_contraction_and_churn() {
        // X 100 → 120 (expansion 20), Y 50 → 20 (contraction 30), Z 30 → gone (churn
        // 30), W new at 40: 180 + 40 + 20 − 30 − 30 = 180.
        let charges = [
            charge("2026-10", "X", "100"),
            charge("2026-10", "Y", "50"),
            charge("2026-10", "Z", "30"),
            charge("2026-11", "X", "120"),
            charge("2026-11", "Y", "20"),
            charge("2026-11", "W", "40"),
        ];
        let rows = mrr_movements(&charges, &["2026-10".into(), "2026-11".into()]).unwrap();
        let shown: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} mrr {} new {} exp {} con {} churn {} arr {}",
                    r.period, r.customers, r.mrr, r.new, r.expansion, r.contraction, r.churn, r.arr
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "2026-10 3 mrr 180 new 180 exp 0 con 0 churn 0 arr 2160",
                "2026-11 3 mrr 180 new 40 exp 20 con 30 churn 30 arr 2160",
            ]
        );
    }

    #[test]
    fn a_period_with_no_recurring_revenue_shows_the_churn() {
        let charges = [charge("2026-10", "X", "100")];
        let rows = mrr_movements(&charges, &["2026-10".into(), "2026-11".into()]).unwrap();
        assert_eq!(
            (rows[1].mrr, rows[1].churn, rows[1].customers),
            (Decimal::ZERO, "100".parse().unwrap(), 0)
        );
    }
}
