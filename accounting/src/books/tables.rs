//! The books' output tables (`receivables`, `ar_aging`, `applications`, and
//! `customer_balances`, billrun's addition) as Arrow, in the columns of
//! `DATA-CONTRACT.md` and `docs/CONTRACT-NOTES.md`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch};
use billrun_schemas::outputs::OutputTable;
use chrono::NaiveDate;

use super::aging::AgingRow;
use super::balances::CustomerBalance;
use super::cash::Application;
use super::receivables::Receivable;
use crate::columns::{date_array, money_array, strings};
use crate::error::Result;

/// `receivables` as of `as_of`: each receivable with its number (`None` where a
/// preview has not posted it), what is open, its status and days past due.
///
/// # Errors
/// Overflow; money that does not fit the table's decimal.
pub fn receivables_batch(
    rows: &[(Receivable, Option<u64>)],
    as_of: NaiveDate,
) -> Result<RecordBatch> {
    let numbers: Int64Array = rows
        .iter()
        .map(|(_, n)| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
        .collect();
    let receivables: Vec<&Receivable> = rows.iter().map(|(r, _)| r).collect();
    let mut columns = receivable_columns(&receivables, as_of)?;
    columns.insert(1, Arc::new(numbers));
    Ok(RecordBatch::try_new(
        OutputTable::Receivables.schema(),
        columns,
    )?)
}

/// The columns of `receivables` but invoice_number, as of `as_of`: invoice_id,
/// customer_id, currency, issue_date, due_date, total, paid, credited, open, status,
/// days_past_due.
///
/// # Errors
/// Overflow; money that does not fit.
pub(super) fn receivable_columns(rows: &[&Receivable], as_of: NaiveDate) -> Result<Vec<ArrayRef>> {
    let r = || rows.iter().copied();
    let mut open = Vec::with_capacity(rows.len());
    let mut status = Vec::with_capacity(rows.len());
    let mut days = Vec::with_capacity(rows.len());
    for receivable in r() {
        open.push(receivable.open()?);
        status.push(receivable.status()?.as_str());
        days.push(i32::try_from(receivable.days_past_due(as_of)?).unwrap_or(i32::MAX));
    }
    Ok(vec![
        strings(r().map(|x| x.invoice_id.as_str())),
        strings(r().map(|x| x.customer_id.as_str())),
        strings(r().map(|x| x.currency.as_str())),
        date_array(r().map(|x| x.issue_date)),
        date_array(r().map(|x| x.due_date)),
        money_array(r().map(|x| x.total))?,
        money_array(r().map(|x| x.paid))?,
        money_array(r().map(|x| x.credited))?,
        money_array(open.into_iter())?,
        strings(status.into_iter()),
        Arc::new(Int32Array::from(days)),
    ])
}

/// `ar_aging`.
///
/// # Errors
/// Money that does not fit the table's decimal.
pub fn ar_aging_batch(rows: &[AgingRow]) -> Result<RecordBatch> {
    let r = || rows.iter();
    let columns: Vec<ArrayRef> = vec![
        strings(r().map(|x| x.customer_id.as_str())),
        strings(r().map(|x| x.currency.as_str())),
        date_array(r().map(|x| x.as_of)),
        money_array(r().map(|x| x.current))?,
        money_array(r().map(|x| x.past_due_1_30))?,
        money_array(r().map(|x| x.past_due_31_60))?,
        money_array(r().map(|x| x.past_due_61_90))?,
        money_array(r().map(|x| x.past_due_over_90))?,
        money_array(r().map(|x| x.total))?,
    ];
    Ok(RecordBatch::try_new(
        OutputTable::ArAging.schema(),
        columns,
    )?)
}

/// `applications`.
///
/// # Errors
/// Money that does not fit the table's decimal.
pub fn applications_batch(rows: &[Application]) -> Result<RecordBatch> {
    let r = || rows.iter();
    let columns: Vec<ArrayRef> = vec![
        strings(r().map(|x| x.source_id.as_str())),
        strings(r().map(|x| x.source_kind.as_str())),
        strings(r().map(|x| x.invoice_id.as_str())),
        money_array(r().map(|x| x.amount))?,
        date_array(r().map(|x| x.applied_on)),
    ];
    Ok(RecordBatch::try_new(
        OutputTable::Applications.schema(),
        columns,
    )?)
}

/// `customer_balances`.
///
/// # Errors
/// Money that does not fit the table's decimal.
pub fn customer_balances_batch(rows: &[CustomerBalance]) -> Result<RecordBatch> {
    let r = || rows.iter();
    let columns: Vec<ArrayRef> = vec![
        strings(r().map(|x| x.customer_id.as_str())),
        strings(r().map(|x| x.currency.as_str())),
        date_array(r().map(|x| x.as_of)),
        Arc::new(Int64Array::from_iter_values(
            r().map(|x| i64::try_from(x.open_invoices).unwrap_or(i64::MAX)),
        )),
        money_array(r().map(|x| x.receivable))?,
        money_array(r().map(|x| x.unapplied_cash))?,
        money_array(r().map(|x| x.credit))?,
        money_array(r().map(|x| x.balance))?,
    ];
    Ok(RecordBatch::try_new(
        OutputTable::CustomerBalances.schema(),
        columns,
    )?)
}
