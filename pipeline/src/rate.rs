//! Stages 3 and 4: dedupe usage, then rate it.
//!
//! Duplicates are found by sorting a 64-bit hash of every event id and comparing only
//! the rows whose hashes repeat (DataFusion scans the validated usage and drops them
//! with an anti-join). One scan of the deduplicated usage then places every event:
//! [`SegmentLookup`] finds its customer's billing window and the *rating segment* in
//! force at its timestamp, events outside their window are left behind, events that
//! cannot be rated are set aside with their reason, and the rest are dealt into buckets
//! of consecutive subscriptions ([`crate::rating_order`]). Each bucket is sorted on its
//! own by one integer key, (subscription, second), with ties put in (ts, event_id)
//! order. The tier math itself is the engine's: [`StreamingAttribution`] runs its grouped
//! kernel over the ordered events, holding back only the subscription still open at the
//! end of a batch. (The same kernel is also registered as the window UDF
//! `attribute_charge`, for SQL plans; DataFusion's window operator buffers whole
//! partitions, so the bill run does not use it.)
//!
//! A rating segment is a stretch of time over which, for one (customer, product), the
//! answer to "which subscription and which plan version price this event?" does not
//! change. Segments are computed from master data (small) before any usage is touched, so
//! that each event falls in at most one segment and ambiguity is decided once per
//! segment, not once per event.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Schema, SchemaRef, TimestampMicrosecondType,
    UInt32Type, UInt64Type,
};
use billrun_engine::{DateWindow, PlanVersion, days_since_epoch};
use billrun_schemas::templates::{FILE_INDEX_COLUMN, ROW_NUMBER_COLUMN};
use billrun_schemas::{QUANTITY_SCALE, Reject, RejectCode, RowRenderer, Table, quantity_type};
use chrono::{NaiveDate, NaiveTime};
use datafusion::common::{DataFusionError, JoinType};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl,
};
use datafusion::prelude::{DataFrame, SessionContext, col};
use futures::StreamExt;
use rayon::slice::ParallelSliceMut;

use crate::error::{PipelineError, Result};
use crate::load::EVENT_HASH_COLUMN;
use crate::rating_order::{Buckets, Dealer, Limits, OrderedBucket, SharedHold, SubscriptionRanges};
use billrun_accounting::catalog::{Catalog, Subscription};

/// Why an event in the period was not priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnratedReason {
    NoActiveSubscription,
    AmbiguousSubscription,
    NoPlanVersion,
    RecurringPlan,
}

impl UnratedReason {
    /// The code written to `unrated.code`.
    pub fn code(self) -> &'static str {
        match self {
            UnratedReason::NoActiveSubscription => "no_active_subscription",
            UnratedReason::AmbiguousSubscription => "ambiguous_subscription",
            UnratedReason::NoPlanVersion => "no_plan_version",
            UnratedReason::RecurringPlan => "recurring_plan",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [
            UnratedReason::NoActiveSubscription,
            UnratedReason::AmbiguousSubscription,
            UnratedReason::NoPlanVersion,
            UnratedReason::RecurringPlan,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// A sentence for `unrated.reason`.
    pub fn describe(self, customer_id: &str, product_id: &str) -> String {
        match self {
            UnratedReason::NoActiveSubscription => format!(
                "no subscription of customer `{customer_id}` to a plan for product `{product_id}` is active at this time"
            ),
            UnratedReason::AmbiguousSubscription => format!(
                "customer `{customer_id}` has two or more subscriptions for product `{product_id}` active at this time"
            ),
            UnratedReason::NoPlanVersion => format!(
                "the subscription's plan for product `{product_id}` has no version in force at this time"
            ),
            UnratedReason::RecurringPlan => format!(
                "the subscription's plan for product `{product_id}` is a flat recurring plan; it does not price usage"
            ),
        }
    }
}

const OK: &str = "ok";

/// Midnight UTC of `day`, in microseconds since the epoch.
pub fn day_start_micros(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_micros()
}

/// A billing window in the units of usage: microseconds, and the first day of the
/// period it bills.
#[derive(Debug, Clone, Copy)]
struct WindowBounds {
    start: i64,
    end: i64,
    period_start: i32,
}

impl WindowBounds {
    fn of(window: &DateWindow) -> Self {
        Self {
            start: day_start_micros(window.start),
            end: day_start_micros(window.end),
            period_start: days_since_epoch(window.start),
        }
    }

    fn contains(&self, micros: i64) -> bool {
        self.start <= micros && micros < self.end
    }
}

/// What prices the events of a rating segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Priced {
    subscription_idx: u32,
    version_idx: u32,
    plan_effective_from: i32,
}

/// A rating segment as the lookup holds it: `[start, end)` in microseconds.
#[derive(Debug, Clone, Copy)]
struct SegmentBounds {
    start: i64,
    end: i64,
    rating: std::result::Result<Priced, UnratedReason>,
}

/// A customer as the lookup holds it: its billing window and where its segments are.
#[derive(Debug, Clone, Copy)]
struct CustomerPlace {
    window: WindowBounds,
    /// `SegmentLookup::segments[first..end]`.
    first: u32,
    end: u32,
}

/// A rating segment of one customer for the product numbered `product`.
#[derive(Debug, Clone, Copy)]
struct ProductSegment {
    product: u32,
    bounds: SegmentBounds,
}

/// Ids numbered densely in the order they were first added, each with a value, found by
/// their text. The table holds 4-byte numbers, the ids sit in one buffer, and each
/// entry keeps where its id is beside its value, so that 100 000 customers take a few MB
/// instead of an allocation each and a lookup touches few cache lines: with a
/// `HashMap<String, _>` the profile of a 100M-event scan spent a fifth of its time in
/// `memcmp` on keys scattered over the heap.
#[derive(Debug)]
struct IdIndex<T> {
    table: hashbrown::HashTable<u32>,
    text: String,
    entries: Vec<IdEntry<T>>,
}

#[derive(Debug)]
struct IdEntry<T> {
    /// The id is `text[start..end]`.
    start: u32,
    end: u32,
    value: T,
}

impl<T> Default for IdIndex<T> {
    fn default() -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            text: String::new(),
            entries: Vec::new(),
        }
    }
}

