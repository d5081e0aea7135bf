//! Stage 1: read every file of a table and validate it against its template.
//!
//! Files are fetched concurrently but decoded on blocking threads and returned in
//! file-name order, so "first occurrence" keeps meaning file order, then row order.
//!
//! Master data is small and stays in memory. Usage does not have to fit: with a
//! [`UsageSpill`], each file's validated rows go to a local Parquet file as they are
//! validated, with a hash of each event id beside them for deduplication, and the query
//! engine reads them back from there under the run's memory limit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringBuilder, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use billrun_schemas::templates::{FILE_INDEX_COLUMN, ROW_NUMBER_COLUMN};
use billrun_schemas::{Reject, RejectCode, Table, validate_batch};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};

use crate::dataset::{Dataset, FileFormat, InputFile};
use crate::error::{PipelineError, Result};
use crate::progress::Progress;

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
    good_rows: u64,
}

impl LoadedTable {
    /// Good rows.
    pub fn rows(&self) -> usize {
        self.good_rows as usize
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
    spill: Option<&UsageSpill>,
) -> Result<LoadedTable> {
    let spill = spill.filter(|_| table == Table::Usage);
    let files = dataset.table_files(table).await?;
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let bar = progress.bytes(&format!("reading {table}"), total_bytes);
    let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
    let decoded: Vec<DecodedFile> = futures::stream::iter(files.into_iter().enumerate())
        .map(|(i, file)| {
            let bar = bar.clone();
            let spill_to = spill.map(|s| s.file_path(first_file_index + i as u32));
            async move {
                let bytes = dataset.read(&file).await?;
                let file_index = first_file_index + i as u32;
                let decoded = tokio::task::spawn_blocking(move || {
                    let size = file.size;
                    let sink = spill_to.map(SpillSink::create).transpose()?;
                    let out = decode_into(&file, bytes, file_index, sink);
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
        spilled: Vec::new(),
        event_hashes: Vec::new(),
        rejects: Vec::new(),
        files: Vec::new(),
        good_rows: 0,
    };
    for mut file in decoded {
        loaded.good_rows += file.good_rows;
        loaded.files.push(file.record);
        loaded.batches.extend(file.batches);
        loaded.rejects.extend(file.rejects);
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

/// The name of the column that [`UsageSpill`] files add to usage: [`event_hash`] of the
/// row's event id.
pub const EVENT_HASH_COLUMN: &str = "_event_hash";

/// The 64-bit hash by which deduplication finds candidate duplicates: equal event ids
/// have equal hashes; rows whose hashes collide are compared by their ids afterwards.
pub fn event_hash(event_id: &str) -> u64 {
    twox_hash::XxHash3_64::oneshot(event_id.as_bytes())
}

/// A local scratch folder for validated usage (see the module's documentation). The
/// folder is the caller's: it is removed with the [`tempfile::TempDir`] that holds it.
#[derive(Debug, Clone)]
pub struct UsageSpill {
    dir: PathBuf,
}

impl UsageSpill {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Usage's canonical schema and [`EVENT_HASH_COLUMN`].
    pub fn schema() -> SchemaRef {
        let usage = Table::Usage.schema();
        let mut fields: Vec<Field> = usage.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(EVENT_HASH_COLUMN, DataType::UInt64, false));
        Arc::new(Schema::new(fields))
    }

    fn file_path(&self, file_index: u32) -> PathBuf {
        self.dir.join(format!("usage-{file_index:06}.parquet"))
    }
}

/// One input file's validated usage on its way to scratch Parquet. Uncompressed and
/// without statistics: it is read whole once or twice on the same disk. Dictionaries
/// only where they are nearly free: the file index (one value per file) and the product
/// (a handful); a row number, counting up, is delta-encoded. Together they take a quarter
/// of the bytes (8.6 against 6.3 GB at 100M events) off a file written faster than the
/// disk takes it at that scale. Event ids are unique and customers too many for a
/// dictionary to pay for its interning.
pub(crate) struct SpillSink {
    writer: ArrowWriter<std::fs::File>,
    path: PathBuf,
    schema: SchemaRef,
    hashes: Vec<u64>,
}

impl SpillSink {
    fn create(path: PathBuf) -> Result<Self> {
        let file = std::fs::File::create(&path).map_err(|source| PipelineError::Io {
            context: format!("creating scratch file {}", path.display()),
            source,
        })?;
        let schema = UsageSpill::schema();
        let properties = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            // Nothing prunes on them: every scan of the spill reads all of it.
            .set_statistics_enabled(EnabledStatistics::None)
            .set_column_dictionary_enabled(ColumnPath::from(FILE_INDEX_COLUMN), true)
            .set_column_dictionary_enabled(ColumnPath::from("product_id"), true)
            .set_column_encoding(
                ColumnPath::from(ROW_NUMBER_COLUMN),
                Encoding::DELTA_BINARY_PACKED,
            )
            .build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties))?;
        Ok(Self {
            writer,
            path,
            schema,
            hashes: Vec::new(),
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let ids = batch
            .column_by_name("event_id")
            .ok_or_else(|| PipelineError::Internal("validated usage lacks event_id".into()))?
            .as_string::<i32>();
        // Validation leaves no null event id; a null would hash like "" and still be
        // compared by value before anything is dropped.
        let hashes: UInt64Array = ids
            .iter()
            .map(|id| Some(event_hash(id.unwrap_or(""))))
            .collect();
        self.hashes.extend_from_slice(hashes.values());
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(hashes));
        self.writer
            .write(&RecordBatch::try_new(Arc::clone(&self.schema), columns)?)?;
        Ok(())
    }

    fn finish(self) -> Result<(PathBuf, Vec<u64>)> {
        self.writer.close()?;
        Ok((self.path, self.hashes))
    }
}

pub(crate) struct DecodedFile {
    pub(crate) record: InputRecord,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) rejects: Vec<Reject>,
    pub(crate) good_rows: u64,
    spill: Option<SpillSink>,
}

impl DecodedFile {
    pub(crate) fn new(record: InputRecord) -> Self {
        Self {
            record,
            batches: Vec::new(),
            rejects: Vec::new(),
            good_rows: 0,
            spill: None,
        }
    }
}

pub(crate) fn decode_and_validate(
    file: &InputFile,
    bytes: Bytes,
    file_index: u32,
) -> Result<DecodedFile> {
    decode_into(file, bytes, file_index, None)
}

fn decode_into(
    file: &InputFile,
    bytes: Bytes,
    file_index: u32,
    spill: Option<SpillSink>,
) -> Result<DecodedFile> {
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let byte_count = bytes.len() as u64;
    let mut out = DecodedFile::new(InputRecord {
        table: file.table.name().to_string(),
        file: file.name.clone(),
        bytes: byte_count,
        sha256,
        rows: 0,
        rows_rejected: 0,
    });
    out.spill = spill;
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
    out.good_rows += validated.batch.num_rows() as u64;
    if validated.batch.num_rows() > 0 {
        match out.spill.as_mut() {
            Some(sink) => sink.write(&validated.batch)?,
            None => out.batches.push(validated.batch),
        }
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
