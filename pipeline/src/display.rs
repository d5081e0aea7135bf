//! Results as people read them: `billrun query` and `billrun report` output.
//!
//! Money is shown at its currency's minor unit (`325.00` USD, `4978` JPY, `2.500` KWD),
//! not at the four decimals it is stored with, whenever a row names its currency and the
//! value has no digits below the minor unit; a value that has (an average, a rate, a
//! rated amount) keeps every digit, so nothing shown is ever rounded. Results are written
//! batch by batch as they come from the query engine (CSV and JSON), so a two-million-row
//! export holds one batch in memory, not the result; only the terminal table, which sizes
//! its columns from every row, collects them. Reports add a totals row per currency to
//! the terminal table (never to CSV or JSON, which stay one row per record).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use billrun_engine::minor_units;
use billrun_schemas::MONEY_SCALE;
use futures::StreamExt;
use rust_decimal::Decimal;

use crate::error::{PipelineError, Result};
use crate::query::OutputFormat;

/// Which columns of a report get a totals row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Totals {
    /// None: the rows are balances or ratios that do not add up.
    None,
    /// These money columns, summed per currency.
    Columns(&'static [&'static str]),
    /// Every money column, summed per currency.
    AllMoney,
}

/// A money column: Decimal128 at billrun's money scale.
fn is_money(field: &Field) -> bool {
    matches!(field.data_type(), DataType::Decimal128(_, s) if *s == MONEY_SCALE)
}

/// The row's currency column as text, if the batch has one (the query engine reads
/// Parquet text as string views; a report builds plain strings).
fn currency_column(batch: &RecordBatch) -> Option<StringArray> {
    let i = batch.schema().index_of("currency").ok()?;
    let column = arrow::compute::cast(batch.column(i), &DataType::Utf8).ok()?;
    column.as_string_opt::<i32>().cloned()
}

/// Money at the minor unit of `currency`, when that shows every digit it has.
fn money_text(value: i128, currency: Option<&str>) -> String {
    let amount = Decimal::from_i128_with_scale(value, MONEY_SCALE as u32);
    match currency.and_then(minor_units) {
        Some(minor) if amount.round_dp(minor) == amount => {
            let minor = minor as usize;
            format!("{amount:.minor$}")
        }
        _ => format!("{amount:.4}"),
    }
}

/// `batch` with its money columns as text at each row's currency minor unit. A batch
/// without a `currency` column is returned as it is.
///
/// # Errors
/// A batch that cannot be rebuilt (a bug).
pub fn money_for_display(batch: &RecordBatch) -> Result<RecordBatch> {
    let Some(currency) = currency_column(batch) else {
        return Ok(batch.clone());
    };
    if !batch.schema().fields().iter().any(|f| is_money(f)) {
        return Ok(batch.clone());
    }
    as_text_where(batch, is_money, |column| {
        let values = column.as_primitive::<Decimal128Type>();
        let text: StringArray = (0..values.len())
            .map(|i| {
                (!values.is_null(i)).then(|| {
                    let c = (!currency.is_null(i)).then(|| currency.value(i));
                    money_text(values.value(i), c)
                })
            })
            .collect();
        Ok(Arc::new(text))
    })
}

/// `batch` with each column whose field passes `which` replaced by the text `to_text`
/// makes of it; other columns as they are.
fn as_text_where(
    batch: &RecordBatch,
    which: impl Fn(&Field) -> bool,
    to_text: impl Fn(&ArrayRef) -> Result<ArrayRef>,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if which(field) {
            fields.push(Field::new(
                field.name(),
                DataType::Utf8,
                field.is_nullable(),
            ));
            columns.push(to_text(column)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The totals rows of `batches` per currency, as text in the batches' columns: `total`
/// in the first column, the currency, the sums; other cells empty. None when the
/// batches have no currency column or `totals` is [`Totals::None`].
///
/// # Errors
/// Sums that overflow.
fn totals_rows(batches: &[RecordBatch], totals: Totals) -> Result<Vec<Vec<String>>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let schema = first.schema();
    let Ok(currency_at) = schema.index_of("currency") else {
        return Ok(Vec::new());
    };
    let summed: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            is_money(f)
                && match totals {
                    Totals::None => false,
                    Totals::AllMoney => true,
                    Totals::Columns(names) => names.contains(&f.name().as_str()),
                }
        })
        .map(|(i, _)| i)
        .collect();
    if summed.is_empty() {
        return Ok(Vec::new());
    }
    let mut sums: BTreeMap<String, Vec<i128>> = BTreeMap::new();
    for batch in batches {
        let Some(currency) = currency_column(batch) else {
            continue;
        };
        for row in 0..batch.num_rows() {
            if currency.is_null(row) {
                continue;
            }
            let entry = sums
                .entry(currency.value(row).to_string())
                .or_insert_with(|| vec![0; summed.len()]);
            for (slot, &column) in entry.iter_mut().zip(&summed) {
                let values = batch.column(column).as_primitive::<Decimal128Type>();
                if !values.is_null(row) {
                    *slot = slot.checked_add(values.value(row)).ok_or_else(|| {
                        PipelineError::Internal("a report total overflows".into())
                    })?;
                }
            }
        }
    }
    Ok(sums
        .into_iter()
        .map(|(currency, values)| {
            let mut row = vec![String::new(); schema.fields().len()];
            row[0] = "total".to_string();
            row[currency_at] = currency.clone();
            for (value, &column) in values.into_iter().zip(&summed) {
                row[column] = money_text(value, Some(&currency));
            }
            row
        })
        .collect())
}