impl<T> IdIndex<T> {
    fn hash(id: &str) -> u64 {
        twox_hash::XxHash3_64::oneshot(id.as_bytes())
    }

    fn id_in<'a>(text: &'a str, entry: &IdEntry<T>) -> &'a str {
        &text[entry.start as usize..entry.end as usize]
    }

    /// The number of `id` and its value, if it was added.
    fn get(&self, id: &str) -> Option<(u32, &T)> {
        let number = *self.table.find(Self::hash(id), |&n| {
            Self::id_in(&self.text, &self.entries[n as usize]) == id
        })?;
        Some((number, &self.entries[number as usize].value))
    }

    /// The value of the id numbered `number`.
    fn value_mut(&mut self, number: u32) -> &mut T {
        &mut self.entries[number as usize].value
    }

    /// The number of `id`, added with `value()` if new.
    ///
    /// # Errors
    /// More than 4 GiB of ids, or 2^32 of them.
    fn intern(&mut self, id: &str, value: impl FnOnce() -> T) -> Result<u32> {
        if let Some((number, _)) = self.get(id) {
            return Ok(number);
        }
        let too_many = |_| PipelineError::Internal("more than 4 GiB of ids in master data".into());
        let Self {
            table,
            text,
            entries,
        } = self;
        let number = u32::try_from(entries.len()).map_err(too_many)?;
        let start = u32::try_from(text.len()).map_err(too_many)?;
        text.push_str(id);
        let end = u32::try_from(text.len()).map_err(too_many)?;
        entries.push(IdEntry {
            start,
            end,
            value: value(),
        });
        table.insert_unique(Self::hash(id), number, |&n| {
            Self::hash(Self::id_in(text, &entries[n as usize]))
        });
        Ok(number)
    }
}

/// Every known customer's billing window and rating segments, to place each event of
/// the period: outside every window, priced by one subscription and plan version, or
/// unrated with a reason.
///
/// This is a lookup per event in master data (thousands of rows beside millions of
/// events), the work of two broadcast hash joins: one on `customer_id` for the window, one
/// on (`customer_id`, `product_id`) then a time range for the segment. Done here it hashes
/// two short strings per event, binary-searches a few segments held side by side, and
/// builds the columns to rate as integers. The joins cost more than a third of the scan
/// at 100M events: each took every event's text columns into its output and compared the
/// keys with `memcmp`, in hash tables too large for the cache at 100 000 customers.
#[derive(Debug)]
pub struct SegmentLookup {
    customers: IdIndex<CustomerPlace>,
    products: IdIndex<()>,
    /// Each customer's segments, by (product number, start); those of one product never
    /// overlap.
    segments: Vec<ProductSegment>,
    /// The calendar month, to place usage of customers that are not known.
    default_window: WindowBounds,
}

impl SegmentLookup {
    /// `windows` maps every known customer to its billing window for the period;
    /// `default_window` places usage of unknown customers.
    ///
    /// # Errors
    /// A priced segment without its subscription or plan version (a bug).
    pub fn new(
        catalog: &Catalog,
        windows: &BTreeMap<String, DateWindow>,
        default_window: DateWindow,
    ) -> Result<Self> {
        let mut customers = IdIndex::default();
        for (id, window) in windows {
            customers.intern(id, || CustomerPlace {
                window: WindowBounds::of(window),
                first: 0,
                end: 0,
            })?;
        }
        let mut products = IdIndex::default();
        let mut segments: Vec<(u32, ProductSegment)> = Vec::new();
        for segment in rating_segments(catalog) {
            let rating = if segment.status == OK {
                match (
                    segment.subscription_idx,
                    segment.version_idx,
                    segment.plan_effective_from,
                ) {
                    (Some(subscription_idx), Some(version_idx), Some(from)) => Ok(Priced {
                        subscription_idx,
                        version_idx,
                        plan_effective_from: days_since_epoch(from),
                    }),
                    _ => {
                        return Err(PipelineError::Internal(format!(
                            "a priced segment of {}/{} lacks its subscription or plan version",
                            segment.customer_id, segment.product_id
                        )));
                    }
                }
            } else {
                Err(UnratedReason::from_code(segment.status).ok_or_else(|| {
                    PipelineError::Internal(format!("unknown rating status {}", segment.status))
                })?)
            };
            let Some((customer, _)) = customers.get(&segment.customer_id) else {
                continue; // Subscriptions of unknown customers were rejected.
            };
            let bounds = SegmentBounds {
                start: day_start_micros(segment.start),
                // An open end is "forever".
                end: segment.end.map_or(i64::MAX, day_start_micros),
                rating,
            };
            let product = products.intern(&segment.product_id, || ())?;
            segments.push((customer, ProductSegment { product, bounds }));
        }
        segments.sort_by_key(|(customer, s)| (*customer, s.product, s.bounds.start));
        let mut first = 0;
        for group in segments.chunk_by(|a, b| a.0 == b.0) {
            let end = first + group.len() as u32;
            let place = customers.value_mut(group[0].0);
            (place.first, place.end) = (first, end);
            first = end;
        }
        Ok(Self {
            customers,
            products,
            segments: segments.into_iter().map(|(_, s)| s).collect(),
            default_window: WindowBounds::of(&default_window),
        })
    }

