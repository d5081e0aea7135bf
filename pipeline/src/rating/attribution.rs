//! Pricing the ordered events: the engine's grouped attribution kernel run over the
//! stream of events in rating order, holding back only the subscription still open at the
//! end of a batch.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{Decimal128Type, TimestampMicrosecondType, UInt32Type};
use billrun_accounting::catalog::Catalog;
use billrun_engine::PlanVersion;
use billrun_schemas::QUANTITY_SCALE;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::column;
use super::order::{Buckets, OrderedBucket};
use crate::error::{PipelineError, Result};

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
                let mut sorted = super::order::external_sort(
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
    Ok(Some(super::order::in_rating_order(
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{TimestampMicrosecondArray, UInt32Array, UInt64Array};

    use crate::rating::order::{RATING_KEY, rating_key};

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
}
