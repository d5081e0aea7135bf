//! Decoding one file (CSV in chunks, or Parquet) and validating its rows against the
//! template: good rows as batches, bad rows as rejects.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use billrun_schemas::{Reject, RejectCode, validate_batch};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use sha2::{Digest, Sha256};

use super::usage_spill::SpillSink;
use super::{BATCH_ROWS, InputRecord};
use crate::error::{PipelineError, Result};
use crate::store::dataset::{FileFormat, InputFile};

pub(crate) struct DecodedFile {
    pub(crate) record: InputRecord,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) rejects: Vec<Reject>,
    /// Of the rejects of an effective-dated table, the version each names.
    pub(crate) refused: Vec<billrun_accounting::catalog::RefusedRow>,
    pub(crate) good_rows: u64,
    pub(super) spill: Option<SpillSink>,
    /// With the books, for a file a posted run read: the rows still open (the others
    /// are settled and skipped).
    keep_rows: Option<Vec<u64>>,
}

/// The error of a Parquet batch that cannot be decoded.
fn unreadable_batch(file: &InputFile) -> impl Fn(arrow::error::ArrowError) -> PipelineError + '_ {
    move |e| PipelineError::UnreadableFile {
        file: file.name.clone(),
        format: "Parquet",
        reason: e.to_string(),
    }
}

/// Ascending row numbers (from 1) as runs of consecutive rows: (first, length), those
/// past `total` left out.
fn runs_of(rows: &[u64], total: u64) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &row in rows.iter().filter(|&&r| r >= 1 && r <= total) {
        match runs.last_mut() {
            Some((first, len)) if *first + *len == row => *len += 1,
            _ => runs.push((row, 1)),
        }
    }
    runs
}

/// The Parquet row selection of `runs` (row numbers from 1) in a file of `total` rows.
fn selection_of(runs: &[(u64, u64)], total: u64) -> RowSelection {
    let mut selectors = Vec::with_capacity(2 * runs.len() + 1);
    let mut at = 1u64;
    for &(first, len) in runs {
        if first > at {
            selectors.push(RowSelector::skip((first - at) as usize));
        }
        selectors.push(RowSelector::select(len as usize));
        at = first + len;
    }
    if at <= total {
        selectors.push(RowSelector::skip((total + 1 - at) as usize));
    }
    RowSelection::from(selectors)
}

impl DecodedFile {
    pub(crate) fn new(record: InputRecord) -> Self {
        Self {
            record,
            batches: Vec::new(),
            rejects: Vec::new(),
            refused: Vec::new(),
            good_rows: 0,
            spill: None,
            keep_rows: None,
        }
    }
}

pub(crate) fn decode_and_validate(
    file: &InputFile,
    bytes: Bytes,
    file_index: u32,
) -> Result<DecodedFile> {
    decode_into(file, bytes, file_index, None, None)
}

/// What the books say of the files of a table.
#[derive(Debug, Default)]
pub struct SettledTable {
    /// By SHA-256, the files posted runs read.
    pub files: std::collections::BTreeMap<String, billrun_accounting::books::SettledFile>,
    /// By name, the SHA-256 of the files the last posting read, with their identity.
    pub digests: std::collections::BTreeMap<String, billrun_accounting::books::FileDigest>,
}

pub type SettledFiles = std::sync::Arc<SettledTable>;

impl SettledTable {
    /// A file whose identity in the store is the one the books know it by, and whose
    /// rows are all settled: its record, without reading a byte of it.
    pub(crate) fn unread(&self, file: &InputFile) -> Option<DecodedFile> {
        let identity = file.identity.as_deref()?;
        let digest = self
            .digests
            .get(&file.name)
            .filter(|d| d.identity == identity)?;
        let known = self.files.get(&digest.sha256)?;
        if !known.open_rows.is_empty() {
            return None;
        }
        Some(DecodedFile::new(InputRecord {
            table: file.table.name().to_string(),
            file: file.name.clone(),
            bytes: file.size,
            sha256: digest.sha256.clone(),
            rows: known.rows,
            rows_rejected: 0,
            rows_settled: known.rows,
            identity: file.identity.clone(),
        }))
    }
}

