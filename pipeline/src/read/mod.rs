//! The `read` stage: every file of a table read and validated against its template.
//!
//! Files are fetched concurrently but decoded on blocking threads and returned in
//! file-name order, so "first occurrence" keeps meaning file order, then row order.
//!
//! Master data is small and stays in memory. Usage does not have to fit: with a
//! [`UsageSpill`], each file's validated rows go to a local Parquet file as they are
//! validated, with a hash of each event id beside them for deduplication, and the query
//! engine reads them back from there under the run's memory limit.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use billrun_schemas::{Reject, Table};
use futures::{StreamExt, TryStreamExt};

use crate::error::{PipelineError, Result};
use crate::progress::Progress;
use crate::store::dataset::Dataset;

mod decode;
mod usage_spill;

use decode::decode_into;
pub(crate) use decode::{
    CsvChunk, CsvChunks, DecodedFile, SettledFiles, SettledTable, accept, decode_and_validate,
};
use usage_spill::SpillSink;
pub use usage_spill::{EVENT_HASH_COLUMN, UsageSpill, event_hash};

/// Rows per batch handed to validation.
const BATCH_ROWS: usize = 64 * 1024;

/// What the manifest records of one input file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputRecord {
    pub table: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub rows: u64,
    pub rows_rejected: u64,
    /// With the books: rows a posted run billed or rejected, skipped.
    #[serde(skip_serializing_if = "is_zero")]
    pub rows_settled: u64,
    /// The file's identity in the store ([`crate::store::dataset::InputFile::identity`]).
    #[serde(skip)]
    pub identity: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A table after validation: its good rows in canonical form (in `batches`, or in
/// `spilled` files when it was loaded with a [`UsageSpill`]), its rejects, its files.
#[derive(Debug)]
pub struct LoadedTable {
    pub table: Table,
    pub batches: Vec<RecordBatch>,
    /// Scratch Parquet files holding the good rows instead of `batches`, in file order;
    /// their schema is [`UsageSpill::schema`].
    pub spilled: Vec<PathBuf>,
    /// The [`event_hash`] of every good row of `spilled`, in no particular order.
    pub event_hashes: Vec<u64>,
    pub rejects: Vec<Reject>,
    pub files: Vec<InputRecord>,
    /// Hidden or marker files in the table's folder, not read.
    pub skipped: Vec<String>,
    /// Of the rejects of an effective-dated table (price_plans, tax_rates), the version
    /// each names: it is refused, never replaced by the one before it.
    pub refused: Vec<billrun_accounting::catalog::RefusedRow>,
    good_rows: u64,
}

impl LoadedTable {
    /// Good rows.
    pub fn rows(&self) -> usize {
        self.good_rows as usize
    }

    /// Rows read, good, rejected or settled.
    pub fn rows_read(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Rows a posted run settled, skipped.
    pub fn rows_settled(&self) -> u64 {
        self.files.iter().map(|f| f.rows_settled).sum()
    }
}

/// Reads and validates every file of `table`. `first_file_index` numbers the files so
/// that provenance columns are unique across the whole run.
///
/// # Errors
/// File-level problems: unreadable files, missing required columns, float money.
pub async fn load_table(
    dataset: &Dataset,
    table: Table,
    first_file_index: u32,
    progress: &Progress,
    spill: Option<&UsageSpill>,
    settled: Option<&SettledFiles>,
) -> Result<LoadedTable> {
    let spill = spill.filter(|_| table == Table::Usage);
    let listing = dataset.table_listing(table).await?;
    let (files, skipped) = (listing.files, listing.skipped);
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let bar = progress.bytes(&format!("reading {table}"), total_bytes);
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    let decoded: Vec<DecodedFile> = futures::stream::iter(files.into_iter().enumerate())
        .map(|(i, file)| {
            let bar = bar.clone();
            let spill_to = spill.map(|s| s.file_path(first_file_index + i as u32));
            let settled = settled.cloned();
            async move {
                if let Some(unread) = settled.as_ref().and_then(|s| s.unread(&file)) {
                    bar.inc(file.size);
                    return Ok(unread);
                }
                let bytes = dataset.read(&file).await?;
                let file_index = first_file_index + i as u32;
                let decoded = tokio::task::spawn_blocking(move || {
                    let size = file.size;
                    let sink = spill_to.map(SpillSink::create).transpose()?;
                    let out = decode_into(&file, bytes, file_index, sink, settled.as_ref());
                    bar.inc(size);
                    out
                })
                .await
                .map_err(|e| PipelineError::Internal(format!("decoder task failed: {e}")))??;
                Ok::<_, PipelineError>(decoded)
            }
        })
        .buffered(parallelism)
        .try_collect()
        .await?;
    bar.finish_and_clear();
    let mut loaded = LoadedTable::from_decoded(table, decoded)?;
    loaded.skipped = skipped;
    Ok(loaded)
}

/// Decodes and validates files already in memory as `table` (the master data a books
/// keeps of a posted run), numbered from `first_file_index`, in the order given.
///
/// # Errors
/// As [`load_table`]; a file name without a known extension.
pub fn decode_table(
    table: Table,
    files: Vec<(String, bytes::Bytes)>,
    first_file_index: u32,
) -> Result<LoadedTable> {
    let mut decoded = Vec::with_capacity(files.len());
    for (i, (name, bytes)) in files.into_iter().enumerate() {
        let format = crate::store::dataset::FileFormat::from_name(&name).ok_or_else(|| {
            PipelineError::Internal(format!("`{name}` is neither CSV nor Parquet"))
        })?;
        let file = crate::store::dataset::InputFile {
            table,
            location: object_store::path::Path::from(name.as_str()),
            name,
            format,
            size: bytes.len() as u64,
            identity: None,
        };
        decoded.push(decode_into(
            &file,
            bytes,
            first_file_index + i as u32,
            None,
            None,
        )?);
    }
    LoadedTable::from_decoded(table, decoded)
}

impl LoadedTable {
    /// A table with no file.
    pub fn empty(table: Table) -> Self {
        LoadedTable {
            table,
            batches: Vec::new(),
            spilled: Vec::new(),
            event_hashes: Vec::new(),
            rejects: Vec::new(),
            files: Vec::new(),
            skipped: Vec::new(),
            refused: Vec::new(),
            good_rows: 0,
        }
    }

    fn from_decoded(table: Table, decoded: Vec<DecodedFile>) -> Result<Self> {
        let mut loaded = LoadedTable::empty(table);
        for mut file in decoded {
            loaded.good_rows += file.good_rows;
            loaded.files.push(file.record);
            loaded.batches.extend(file.batches);
            loaded.rejects.extend(file.rejects);
            loaded.refused.extend(file.refused);
            if let Some(sink) = file.spill.take() {
                let (path, hashes) = sink.finish()?;
                loaded.spilled.push(path);
                if loaded.event_hashes.is_empty() {
                    loaded.event_hashes = hashes;
                } else {
                    loaded.event_hashes.extend(hashes);
                }
            }
        }
        Ok(loaded)
    }
}
