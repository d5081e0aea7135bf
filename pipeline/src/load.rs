//! Stage 1: read every file of a table and validate it against its template.
//!
//! Files are fetched concurrently but decoded on blocking threads and returned in
//! file-name order, so "first occurrence" keeps meaning file order, then row order.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{RejectCode, Table, validate_batch};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};

use crate::dataset::{Dataset, FileFormat, InputFile};
use crate::error::{PipelineError, Result};
use crate::progress::Progress;

/// Rows per batch handed to validation.
const BATCH_ROWS: usize = 64 * 1024;

/// A rejected input row (or whole-row problem found later, such as a duplicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub table: Table,
    pub source_file: String,
    pub row_number: Option<u64>,
    pub column: Option<String>,
    pub code: RejectCode,
    pub reason: String,
    pub raw: String,
}

/// What the manifest records of one input file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputRecord {
    pub table: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub rows: u64,
    pub rows_rejected: u64,
}

/// A table after validation: its good rows in canonical form, its rejects, its files.
#[derive(Debug)]
pub struct LoadedTable {
    pub table: Table,
    pub batches: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    pub files: Vec<InputRecord>,
}

impl LoadedTable {
    /// Good rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Rows read, good or rejected.
    pub fn rows_read(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
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
) -> Result<LoadedTable> {
    let files = dataset.table_files(table).await?;
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let bar = progress.bytes(&format!("reading {table}"), total_bytes);
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    let decoded: Vec<DecodedFile> = futures::stream::iter(files.into_iter().enumerate())
        .map(|(i, file)| {
            let bar = bar.clone();
            async move {
                let bytes = dataset.read(&file).await?;
                let file_index = first_file_index + i as u32;
                let decoded = tokio::task::spawn_blocking(move || {
                    let size = file.size;
                    let out = decode_and_validate(&file, bytes, file_index);
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

    let mut loaded = LoadedTable {
        table,
        batches: Vec::new(),
        rejects: Vec::new(),
        files: Vec::new(),
    };
    for file in decoded {
        loaded.files.push(file.record);
        loaded.batches.extend(file.batches);
        loaded.rejects.extend(file.rejects);
    }
    Ok(loaded)
}

pub(crate) struct DecodedFile {
    pub(crate) record: InputRecord,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) rejects: Vec<Reject>,
}

pub(crate) fn decode_and_validate(
    file: &InputFile,
    bytes: Bytes,
    file_index: u32,
) -> Result<DecodedFile> {
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let byte_count = bytes.len() as u64;
    let mut out = DecodedFile {
        record: InputRecord {
            table: file.table.name().to_string(),
            file: file.name.clone(),
            bytes: byte_count,
            sha256,
            rows: 0,
            rows_rejected: 0,
        },
        batches: Vec::new(),
        rejects: Vec::new(),
    };
    let mut next_row: u64 = 1;
    match file.format {
        FileFormat::Parquet => {
            let unreadable = |e: parquet::errors::ParquetError| PipelineError::UnreadableFile {
                file: file.name.clone(),
                format: "Parquet",
                reason: e.to_string(),
            };
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .map_err(unreadable)?
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(unreadable)?;
            for batch in reader {
                let batch = batch.map_err(|e| PipelineError::UnreadableFile {
                    file: file.name.clone(),
                    format: "Parquet",
                    reason: e.to_string(),
                })?;
                accept(file, file_index, &batch, &mut next_row, &mut out)?;
            }
        }
        FileFormat::Csv => {
            let mut csv = CsvChunks::new(file, &bytes)?;
            while let Some(chunk) = csv.next_chunk()? {
                match chunk {
                    CsvChunk::Rows(batch) => {
                        accept(file, file_index, &batch, &mut next_row, &mut out)?;
                    }
                    CsvChunk::Malformed { reason, raw } => {
                        out.rejects.push(Reject {
                            table: file.table,
                            source_file: file.name.clone(),
                            row_number: Some(next_row),
                            column: None,
                            code: RejectCode::MalformedRow,
                            reason,
                            raw,
                        });
                        next_row += 1;
                    }
                }
            }
        }
    }
    out.record.rows = next_row - 1;
    out.record.rows_rejected = out.rejects.len() as u64;
    Ok(out)
}

/// A run of consecutive well-formed rows (all Utf8), or one malformed line. Runs end at
/// a malformed line so that row numbers stay exact.
pub(crate) enum CsvChunk {
    Rows(RecordBatch),
    Malformed { reason: String, raw: String },
}

/// Validates one raw batch whose first row is data row `*next_row`, and moves the row
/// counter past it.
pub(crate) fn accept(
    file: &InputFile,
    file_index: u32,
    raw: &RecordBatch,
    next_row: &mut u64,
    out: &mut DecodedFile,
) -> Result<()> {
    let validated = validate_batch(file.table, raw, file_index, *next_row).map_err(|source| {
        PipelineError::Template {
            file: file.name.clone(),
            source,
        }
    })?;
    for r in validated.rejects {
        out.rejects.push(Reject {
            table: file.table,
            source_file: file.name.clone(),
            row_number: Some(*next_row + r.row_index as u64),
            column: r.column.map(str::to_string),
            code: r.code,
            reason: r.reason,
            raw: r.raw,
        });
    }
    *next_row += raw.num_rows() as u64;
    if validated.batch.num_rows() > 0 {
        out.batches.push(validated.batch);
    }
    Ok(())
}

/// Reads a CSV file in chunks of string columns, keeping malformed lines as rejects.
pub(crate) struct CsvChunks<'a> {
    reader: csv::Reader<&'a [u8]>,
    schema: Arc<Schema>,
    file: &'a InputFile,
    pending: Option<CsvChunk>,
    done: bool,
}

impl<'a> CsvChunks<'a> {
    pub(crate) fn new(file: &'a InputFile, bytes: &'a Bytes) -> Result<Self> {
        let data: &[u8] = bytes.as_ref();
        let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(data);
        let headers = reader
            .byte_headers()
            .map_err(|e| PipelineError::UnreadableFile {
                file: file.name.clone(),
                format: "CSV",
                reason: e.to_string(),
            })?
            .clone();
        let mut fields = Vec::with_capacity(headers.len());
        for h in headers.iter() {
            let name = std::str::from_utf8(h).map_err(|_| PipelineError::UnreadableFile {
                file: file.name.clone(),
                format: "CSV",
                reason: "the header row is not valid UTF-8".to_string(),
            })?;
            fields.push(Field::new(name.trim(), DataType::Utf8, true));
        }
        Ok(Self {
            reader,
            schema: Arc::new(Schema::new(fields)),
            file,
            pending: None,
            done: false,
        })
    }

    pub(crate) fn next_chunk(&mut self) -> Result<Option<CsvChunk>> {
        if let Some(pending) = self.pending.take() {
            return Ok(Some(pending));
        }
        if self.done {
            return Ok(None);
        }
        let width = self.schema.fields().len();
        let mut builders: Vec<StringBuilder> = (0..width).map(|_| StringBuilder::new()).collect();
        let mut rows = 0usize;
        let mut record = csv::ByteRecord::new();
        while rows < BATCH_ROWS {
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Ok(true) => {
                    let problem = if record.len() != width {
                        Some(format!(
                            "row has {} fields, the header has {width}",
                            record.len()
                        ))
                    } else if record.iter().any(|f| std::str::from_utf8(f).is_err()) {
                        Some("row is not valid UTF-8".to_string())
                    } else {
                        None
                    };
                    if let Some(reason) = problem {
                        let malformed = CsvChunk::Malformed {
                            reason,
                            raw: join_fields(&record),
                        };
                        if rows == 0 {
                            return Ok(Some(malformed));
                        }
                        self.pending = Some(malformed);
                        break;
                    }
                    for (builder, field) in builders.iter_mut().zip(record.iter()) {
                        match std::str::from_utf8(field) {
                            Ok("") | Err(_) => builder.append_null(),
                            Ok(cell) => builder.append_value(cell),
                        }
                    }
                    rows += 1;
                }
                Err(e) => {
                    return Err(PipelineError::UnreadableFile {
                        file: self.file.name.clone(),
                        format: "CSV",
                        reason: e.to_string(),
                    });
                }
            }
        }
        if rows == 0 {
            return Ok(self.pending.take());
        }
        let columns: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        Ok(Some(CsvChunk::Rows(RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?)))
    }
}

fn join_fields(record: &csv::ByteRecord) -> String {
    record
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// The `rejects` table of `rejects`, in the order given.
///
/// # Errors
/// Arrow errors (none for well-formed rejects).
pub fn rejects_batch(rejects: &[Reject]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        OutputTable::Rejects.schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.source_file),
            )),
            Arc::new(UInt64Array::from_iter(rejects.iter().map(|r| r.row_number))),
            Arc::new(StringArray::from_iter(
                rejects.iter().map(|r| r.column.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.reason),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.raw),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| r.table.name()),
            )),
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| r.code.as_str()),
            )),
        ],
    )?)
}
