//! One scan of the deduplicated usage places every event (see [`super::placement`]):
//! events outside their window are left behind, events that cannot be rated are set aside
//! with their reason, and the rest are dealt into buckets of consecutive subscriptions
//! ([`super::order`]), keyed by [`RATING_KEY`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Date32Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimestampMicrosecondType};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::order::{
    Buckets, Dealer, Limits, RATING_KEY, SharedHold, SubscriptionRanges, rating_key,
};
use super::placement::SegmentLookup;
use crate::error::{PipelineError, Result};

/// The columns of an event to rate: the input of [`StreamingAttribution`].
const RATING_COLUMNS: [&str; 7] = [
    "event_id",
    "ts",
    "quantity",
    "period_start",
    "plan_effective_from",
    "subscription_idx",
    "version_idx",
];

/// The columns kept of an event that cannot be rated, for `unrated`.
const UNRATED_COLUMNS: [&str; 6] = [
    "event_id",
    "customer_id",
    "product_id",
    "ts",
    "quantity",
    "status",
];

/// The events of the period, split in one scan into those to rate, dealt into buckets
/// of consecutive subscriptions, and those that cannot be rated.
#[derive(Debug)]
pub struct RatingInput {
    /// The events to rate; [`Buckets::sort_in_background`] hands them out in rating
    /// order, bucket by bucket.
    pub buckets: Buckets,
    /// The events that cannot be rated, with their status code, for [`unrated_usage`].
    pub unrated: Vec<RecordBatch>,
    /// With the books: events of posted periods, in [`SCANNED_COLUMNS`] (late usage, or
    /// duplicates of events billed there).
    pub posted_periods: Vec<RecordBatch>,
    /// With the books: (file index, row number) of every event outside the period and
    /// not in a posted one, which later runs try again.
    pub outside: Vec<(u32, u64)>,
    unrated_schema: SchemaRef,
}

/// Places every event of `usage_deduped` with `lookup` in one scan: events with a
/// priced segment are dealt into the buckets of `ranges` (see [`super::order`]),
/// events that cannot be rated are set aside for `unrated`, and events outside their
/// billing window are left behind. Each partition of the scan runs as a task of its own.
///
/// The subscription's text columns (its id, customer, product, plan, currency) are left
/// out of what is held and sorted, which would otherwise copy five strings per event;
/// [`StreamingAttribution`] puts them back from `subscription_idx`. A subscription's plan
/// is for one product, so ordering by subscription groups each (subscription, product,
/// period); the integer `subscription_idx` stands in for the id because it sorts the
/// same, cheaper. `scanned` counts the rows as they pass.
///
/// # Errors
/// Query failures; I/O errors writing scratch files into `scratch`.
pub async fn rating_input(
    ctx: &SessionContext,
    lookup: Arc<SegmentLookup>,
    ranges: SubscriptionRanges,
    limits: Limits,
    scratch: &crate::store::scratch::Scratch,
    scanned: &indicatif::ProgressBar,
) -> Result<RatingInput> {
    let usage = ctx
        .table("usage_deduped")
        .await?
        .select_columns(&SCANNED_COLUMNS)?;
    let split = Arc::new(SplitByPlace::new(usage.schema().as_arrow(), lookup)?);
    let subscription_column = indices_of(&split.rating_schema, &["subscription_idx"])?[0];
    let hold = SharedHold::new(limits, scratch.path(), scratch.remover());
    let tasks: Vec<_> = usage
        .execute_stream_partitioned()
        .await?
        .into_iter()
        .enumerate()
        .map(|(partition, mut stream)| {
            let split = Arc::clone(&split);
            let mut dealer = Dealer::new(partition, ranges, subscription_column, Arc::clone(&hold));
            let scanned = scanned.clone();
            tokio::spawn(async move {
                let mut aside = SetAside::default();
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    scanned.inc(batch.num_rows() as u64);
                    dealer.deal(&split.split(&batch, &mut aside)?)?;
                }
                Ok::<_, PipelineError>((dealer, aside))
            })
        })
        .collect();
    let mut dealers = Vec::with_capacity(tasks.len());
    let mut aside = SetAside::default();
    let mut tasks = tasks.into_iter();
    while let Some(task) = tasks.next() {
        let finished = match task.await {
            Ok(finished) => finished,
            Err(e) => Err(PipelineError::Internal(format!(
                "a rating scan task failed: {e}"
            ))),
        };
        match finished {
            Ok((dealer, set_aside)) => {
                dealers.push(dealer);
                aside.unrated.extend(set_aside.unrated);
                aside.posted_periods.extend(set_aside.posted_periods);
                aside.outside.extend(set_aside.outside);
            }
            Err(e) => {
                tasks.for_each(|task| task.abort());
                return Err(e);
            }
        }
    }
    // Scan tasks finish in any order; what is kept of them, in file and row order.
    aside.outside.sort_unstable();
    Ok(RatingInput {
        buckets: Buckets::collect(Arc::clone(&split.rating_schema), limits, dealers),
        unrated: aside.unrated,
        posted_periods: aside.posted_periods,
        outside: aside.outside,
        unrated_schema: Arc::clone(&split.unrated_schema),
    })
}

