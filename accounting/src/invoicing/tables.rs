//! The invoicing stage's tables: `invoices`, `invoice_lines` and `open_credits`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int32Array, RecordBatch, StringArray};
use billrun_engine::{ComposedInvoice, days_since_epoch, decimal_to_i128_scaled};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{DECIMAL_PRECISION, MONEY_SCALE, QUANTITY_SCALE};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{InvoiceRecord, Invoicing, OpenCredit};
use crate::error::Result;

fn scaled(d: Decimal, scale: i8) -> Result<i128> {
    Ok(decimal_to_i128_scaled(d, scale as u32)?)
}

fn decimal_column(values: Vec<Option<i128>>, scale: i8) -> Result<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from(values).with_precision_and_scale(DECIMAL_PRECISION, scale)?,
    ))
}

/// Invoices turned into `invoices` and `invoice_lines` rows at a time by
/// [`Invoicing::invoices_batches`] and [`Invoicing::lines_batches`]: a few megabytes of
/// Arrow arrays, where a million customers' whole tables were hundreds.
const TABLE_BLOCK_INVOICES: usize = 16 * 1024;

impl Invoicing {
    /// The `invoices` table.
    ///
    /// # Errors
    /// Amounts that do not fit Decimal128(38, 4) (not possible for validated inputs).
    pub fn invoices_batch(&self) -> Result<RecordBatch> {
        invoices_batch(&self.invoices)
    }

    /// The `invoices` table as batches of consecutive invoices, each built when asked
    /// for: together the rows of [`Invoicing::invoices_batch`].
    pub fn invoices_batches(&self) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
        self.invoices
            .chunks(TABLE_BLOCK_INVOICES)
            .map(invoices_batch)
    }

    /// The `invoice_lines` table.
    ///
    /// # Errors
    /// As [`Invoicing::invoices_batch`].
    pub fn lines_batch(&self) -> Result<RecordBatch> {
        lines_batch(&self.invoices)
    }

    /// The `invoice_lines` table as batches of the lines of consecutive invoices, each
    /// built when asked for: together the rows of [`Invoicing::lines_batch`].
    pub fn lines_batches(&self) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
        self.invoices.chunks(TABLE_BLOCK_INVOICES).map(lines_batch)
    }

    /// The `open_credits` table.
    ///
    /// # Errors
    /// As [`Invoicing::invoices_batch`].
    pub fn open_credits_batch(&self) -> Result<RecordBatch> {
        let oc = &self.open_credits;
        let money = |f: &dyn Fn(&OpenCredit) -> Decimal| -> Result<ArrayRef> {
            decimal_column(
                oc.iter()
                    .map(|c| scaled(f(c), MONEY_SCALE).map(Some))
                    .collect::<Result<_>>()?,
                MONEY_SCALE,
            )
        };
        Ok(RecordBatch::try_new(
            OutputTable::OpenCredits.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    oc.iter().map(|c| &c.memo.credit_memo_id),
                )),
                Arc::new(StringArray::from_iter_values(
                    oc.iter().map(|c| &c.memo.customer_id),
                )),
                Arc::new(StringArray::from_iter_values(
                    oc.iter().map(|c| &c.memo.currency),
                )),
                Arc::new(Date32Array::from_iter_values(
                    oc.iter().map(|c| days_since_epoch(c.memo.issued_on)),
                )),
                money(&|c| c.memo.amount)?,
                money(&|c| c.applied)?,
                money(&|c| c.remaining)?,
                Arc::new(StringArray::from_iter_values(
                    oc.iter().map(|c| c.kind.as_str()),
                )),
            ],
        )?)
    }
}

/// The `invoices` rows of `inv`.
fn invoices_batch(inv: &[InvoiceRecord]) -> Result<RecordBatch> {
    let money = |f: &dyn Fn(&ComposedInvoice) -> Decimal| -> Result<ArrayRef> {
        decimal_column(
            inv.iter()
                .map(|i| scaled(f(&i.composed), MONEY_SCALE).map(Some))
                .collect::<Result<_>>()?,
            MONEY_SCALE,
        )
    };
    let date = |f: &dyn Fn(&InvoiceRecord) -> NaiveDate| -> ArrayRef {
        Arc::new(Date32Array::from_iter_values(
            inv.iter().map(|i| days_since_epoch(f(i))),
        ))
    };
    Ok(RecordBatch::try_new(
        OutputTable::Invoices.schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                inv.iter().map(|i| &i.invoice_id),
            )),
            Arc::new(StringArray::from_iter_values(
                inv.iter().map(|i| &i.customer_id),
            )),
            Arc::new(StringArray::from_iter_values(
                inv.iter().map(|i| &i.currency),
            )),
            date(&|i| i.window.start),
            date(&|i| i.window.last_day()),
            date(&|i| i.issue_date),
            date(&|i| i.due_date),
            money(&|c| c.subtotal)?,
            money(&|c| c.discount)?,
            money(&|c| c.credits)?,
            money(&|c| c.tax)?,
            money(&|c| c.total)?,
            Arc::new(arrow::array::Int64Array::from_iter(inv.iter().map(|i| {
                i.invoice_number
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
            }))),
            Arc::new(StringArray::from_iter(
                inv.iter().map(|i| i.corrects_invoice_id.as_deref()),
            )),
        ],
    )?)
}

/// The `invoice_lines` rows of `invoices`' lines.
fn lines_batch(invoices: &[InvoiceRecord]) -> Result<RecordBatch> {
    let rows: Vec<(&InvoiceRecord, usize, &billrun_engine::InvoiceLine)> = invoices
        .iter()
        .flat_map(|i| {
            i.composed
                .lines
                .iter()
                .enumerate()
                .map(move |(n, l)| (i, n + 1, l))
        })
        .collect();
    Ok(RecordBatch::try_new(
        OutputTable::InvoiceLines.schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(i, _, _)| &i.invoice_id),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|(_, n, _)| *n as i32),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(i, _, _)| &i.customer_id),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|(_, _, l)| l.product_id.as_deref()),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|(_, _, l)| l.subscription_id.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(_, _, l)| l.kind.as_str()),
            )),
            decimal_column(
                rows.iter()
                    .map(|(_, _, l)| l.quantity.map(|q| scaled(q, QUANTITY_SCALE)).transpose())
                    .collect::<Result<_>>()?,
                QUANTITY_SCALE,
            )?,
            decimal_column(
                rows.iter()
                    .map(|(_, _, l)| scaled(l.amount, MONEY_SCALE).map(Some))
                    .collect::<Result<_>>()?,
                MONEY_SCALE,
            )?,
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(i, _, _)| &i.currency),
            )),
            Arc::new(Date32Array::from_iter_values(
                rows.iter()
                    .map(|(i, _, _)| days_since_epoch(i.window.start)),
            )),
            Arc::new(Date32Array::from_iter_values(
                rows.iter()
                    .map(|(i, _, _)| days_since_epoch(i.window.last_day())),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|(_, _, l)| l.credit_memo_id.as_deref()),
            )),
        ],
    )?)
}
