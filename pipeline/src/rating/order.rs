//! The events to rate, put in rating order, (subscription, ts, event_id), one range of
//! subscriptions at a time instead of by one sort of the whole period.
//!
//! Subscriptions are numbered densely in id order (`subscription_idx`), so the scan can
//! deal each event into a bucket of consecutive subscriptions as it goes by. Every event
//! of bucket *b* comes before every event of bucket *b + 1* in rating order, so sorting
//! each bucket alone sorts them all. A thread of its own sorts the buckets in memory, in
//! order, while the previous one is rated and written. This replaces one DataFusion sort
//! of the whole period: at 100M events that sort spilled sorted runs and merged them on
//! one thread. Here every event is copied once into its bucket and sorted once with its
//! bucket, so the work per event does not grow with the number of events.
//!
//! Memory follows the run's limit ([`Limits`]):
//! - buckets are sized to a sixteenth of it;
//! - what the scan has dealt is written to Arrow IPC files in the scratch folder
//!   whenever it reaches a quarter of it;
//! - a bucket that still outgrows a quarter of it goes to DataFusion's external sort,
//!   which spills. That happens when some subscriptions have far more events than the
//!   rest.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType, UInt32Type, UInt64Type};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionContext, col};
use serde::Serialize;

use crate::error::{PipelineError, Result};
use crate::store::scratch::Remover;

/// The sort key of an event to rate: `subscription_idx` in the high 32 bits, the second
/// of its timestamp in the low 32. One integer sorts far cheaper than (subscription, ts,
/// event_id), which the sort would encode row by row and compare with `memcmp`; the
/// events of a subscription that share a second are put in (ts, event_id) order
/// afterwards, by [`StreamingAttribution`], which holds each subscription whole.
pub const RATING_KEY: &str = "_rating_key";

pub fn rating_key(subscription_idx: u32, micros: i64) -> u64 {
    // Seconds outside u32 (before 1970, after 2106) clamp: the key then orders less
    // finely, and the per-subscription reordering still puts every event in place.
    let second = micros.div_euclid(1_000_000).clamp(0, i64::from(u32::MAX)) as u64;
    (u64::from(subscription_idx) << 32) | second
}

/// Estimated bytes of one event to rate, held in memory (event id, timestamp, quantity,
/// period start, plan dates, subscription, plan version and sort key): buckets are
/// counted before the scan, from the number of events. An estimate that is too low only
/// makes buckets larger; a bucket over [`Limits::in_memory_sort`] still sorts, externally.
const ESTIMATED_EVENT_BYTES: u64 = 96;

/// At most this many buckets: each spill round writes up to one file per bucket.
const MAX_BUCKETS: u64 = 4096;

/// How the run's memory limit is shared out while events are put in rating order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of events a bucket is sized to hold.
    pub bucket: usize,
    /// Bytes of dealt events held in memory before they are written to scratch files.
    pub held: usize,
    /// The largest bucket sorted in memory; a larger one is sorted by DataFusion.
    pub in_memory_sort: usize,
}

impl Limits {
    /// The shares of `memory_limit`: a sixteenth per bucket, a quarter for held events
    /// and for the largest in-memory sort. Sorting holds a bucket's events and their
    /// sorted copy, rating one sorted bucket with another ready, so at the sizes planned
    /// the working set is about half the limit. Usage is rarely spread evenly: at 100M
    /// generated events one subscription has 8.1M of them, and its bucket (9.2M events)
    /// goes to the external sort, which keeps within the query engine's pool.
    pub fn for_memory_limit(memory_limit: usize) -> Self {
        Self {
            bucket: (memory_limit / 16).max(1),
            held: (memory_limit / 4).max(1),
            in_memory_sort: (memory_limit / 4).max(1),
        }
    }
}

/// Consecutive `subscription_idx` values dealt into buckets of about equal count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionRanges {
    buckets: u32,
    subscriptions: u32,
}

