//! With the books: usage that falls in a period already posted. An event whose id was
//! billed in that period is a duplicate across runs (rejected, naming the invoice);
//! any other is late usage.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Date32Type, TimestampMicrosecondType, UInt32Type, UInt64Type};
use billrun_accounting::catalog::Catalog;
use billrun_accounting::invoicing::invoice_id;
use billrun_engine::BillingMonth;
use billrun_schemas::{Reject, RowRenderer, Table};
use bytes::Bytes;
use chrono::{DateTime, Datelike, NaiveDate};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::books::{Books, Commit};
use crate::error::{PipelineError, Result};
use crate::rating::UnratedReason;

/// An event as a posted run billed it.
#[derive(Debug, Clone)]
struct Billed {
    customer_id: String,
    product_id: String,
    ts: i64,
    /// Quantity at the table's scale, compared as written.
    quantity: i128,
    currency: String,
    period: BillingMonth,
}

/// What became of the events of posted periods.
#[derive(Debug, Default)]
pub(super) struct PostedPeriodUsage {
    pub duplicates: Vec<Reject>,
    /// Late events, for `unrated` (in the scan's unrated columns).
    pub late: Vec<RecordBatch>,
    /// (file index, row number) of every event before the first posted period: open,
    /// tried again later.
    pub open: Vec<(u32, u64)>,
    /// Events before the first posted period: outside the period, as without books.
    pub outside: u64,
    /// Rows a posting already left unrated in their posted period, unrated again with
    /// the same reason (the period's master data is the posted run's, unchanged), in
    /// the scan's unrated columns; they stay open.
    pub unrated_again: Vec<RecordBatch>,
}

/// Per file index, the open rows a posting left unrated in a posted period.
pub(super) type TriedRows<'a> =
    BTreeMap<u32, &'a BTreeMap<u64, billrun_accounting::books::TriedRow>>;

/// The billing period whose window (`billing_day` d: [month-d, next month-d)) holds
/// `day`.
pub(super) fn period_of(day: NaiveDate, billing_day: u32) -> BillingMonth {
    let month = BillingMonth {
        year: day.year(),
        month: day.month(),
    };
    if day.day() >= billing_day {
        month
    } else if month.month == 1 {
        BillingMonth {
            year: month.year - 1,
            month: 12,
        }
    } else {
        BillingMonth {
            year: month.year,
            month: month.month - 1,
        }
    }
}

/// Sorts the events of posted periods (`batches`, in the scan's columns) into duplicates
/// of events billed there and late usage. Reads the billed events of the posting runs
/// (`rated_usage` kept in the books), only when there are such events.
///
/// # Errors
/// Damaged books; malformed batches.
pub(super) async fn sort_posted_period_usage(
    run: &super::posting::BooksRun,
    batches: &[RecordBatch],
    posted: (BillingMonth, BillingMonth),
    catalog: &Catalog,
    file_names: &[String],
    unrated_schema: &arrow::datatypes::SchemaRef,
    tried: &TriedRows<'_>,
) -> Result<PostedPeriodUsage> {
    let mut out = PostedPeriodUsage::default();
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(out);
    }
    // The ids to look up, and the posted periods they may have been billed in: only
    // those periods' events are read back, so a run's cost does not grow with the
    // books' history.
    // A row a posting left unrated in its period was not billed there (a billed event
    // with its id would have made it a duplicate then), and its answer does not change.
    let tried_in = |file: u32, row: u64, period: BillingMonth| -> Option<&str> {
        let t = tried.get(&file)?.get(&row)?;
        (t.period == period.to_string()).then_some(t.code.as_str())
    };
    let period_at = |customer: &str, micros: i64| -> Result<BillingMonth> {
        let billing_day = catalog.customers.get(customer).map_or(1, |c| c.billing_day);
        DateTime::from_timestamp_micros(micros)
            .map(|t| period_of(t.date_naive(), billing_day))
            .ok_or_else(|| PipelineError::Internal("event time out of range".into()))
    };
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut periods: BTreeSet<String> = BTreeSet::new();
    for b in batches {
        let ids = b.column(0).as_string::<i32>();
        let customers = b.column(1).as_string::<i32>();
        let ts = b.column(3).as_primitive::<TimestampMicrosecondType>();
        let files = b.column(5).as_primitive::<UInt32Type>();
        let rows = b.column(6).as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            let period = period_at(customers.value(i), ts.value(i))?;
            if period >= posted.0
                && period <= posted.1
                && tried_in(files.value(i), rows.value(i), period).is_none()
            {
                wanted.insert(ids.value(i).to_string());
                periods.insert(period.to_string());
            }
        }
    }
    let billed = billed_events(&run.books, &run.history, &wanted, &periods).await?;
    let code = UnratedReason::LateForPostedPeriod.code();
    for batch in batches {
        let ids = batch.column(0).as_string::<i32>();
        let customers = batch.column(1).as_string::<i32>();
        let products = batch.column(2).as_string::<i32>();
        let ts = batch.column(3).as_primitive::<TimestampMicrosecondType>();
        let quantities = batch
            .column(4)
            .as_primitive::<arrow::datatypes::Decimal128Type>();
        let files = batch.column(5).as_primitive::<UInt32Type>();
        let rows = batch.column(6).as_primitive::<UInt64Type>();
        let render = RowRenderer::new(batch);
        let mut late: Vec<u32> = Vec::new();
        let mut again: Vec<(u32, &str)> = Vec::new();
        for i in 0..batch.num_rows() {
            let customer = customers.value(i);
            let period = period_at(customer, ts.value(i))?;
            if period < posted.0 || period > posted.1 {
                out.outside += 1;
                out.open.push((files.value(i), rows.value(i)));
                continue;
            }
            if let Some(code) = tried_in(files.value(i), rows.value(i), period) {
                again.push((i as u32, code));
                out.open.push((files.value(i), rows.value(i)));
                continue;
            }
            match billed.get(ids.value(i)).filter(|b| b.period == period) {
                Some(b) => {
                    let mut differing = Vec::new();
                    if b.customer_id != customer {
                        differing.push("customer_id");
                    }
                    if b.product_id != products.value(i) {
                        differing.push("product_id");
                    }
                    if b.ts != ts.value(i) {
                        differing.push("ts");
                    }
                    if b.quantity != quantities.value(i) {
                        differing.push("quantity");
                    }
                    let invoice = invoice_id(period, &b.customer_id, &b.currency);
                    let (code, reason) = crate::rating::dedupe::duplicate_verdict(
                        ids.value(i),
                        &format!("was billed in period {period} on invoice {invoice}"),
                        &differing,
                    );
                    out.duplicates.push(Reject {
                        table: Table::Usage,
                        source_file: file_names
                            .get(files.value(i) as usize)
                            .cloned()
                            .unwrap_or_default(),
                        row_number: Some(rows.value(i)),
                        column: Some("event_id".into()),
                        code,
                        reason,
                        raw: render.row(i),
                    });
                }
                // Late: billed as a correction, or left open if it cannot be priced.
                None => late.push(i as u32),
            }
        }
        if !again.is_empty() {
            let (indices, codes): (Vec<u32>, Vec<&str>) = again.into_iter().unzip();
            let indices = arrow::array::UInt32Array::from(indices);
            let mut columns = Vec::with_capacity(8);
            for c in 0..5 {
                columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
            }
            columns.push(Arc::new(StringArray::from(codes)) as _);
            for c in 5..7 {
                columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
            }
            out.unrated_again
                .push(RecordBatch::try_new(Arc::clone(unrated_schema), columns)?);
        }
        if !late.is_empty() {
            let indices = arrow::array::UInt32Array::from(late);
            let n = indices.len();
            let mut columns = Vec::with_capacity(8);
            for c in 0..5 {
                columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
            }
            columns.push(Arc::new(StringArray::from(vec![code; n])) as _);
            for c in 5..7 {
                columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
            }
            out.late
                .push(RecordBatch::try_new(Arc::clone(unrated_schema), columns)?);
        }
    }
    Ok(out)
}

