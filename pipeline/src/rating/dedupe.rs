//! Deduplication of usage by event id.
//!
//! Duplicates are found by sorting a 64-bit hash of every event id and comparing only
//! the rows whose hashes repeat; DataFusion scans the validated usage and drops them with
//! an anti-join.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, UInt32Type, UInt64Type};
use billrun_schemas::templates::{FILE_INDEX_COLUMN, ROW_NUMBER_COLUMN};
use billrun_schemas::{Reject, RejectCode, RowRenderer, Table};
use datafusion::common::JoinType;
use datafusion::prelude::{DataFrame, SessionContext, col};
use rayon::slice::ParallelSliceMut;

use super::column;

/// A duplicate event's reject code and reason: a retry when no column in `differing`
/// differs from the event it repeats (`seen`: where that one is), else a conflict.
pub fn duplicate_verdict(event_id: &str, seen: &str, differing: &[&str]) -> (RejectCode, String) {
    if differing.is_empty() {
        (
            RejectCode::DuplicateEvent,
            format!("event_id `{event_id}` {seen} (a retry: same values)"),
        )
    } else {
        (
            RejectCode::ConflictingDuplicate,
            format!(
                "event_id `{event_id}` {seen} with different {} (a conflict, not a retry)",
                differing.join(", ")
            ),
        )
    }
}
use crate::error::{PipelineError, Result};
use crate::read::EVENT_HASH_COLUMN;

/// The outcome of deduplication.
#[derive(Debug)]
pub struct Deduped {
    /// The removed rows, as rejects.
    pub rejects: Vec<Reject>,
}

/// Removes later occurrences of an event_id: the first in (file-name, row) order is kept,
/// and the usage left is registered in `ctx` as the table `usage_deduped`.
///
/// Duplicates are found from `event_hashes` (the [`event_hash`](crate::read::event_hash) of every row, taken
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
        ctx.register_table("usage_deduped", usage_raw.into_view())?;
        return Ok(Deduped {
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
            let (code, reason) = duplicate_verdict(
                ids.value(i),
                &format!("was already read from {origin}"),
                &differing,
            );
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
    ctx.register_table("usage_deduped", usage.into_view())?;
    Ok(Deduped { rejects })
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