/// Every cell of `batches` as text, money at its minor unit, then the totals rows.
fn as_text_table(batches: &[RecordBatch], totals: Totals) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let schema = first.schema();
    let options = FormatOptions::default().with_null("");
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); schema.fields().len()];
    for batch in batches {
        let shown = money_for_display(batch)?;
        for (c, column) in shown.columns().iter().enumerate() {
            let format = ArrayFormatter::try_new(column.as_ref(), &options)?;
            for row in 0..shown.num_rows() {
                cells[c].push(Some(format.value(row).to_string()));
            }
        }
    }
    for row in totals_rows(batches, totals)? {
        for (c, cell) in row.into_iter().enumerate() {
            cells[c].push(Some(cell));
        }
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Utf8, true))
        .collect();
    let columns: Vec<ArrayRef> = cells
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    Ok(Some(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?))
}

/// Renders results held in memory (reports), with `totals` in the terminal table.
///
/// # Errors
/// Encoding errors.
pub fn render_batches(
    batches: &[RecordBatch],
    format: OutputFormat,
    totals: Totals,
) -> Result<String> {
    let mut out = Vec::new();
    let schema = batches
        .first()
        .map_or_else(|| Arc::new(Schema::empty()), RecordBatch::schema);
    let mut writer = ResultWriter::new(&mut out, format, schema, totals);
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Writes a result of `schema` batch by batch in `format`: CSV and JSON as each batch
/// comes (a header row, or `[`, even for an empty result), the terminal table at the
/// end.
pub struct ResultWriter<W: Write> {
    out: W,
    format: OutputFormat,
    schema: SchemaRef,
    totals: Totals,
    /// The terminal table's batches, kept until the end.
    held: Vec<RecordBatch>,
    rows: usize,
    started: bool,
}

impl<W: Write> std::fmt::Debug for ResultWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultWriter")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ResultWriter<W> {
    pub fn new(out: W, format: OutputFormat, schema: SchemaRef, totals: Totals) -> Self {
        Self {
            out,
            format,
            schema,
            totals,
            held: Vec::new(),
            rows: 0,
            started: false,
        }
    }

    /// Writes (or, for the terminal table, keeps) one batch.
    ///
    /// # Errors
    /// Encoding and write errors.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match self.format {
            OutputFormat::Table => self.held.push(batch.clone()),
            OutputFormat::Csv => {
                let shown = money_for_display(batch)?;
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(!self.started)
                    .build(&mut self.out);
                writer.write(&shown)?;
            }
            OutputFormat::Json => {
                let shown = decimals_as_text(&money_for_display(batch)?)?;
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(Vec::new());
                writer.write(&shown)?;
                writer.finish()?;
                let lines = writer.into_inner();
                // One JSON array of objects: the rows of every batch, comma-separated.
                for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let lead: &[u8] = if self.started || self.rows > 0 {
                        b",\n"
                    } else {
                        b"[\n"
                    };
                    self.out.write_all(lead).map_err(write_error)?;
                    self.out.write_all(line).map_err(write_error)?;
                    self.rows += 1;
                }
            }
        }
        self.started = true;
        Ok(())
    }

    /// Ends the result: the terminal table, the header of an empty CSV, the closing `]`.
    ///
    /// # Errors
    /// Encoding and write errors.
    pub fn finish(mut self) -> Result<()> {
        match self.format {
            OutputFormat::Table => {
                let table = match as_text_table(&self.held, self.totals)? {
                    Some(table) => {
                        arrow::util::pretty::pretty_format_batches(&[table])?.to_string()
                    }
                    None => arrow::util::pretty::pretty_format_batches_with_schema(
                        Arc::clone(&self.schema),
                        &[],
                    )?
                    .to_string(),
                };
                writeln!(self.out, "{table}").map_err(write_error)?;
            }
            OutputFormat::Csv if !self.started => {
                let names: Vec<&str> = self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                let mut writer = csv::Writer::from_writer(&mut self.out);
                writer
                    .write_record(&names)
                    .and_then(|()| writer.flush().map_err(Into::into))
                    .map_err(|e| PipelineError::Internal(format!("writing a CSV header: {e}")))?;
            }
            OutputFormat::Csv => {}
            OutputFormat::Json => {
                let end: &[u8] = if self.rows > 0 { b"\n]\n" } else { b"[]\n" };
                self.out.write_all(end).map_err(write_error)?;
            }
        }
        self.out.flush().map_err(write_error)
    }
}

fn write_error(source: std::io::Error) -> PipelineError {
    PipelineError::Io {
        context: "writing the result".into(),
        source,
    }
}

/// `batch` with its decimal columns as their exact text (JSON money as strings, never
/// numbers that readers parse as binary floats).
fn decimals_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    as_text_where(
        batch,
        |f| {
            matches!(
                f.data_type(),
                DataType::Decimal128(..) | DataType::Decimal256(..)
            )
        },
        |column| Ok(arrow::compute::cast(column, &DataType::Utf8)?),
    )
}

/// Writes every batch of `stream` through `writer`, as they come.
///
/// # Errors
/// Query errors while the stream runs; encoding and write errors.
pub async fn write_stream<W: Write>(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    mut writer: ResultWriter<W>,
) -> Result<()> {
    while let Some(batch) = stream.next().await {
        writer.write(&batch?)?;
    }
    writer.finish()
}
