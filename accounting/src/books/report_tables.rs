//! The reports on the books as Arrow, for `billrun report` to print as a table, CSV or
//! JSON. Money is `Decimal128(38, 4)` as in every output; DSO and percentages have 2
//! decimals.

use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use billrun_engine::decimal_to_i128_scaled;
use billrun_schemas::{DECIMAL_PRECISION, money_type};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::receivables::Receivable;
use super::reports::{AccuracyRow, DsoRow, RegisteredInvoice, StatementLine};
use super::tables::receivable_columns;
use crate::columns::{date_array, money_array, opt_strings, strings};
use crate::error::Result;
use billrun_schemas::outputs::OutputTable;

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, false)
}

fn date(name: &str) -> Field {
    Field::new(name, DataType::Date32, false)
}

fn money(name: &str) -> Field {
    Field::new(name, money_type(), false)
}

/// A `Decimal128(38, 2)` field.
fn two_decimals(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Decimal128(DECIMAL_PRECISION, 2), nullable)
}

fn two_decimal_array(values: impl Iterator<Item = Option<Decimal>>) -> Result<ArrayRef> {
    let mantissas = values
        .map(|v| v.map(|v| decimal_to_i128_scaled(v, 2)).transpose())
        .collect::<Result<Vec<Option<i128>>, _>>()?;
    Ok(Arc::new(
        Decimal128Array::from(mantissas).with_precision_and_scale(DECIMAL_PRECISION, 2)?,
    ))
}

fn count(values: impl Iterator<Item = u64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(
        values.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
    ))
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// `billrun report invoice-register`: every posted invoice by number, as it stands on
/// `on`.
///
/// # Errors
/// Overflow; money that does not fit.
pub fn invoice_register_batch(rows: &[RegisteredInvoice], on: NaiveDate) -> Result<RecordBatch> {
    let receivables: Vec<&Receivable> = rows.iter().map(|i| &i.receivable).collect();
    // invoice_id, customer_id, currency, issue_date, due_date, total, paid, credited,
    // open, status, days_past_due, as in `receivables`.
    let mut columns = receivable_columns(&receivables, on)?;
    columns.insert(0, count(rows.iter().map(|i| i.invoice_number)));
    columns.insert(2, strings(rows.iter().map(|i| i.posted_in.as_str())));
    columns.push(opt_strings(
        rows.iter().map(|i| i.corrects_invoice_id.as_deref()),
    ));
    let receivables_schema = OutputTable::Receivables.schema();
    let mut fields: Vec<Field> = receivables_schema
        .fields()
        .iter()
        .filter(|f| f.name() != "invoice_number")
        .map(|f| f.as_ref().clone())
        .collect();
    fields.insert(0, Field::new("invoice_number", DataType::Int64, false));
    fields.insert(2, text("posted_in"));
    fields.push(Field::new("corrects_invoice_id", DataType::Utf8, true));
    batch(fields, columns)
}

/// `billrun report invoice-accuracy`.
///
/// # Errors
/// A percentage that does not fit.
pub fn invoice_accuracy_batch(rows: &[AccuracyRow]) -> Result<RecordBatch> {
    batch(
        vec![
            text("period"),
            Field::new("invoices", DataType::Int64, false),
            Field::new("corrected", DataType::Int64, false),
            two_decimals("accuracy_percent", false),
        ],
        vec![
            strings(rows.iter().map(|r| r.period.as_str())),
            count(rows.iter().map(|r| r.invoices)),
            count(rows.iter().map(|r| r.corrected)),
            two_decimal_array(rows.iter().map(|r| Some(r.accuracy_percent)))?,
        ],
    )
}