impl SubscriptionRanges {
    /// Enough buckets for `events` to fill each to about `bucket_bytes`: at least one, at
    /// most one per subscription and [`MAX_BUCKETS`].
    pub fn new(subscriptions: usize, events: u64, bucket_bytes: usize) -> Self {
        let subscriptions = u32::try_from(subscriptions).unwrap_or(u32::MAX).max(1);
        let wanted = events
            .saturating_mul(ESTIMATED_EVENT_BYTES)
            .div_ceil(bucket_bytes.max(1) as u64);
        let buckets = wanted.clamp(1, MAX_BUCKETS).min(u64::from(subscriptions)) as u32;
        Self {
            buckets,
            subscriptions,
        }
    }

    /// The number of buckets.
    pub fn count(&self) -> usize {
        self.buckets as usize
    }

    /// The bucket of a subscription; non-decreasing in `subscription`.
    pub fn bucket_of(&self, subscription: u32) -> usize {
        let bucket =
            u64::from(subscription) * u64::from(self.buckets) / u64::from(self.subscriptions);
        bucket.min(u64::from(self.buckets - 1)) as usize
    }
}

/// What putting the events in rating order took, for the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RatingOrderStats {
    /// Buckets of consecutive subscriptions.
    pub buckets: usize,
    /// Scratch files written because the dealt events reached [`Limits::held`].
    pub spill_files: usize,
    /// Their bytes on disk.
    pub spill_bytes: u64,
    /// Buckets larger than [`Limits::in_memory_sort`], sorted by DataFusion.
    pub external_sorts: usize,
}

/// A batch as dealt: its rows grouped by bucket, bucket `b` at rows
/// `starts[b]..starts[b + 1]`.
#[derive(Debug, Clone)]
struct Dealt {
    batch: RecordBatch,
    starts: Arc<[u32]>,
}

impl Dealt {
    fn rows_of(&self, bucket: usize) -> Option<RecordBatch> {
        let start = self.starts[bucket] as usize;
        let len = self.starts[bucket + 1] as usize - start;
        (len > 0).then(|| self.batch.slice(start, len))
    }

    /// Estimated bytes of the rows of `bucket`: the batch's bytes, pro rata.
    fn bytes_of(&self, bucket: usize) -> usize {
        let rows = (self.starts[bucket + 1] - self.starts[bucket]) as usize;
        (self.batch.get_array_memory_size() * rows)
            .checked_div(self.batch.num_rows())
            .unwrap_or(0)
    }
}

/// A scratch file holding rows of one bucket.
#[derive(Debug, Clone)]
struct SpillFile {
    path: PathBuf,
    /// In-memory bytes of its rows, to plan the bucket's sort.
    bytes: usize,
}

/// Bytes held in memory by every [`Dealer`] of one scan.
#[derive(Debug)]
pub struct SharedHold {
    held: AtomicUsize,
    limits: Limits,
    dir: PathBuf,
    remover: Remover,
}

impl SharedHold {
    /// Dealers spill into `dir`, which must exist; `remover` takes each scratch file once
    /// it has been read.
    pub fn new(limits: Limits, dir: &Path, remover: Remover) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            limits,
            dir: dir.to_path_buf(),
            remover,
        })
    }
}

/// Deals the events of one scan partition into buckets.
#[derive(Debug)]
pub struct Dealer {
    partition: usize,
    ranges: SubscriptionRanges,
    /// The position of `subscription_idx` in the batches.
    subscription_column: usize,
    shared: Arc<SharedHold>,
    held: Vec<Dealt>,
    held_bytes: usize,
    spilled: Vec<Vec<SpillFile>>,
    rounds: usize,
    spill_bytes: u64,
}

impl Dealer {
    /// A dealer for scan partition `partition`, of batches whose `subscription_idx`
    /// (non-null `UInt32`) is column `subscription_column`.
    pub fn new(
        partition: usize,
        ranges: SubscriptionRanges,
        subscription_column: usize,
        shared: Arc<SharedHold>,
    ) -> Self {
        Self {
            partition,
            ranges,
            subscription_column,
            shared,
            held: Vec::new(),
            held_bytes: 0,
            spilled: vec![Vec::new(); ranges.count()],
            rounds: 0,
            spill_bytes: 0,
        }
    }

