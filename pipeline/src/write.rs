//! Stage 7: write the run's tables, then publish them in one step.
//!
//! Everything is written under a hidden staging folder beside the output folder; only
//! when every table, the journal and the manifest are complete is the staging folder
//! renamed into place. A run killed half-way leaves at most a stray staging folder, never
//! a half-written table where a reader looks.
//!
//! Files are byte-for-byte reproducible: rows arrive in a fixed order, are re-cut into
//! fixed-size batches before the writer sees them, and the writer's properties (including
//! `created_by`) are fixed.
//!
//! The columns of a row group are encoded and compressed in parallel (rayon), each by its
//! own column writer fed the same slices in the same order as `ArrowWriter` would feed
//! it, so the bytes are those `ArrowWriter` writes. Encoding `rated_usage` on one thread
//! was the slowest step of a large run.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::BatchCoalescer;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::iter::{IndexedParallelIterator, IntoParallelRefMutIterator, ParallelIterator};
use sha2::{Digest, Sha256};

use crate::error::{PipelineError, Result};

/// Rows per batch handed to the Parquet writer; fixed so that page boundaries are too.
const WRITE_BATCH_ROWS: usize = 8192;
/// Rows per row group: a whole number of write batches, so no batch straddles two.
const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// Write batches handed to the column writers at once: enough work per column to be
/// worth a parallel task.
const BATCHES_PER_TASK: usize = 16;

/// What the manifest records of one output file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputRecord {
    pub table: String,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Columns whose values are (nearly) all distinct: a dictionary only costs the writer
/// an interning pass over each row group before it falls back to plain encoding.
const DISTINCT_COLUMNS: [&str; 2] = ["event_id", "ts"];

/// Columns whose min/max prune nothing: `rated_usage` is ordered by subscription, so
/// every row group (and page) holds event ids, quantities and amounts from across their
/// whole range (checked at 10M events: every row group spanned nearly all of it). Their
/// statistics cost two comparisons per value, 11 % of the writer's CPU for
/// `rated_usage`; customer, subscription and product, which do prune, keep theirs.
/// Properties go by column name, so the other tables with these columns (`unrated`,
/// `invoice_lines`, `open_credits`, the revenue tables) lose them too: none of them is
/// ordered by an amount or an event id either, and all are small.
const UNPRUNABLE_COLUMNS: [&str; 3] = ["event_id", "quantity", "amount"];

pub(crate) fn writer_properties() -> Result<WriterProperties> {
    let builder = DISTINCT_COLUMNS
        .iter()
        .fold(WriterProperties::builder(), |builder, column| {
            builder.set_column_dictionary_enabled(ColumnPath::from(*column), false)
        });
    let builder = UNPRUNABLE_COLUMNS.iter().fold(builder, |builder, column| {
        builder.set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None)
    });
    Ok(builder
        // Level 1: compressing `rated_usage` was a quarter of the rate stage's CPU at 3.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("billrun {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// Streams one table into `<table>/part-00000.parquet` of the staging folder.
pub struct TableWriter {
    table: String,
    relative: String,
    path: PathBuf,
    schema: SchemaRef,
    writer: ParallelColumnWriter,
    coalescer: BatchCoalescer,
    rows: u64,
}

/// A Parquet file whose row groups are encoded column by column in parallel.
struct ParallelColumnWriter {
    file: SerializedFileWriter<BufWriter<File>>,
    factory: ArrowRowGroupWriterFactory,
    /// The column writers of the row group in progress.
    columns: Option<Vec<ArrowColumnWriter>>,
    rows_in_group: usize,
    row_groups: usize,
    /// Write batches not yet handed to the column writers.
    pending: Vec<RecordBatch>,
}

impl ParallelColumnWriter {
    fn new(file: File, schema: &SchemaRef) -> Result<Self> {
        // `ArrowWriter` builds the file's Parquet schema and its embedded Arrow schema.
        let writer = ArrowWriter::try_new(
            BufWriter::new(file),
            Arc::clone(schema),
            Some(writer_properties()?),
        )?;
        let (file, factory) = writer.into_serialized_writer()?;
        Ok(Self {
            file,
            factory,
            columns: None,
            rows_in_group: 0,
            row_groups: 0,
            pending: Vec::new(),
        })
    }

    /// Takes one write batch (at most `WRITE_BATCH_ROWS` rows).
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows_in_group += batch.num_rows();
        self.pending.push(batch);
        if self.rows_in_group >= ROW_GROUP_ROWS {
            self.close_row_group()
        } else if self.pending.len() >= BATCHES_PER_TASK {
            self.encode_pending()
        } else {
            Ok(())
        }
    }

    fn encode_pending(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        let columns = match self.columns.as_mut() {
            Some(columns) => columns,
            None => self
                .columns
                .insert(self.factory.create_column_writers(self.row_groups)?),
        };
        // Flat (non-nested) schemas: one leaf, hence one writer, per field.
        columns
            .par_iter_mut()
            .enumerate()
            .try_for_each(|(i, writer)| -> Result<()> {
                for batch in &pending {
                    for leaf in compute_leaves(batch.schema_ref().field(i), batch.column(i))? {
                        writer.write(&leaf)?;
                    }
                }
                Ok(())
            })
    }

    fn close_row_group(&mut self) -> Result<()> {
        self.encode_pending()?;
        let Some(columns) = self.columns.take() else {
            return Ok(());
        };
        let chunks = columns
            .into_iter()
            .map(ArrowColumnWriter::close)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        self.rows_in_group = 0;
        Ok(())
    }

    fn close(mut self) -> Result<()> {
        self.close_row_group()?;
        self.file.close()?;
        Ok(())
    }
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

impl TableWriter {
    /// Writes a batch. Its columns must match the table's schema by position and type.
    ///
    /// # Errors
    /// I/O and encoding errors; schema mismatches.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        // Re-label to the published schema: the query engine may name or null-mark
        // columns differently, but types and non-null guarantees are checked here.
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec())?;
        self.rows += batch.num_rows() as u64;
        self.coalescer.push_batch(batch)?;
        while let Some(ready) = self.coalescer.next_completed_batch() {
            self.writer.write(ready)?;
        }
        Ok(())
    }

    /// Flushes and closes the file.
    ///
    /// # Errors
    /// I/O and encoding errors.
    pub fn finish(mut self) -> Result<OutputRecord> {
        self.coalescer.finish_buffered_batch()?;
        while let Some(ready) = self.coalescer.next_completed_batch() {
            self.writer.write(ready)?;
        }
        self.writer.close()?;
        let (bytes, sha256) = file_digest(&self.path)?;
        Ok(OutputRecord {
            table: self.table,
            file: self.relative,
            rows: self.rows,
            bytes,
            sha256,
        })
    }
}

