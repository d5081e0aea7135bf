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
    query_session(out, None).await
}

/// The schema the dataset's tables are registered in: `data.customers`, `data.products`.
pub const DATASET_SCHEMA: &str = "data";

/// [`output_session`], and with `data` the dataset's tables beside the outputs, in the
/// schema `data` (`data.customers`, `data.price_plans`, …): their good rows as the run
/// validated them, in billrun's types, without the provenance columns. Usage is left
/// out (it can be billions of rows; the outputs `rated_usage`, `unrated` and `rejects`
/// hold every event).
///
/// # Errors
/// As [`output_session`]; a dataset that cannot be read.
pub async fn query_session(out: &Path, data: Option<&str>) -> Result<SessionContext> {
    let ctx = outputs_session(out).await?;
    if let Some(location) = data {
        register_dataset(&ctx, location).await?;
    }
    Ok(ctx)
}

async fn register_dataset(ctx: &SessionContext, location: &str) -> Result<()> {
    use billrun_schemas::Table;
    use billrun_schemas::templates::{FILE_INDEX_COLUMN, ROW_NUMBER_COLUMN};
    let dataset = crate::store::dataset::Dataset::open(location)?;
    let catalog = ctx.catalog("datafusion").ok_or_else(|| {
        PipelineError::Internal("the query session has no default catalog".into())
    })?;
    catalog.register_schema(
        DATASET_SCHEMA,
        std::sync::Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
    )?;
    let progress = crate::progress::Progress::hidden();
    for table in Table::every().filter(|t| *t != Table::Usage) {
        let loaded = crate::read::load_table(&dataset, table, 0, &progress, None, None).await?;
        if loaded.files.is_empty() {
            continue;
        }
        let schema = loaded
            .batches
            .first()
            .map_or_else(|| table.schema(), RecordBatch::schema);
        let keep: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name() != FILE_INDEX_COLUMN && f.name() != ROW_NUMBER_COLUMN)
            .map(|(i, _)| i)
            .collect();
        let projected = std::sync::Arc::new(schema.project(&keep)?);
        let batches = loaded
            .batches
            .iter()
            .map(|b| b.project(&keep))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mem = datafusion::datasource::MemTable::try_new(projected, vec![batches])?;
        ctx.register_table(
            format!("{DATASET_SCHEMA}.{}", table.name()).as_str(),
            std::sync::Arc::new(mem),
        )?;
    }
    Ok(())
}

async fn outputs_session(out: &Path) -> Result<SessionContext> {
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

/// Runs `sql` against the run in `out` (and the dataset at `data`), its result as a
/// stream of batches: nothing is held but the batch being written.
///
/// # Errors
/// SQL errors, and those of [`query_session`].
pub async fn query_stream(
    out: &Path,
    data: Option<&str>,
    sql: &str,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
    let ctx = query_session(out, data).await?;
    let frame = ctx
        .sql_with_options(sql, read_only())
        .await
        .map_err(|e| refused_statement(sql, e))?;
    Ok(frame.execute_stream().await?)
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

/// Renders results held in memory, money at each row's currency minor unit (see
/// [`crate::display`]).
///
/// # Errors
/// Encoding errors.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    crate::display::render_batches(batches, format, crate::display::Totals::None)
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