impl RatingInput {
    /// The schema of the `unrated` batches set aside.
    pub fn unrated_schema(&self) -> SchemaRef {
        Arc::clone(&self.unrated_schema)
    }
}

/// What a scan task sets aside instead of rating.
#[derive(Debug, Default)]
struct SetAside {
    unrated: Vec<RecordBatch>,
    posted_periods: Vec<RecordBatch>,
    outside: Vec<(u32, u64)>,
}

fn indices_of(schema: &Schema, names: &[&str]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| {
            schema
                .index_of(n)
                .map_err(|_| PipelineError::Internal(format!("events lack {n}")))
        })
        .collect()
}

/// The columns of `usage_deduped` that rating reads, in this order.
pub const SCANNED_COLUMNS: [&str; 7] = [
    "event_id",
    "customer_id",
    "product_id",
    "ts",
    "quantity",
    billrun_schemas::templates::FILE_INDEX_COLUMN,
    billrun_schemas::templates::ROW_NUMBER_COLUMN,
];

/// Splits a scanned batch of usage by where each event falls (see
/// [`SegmentLookup::place`]).
#[derive(Debug)]
struct SplitByPlace {
    lookup: Arc<SegmentLookup>,
    /// [`RATING_COLUMNS`] and [`RATING_KEY`].
    rating_schema: SchemaRef,
    /// [`UNRATED_COLUMNS`].
    unrated_schema: SchemaRef,
}

impl SplitByPlace {
    /// For batches of [`SCANNED_COLUMNS`] with the types of `scanned`.
    fn new(scanned: &Schema, lookup: Arc<SegmentLookup>) -> Result<Self> {
        let field = |name: &str| -> Result<FieldRef> {
            Ok(Arc::new(
                scanned.field(indices_of(scanned, &[name])?[0]).clone(),
            ))
        };
        // The columns built here rather than taken from the scan, in `split`'s order.
        let built = |name: &str| -> Result<FieldRef> {
            Ok(Arc::new(match name {
                "period_start" | "plan_effective_from" => Field::new(name, DataType::Date32, false),
                "subscription_idx" | "version_idx" => Field::new(name, DataType::UInt32, false),
                "status" => Field::new(name, DataType::Utf8, false),
                _ => return field(name),
            }))
        };
        let mut rating_fields = RATING_COLUMNS
            .iter()
            .map(|name| built(name))
            .collect::<Result<Vec<_>>>()?;
        rating_fields.push(Arc::new(Field::new(RATING_KEY, DataType::UInt64, false)));
        let rating_schema = Arc::new(Schema::new(rating_fields));
        let mut unrated_fields = UNRATED_COLUMNS
            .iter()
            .map(|name| built(name))
            .collect::<Result<Vec<_>>>()?;
        // Where each came from, so that later runs of the books try it again.
        unrated_fields.push(field(billrun_schemas::templates::FILE_INDEX_COLUMN)?);
        unrated_fields.push(field(billrun_schemas::templates::ROW_NUMBER_COLUMN)?);
        let unrated_schema = Arc::new(Schema::new(unrated_fields));
        Ok(Self {
            lookup,
            rating_schema,
            unrated_schema,
        })
    }