/// The events among `wanted` that posting runs billed in `periods`, by event id (the
/// last posting that billed an id wins; an id is billed once per period): the events
/// of the runs that posted those periods, and every posting's late events (few).
async fn billed_events(
    books: &Books,
    commits: &[Commit],
    wanted: &BTreeSet<String>,
    periods: &BTreeSet<String>,
) -> Result<BTreeMap<String, Billed>> {
    let mut billed = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(billed);
    }
    let mut files = Vec::new();
    for commit in commits {
        if periods.contains(&commit.period) {
            files.push(format!("{}/rated_usage.parquet", commit.files));
        }
        let late = format!("{}/rated_usage-late.parquet", commit.files);
        if books.has(&late).await? {
            files.push(late);
        }
    }
    for relative in files {
        let bytes: Bytes = books.get(&relative).await?;
        let damaged = |e: &dyn std::fmt::Display| PipelineError::BooksDamaged {
            books: books.location.clone(),
            file: relative.clone(),
            reason: format!("cannot be read: {e}"),
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| damaged(&e))?;
        let names = [
            "event_id",
            "customer_id",
            "product_id",
            "ts",
            "quantity",
            "currency",
            "period_start",
        ];
        let schema = builder.schema().clone();
        let indices: Vec<usize> = names
            .iter()
            .map(|n| schema.index_of(n).map_err(|e| damaged(&e)))
            .collect::<Result<_>>()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        for batch in builder
            .with_projection(mask)
            .build()
            .map_err(|e| damaged(&e))?
        {
            let batch = batch.map_err(|e| damaged(&e))?;
            let col = |n: &str| batch.column_by_name(n).ok_or_else(|| damaged(&n));
            let ids = col("event_id")?.as_string::<i32>();
            let customers = col("customer_id")?.as_string::<i32>();
            let products = col("product_id")?.as_string::<i32>();
            let ts = col("ts")?.as_primitive::<TimestampMicrosecondType>();
            let quantities = col("quantity")?.as_primitive::<arrow::datatypes::Decimal128Type>();
            let currencies = col("currency")?.as_string::<i32>();
            let periods = col("period_start")?.as_primitive::<Date32Type>();
            for i in 0..batch.num_rows() {
                if !wanted.contains(ids.value(i)) {
                    continue;
                }
                let start = Date32Type::to_naive_date_opt(periods.value(i))
                    .ok_or_else(|| damaged(&"period_start out of range"))?;
                billed.insert(
                    ids.value(i).to_string(),
                    Billed {
                        customer_id: customers.value(i).to_string(),
                        product_id: products.value(i).to_string(),
                        ts: ts.value(i),
                        quantity: quantities.value(i),
                        currency: currencies.value(i).to_string(),
                        period: BillingMonth {
                            year: start.year(),
                            month: start.month(),
                        },
                    },
                );
            }
        }
    }
    Ok(billed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_belongs_to_the_period_whose_window_holds_its_day() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let m = |s: &str| BillingMonth::parse(s).unwrap();
        assert_eq!(period_of(day("2026-10-31"), 1), m("2026-10"));
        assert_eq!(period_of(day("2026-11-14"), 15), m("2026-10"));
        assert_eq!(period_of(day("2026-11-15"), 15), m("2026-11"));
        assert_eq!(period_of(day("2027-01-03"), 5), m("2026-12"));
    }
}
