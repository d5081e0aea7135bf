//! The Parquet writer of every output table: fixed properties, fixed batch and row-group
//! sizes, columns encoded in parallel.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
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

use super::{Hashed, OutputRecord};
use crate::error::{PipelineError, Result};

/// Rows per batch handed to the Parquet writer; fixed so that page boundaries are too.
pub(super) const WRITE_BATCH_ROWS: usize = 8192;

/// Rows per row group: a whole number of write batches, so no batch straddles two.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Write batches handed to the column writers at once: enough work per column to be
/// worth a parallel task.
const BATCHES_PER_TASK: usize = 16;

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
pub(super) struct ParallelColumnWriter {
    file: SerializedFileWriter<Hashed<BufWriter<File>>>,
    factory: ArrowRowGroupWriterFactory,
    /// The column writers of the row group in progress.
    columns: Option<Vec<ArrowColumnWriter>>,
    rows_in_group: usize,
    row_groups: usize,
    /// Write batches not yet handed to the column writers.
    pending: Vec<RecordBatch>,
}

impl ParallelColumnWriter {
    pub(super) fn new(file: File, schema: &SchemaRef) -> Result<Self> {
        // `ArrowWriter` builds the file's Parquet schema and its embedded Arrow schema.
        let writer = ArrowWriter::try_new(
            Hashed::new(BufWriter::new(file)),
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

    /// Closes the file; its size and SHA-256.
    fn close(mut self) -> Result<(u64, String)> {
        self.close_row_group()?;
        let (mut file, bytes, sha256) = self.file.into_inner()?.finish();
        std::io::Write::flush(&mut file)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        Ok((bytes, sha256))
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
    /// A writer of `table` into a new file at `path` (`relative` to the staging
    /// folder, as the manifest names it).
    ///
    /// # Errors
    /// I/O errors.
    pub(super) fn create(
        table: &str,
        relative: String,
        path: PathBuf,
        schema: SchemaRef,
    ) -> Result<Self> {
        let file = File::create(&path)
            .map_err(PipelineError::io(format!("creating {}", path.display())))?;
        let writer = ParallelColumnWriter::new(file, &schema)?;
        Ok(Self {
            table: table.to_string(),
            relative,
            path,
            coalescer: BatchCoalescer::new(Arc::clone(&schema), WRITE_BATCH_ROWS),
            schema,
            writer,
            rows: 0,
        })
    }

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
        let (bytes, sha256) = self.writer.close()?;
        Ok(OutputRecord {
            table: self.table,
            file: self.relative,
            rows: self.rows,
            bytes,
            sha256,
        })
    }
}