    /// Where an event falls: `None` outside its customer's billing window, else priced
    /// (with the first day of the period) or unrated for a reason.
    fn place(
        &self,
        customer_id: &str,
        product_id: &str,
        micros: i64,
    ) -> Option<std::result::Result<(Priced, i32), UnratedReason>> {
        let Some((_, place)) = self.customers.get(customer_id) else {
            return self
                .default_window
                .contains(micros)
                .then_some(Err(UnratedReason::NoActiveSubscription));
        };
        if !place.window.contains(micros) {
            return None;
        }
        let segment = self.products.get(product_id).and_then(|(product, _)| {
            segment_at(
                &self.segments[place.first as usize..place.end as usize],
                product,
                micros,
            )
        });
        Some(match segment {
            Some(s) => s.bounds.rating.map(|p| (p, place.window.period_start)),
            None => Err(UnratedReason::NoActiveSubscription),
        })
    }
}

/// The segment of `product` in force at `micros`, among one customer's `segments` in
/// (product, start) order, those of one product never overlapping: the last of the
/// product starting at or before `micros`, if it has not ended.
fn segment_at(segments: &[ProductSegment], product: u32, micros: i64) -> Option<&ProductSegment> {
    let after = segments.partition_point(|s| (s.product, s.bounds.start) <= (product, micros));
    after
        .checked_sub(1)
        .map(|i| &segments[i])
        .filter(|s| s.product == product && micros < s.bounds.end)
}

/// One rating segment: `[start, end)` for one (customer, product).
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    customer_id: String,
    product_id: String,
    start: NaiveDate,
    end: Option<NaiveDate>,
    subscription_id: Option<String>,
    /// Position of the subscription in subscription_id order: a cheap sort key that
    /// orders exactly like the id.
    subscription_idx: Option<u32>,
    plan_id: Option<String>,
    currency: Option<String>,
    version_idx: Option<u32>,
    plan_effective_from: Option<NaiveDate>,
    status: &'static str,
}

fn rating_segments(catalog: &Catalog) -> Vec<Segment> {
    let subscription_order: BTreeMap<&str, u32> = catalog
        .subscriptions
        .keys()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let mut by_pair: BTreeMap<(&str, &str), Vec<&Subscription>> = BTreeMap::new();
    for s in catalog.subscriptions.values() {
        by_pair
            .entry((s.customer_id.as_str(), s.product_id.as_str()))
            .or_default()
            .push(s);
    }
    let mut segments = Vec::new();
    for ((customer_id, product_id), subs) in by_pair {
        // Every date where the answer may change: subscription edges and version edges.
        let mut edges = BTreeSet::new();
        for s in &subs {
            edges.insert(s.start_date);
            edges.extend(s.end_date);
            for (_, v) in catalog.versions_of(&s.plan_id) {
                edges.insert(v.effective_from);
                edges.extend(v.effective_to);
            }
        }
        let edges: Vec<NaiveDate> = edges.into_iter().collect();
        for (i, &start) in edges.iter().enumerate() {
            let end = edges.get(i + 1).copied();
            let active: Vec<_> = subs
                .iter()
                .filter(|s| s.start_date <= start && s.end_date.is_none_or(|e| start < e))
                .collect();
            let mut segment = Segment {
                customer_id: customer_id.to_string(),
                product_id: product_id.to_string(),
                start,
                end,
                subscription_id: None,
                subscription_idx: None,
                plan_id: None,
                currency: None,
                version_idx: None,
                plan_effective_from: None,
                status: OK,
            };
            match active.as_slice() {
                [] => continue,
                [_, _, ..] => segment.status = UnratedReason::AmbiguousSubscription.code(),
                [s] => {
                    segment.subscription_id = Some(s.subscription_id.clone());
                    segment.subscription_idx =
                        subscription_order.get(s.subscription_id.as_str()).copied();
                    segment.plan_id = Some(s.plan_id.clone());
                    segment.currency = Some(s.currency.clone());
                    match catalog.version_on(&s.plan_id, start) {
                        None => segment.status = UnratedReason::NoPlanVersion.code(),
                        Some((_, v)) if !v.version.model().is_usage() => {
                            segment.status = UnratedReason::RecurringPlan.code();
                        }
                        Some((idx, v)) => {
                            segment.version_idx = Some(idx as u32);
                            segment.plan_effective_from = Some(v.effective_from);
                        }
                    }
                }
            }
            segments.push(segment);
        }
    }
    segments
}

