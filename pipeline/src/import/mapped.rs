//! Upstream exports read through a mapping: a SQL `SELECT` over the file's columns.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use billrun_schemas::Reject;

use super::Mapping;
use crate::error::{PipelineError, Result};
use crate::read::{CsvChunk, CsvChunks, DecodedFile, InputRecord, accept};
use crate::store::dataset::{FileFormat, InputFile};

/// Reads an upstream export through its mapping: the file's rows as text in a table
/// `source`, the mapping's SELECT over it, and the result validated as the template.
/// Row numbers of rejects count the SELECT's output rows.
pub(super) async fn decode_mapped(
    file: &InputFile,
    bytes: &Bytes,
    mapping: &Mapping,
) -> Result<DecodedFile> {
    if file.format != FileFormat::Csv {
        return Err(PipelineError::UnreadableFile {
            file: file.name.clone(),
            format: "Parquet",
            reason: format!("mapping `{}` reads CSV exports only", mapping.name),
        });
    }
    let mut raw: Vec<RecordBatch> = Vec::new();
    let mut out = DecodedFile::new(InputRecord {
        table: file.table.name().to_string(),
        file: file.name.clone(),
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
        rows: 0,
        rows_rejected: 0,
        rows_settled: 0,
        identity: file.identity.clone(),
    });
    let mut chunks = CsvChunks::new(file, bytes)?;
    let mut line = 1_u64;
    while let Some(chunk) = chunks.next_chunk()? {
        match chunk {
            CsvChunk::Rows(batch) => {
                line += batch.num_rows() as u64;
                raw.push(batch);
            }
            CsvChunk::Malformed { reason, raw } => {
                out.rejects.push(Reject {
                    table: file.table,
                    source_file: file.name.clone(),
                    row_number: Some(line),
                    column: None,
                    code: billrun_schemas::RejectCode::MalformedRow,
                    reason,
                    raw,
                });
                line += 1;
            }
        }
    }
    let Some(first) = raw.first() else {
        return Ok(out);
    };
    let ctx = SessionContext::new();
    ctx.register_table(
        "source",
        Arc::new(MemTable::try_new(first.schema(), vec![raw.clone()])?),
    )?;
    let mapped = ctx.sql(&mapping.sql).await?.collect().await?;
    let mut next_row = 1_u64;
    for batch in mapped {
        // Validation reads text, as from a CSV: every mapped column is cast to Utf8.
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect();
        let columns = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let text = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        accept(file, 0, &text, &mut next_row, &mut out)?;
    }
    out.record.rows = next_row - 1;
    Ok(out)
}
