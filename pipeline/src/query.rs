//! `billrun query`: SQL over a run's output tables.

use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Date32Type;
use billrun_schemas::outputs::OutputTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::error::{PipelineError, Result};

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// A session with every output table of the run in `out` registered under its name.
///
/// # Errors
/// [`PipelineError::InvalidOption`] when `out` holds no billrun run.
pub async fn output_session(out: &Path) -> Result<SessionContext> {
    if !out.join("manifest.json").is_file() {
        return Err(PipelineError::InvalidOption(format!(
            "`{}` holds no billrun run (no manifest.json); run `billrun run --out {}` first",
            out.display(),
            out.display()
        )));
    }
    // `SHOW TABLES` and `information_schema` list what can be queried.
    let ctx = SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_information_schema(true),
    );
    for table in OutputTable::ALL {
        let dir = out.join(table.name());
        if dir.is_dir() {
            let path = format!("{}/", dir.display());
            ctx.register_parquet(table.name(), &path, ParquetReadOptions::default())
                .await?;
        }
    }
    Ok(ctx)
}

/// Runs `sql` against the run in `out`.
///
/// # Errors
/// SQL errors, and those of [`output_session`].
pub async fn query(out: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    let ctx = output_session(out).await?;
    let frame = ctx
        .sql_with_options(sql, read_only())
        .await
        .map_err(|e| refused_statement(sql, e))?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let mut batches = frame.collect().await?;
    // An empty result still has its columns: CSV prints its header row.
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// What `billrun query` accepts: queries only. A finished run is never changed by
/// reading it (`INSERT INTO invoices …` would add a file to it, `COPY … TO` write
/// anywhere, `CREATE`/`SET` change the session).
fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A statement the read-only options refused, said plainly; other errors as they are.
fn refused_statement(sql: &str, e: datafusion::error::DataFusionError) -> PipelineError {
    let text = e.to_string();
    if text.contains("not supported")
        && ["DDL", "DML", "Statement"].iter().any(|k| text.contains(k))
    {
        return PipelineError::InvalidOption(format!(
            "`billrun query` only reads a run's tables (SELECT, WITH, EXPLAIN); `{}` would change them or write files: {text}",
            sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        ));
    }
    e.into()
}

/// Renders query results.
///
/// # Errors
/// Encoding errors.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Table => arrow::util::pretty::pretty_format_batches(batches)?.to_string(),
        OutputFormat::Csv => {
            let mut buffer = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buffer);
                for b in batches {
                    writer.write(b)?;
                }
            }
            String::from_utf8_lossy(&buffer).into_owned()
        }
        OutputFormat::Json => {
            // Money as strings ("276.1700"), never JSON numbers that readers parse as
            // binary floats; empty values as null, never a missing field.
            let as_text: Vec<RecordBatch> = batches
                .iter()
                .map(decimals_as_text)
                .collect::<std::result::Result<_, _>>()?;
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(Vec::new());
            let refs: Vec<&RecordBatch> = as_text.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            String::from_utf8_lossy(&writer.into_inner()).into_owned()
        }
    })
}

/// `batch` with its decimal columns as their exact text.
fn decimals_as_text(
    batch: &RecordBatch,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::datatypes::{DataType, Field, Schema};
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(
            field.data_type(),
            DataType::Decimal128(..) | DataType::Decimal256(..)
        ) {
            fields.push(Field::new(
                field.name(),
                DataType::Utf8,
                field.is_nullable(),
            ));
            columns.push(arrow::compute::cast(column, &DataType::Utf8)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(std::sync::Arc::clone(column));
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
}

/// The reports `billrun report` prints, each a query over a run's output tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The deferred-revenue roll-forward: opening, billed, recognised and closing per
    /// month, currency and deferral account.
    DeferredRevenue,
    /// Contract revenue by month booked (rows) and month recognised (columns).
    RevenueWaterfall,
    /// Debits, credits and balance of every account in the run's journal.
    TrialBalance,
}

/// Runs `report` against the run in `out`.
///
/// # Errors
/// As [`query`].
pub async fn report(out: &Path, report: Report) -> Result<Vec<RecordBatch>> {
    let ctx = output_session(out).await?;
    let sql = match report {
        Report::DeferredRevenue => {
            "SELECT month, currency, account, opening, billed, recognised, closing \
             FROM deferred_revenue ORDER BY month, currency, account"
                .to_string()
        }
        Report::TrialBalance => {
            "SELECT account, currency, sum(debit) AS debit, sum(credit) AS credit, \
             sum(debit) - sum(credit) AS balance FROM journal \
             GROUP BY account, currency ORDER BY account, currency"
                .to_string()
        }
        Report::RevenueWaterfall => {
            // One column per recognition month, so the table reads like a waterfall.
            let months = ctx
                .sql("SELECT DISTINCT recognition_month FROM revenue_waterfall ORDER BY 1")
                .await?
                .collect()
                .await?;
            let mut columns = Vec::new();
            for batch in &months {
                let days = batch.column(0).as_primitive::<Date32Type>();
                for i in 0..days.len() {
                    let month = days.value_as_date(i).ok_or_else(|| {
                        PipelineError::Internal("recognition_month out of range".into())
                    })?;
                    columns.push(format!(
                        "sum(CASE WHEN recognition_month = DATE '{month}' THEN amount ELSE 0 END) AS \"{}\"",
                        month.format("%Y-%m")
                    ));
                }
            }
            columns.push("sum(amount) AS total".to_string());
            format!(
                "SELECT booked_month, currency, {} FROM revenue_waterfall \
                 GROUP BY booked_month, currency ORDER BY booked_month, currency",
                columns.join(", ")
            )
        }
    };
    Ok(ctx.sql(&sql).await?.collect().await?)
}