/// The outcome of deduplication.
#[derive(Debug)]
pub struct Deduped {
    /// Usage with later duplicates removed (registered as `usage_deduped`).
    pub usage: DataFrame,
    /// The removed rows, as rejects.
    pub rejects: Vec<Reject>,
}

/// Removes later occurrences of an event_id: the first in (file-name, row) order is kept.
///
/// Duplicates are found from `event_hashes` (the [`event_hash`](crate::load::event_hash) of every row, taken
/// while the rows were validated): sorting 8 bytes per event finds the few hashes seen
/// more than once, and only the rows with those hashes are read back and compared by
/// event id, then column by column. No table of every event id is ever built, so
/// deduplication costs a sort of integers and one scan, whatever the number of events.
///
/// # Errors
/// Query failures.
pub async fn dedupe_usage(
    ctx: &SessionContext,
    usage_raw: DataFrame,
    event_hashes: Vec<u64>,
    file_names: &[String],
) -> Result<Deduped> {
    let repeated = repeated_hashes(event_hashes);
    if repeated.is_empty() {
        ctx.register_table("usage_deduped", usage_raw.clone().into_view())?;
        return Ok(Deduped {
            usage: usage_raw,
            rejects: Vec::new(),
        });
    }
    let candidates = ctx.read_batch(RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("h", DataType::UInt64, false)])),
        vec![Arc::new(UInt64Array::from(repeated))],
    )?)?;
    // The small side first: a hash join builds its table from its left input.
    let duplicated = candidates
        .join(
            usage_raw.clone(),
            JoinType::RightSemi,
            &["h"],
            &[EVENT_HASH_COLUMN],
            None,
        )?
        .sort_by(vec![
            col("event_id"),
            col(FILE_INDEX_COLUMN),
            col(ROW_NUMBER_COLUMN),
        ])?
        .collect()
        .await?;
    // One batch, so that a group of equal ids never straddles two.
    let duplicated = if duplicated.is_empty() {
        Vec::new()
    } else {
        vec![concat_batches(&duplicated[0].schema(), &duplicated)?]
    };
    let mut rejects = Vec::new();
    let mut dropped_files = Vec::new();
    let mut dropped_rows = Vec::new();
    let compared = ["customer_id", "product_id", "ts", "quantity"];
    for batch in &duplicated {
        let ids = batch
            .column_by_name("event_id")
            .ok_or_else(|| PipelineError::Internal("usage lacks event_id".into()))?
            .as_string::<i32>();
        let files = column(batch, FILE_INDEX_COLUMN)?.as_primitive::<UInt32Type>();
        let rows = column(batch, ROW_NUMBER_COLUMN)?.as_primitive::<UInt64Type>();
        let render = RowRenderer::new(batch);
        let mut first = 0usize;
        for i in 0..batch.num_rows() {
            if i == 0 || ids.value(i) != ids.value(first) {
                first = i;
                continue;
            }
            let differing: Vec<&str> = compared
                .iter()
                .copied()
                .filter(|c| {
                    batch.column_by_name(c).is_some_and(|col| {
                        let a = col.slice(first, 1);
                        let b = col.slice(i, 1);
                        a.to_data() != b.to_data()
                    })
                })
                .collect();
            let origin = format!(
                "{} row {}",
                file_names
                    .get(files.value(first) as usize)
                    .map_or("?", String::as_str),
                rows.value(first)
            );
            let (code, reason) = if differing.is_empty() {
                (
                    RejectCode::DuplicateEvent,
                    format!(
                        "event_id `{}` was already read from {origin} (a retry: same values)",
                        ids.value(i)
                    ),
                )
            } else {
                (
                    RejectCode::ConflictingDuplicate,
                    format!(
                        "event_id `{}` was already read from {origin} with different {} (a conflict, not a retry)",
                        ids.value(i),
                        differing.join(", ")
                    ),
                )
            };
            rejects.push(Reject {
                table: Table::Usage,
                source_file: file_names
                    .get(files.value(i) as usize)
                    .cloned()
                    .unwrap_or_default(),
                row_number: Some(rows.value(i)),
                column: None,
                code,
                reason,
                raw: render.row(i),
            });
            dropped_files.push(files.value(i));
            dropped_rows.push(rows.value(i));
        }
    }
    // Rejects come out in file order, like every other reject.
    rejects.sort_by(|a, b| (&a.source_file, a.row_number).cmp(&(&b.source_file, b.row_number)));
    let usage = if dropped_files.is_empty() {
        usage_raw
    } else {
        let schema = Arc::new(Schema::new(vec![
            Field::new("d_file", DataType::UInt32, false),
            Field::new("d_row", DataType::UInt64, false),
        ]));
        let dropped = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(UInt32Array::from(dropped_files)),
                Arc::new(arrow::array::UInt64Array::from(dropped_rows)),
            ],
        )?;
        // The dropped rows (few) build the hash table; every event streams past it.
        ctx.read_batch(dropped)?.join(
            usage_raw,
            JoinType::RightAnti,
            &["d_file", "d_row"],
            &[FILE_INDEX_COLUMN, ROW_NUMBER_COLUMN],
            None,
        )?
    };
    ctx.register_table("usage_deduped", usage.clone().into_view())?;
    Ok(Deduped { usage, rejects })
}

