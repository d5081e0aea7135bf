//! `billrun query`: SQL over a run's output tables.

use std::path::Path;

use arrow::array::RecordBatch;
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
    let ctx = SessionContext::new();
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
    Ok(ctx.sql(sql).await?.collect().await?)
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
            let mut writer = arrow::json::ArrayWriter::new(Vec::new());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            String::from_utf8_lossy(&writer.into_inner()).into_owned()
        }
    })
}