    /// Deals `batch`'s rows into their buckets; writes what is held to scratch files when
    /// the scan's held bytes reach [`Limits::held`].
    ///
    /// # Errors
    /// A null subscription; Arrow and I/O errors while spilling.
    pub fn deal(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let subscriptions = batch
            .column(self.subscription_column)
            .as_primitive::<UInt32Type>();
        if subscriptions.null_count() > 0 {
            return Err(PipelineError::Internal(
                "an event to rate has no subscription".into(),
            ));
        }
        let count = self.ranges.count();
        let dealt = if count == 1 {
            Dealt {
                batch: batch.clone(),
                starts: Arc::from([0, rows as u32]),
            }
        } else {
            // A counting sort of the rows by bucket, then one `take` for the batch.
            let buckets: Vec<u32> = subscriptions
                .values()
                .iter()
                .map(|&s| self.ranges.bucket_of(s) as u32)
                .collect();
            let mut starts = vec![0u32; count + 1];
            for &b in &buckets {
                starts[b as usize + 1] += 1;
            }
            for b in 0..count {
                starts[b + 1] += starts[b];
            }
            let mut next = starts.clone();
            let mut order = vec![0u32; rows];
            for (row, &b) in buckets.iter().enumerate() {
                order[next[b as usize] as usize] = row as u32;
                next[b as usize] += 1;
            }
            Dealt {
                batch: take_record_batch(batch, &UInt32Array::from(order))?,
                starts: Arc::from(starts),
            }
        };
        let bytes = dealt.batch.get_array_memory_size();
        self.held.push(dealt);
        self.held_bytes += bytes;
        let held = self.shared.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if held > self.shared.limits.held {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes every held row to one scratch file per bucket, and lets the rows go.
    fn spill(&mut self) -> Result<()> {
        let Some(schema) = self.held.first().map(|d| d.batch.schema()) else {
            return Ok(());
        };
        for bucket in 0..self.ranges.count() {
            let parts: Vec<RecordBatch> =
                self.held.iter().filter_map(|d| d.rows_of(bucket)).collect();
            if parts.is_empty() {
                continue;
            }
            let rows = concat_batches(&schema, &parts)?;
            drop(parts);
            let path = self.shared.dir.join(format!(
                "rating-p{}-r{}-b{bucket}.arrow",
                self.partition, self.rounds
            ));
            let bytes = write_ipc(&path, &rows)?;
            self.spill_bytes += bytes;
            self.spilled[bucket].push(SpillFile {
                path,
                bytes: rows.get_array_memory_size(),
            });
        }
        self.rounds += 1;
        self.held.clear();
        self.shared
            .held
            .fetch_sub(self.held_bytes, Ordering::Relaxed);
        self.held_bytes = 0;
        Ok(())
    }
}

fn write_ipc(path: &Path, batch: &RecordBatch) -> Result<u64> {
    let io = |source| PipelineError::Io {
        context: format!("writing the scratch file {}", path.display()),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut writer = FileWriter::try_new(BufWriter::new(file), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    let file = writer
        .into_inner()?
        .into_inner()
        .map_err(|e| io(e.into_error()))?;
    Ok(file.metadata().map_err(io)?.len())
}

fn read_ipc(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|source| PipelineError::Io {
        context: format!("reading the scratch file {}", path.display()),
        source,
    })?;
    Ok(FileReader::try_new(BufReader::new(file), None)?
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Every event to rate, dealt into buckets by the scan's [`Dealer`]s.
#[derive(Debug)]
pub struct Buckets {
    schema: SchemaRef,
    limits: Limits,
    count: usize,
    held: Vec<Dealt>,
    spilled: Vec<Vec<SpillFile>>,
    stats: RatingOrderStats,
    remover: Remover,
}

/// One bucket's events, ready to rate.
#[derive(Debug)]
pub enum OrderedBucket {
    /// Sorted in memory, in rating order.
    Sorted(RecordBatch),
    /// Too large to sort in memory: its events, unsorted, for [`external_sort`].
    Unsorted {
        held: Vec<RecordBatch>,
        files: Vec<PathBuf>,
    },
}

impl Buckets {
    /// The buckets of a finished scan, from all of its dealers.
    pub fn collect(schema: SchemaRef, limits: Limits, dealers: Vec<Dealer>) -> Self {
        let count = dealers.first().map_or(1, |d| d.ranges.count());
        let remover = dealers
            .first()
            .map_or_else(Remover::deferred, |d| d.shared.remover.clone());
        let mut held = Vec::new();
        let mut spilled = vec![Vec::new(); count];
        let mut stats = RatingOrderStats {
            buckets: count,
            ..RatingOrderStats::default()
        };
        for dealer in dealers {
            held.extend(dealer.held);
            stats.spill_bytes += dealer.spill_bytes;
            for (bucket, files) in dealer.spilled.into_iter().enumerate() {
                stats.spill_files += files.len();
                spilled[bucket].extend(files);
            }
        }
        let mut buckets = Self {
            schema,
            limits,
            count,
            held,
            spilled,
            stats,
            remover,
        };
        buckets.stats.external_sorts = (0..count)
            .filter(|&b| buckets.bytes_of(b) > limits.in_memory_sort)
            .count();
        buckets
    }

    /// Estimated in-memory bytes of a bucket's events, held and spilled.
    fn bytes_of(&self, bucket: usize) -> usize {
        self.held.iter().map(|d| d.bytes_of(bucket)).sum::<usize>()
            + self.spilled[bucket].iter().map(|f| f.bytes).sum::<usize>()
    }

    /// What it took, as far as it is known before the buckets are sorted.
    pub fn stats(&self) -> &RatingOrderStats {
        &self.stats
    }

    /// Sorts the buckets in order on a thread of its own, one bucket ahead of the
    /// receiver: a bucket is sorted only once the one before it has been taken, so at
    /// most two sorted buckets are held, one being rated and one ready.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn sort_in_background(self) -> tokio::sync::mpsc::Receiver<Result<OrderedBucket>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let runtime = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            for bucket in 0..self.count {
                let Ok(slot) = runtime.block_on(tx.reserve()) else {
                    return; // The receiver stopped.
                };
                let ordered = self.bucket(bucket);
                let failed = ordered.is_err();
                slot.send(ordered);
                if failed {
                    return; // The receiver is told why.
                }
            }
        });
        rx
    }

    /// The schema of the events to rate.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Removes the scratch files of buckets handed out unsorted, once read.
    pub fn remover(&self) -> Remover {
        self.remover.clone()
    }

    fn bucket(&self, bucket: usize) -> Result<OrderedBucket> {
        let mut parts: Vec<RecordBatch> =
            self.held.iter().filter_map(|d| d.rows_of(bucket)).collect();
        if self.bytes_of(bucket) > self.limits.in_memory_sort {
            return Ok(OrderedBucket::Unsorted {
                held: parts,
                files: self.spilled[bucket]
                    .iter()
                    .map(|f| f.path.clone())
                    .collect(),
            });
        }
        for file in &self.spilled[bucket] {
            parts.extend(read_ipc(&file.path)?);
            self.remover.remove(file.path.clone());
        }
        Ok(OrderedBucket::Sorted(in_rating_order(
            &self.schema,
            &parts,
        )?))
    }
}

/// The events of a bucket too large for memory, sorted by DataFusion on
/// `_rating_key` (spilling under the run's memory pool): `held` first, then each file,
/// read as the sort asks for them and handed to `remover` once read. The stream is in
/// key order only; events sharing a key are put in (ts, event_id) order by the rating,
/// which holds each subscription whole.
///
/// # Errors
/// Query failures.
pub async fn external_sort(
    ctx: &SessionContext,
    schema: SchemaRef,
    held: Vec<RecordBatch>,
    files: Vec<PathBuf>,
    remover: Remover,
) -> Result<SendableRecordBatchStream> {
    let events = UnsortedEvents {
        schema: Arc::clone(&schema),
        parts: std::sync::Mutex::new(Some((held, files))),
        remover,
    };
    let table = StreamingTable::try_new(schema, vec![Arc::new(events)])?;
    let sorted = ctx
        .read_table(Arc::new(table))?
        .sort(vec![col(RATING_KEY).sort(true, false)])?;
    Ok(sorted.execute_stream().await?)
}

/// A bucket's events as one stream, for [`external_sort`].
struct UnsortedEvents {
    schema: SchemaRef,
    parts: std::sync::Mutex<Option<(Vec<RecordBatch>, Vec<PathBuf>)>>,
    remover: Remover,
}

impl std::fmt::Debug for UnsortedEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsortedEvents").finish_non_exhaustive()
    }
}