pub(super) fn decode_into(
    file: &InputFile,
    bytes: Bytes,
    file_index: u32,
    spill: Option<SpillSink>,
    settled: Option<&SettledFiles>,
) -> Result<DecodedFile> {
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let byte_count = bytes.len() as u64;
    let known = settled.and_then(|s| s.files.get(&sha256)).cloned();
    let mut out = DecodedFile::new(InputRecord {
        table: file.table.name().to_string(),
        file: file.name.clone(),
        bytes: byte_count,
        sha256,
        rows: 0,
        rows_rejected: 0,
        rows_settled: 0,
        identity: file.identity.clone(),
    });
    out.spill = spill;
    if let Some(known) = known {
        if known.open_rows.is_empty() {
            // Every row is settled: nothing to decode.
            out.record.rows = known.rows;
            out.record.rows_settled = known.rows;
            return Ok(out);
        }
        out.keep_rows = Some(known.open_rows);
    }
    let mut next_row: u64 = 1;
    match file.format {
        FileFormat::Parquet => {
            let unreadable = |e: parquet::errors::ParquetError| PipelineError::UnreadableFile {
                file: file.name.clone(),
                format: "Parquet",
                reason: e.to_string(),
            };
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .map_err(unreadable)?
                .with_batch_size(BATCH_ROWS);
            check_header(file, builder.schema())?;
            match out.keep_rows.clone() {
                None => {
                    let reader = builder.build().map_err(unreadable)?;
                    for batch in reader {
                        accept(
                            file,
                            file_index,
                            &batch.map_err(unreadable_batch(file))?,
                            &mut next_row,
                            &mut out,
                        )?;
                    }
                }
                Some(open) => {
                    // A file read again: only its open rows are decoded, so that a
                    // dataset keeping every month's files costs a run what is open in
                    // them, not all they hold.
                    let total = u64::try_from(builder.metadata().file_metadata().num_rows())
                        .unwrap_or_default();
                    let runs = runs_of(&open, total);
                    let reader = builder
                        .with_row_selection(selection_of(&runs, total))
                        .build()
                        .map_err(unreadable)?;
                    let (mut run, mut used) = (0, 0u64);
                    for batch in reader {
                        let batch = batch.map_err(unreadable_batch(file))?;
                        let mut offset = 0;
                        while offset < batch.num_rows() {
                            let Some(&(first, len)) = runs.get(run) else {
                                return Err(PipelineError::Internal(format!(
                                    "{}: more rows selected than open",
                                    file.name
                                )));
                            };
                            let take = usize::try_from(len - used)
                                .unwrap_or(usize::MAX)
                                .min(batch.num_rows() - offset);
                            let mut row = first + used;
                            accept(
                                file,
                                file_index,
                                &batch.slice(offset, take),
                                &mut row,
                                &mut out,
                            )?;
                            used += take as u64;
                            offset += take;
                            if used == len {
                                (run, used) = (run + 1, 0);
                            }
                        }
                    }
                    next_row = total + 1;
                }
            }
        }
        FileFormat::Csv => {
            let mut csv = CsvChunks::new(file, &bytes)?;
            check_header(file, &csv.schema)?;
            while let Some(chunk) = csv.next_chunk()? {
                match chunk {
                    CsvChunk::Rows(batch) => {
                        accept(file, file_index, &batch, &mut next_row, &mut out)?;
                    }
                    CsvChunk::Malformed { reason, raw } => {
                        if !out.keeps(next_row) {
                            next_row += 1;
                            continue;
                        }
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
    if out.keep_rows.is_some() {
        out.record.rows_settled = out.record.rows - out.record.rows_rejected - out.good_rows;
    }
    Ok(out)
}

impl DecodedFile {
    /// Whether row `row` is read (not settled by a posted run).
    fn keeps(&self, row: u64) -> bool {
        self.keep_rows
            .as_ref()
            .is_none_or(|open| open.binary_search(&row).is_ok())
    }
}

/// A run of consecutive well-formed rows (all Utf8), or one malformed line. Runs end at
/// a malformed line so that row numbers stay exact.
pub(crate) enum CsvChunk {
    Rows(RecordBatch),
    Malformed { reason: String, raw: String },
}

/// The file's header (its schema's column names) checked against its table before any
/// row is read ([`billrun_schemas::check_header`]).
fn check_header(file: &InputFile, schema: &arrow::datatypes::Schema) -> Result<()> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    billrun_schemas::check_header(file.table, &names).map_err(|source| PipelineError::Template {
        file: file.name.clone(),
        source,
    })
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
        if !out.keeps(*next_row + r.row_index as u64) {
            continue;
        }
        let row_number = *next_row + r.row_index as u64;
        if let [key, from] = r.version_key.as_slice() {
            out.refused.push(billrun_accounting::catalog::RefusedRow {
                key: key.clone(),
                effective_from: from
                    .as_deref()
                    .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                what: format!("{} row {row_number}: {}", file.name, r.reason),
            });
        }
        out.rejects.push(Reject {
            table: file.table,
            source_file: file.name.clone(),
            row_number: Some(row_number),
            column: r.column.map(str::to_string),
            code: r.code,
            reason: r.reason,
            raw: r.raw,
        });
    }
    *next_row += raw.num_rows() as u64;
    let batch = match &out.keep_rows {
        None => validated.batch,
        Some(_) => {
            use arrow::array::AsArray;
            let rows = validated
                .batch
                .column_by_name(billrun_schemas::templates::ROW_NUMBER_COLUMN)
                .ok_or_else(|| PipelineError::Internal("validated rows lack row numbers".into()))?
                .as_primitive::<arrow::datatypes::UInt64Type>();
            let keep: arrow::array::BooleanArray =
                rows.values().iter().map(|r| Some(out.keeps(*r))).collect();
            arrow::compute::filter_record_batch(&validated.batch, &keep)?
        }
    };
    out.good_rows += batch.num_rows() as u64;
    if batch.num_rows() > 0 {
        match out.spill.as_mut() {
            Some(sink) => sink.write(&batch)?,
            None => out.batches.push(batch),
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

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, StringArray};
    use arrow::datatypes::UInt64Type;
    use billrun_schemas::Table;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// A usage Parquet file of `n` events (E1 .. En), two rows per row group so that the
    /// selection crosses row groups and batches.
    fn usage_file(n: usize) -> Bytes {
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            Arc::new(StringArray::from_iter_values((1..=n).map(f)))
        };
        let schema = Arc::new(Schema::new(
            ["event_id", "customer_id", "product_id", "ts", "quantity"]
                .map(|c| Field::new(c, DataType::Utf8, false))
                .to_vec(),
        ));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                text(&|i| format!("E{i}")),
                text(&|_| "C1".to_string()),
                text(&|_| "API".to_string()),
                text(&|i| format!("2026-10-{i:02}T00:00:00Z")),
                text(&|i| i.to_string()),
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(bytes)
    }

    #[test]
    fn a_file_read_again_decodes_only_its_open_rows_with_their_row_numbers() {
        let bytes = usage_file(7);
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let settled: SettledFiles = Arc::new(SettledTable {
            files: [(
                sha256,
                billrun_accounting::books::SettledFile {
                    rows: 7,
                    open_rows: vec![2, 4, 5, 7],
                    tried: Default::default(),
                },
            )]
            .into(),
            digests: Default::default(),
        });
        let file = InputFile {
            table: Table::Usage,
            name: "usage/2026-10.parquet".into(),
            location: object_store::path::Path::from("usage/2026-10.parquet"),
            format: FileFormat::Parquet,
            size: bytes.len() as u64,
            identity: None,
        };
        let out = decode_into(&file, bytes, 0, None, Some(&settled)).unwrap();
        assert_eq!(
            (out.record.rows, out.record.rows_settled, out.good_rows),
            (7, 3, 4)
        );
        let mut kept = Vec::new();
        for batch in &out.batches {
            let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
            let rows = batch
                .column_by_name(billrun_schemas::templates::ROW_NUMBER_COLUMN)
                .unwrap()
                .as_primitive::<UInt64Type>();
            for i in 0..batch.num_rows() {
                kept.push(format!("{} row {}", ids.value(i), rows.value(i)));
            }
        }
        assert_eq!(kept, ["E2 row 2", "E4 row 4", "E5 row 5", "E7 row 7"]);
    }

    #[test]
    fn a_settled_file_is_known_by_its_identity_and_never_read() {
        let settled_file = |open_rows: Vec<u64>| billrun_accounting::books::SettledFile {
            rows: 7,
            open_rows,
            tried: Default::default(),
        };
        let table = SettledTable {
            files: [
                ("aaa".to_string(), settled_file(vec![])),
                ("bbb".to_string(), settled_file(vec![3])),
            ]
            .into(),
            digests: [("usage/a.parquet", "aaa"), ("usage/b.parquet", "bbb")]
                .map(|(name, sha)| {
                    (
                        name.to_string(),
                        billrun_accounting::books::FileDigest {
                            identity: "70 t1 2026-11-02T00:00:00Z".into(),
                            sha256: sha.into(),
                        },
                    )
                })
                .into(),
        };
        let file = |name: &str, identity: Option<&str>| InputFile {
            table: Table::Usage,
            name: name.into(),
            location: object_store::path::Path::from(name),
            format: FileFormat::Parquet,
            size: 70,
            identity: identity.map(str::to_string),
        };
        let same = Some("70 t1 2026-11-02T00:00:00Z");
        let unread = table.unread(&file("usage/a.parquet", same)).unwrap();
        assert_eq!(
            (
                unread.record.sha256.as_str(),
                unread.record.rows,
                unread.record.rows_settled
            ),
            ("aaa", 7, 7)
        );
        // Changed since (another ETag), no identity, open rows, unknown: read.
        assert!(
            table
                .unread(&file("usage/a.parquet", Some("70 t2 2026-11-02T00:00:00Z")))
                .is_none()
        );
        assert!(table.unread(&file("usage/a.parquet", None)).is_none());
        assert!(table.unread(&file("usage/b.parquet", same)).is_none());
        assert!(table.unread(&file("usage/c.parquet", same)).is_none());
    }

    #[test]
    fn open_rows_become_runs_and_a_selection_covering_the_file() {
        let runs = runs_of(&[2, 3, 4, 7, 9, 10, 12], 10);
        assert_eq!(runs, [(2, 3), (7, 1), (9, 2)]);
        let selection: Vec<RowSelector> = selection_of(&runs, 12).into();
        assert_eq!(
            selection,
            [
                RowSelector::skip(1),
                RowSelector::select(3),
                RowSelector::skip(2),
                RowSelector::select(1),
                RowSelector::skip(1),
                RowSelector::select(2),
                RowSelector::skip(2),
            ]
        );
    }
}