/// The hashes that occur more than once, each once, ascending.
fn repeated_hashes(mut hashes: Vec<u64>) -> Vec<u64> {
    hashes.par_sort_unstable();
    let mut repeated: Vec<u64> = hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    repeated.dedup();
    repeated
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| PipelineError::Internal(format!("batch lacks column {name}")))
}

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

/// The sort key of an event to rate: `subscription_idx` in the high 32 bits, the second
/// of its timestamp in the low 32. One integer sorts far cheaper than (subscription, ts,
/// event_id), which the sort would encode row by row and compare with `memcmp`; the
/// events of a subscription that share a second are put in (ts, event_id) order
/// afterwards, by [`StreamingAttribution`], which holds each subscription whole.
pub(crate) const RATING_KEY: &str = "_rating_key";

fn rating_key(subscription_idx: u32, micros: i64) -> u64 {
    // Seconds outside u32 (before 1970, after 2106) clamp: the key then orders less
    // finely, and the per-subscription reordering still puts every event in place.
    let second = micros.div_euclid(1_000_000).clamp(0, i64::from(u32::MAX)) as u64;
    (u64::from(subscription_idx) << 32) | second
}

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
}

/// Places every event of `usage_deduped` with `lookup` in one scan: events with a
/// priced segment are dealt into the buckets of `ranges` (see [`crate::rating_order`]),
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
    scratch: &crate::scratch::Scratch,
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
                let mut unrated = Vec::new();
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    scanned.inc(batch.num_rows() as u64);
                    dealer.deal(&split.split(&batch, &mut unrated)?)?;
                }
                Ok::<_, PipelineError>((dealer, unrated))
            })
        })
        .collect();
    let mut dealers = Vec::with_capacity(tasks.len());
    let mut unrated = Vec::new();
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
                unrated.extend(set_aside);
            }
            Err(e) => {
                tasks.for_each(|task| task.abort());
                return Err(e);
            }
        }
    }
    Ok(RatingInput {
        buckets: Buckets::collect(Arc::clone(&split.rating_schema), limits, dealers),
        unrated,
    })
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
const SCANNED_COLUMNS: [&str; 5] = ["event_id", "customer_id", "product_id", "ts", "quantity"];

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
        let unrated_schema = Arc::new(Schema::new(
            UNRATED_COLUMNS
                .iter()
                .map(|name| built(name))
                .collect::<Result<Vec<_>>>()?,
        ));
        Ok(Self {
            lookup,
            rating_schema,
            unrated_schema,
        })
    }

    /// The events of `batch` to rate, as [`RATING_COLUMNS`] with their [`RATING_KEY`];
    /// the events that cannot be rated are pushed to `unrated`.
    fn split(&self, batch: &RecordBatch, unrated: &mut Vec<RecordBatch>) -> Result<RecordBatch> {
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
        for row in 0..rows {
            match self
                .lookup
                .place(customers.value(row), products.value(row), ts[row])
            {
                None => {}
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
            unrated.push(RecordBatch::try_new(
                Arc::clone(&self.unrated_schema),
                columns,
            )?);
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

/// Rows per call of [`StreamingAttribution::push`] for a bucket sorted in memory: the
/// rated rows go to the writer in pieces of this size, so writing overlaps rating.
const RATING_CHUNK_ROWS: usize = 64 * 1024;

/// Rates the events of `buckets` in rating order: each bucket sorted in memory by a
/// thread of its own while the one before it is rated here, or by DataFusion's external
/// sort when it is too large. `send` receives the rated rows in `rated_usage` order.
///
/// # Errors
/// Sorting, engine and `send` errors.
pub async fn rate_in_order(
    ctx: &SessionContext,
    buckets: Buckets,
    attribution: &mut StreamingAttribution,
    mut send: impl FnMut(Option<RecordBatch>) -> Result<()>,
) -> Result<()> {
    let schema = buckets.schema();
    let remover = buckets.remover();
    let mut ordered = buckets.sort_in_background();
    while let Some(bucket) = ordered.recv().await {
        match bucket? {
            OrderedBucket::Sorted(events) => {
                let mut offset = 0;
                while offset < events.num_rows() {
                    let len = RATING_CHUNK_ROWS.min(events.num_rows() - offset);
                    send(attribution.push(&events.slice(offset, len))?)?;
                    offset += len;
                }
            }
            OrderedBucket::Unsorted { held, files } => {
                let mut sorted = crate::rating_order::external_sort(
                    ctx,
                    Arc::clone(&schema),
                    held,
                    files,
                    remover.clone(),
                )
                .await?;
                while let Some(events) = sorted.next().await {
                    send(attribution.push(&events?)?)?;
                }
            }
        }
    }
    send(attribution.finish()?)
}

/// Attributes each period charge to its events over a stream sorted by subscription
/// (the `RATING_KEY` order), with the engine's grouped kernel, in (ts, event_id) order
/// within each subscription: the few events of a subscription that share a second are
/// re-ordered here, once the subscription is whole.
///
/// This replaces a window function: DataFusion's `WindowAggExec` buffers a whole input
/// partition before it evaluates anything, which held every event of the period in
/// memory. Here only the events of the subscription that is still open at the end of a
/// batch are held back, until its last event has arrived.
#[derive(Debug)]
pub struct StreamingAttribution {
    book: Arc<Vec<PlanVersion>>,
    /// Per subscription, in `subscription_idx` order: `subscription_id`, `customer_id`,
    /// `product_id`, `plan_id`, `currency`.
    subscriptions: [(&'static str, ArrayRef); 5],
    /// Rows of the subscription that may continue in the next batch.
    pending: Vec<RecordBatch>,
    pending_key: Option<u32>,
}

impl StreamingAttribution {
    /// Attribution with `book`, indexed by `version_idx`, for the subscriptions of
    /// `catalog` (indexed by `subscription_idx`, their position in id order).
    pub fn new(book: Arc<Vec<PlanVersion>>, catalog: &Catalog) -> Self {
        let subs = || catalog.subscriptions.values();
        let text = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
        Self {
            book,
            subscriptions: [
                (
                    "subscription_id",
                    text(subs().map(|s| s.subscription_id.as_str()).collect()),
                ),
                (
                    "customer_id",
                    text(subs().map(|s| s.customer_id.as_str()).collect()),
                ),
                (
                    "product_id",
                    text(subs().map(|s| s.product_id.as_str()).collect()),
                ),
                (
                    "plan_id",
                    text(subs().map(|s| s.plan_id.as_str()).collect()),
                ),
                (
                    "currency",
                    text(subs().map(|s| s.currency.as_str()).collect()),
                ),
            ],
            pending: Vec::new(),
            pending_key: None,
        }
    }

    /// Takes the next sorted batch of [`rating_input`]; returns the rated rows of every
    /// subscription known to be complete, in input order (`rated_usage` columns).
    ///
    /// # Errors
    /// Engine errors (overflow, negative cumulative quantity); malformed batches.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let keys = subscription_keys(batch)?;
        let rows = batch.num_rows();
        let mut start = 0;
        let mut rated = Vec::new();
        if let Some(open) = self.pending_key {
            let continued = keys.iter().position(|&k| k != open).unwrap_or(rows);
            if continued == rows {
                // The whole batch continues the open subscription.
                self.pending.push(batch.clone());
                return Ok(None);
            }
            self.pending.push(batch.slice(0, continued));
            rated.push(self.rate_pending()?);
            start = continued;
        }
        // The last subscription of the batch may continue in the next one.
        let last = keys[rows - 1];
        let tail = keys[start..]
            .iter()
            .rposition(|&k| k != last)
            .map_or(start, |i| start + i + 1);
        if tail > start {
            rated.push(self.rate(&batch.slice(start, tail - start))?);
        }
        self.pending = vec![batch.slice(tail, rows - tail)];
        self.pending_key = Some(last);
        concat_rated(rated)
    }

    /// Rates the last subscription; call once the input stream has ended.
    ///
    /// # Errors
    /// As [`StreamingAttribution::push`].
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if self.pending_key.is_none() {
            return Ok(None);
        }
        Ok(Some(self.rate_pending()?))
    }

    fn rate_pending(&mut self) -> Result<RecordBatch> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_key = None;
        let schema = pending
            .first()
            .map(RecordBatch::schema)
            .ok_or_else(|| PipelineError::Internal("no pending rows to rate".into()))?;
        let batch = concat_batches(&schema, &pending)?;
        self.rate(&batch)
    }

    /// Rates whole subscriptions: `batch` holds every event of each subscription in it.
    fn rate(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let ordered = in_rating_order(batch)?;
        let batch = ordered.as_ref().unwrap_or(batch);
        let keys = subscription_keys(batch)?;
        let mut offsets = vec![0];
        offsets.extend((1..keys.len()).filter(|&i| keys[i] != keys[i - 1]));
        offsets.push(keys.len());
        let quantities = column(batch, "quantity")?.as_primitive::<Decimal128Type>();
        let versions = column(batch, "version_idx")?.as_primitive::<UInt32Type>();
        let amounts = billrun_engine::attribute_period_charges_arrow_grouped(
            quantities, versions, &offsets, &self.book,
        )?
        .with_precision_and_scale(38, QUANTITY_SCALE)?;
        let key_column = column(batch, "subscription_idx")?;
        // The columns of `rated_usage`, in the published order.
        let schema = billrun_schemas::outputs::OutputTable::RatedUsage.schema();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let name = field.name().as_str();
            let by_subscription = self.subscriptions.iter().find(|(n, _)| *n == name);
            columns.push(if name == "amount" {
                Arc::new(amounts.clone()) as ArrayRef
            } else if let Some((_, values)) = by_subscription {
                arrow::compute::take(values.as_ref(), key_column.as_ref(), None)?
            } else {
                Arc::clone(column(batch, name)?)
            });
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// `batch` (whole subscriptions, ordered by `RATING_KEY`) in (subscription, ts,
/// event_id) order: `None` when it already is, which is the rule (buckets sorted in
/// memory always are); only the external sort of an oversized bucket leaves the events
/// of one subscription within one second out of order.
fn in_rating_order(batch: &RecordBatch) -> Result<Option<RecordBatch>> {
    let subscriptions = subscription_keys(batch)?;
    let ts = column(batch, "ts")?.as_primitive::<TimestampMicrosecondType>();
    let ids = column(batch, "event_id")?.as_string::<i32>();
    let ts = ts.values();
    let ordered = (1..batch.num_rows()).all(|i| {
        subscriptions[i - 1] != subscriptions[i]
            || ts[i - 1] < ts[i]
            || (ts[i - 1] == ts[i] && ids.value(i - 1) <= ids.value(i))
    });
    if ordered {
        return Ok(None);
    }
    Ok(Some(crate::rating_order::in_rating_order(
        &batch.schema(),
        std::slice::from_ref(batch),
    )?))
}

fn subscription_keys(batch: &RecordBatch) -> Result<&[u32]> {
    let keys = column(batch, "subscription_idx")?.as_primitive::<UInt32Type>();
    if keys.null_count() > 0 {
        return Err(PipelineError::Internal(
            "a rated event has no subscription".into(),
        ));
    }
    Ok(keys.values())
}

fn concat_rated(batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
    match batches.len() {
        0 => Ok(None),
        1 => Ok(batches.into_iter().next()),
        _ => Ok(Some(arrow::compute::concat_batches(
            &batches[0].schema(),
            &batches,
        )?)),
    }
}

/// The events of the period that could not be priced (set aside by [`rating_input`]),
/// as `unrated` rows ordered by event_id.
///
/// # Errors
/// Malformed batches; an unknown status code.
pub fn unrated_usage(set_aside: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let schema = billrun_schemas::outputs::OutputTable::Unrated.schema();
    let Some(first) = set_aside.first() else {
        return Ok(Vec::new());
    };
    let all = concat_batches(&first.schema(), &set_aside)?;
    let order = arrow::compute::sort_to_indices(column(&all, "event_id")?, None, None)?;
    let b = arrow::compute::take_record_batch(&all, &order)?;
    let customers = column(&b, "customer_id")?.as_string::<i32>();
    let products = column(&b, "product_id")?.as_string::<i32>();
    let codes = column(&b, "status")?.as_string::<i32>();
    let mut reasons = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let reason = UnratedReason::from_code(codes.value(i)).ok_or_else(|| {
            PipelineError::Internal(format!("unknown rating status {}", codes.value(i)))
        })?;
        reasons.push(reason.describe(customers.value(i), products.value(i)));
    }
    Ok(vec![RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::clone(column(&b, "event_id")?),
            Arc::clone(column(&b, "customer_id")?),
            Arc::clone(column(&b, "product_id")?),
            Arc::clone(column(&b, "ts")?),
            Arc::clone(column(&b, "quantity")?),
            Arc::new(StringArray::from(reasons)),
            Arc::clone(column(&b, "status")?),
        ],
    )?])
}

/// The window UDF `attribute_charge(quantity, version_idx)`: evaluated over one
/// (subscription, product, period) partition ordered by (ts, event_id), it gives each
/// event F(Q_i) − F(Q_i−1) of its own plan version (see the engine's attribution rule).
///
/// The bill run itself rates with [`StreamingAttribution`], which needs no window
/// buffer; the UDF stays registered for SQL plans over `rated_usage`-shaped tables.
#[derive(Debug)]
pub struct AttributeCharge {
    signature: Signature,
    book: Arc<Vec<PlanVersion>>,
}

impl AttributeCharge {
    /// A UDF pricing with `book`, indexed by `version_idx`.
    pub fn new(book: Arc<Vec<PlanVersion>>) -> Self {
        Self {
            signature: Signature::exact(
                vec![quantity_type(), DataType::UInt32],
                Volatility::Immutable,
            ),
            book,
        }
    }

    /// The UDF, ready to register.
    pub fn udwf(book: Arc<Vec<PlanVersion>>) -> WindowUDF {
        WindowUDF::new_from_impl(Self::new(book))
    }
}

impl PartialEq for AttributeCharge {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.book, &other.book)
    }
}