    /// The events of `batch` to rate, as [`RATING_COLUMNS`] with their [`RATING_KEY`];
    /// the events that cannot be rated are pushed to `unrated`.
    fn split(&self, batch: &RecordBatch, aside: &mut SetAside) -> Result<RecordBatch> {
        let customers = batch.column(1).as_string::<i32>();
        let products = batch.column(2).as_string::<i32>();
        let ts = batch
            .column(3)
            .as_primitive::<TimestampMicrosecondType>()
            .values();
        let rows = batch.num_rows();
        let mut rated: Vec<u32> = Vec::with_capacity(rows);
        let mut period_start = Vec::with_capacity(rows);
        let mut plan_effective_from = Vec::with_capacity(rows);
        let mut subscription_idx = Vec::with_capacity(rows);
        let mut version_idx = Vec::with_capacity(rows);
        let mut keys = Vec::with_capacity(rows);
        let mut set_aside: Vec<u32> = Vec::new();
        let mut codes: Vec<&'static str> = Vec::new();
        let mut posted: Vec<u32> = Vec::new();
        let tracks = self.lookup.tracks_outside();
        let files = batch
            .column(5)
            .as_primitive::<arrow::datatypes::UInt32Type>();
        let row_numbers = batch
            .column(6)
            .as_primitive::<arrow::datatypes::UInt64Type>();
        for row in 0..rows {
            match self
                .lookup
                .place(customers.value(row), products.value(row), ts[row])
            {
                None if !tracks => {}
                None => {
                    if self.lookup.falls_in_posted(customers.value(row), ts[row]) {
                        posted.push(row as u32);
                    } else {
                        aside
                            .outside
                            .push((files.value(row), row_numbers.value(row)));
                    }
                }
                Some(Ok((priced, period))) => {
                    rated.push(row as u32);
                    period_start.push(period);
                    plan_effective_from.push(priced.plan_effective_from);
                    subscription_idx.push(priced.subscription_idx);
                    version_idx.push(priced.version_idx);
                    keys.push(rating_key(priced.subscription_idx, ts[row]));
                }
                Some(Err(reason)) => {
                    set_aside.push(row as u32);
                    codes.push(reason.code());
                }
            }
        }
        if !set_aside.is_empty() {
            let indices = UInt32Array::from(set_aside);
            let mut columns = Vec::with_capacity(6);
            for c in 0..5 {
                columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
            }
            columns.push(Arc::new(StringArray::from(codes)) as ArrayRef);
            for c in 5..7 {
                columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
            }
            aside.unrated.push(RecordBatch::try_new(
                Arc::clone(&self.unrated_schema),
                columns,
            )?);
        }
        if !posted.is_empty() {
            let indices = UInt32Array::from(posted);
            aside
                .posted_periods
                .push(arrow::compute::take_record_batch(batch, &indices)?);
        }
        let indices = UInt32Array::from(rated);
        let mut columns = Vec::with_capacity(8);
        for c in [0, 3, 4] {
            columns.push(arrow::compute::take(batch.column(c), &indices, None)?);
        }
        columns.extend([
            Arc::new(Date32Array::from(period_start)) as ArrayRef,
            Arc::new(Date32Array::from(plan_effective_from)),
            Arc::new(UInt32Array::from(subscription_idx)),
            Arc::new(UInt32Array::from(version_idx)),
            Arc::new(UInt64Array::from(keys)),
        ]);
        Ok(RecordBatch::try_new(
            Arc::clone(&self.rating_schema),
            columns,
        )?)
    }
}