impl PartitionStream for UnsortedEvents {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let parts = self.parts.lock().ok().and_then(|mut parts| parts.take());
        let remover = self.remover.clone();
        let batches: Box<dyn Iterator<Item = datafusion::error::Result<RecordBatch>> + Send> =
            match parts {
                None => Box::new(std::iter::once(Err(DataFusionError::Internal(
                    "a bucket's events were already sorted".into(),
                )))),
                // A file is read whole (a few MB: one spill round of one bucket), so that
                // it can be removed before the next is opened.
                Some((held, files)) => Box::new(held.into_iter().map(Ok).chain(
                    files.into_iter().flat_map(move |path| {
                        let read = read_ipc(&path);
                        remover.remove(path);
                        match read {
                            Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                            Err(e) => vec![Err(DataFusionError::External(Box::new(e)))],
                        }
                    }),
                )),
            };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::iter(batches),
        ))
    }
}

/// The events of `parts` in rating order, as one batch: by the sort key (subscription,
/// then second), then by (ts, event_id) among the events of one subscription that share
/// a second. The parts are gathered straight into the sorted batch, without first
/// concatenating them.
///
/// # Errors
/// Parts without `_rating_key`, `ts` or `event_id` of the expected types.
pub fn in_rating_order(schema: &SchemaRef, parts: &[RecordBatch]) -> Result<RecordBatch> {
    struct Part<'a> {
        ts: &'a [i64],
        ids: &'a arrow::array::StringArray,
    }
    fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef> {
        batch
            .column_by_name(name)
            .ok_or_else(|| PipelineError::Internal(format!("events to rate lack {name}")))
    }
    let rows: usize = parts.iter().map(RecordBatch::num_rows).sum();
    // (key, part << 32 | row): pairs sort far faster than rows compared through columns.
    let mut order: Vec<(u64, u64)> = Vec::with_capacity(rows);
    let mut columns = Vec::with_capacity(parts.len());
    for (p, batch) in parts.iter().enumerate() {
        let keys = column(batch, RATING_KEY)?.as_primitive::<UInt64Type>();
        order.extend(
            keys.values()
                .iter()
                .enumerate()
                .map(|(row, &key)| (key, ((p as u64) << 32) | row as u64)),
        );
        columns.push(Part {
            ts: column(batch, "ts")?
                .as_primitive::<TimestampMicrosecondType>()
                .values(),
            ids: column(batch, "event_id")?.as_string::<i32>(),
        });
    }
    order.sort_unstable();
    let locate = |at: u64| ((at >> 32) as usize, (at & u64::from(u32::MAX)) as usize);
    let mut start = 0;
    while start < order.len() {
        let key = order[start].0;
        let end = start + order[start..].partition_point(|&(k, _)| k == key);
        if end - start > 1 {
            order[start..end].sort_unstable_by(|&(_, a), &(_, b)| {
                let ((pa, ra), (pb, rb)) = (locate(a), locate(b));
                let (a, b) = (&columns[pa], &columns[pb]);
                a.ts[ra]
                    .cmp(&b.ts[rb])
                    .then_with(|| a.ids.value(ra).cmp(b.ids.value(rb)))
            });
        }
        start = end;
    }
    if parts.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    let indices: Vec<(usize, usize)> = order.into_iter().map(|(_, at)| locate(at)).collect();
    let parts: Vec<&RecordBatch> = parts.iter().collect();
    Ok(arrow::compute::interleave_record_batch(&parts, &indices)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::execution::memory_pool::FairSpillPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionConfig;
    use futures::StreamExt;
    use proptest::prelude::*;

    use super::*;
    use crate::store::scratch::Scratch;

    /// One event to rate: (subscription, ts in microseconds, event id).
    type Event = (u32, i64, String);

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("subscription_idx", DataType::UInt32, false),
            Field::new(RATING_KEY, DataType::UInt64, false),
        ]))
    }

    fn batch(events: &[Event]) -> RecordBatch {
        let key = |&(sub, ts, _): &Event| (u64::from(sub) << 32) | (ts / 1_000_000) as u64;
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(events.iter().map(|e| &e.2))) as ArrayRef,
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| e.1))
                        .with_timezone("UTC"),
                ),
                Arc::new(UInt32Array::from_iter_values(events.iter().map(|e| e.0))),
                Arc::new(UInt64Array::from_iter_values(events.iter().map(key))),
            ],
        )
        .unwrap()
    }

    fn events_of(batch: &RecordBatch) -> Vec<Event> {
        let ids = batch.column(0).as_string::<i32>();
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        let subs = batch.column(2).as_primitive::<UInt32Type>();
        (0..batch.num_rows())
            .map(|i| (subs.value(i), ts.value(i), ids.value(i).to_string()))
            .collect()
    }

    /// Events of `subscriptions` subscriptions, crowded into a few seconds so that many
    /// share a second (and some a microsecond) with different ids.
    fn events(subscriptions: u32) -> impl Strategy<Value = Vec<Event>> {
        prop::collection::btree_set(
            (0..subscriptions, 0i64..4_000_000, 0u32..3, 0u32..10_000),
            1..400,
        )
        .prop_map(|set| {
            set.into_iter()
                // A few microsecond values only, so exact ties happen.
                .map(|(sub, micros, tie, id)| {
                    (
                        sub,
                        micros - micros % 500_000 + i64::from(tie),
                        format!("E{id:05}"),
                    )
                })
                // Event ids are unique after dedupe.
                .fold((BTreeSet::new(), Vec::new()), |(mut seen, mut out), e| {
                    if seen.insert(e.2.clone()) {
                        out.push(e);
                    }
                    (seen, out)
                })
                .1
        })
    }

    fn session(memory_limit: usize) -> SessionContext {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
            .build_arc()
            .unwrap();
        SessionContext::new_with_config_rt(SessionConfig::new().with_batch_size(16), runtime)
    }

    /// Deals `events` (in pieces of `batch_rows`, alternately to two dealers as two scan
    /// partitions would) and hands every bucket out in order.
    async fn ordered_buckets(
        events: &[Event],
        subscriptions: usize,
        limits: Limits,
        batch_rows: usize,
    ) -> (Vec<Vec<Event>>, RatingOrderStats) {
        let ranges = SubscriptionRanges::new(subscriptions, events.len() as u64, limits.bucket);
        let scratch = Scratch::create("billrun-test-").unwrap();
        let remover = scratch.remover();
        let hold = SharedHold::new(limits, scratch.path(), remover.clone());
        let mut dealers: Vec<Dealer> = (0..2)
            .map(|p| Dealer::new(p, ranges, 2, Arc::clone(&hold)))
            .collect();
        for (i, piece) in events.chunks(batch_rows).enumerate() {
            dealers[i % 2].deal(&batch(piece)).unwrap();
        }
        let buckets = Buckets::collect(schema(), limits, dealers);
        let stats = buckets.stats().clone();
        let ctx = session(64 << 20);
        let mut rx = buckets.sort_in_background();
        let mut out = Vec::new();
        while let Some(bucket) = rx.recv().await {
            out.push(match bucket.unwrap() {
                OrderedBucket::Sorted(b) => events_of(&b),
                OrderedBucket::Unsorted { held, files } => {
                    let mut stream = external_sort(&ctx, schema(), held, files, remover.clone())
                        .await
                        .unwrap();
                    let mut sorted = Vec::new();
                    while let Some(b) = stream.next().await {
                        sorted.extend(events_of(&b.unwrap()));
                    }
                    sorted
                }
            });
        }
        (out, stats)
    }

    fn second_key(e: &Event) -> (u32, i64) {
        (e.0, e.1.div_euclid(1_000_000))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn buckets_sorted_in_memory_give_the_rating_order(
            events in events(40),
            bucket_rows in 1usize..200,
            batch_rows in 1usize..50,
        ) {
            let bytes = bucket_rows * ESTIMATED_EVENT_BYTES as usize;
            // Held rows spill often; every bucket is sorted in memory.
            let limits = Limits { bucket: bytes, held: 4096, in_memory_sort: usize::MAX };
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let (buckets, stats) =
                runtime.block_on(ordered_buckets(&events, 40, limits, batch_rows));
            let mut expected = events.clone();
            expected.sort();
            prop_assert_eq!(buckets.concat(), expected);
            prop_assert_eq!(stats.external_sorts, 0);
            prop_assert_eq!(stats.buckets, buckets.len());
        }

        #[test]
        fn buckets_sorted_externally_keep_every_event_in_key_order(
            events in events(6),
            batch_rows in 1usize..50,
        ) {
            // Buckets of one subscription, each too large for memory.
            let limits = Limits { bucket: 1, held: 2048, in_memory_sort: 1 };
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let (buckets, stats) =
                runtime.block_on(ordered_buckets(&events, 6, limits, batch_rows));
            prop_assert_eq!(stats.buckets, 6);
            prop_assert_eq!(stats.external_sorts, buckets.iter().filter(|b| !b.is_empty()).count());
            // DataFusion sorts by key only; the rating orders ties within a subscription.
            let all = buckets.concat();
            prop_assert!(all.windows(2).all(|w| second_key(&w[0]) <= second_key(&w[1])));
            let mut got = all.clone();
            got.sort();
            let mut expected = events.clone();
            expected.sort();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn subscriptions_are_dealt_in_ranges_of_about_equal_count() {
        // 1M events of ~96 bytes in 12 MB buckets: 8 buckets over 100 subscriptions.
        let ranges = SubscriptionRanges::new(100, 1_000_000, 12_000_000);
        assert_eq!(ranges.count(), 8);
        let buckets: Vec<usize> = (0..100).map(|s| ranges.bucket_of(s)).collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((buckets[0], buckets[99]), (0, 7));
        let sizes: Vec<usize> = (0..8)
            .map(|b| buckets.iter().filter(|&&x| x == b).count())
            .collect();
        assert_eq!(sizes, [13, 12, 13, 12, 13, 12, 13, 12]);
        // Never more buckets than subscriptions, never fewer than one.
        assert_eq!(SubscriptionRanges::new(3, 1_000_000, 1).count(), 3);
        assert_eq!(SubscriptionRanges::new(0, 0, 1 << 20).count(), 1);
        assert_eq!(SubscriptionRanges::new(1 << 20, u64::MAX, 1).count(), 4096);
    }

    #[test]
    fn events_sharing_a_key_are_ordered_by_ts_then_event_id() {
        let events: Vec<Event> = [
            (1, 7_000_000, "a"),
            (0, 5_000_300, "b"),
            (0, 5_000_300, "a"),
            (0, 5_000_100, "c"),
            (0, 4_999_999, "z"),
        ]
        .into_iter()
        .map(|(s, t, id)| (s, t, id.to_string()))
        .collect();
        let (first, second) = events.split_at(2);
        let parts = [batch(first), batch(second)];
        let ordered = events_of(&in_rating_order(&schema(), &parts).unwrap());
        let ids: Vec<&str> = ordered.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(ids, ["z", "c", "a", "b", "a"]);
        assert_eq!(ordered[4].0, 1);
    }
}

#[cfg(test)]
mod rating_key_tests {
    use super::*;

    #[test]
    fn the_rating_key_orders_by_subscription_then_second() {
        let keys: Vec<u64> = [(0, 5_000_300), (0, 5_999_999), (1, 2_000_000), (2, -1)]
            .into_iter()
            .map(|(subscription, micros)| rating_key(subscription, micros))
            .collect();
        // Before 1970 clamps to second 0 of the subscription.
        assert_eq!(keys, vec![5, 5, (1 << 32) | 2, 2 << 32]);
    }
}