impl Eq for AttributeCharge {}

impl Hash for AttributeCharge {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        Arc::as_ptr(&self.book).hash(state);
    }
}

impl WindowUDFImpl for AttributeCharge {
    fn name(&self) -> &str {
        "attribute_charge"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> datafusion::common::Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(AttributeChargeEvaluator {
            book: Arc::clone(&self.book),
        }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> datafusion::common::Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            quantity_type(),
            false,
        )))
    }
}

#[derive(Debug)]
struct AttributeChargeEvaluator {
    book: Arc<Vec<PlanVersion>>,
}

impl PartitionEvaluator for AttributeChargeEvaluator {
    fn uses_window_frame(&self) -> bool {
        false
    }

    fn evaluate_all(
        &mut self,
        values: &[ArrayRef],
        num_rows: usize,
    ) -> datafusion::common::Result<ArrayRef> {
        let quantities = values[0].as_primitive::<arrow::datatypes::Decimal128Type>();
        let versions = values[1].as_primitive::<UInt32Type>();
        debug_assert_eq!(quantities.len(), num_rows);
        let amounts =
            billrun_engine::attribute_period_charge_arrow(quantities, versions, &self.book)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Arc::new(
            amounts.with_precision_and_scale(38, QUANTITY_SCALE)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;

    /// Five events of two subscriptions, in the order a sort by `RATING_KEY` may leave
    /// them: within (subscription 0, second 5) the ids and microseconds are shuffled.
    fn by_key(ids: &[&str], subscriptions: &[u32], micros: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "event_id",
                Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
            ),
            (
                "subscription_idx",
                Arc::new(UInt32Array::from(subscriptions.to_vec())),
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(micros.to_vec()).with_timezone("UTC")),
            ),
            (
                RATING_KEY,
                Arc::new(UInt64Array::from_iter_values(
                    subscriptions
                        .iter()
                        .zip(micros)
                        .map(|(&s, &m)| rating_key(s, m)),
                )),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn the_rating_key_orders_by_subscription_then_second() {
        let keys: Vec<u64> = [(0, 5_000_300), (0, 5_999_999), (1, 2_000_000), (2, -1)]
            .into_iter()
            .map(|(subscription, micros)| rating_key(subscription, micros))
            .collect();
        // Before 1970 clamps to second 0 of the subscription.
        assert_eq!(keys, vec![5, 5, (1 << 32) | 2, 2 << 32]);
    }

    #[test]
    fn events_sharing_a_second_are_put_in_ts_then_event_id_order() {
        let batch = by_key(
            &["b", "a", "c", "z", "y"],
            &[0, 0, 0, 1, 1],
            &[5_000_000, 5_000_300, 5_000_100, 2_000_000, 2_000_000],
        );
        let ordered = in_rating_order(&batch).unwrap().expect("out of order");
        let ids: Vec<&str> = ordered
            .column_by_name("event_id")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(ids, ["b", "c", "a", "y", "z"]);
        // Already in order: left as it is.
        assert!(in_rating_order(&ordered).unwrap().is_none());
    }

    #[test]
    fn ids_are_numbered_in_the_order_first_added_and_found_by_their_whole_text() {
        let mut index = IdIndex::default();
        let numbers: Vec<u32> = ["C1", "C10", "C1", "", "C100", "C10"]
            .into_iter()
            .map(|id| index.intern(id, || id.len()).unwrap())
            .collect();
        assert_eq!(numbers, [0, 1, 0, 2, 3, 1]);
        assert_eq!(index.get("C100"), Some((3, &4)));
        assert_eq!(index.get(""), Some((2, &0)));
        // Prefixes and extensions of known ids are other ids.
        assert_eq!(index.get("C"), None);
        assert_eq!(index.get("C1000"), None);
        // Enough ids for the table to grow several times.
        let many: Vec<String> = (0..10_000).map(|i| format!("CUST-{i:05}")).collect();
        for id in &many {
            index.intern(id, || 10).unwrap();
        }
        assert!(
            many.iter()
                .enumerate()
                .all(|(i, id)| index.get(id) == Some((i as u32 + 4, &10)))
        );
        // A value stays with its id.
        *index.value_mut(1) = 7;
        assert_eq!(index.get("C10"), Some((1, &7)));
    }

    fn priced(subscription_idx: u32) -> std::result::Result<Priced, UnratedReason> {
        Ok(Priced {
            subscription_idx,
            version_idx: 0,
            plan_effective_from: 0,
        })
    }

    proptest::proptest! {
        /// The binary search over (product, start) finds exactly the segment a linear
        /// search finds: the one of the product whose [start, end) holds the event.
        #[test]
        fn the_segment_at_an_instant_is_the_one_of_its_product_that_holds_it(
            // Per product, segment lengths and the gaps before them.
            products in proptest::collection::vec(
                proptest::collection::vec((0i64..5, 1i64..5, proptest::bool::ANY), 0..5),
                1..4,
            ),
            product in 0u32..5,
            micros in -2i64..60,
        ) {
            let mut segments = Vec::new();
            for (p, spans) in products.iter().enumerate() {
                let mut at = 0;
                for (n, &(gap, len, open)) in spans.iter().enumerate() {
                    let start = at + gap;
                    let last = n + 1 == spans.len();
                    let end = if last && open { i64::MAX } else { start + len };
                    segments.push(ProductSegment {
                        product: p as u32,
                        bounds: SegmentBounds { start, end, rating: priced(segments.len() as u32) },
                    });
                    at = start + len;
                }
            }
            let expected = segments
                .iter()
                .find(|s| s.product == product && s.bounds.start <= micros && micros < s.bounds.end)
                .map(|s| s.bounds.rating);
            let found = segment_at(&segments, product, micros).map(|s| s.bounds.rating);
            proptest::prop_assert_eq!(found, expected);
        }
    }
}