/// `billrun report dso`.
///
/// # Errors
/// Money that does not fit.
pub fn dso_batch(rows: &[DsoRow]) -> Result<RecordBatch> {
    let days = |v: &mut dyn Iterator<Item = Option<u32>>| -> ArrayRef {
        Arc::new(Int32Array::from_iter(
            v.map(|d| d.map(|d| i32::try_from(d).unwrap_or(i32::MAX))),
        ))
    };
    let invoiced_3m = rows
        .iter()
        .map(|r| {
            r.invoiced_3m
                .map(|v| decimal_to_i128_scaled(v, 4))
                .transpose()
        })
        .collect::<Result<Vec<Option<i128>>, _>>()?;
    batch(
        vec![
            text("period"),
            text("currency"),
            money("receivables"),
            money("invoiced"),
            Field::new("days", DataType::Int32, false),
            two_decimals("dso", true),
            Field::new("invoiced_3m", money_type(), true),
            Field::new("days_3m", DataType::Int32, true),
            two_decimals("dso_3m", true),
        ],
        vec![
            strings(rows.iter().map(|r| r.period.as_str())),
            strings(rows.iter().map(|r| r.currency.as_str())),
            money_array(rows.iter().map(|r| r.receivables))?,
            money_array(rows.iter().map(|r| r.invoiced))?,
            days(&mut rows.iter().map(|r| Some(r.days))),
            two_decimal_array(rows.iter().map(|r| r.dso))?,
            Arc::new(
                Decimal128Array::from(invoiced_3m)
                    .with_precision_and_scale(DECIMAL_PRECISION, 4)?,
            ),
            days(&mut rows.iter().map(|r| r.days_3m)),
            two_decimal_array(rows.iter().map(|r| r.dso_3m))?,
        ],
    )
}

/// `billrun report statement`.
///
/// # Errors
/// Money that does not fit.
pub fn statement_batch(rows: &[StatementLine]) -> Result<RecordBatch> {
    batch(
        vec![
            text("customer_id"),
            text("currency"),
            date("date"),
            text("kind"),
            text("reference"),
            money("amount"),
            money("balance"),
        ],
        vec![
            strings(rows.iter().map(|r| r.customer_id.as_str())),
            strings(rows.iter().map(|r| r.currency.as_str())),
            date_array(rows.iter().map(|r| r.date)),
            strings(rows.iter().map(|r| r.kind)),
            strings(rows.iter().map(|r| r.reference.as_str())),
            money_array(rows.iter().map(|r| r.amount))?,
            money_array(rows.iter().map(|r| r.balance))?,
        ],
    )
}

/// `billrun report tax`.
///
/// # Errors
/// Money that does not fit.
pub fn tax_batch(rows: &[super::reports::TaxRow]) -> Result<RecordBatch> {
    let rates = rows
        .iter()
        .map(|r| r.tax_rate.map(|v| decimal_to_i128_scaled(v, 6)).transpose())
        .collect::<Result<Vec<Option<i128>>, _>>()?;
    batch(
        vec![
            text("month"),
            text("currency"),
            Field::new("tax_region", DataType::Utf8, true),
            Field::new("tax_rate", DataType::Decimal128(DECIMAL_PRECISION, 6), true),
            Field::new("invoices", DataType::Int64, false),
            money("taxable"),
            money("tax"),
        ],
        vec![
            strings(rows.iter().map(|r| r.month.as_str())),
            strings(rows.iter().map(|r| r.currency.as_str())),
            opt_strings(rows.iter().map(|r| r.tax_region.as_deref())),
            Arc::new(Decimal128Array::from(rates).with_precision_and_scale(DECIMAL_PRECISION, 6)?),
            count(rows.iter().map(|r| r.invoices)),
            money_array(rows.iter().map(|r| r.taxable))?,
            money_array(rows.iter().map(|r| r.tax))?,
        ],
    )
}

/// `billrun report mrr`.
///
/// # Errors
/// Money that does not fit.
pub fn mrr_batch(rows: &[super::reports::MrrRow]) -> Result<RecordBatch> {
    batch(
        vec![
            text("period"),
            text("currency"),
            Field::new("customers", DataType::Int64, false),
            money("mrr"),
            money("new"),
            money("expansion"),
            money("contraction"),
            money("churn"),
            money("arr"),
        ],
        vec![
            strings(rows.iter().map(|r| r.period.as_str())),
            strings(rows.iter().map(|r| r.currency.as_str())),
            count(rows.iter().map(|r| r.customers)),
            money_array(rows.iter().map(|r| r.mrr))?,
            money_array(rows.iter().map(|r| r.new))?,
            money_array(rows.iter().map(|r| r.expansion))?,
            money_array(rows.iter().map(|r| r.contraction))?,
            money_array(rows.iter().map(|r| r.churn))?,
            money_array(rows.iter().map(|r| r.arr))?,
        ],
    )
}
