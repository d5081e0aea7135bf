//! Writing a validated file into the dataset: transactional rows appended as a new file,
//! master data upserted by key (the replaced version kept under `_history/`).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;

use billrun_schemas::Table;

use crate::error::{PipelineError, Result};
use crate::read::decode_and_validate;
use crate::store::dataset::Dataset;
use crate::write::writer_properties;

/// The schema of the files billrun writes into a dataset: the template's columns with
/// their canonical types (no provenance columns).
pub(super) fn file_schema(table: Table) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .columns()
            .iter()
            .map(|c| Field::new(c.name, c.kind.data_type(), !c.required))
            .collect::<Vec<_>>(),
    ))
}

/// Validated batches without their provenance columns.
pub(super) fn file_batches(table: Table, batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let schema = file_schema(table);
    batches
        .iter()
        .map(|b| {
            let columns: Vec<ArrayRef> = table
                .columns()
                .iter()
                .map(|c| {
                    b.column_by_name(c.name).cloned().ok_or_else(|| {
                        PipelineError::Internal(format!("validated {table} lacks {}", c.name))
                    })
                })
                .collect::<Result<_>>()?;
            Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
        })
        .collect()
}

pub(super) fn parquet_bytes(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    let mut writer =
        ArrowWriter::try_new(Vec::new(), Arc::clone(schema), Some(writer_properties()?))?;
    for b in batches {
        writer.write(b)?;
    }
    Ok(Bytes::from(writer.into_inner()?))
}

/// Upserts master data: the rows of `incoming` replace every current row with the same
/// key; the table becomes one file `<table>/<table>.parquet`, and the version it replaces
/// is kept under `_history/<table>/`, named by the instant it was replaced at and the
/// file's sequence in its sweep (so replacements order correctly, several in a day too).
pub(super) async fn upsert(
    dataset: &Dataset,
    table: Table,
    incoming: Vec<RecordBatch>,
    (now, seq): (chrono::DateTime<chrono::Utc>, u32),
    short_sha: &str,
) -> Result<()> {
    let schema = file_schema(table);
    let mut current: Vec<RecordBatch> = Vec::new();
    let existing = dataset.table_files(table).await?;
    for (index, file) in existing.iter().enumerate() {
        let bytes = dataset.read(file).await?;
        let decoded = decode_and_validate(file, bytes, index as u32)?;
        current.extend(file_batches(table, &decoded.batches)?);
    }
    let replaced: BTreeSet<String> = keys(table, &incoming)?.into_iter().collect();
    let mut kept: Vec<RecordBatch> = Vec::new();
    for batch in &current {
        let batch_keys = keys(table, std::slice::from_ref(batch))?;
        let keep: arrow::array::BooleanArray = batch_keys
            .iter()
            .map(|k| Some(!replaced.contains(k)))
            .collect();
        kept.push(arrow::compute::filter_record_batch(batch, &keep)?);
    }
    kept.extend(incoming);
    let merged = concat_batches(&schema, &kept)?;
    if !current.is_empty() {
        let history = dataset.path(&format!(
            "_history/{}/{}",
            table.name(),
            crate::store::dataset::history_file_name(now, seq, short_sha)
        ))?;
        let previous = concat_batches(&schema, &current)?;
        dataset
            .put(&history, parquet_bytes(&schema, &[previous])?)
            .await?;
    }
    let target_name = format!("{0}/{0}.parquet", table.name());
    let target = dataset.path(&target_name)?;
    dataset
        .put(&target, parquet_bytes(&schema, &[merged])?)
        .await?;
    for file in existing {
        if file.name != target_name {
            dataset.delete(&file.location).await?;
        }
    }
    Ok(())
}

/// Each row's key (its key columns rendered and joined), for upserts.
pub(super) fn keys(table: Table, batches: &[RecordBatch]) -> Result<Vec<String>> {
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for batch in batches {
        let formatters = table
            .key_columns()
            .iter()
            .map(|k| {
                let column = batch.column_by_name(k).ok_or_else(|| {
                    PipelineError::Internal(format!("{table} lacks key column {k}"))
                })?;
                Ok(ArrayFormatter::try_new(column.as_ref(), &options)?)
            })
            .collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            let parts: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(parts.join("\u{1f}"));
        }
    }
    Ok(out)
}