/// SHA-256 and size of a file.
///
/// # Errors
/// I/O errors.
pub fn file_digest(path: &Path) -> Result<(u64, String)> {
    let mut file =
        File::open(path).map_err(PipelineError::io(format!("reading {}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(PipelineError::io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// The staging folder of a run and where it will be published.
#[derive(Debug)]
pub struct Staging {
    staging: PathBuf,
    target: PathBuf,
    published: bool,
}

impl Staging {
    /// Creates a fresh staging folder beside `target`.
    ///
    /// # Errors
    /// [`PipelineError::OutputNotOurs`] if `target` exists, is not empty and is not a
    /// billrun output; I/O errors.
    pub fn create(target: &Path) -> Result<Self> {
        if target.exists() && !is_billrun_output(target) {
            return Err(PipelineError::OutputNotOurs {
                path: target.to_path_buf(),
            });
        }
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(PipelineError::io(format!("creating {}", parent.display())))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let staging = parent.join(format!(".{name}.staging-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .map_err(PipelineError::io(format!("clearing {}", staging.display())))?;
        }
        std::fs::create_dir_all(&staging)
            .map_err(PipelineError::io(format!("creating {}", staging.display())))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            published: false,
        })
    }

    /// The staging folder.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Opens a writer for `table`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn table_writer(&self, table: &str, schema: SchemaRef) -> Result<TableWriter> {
        let relative = format!("{table}/part-00000.parquet");
        let dir = self.staging.join(table);
        std::fs::create_dir_all(&dir)
            .map_err(PipelineError::io(format!("creating {}", dir.display())))?;
        let path = self.staging.join(&relative);
        let file = File::create(&path)
            .map_err(PipelineError::io(format!("creating {}", path.display())))?;
        let writer = ParallelColumnWriter::new(file, &schema)?;
        Ok(TableWriter {
            table: table.to_string(),
            relative,
            path,
            coalescer: BatchCoalescer::new(Arc::clone(&schema), WRITE_BATCH_ROWS),
            schema,
            writer,
            rows: 0,
        })
    }

    /// Writes a whole table from batches already in memory.
    ///
    /// # Errors
    /// As [`TableWriter::write`].
    pub fn write_table(
        &self,
        table: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<OutputRecord> {
        let mut writer = self.table_writer(table, schema)?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()
    }

    /// Writes a non-table file (journal text, manifest).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_file(&self, relative: &str, contents: &[u8]) -> Result<OutputRecord> {
        let path = self.staging.join(relative);
        std::fs::write(&path, contents)
            .map_err(PipelineError::io(format!("writing {}", path.display())))?;
        let (bytes, sha256) = file_digest(&path)?;
        Ok(OutputRecord {
            table: relative.to_string(),
            file: relative.to_string(),
            rows: 0,
            bytes,
            sha256,
        })
    }

    /// Moves the staging folder into place. A previous run's output is swapped out and
    /// removed; readers see the old run or the new one, never a mix.
    ///
    /// # Errors
    /// I/O errors.
    pub fn publish(mut self) -> Result<PathBuf> {
        let io = |what: &str| PipelineError::io(format!("{what} {}", self.target.display()));
        if self.target.exists() {
            let old = self.staging.with_extension("old");
            std::fs::rename(&self.target, &old).map_err(io("moving aside"))?;
            std::fs::rename(&self.staging, &self.target).map_err(io("publishing"))?;
            std::fs::remove_dir_all(&old).map_err(io("removing the previous run of"))?;
        } else {
            std::fs::rename(&self.staging, &self.target).map_err(io("publishing"))?;
        }
        self.published = true;
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // A failed run cleans up after itself; a killed one leaves only a hidden folder.
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Whether `dir` is empty or holds a billrun run (it has a manifest).
fn is_billrun_output(dir: &Path) -> bool {
    dir.join("manifest.json").is_file()
        || std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}
