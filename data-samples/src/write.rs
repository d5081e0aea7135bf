//! Parquet output: the dataset's layout, the file schemas, and the master tables.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema, SchemaRef};
use billrun_schemas::{DECIMAL_PRECISION, QUANTITY_SCALE, Table};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::calendar::date32;
use crate::catalog::{MICROS_TO_DECIMAL, ONE, PRODUCTS};
use crate::world::World;
use crate::{GenerateError, usage};

/// Largest number of usage files: their names have five digits.
pub(crate) const MAX_USAGE_FILES: usize = 99_999;
/// Rows per row group.
const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// The tables written besides usage, in the order a bill run loads them.
fn master_tables() -> impl Iterator<Item = Table> {
    Table::ALL.into_iter().filter(|t| *t != Table::Usage)
}

/// The Arrow schema of the files the generator writes for `table`: the template's
/// columns in published order with their canonical types ([`billrun_schemas::ColumnKind::data_type`]),
/// without the provenance columns of [`Table::schema`].
///
/// Every column is nullable, as DuckDB, pyarrow and Spark exports mark them: required
/// values are a rule of the data, which billrun checks row by row (and which some
/// generated usage rows deliberately break), not of the file format.
pub fn file_schema(table: Table) -> SchemaRef {
    let fields: Vec<Field> = table
        .columns()
        .iter()
        .map(|c| Field::new(c.name, c.kind.data_type(), true))
        .collect();
    Arc::new(Schema::new(fields))
}

fn writer_properties() -> Result<WriterProperties, parquet::errors::ParquetError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("billrun-samples {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// Where each file of the dataset goes.
#[derive(Debug)]
pub(crate) struct Layout {
    out: PathBuf,
    usage_files: usize,
}

/// The name of the `index`-th file of a table.
fn part_name(index: usize) -> String {
    format!("part-{index:05}.parquet")
}

/// Whether `name` is a file a generator run writes (`part-NNNNN.parquet`).
fn is_part_name(name: &str) -> bool {
    name.strip_prefix("part-")
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .is_some_and(|digits| digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether billrun would read `name` as a data file of a table.
fn is_data_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with(['.', '_'])
        && [".csv", ".parquet", ".parq"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> GenerateError {
    let path = path.to_path_buf();
    move |source| GenerateError::Io {
        action,
        path,
        source,
    }
}

impl Layout {
    pub(crate) fn new(out: &Path, usage_files: usize) -> Self {
        Self {
            out: out.to_path_buf(),
            usage_files,
        }
    }

    fn table_dir(&self, table: Table) -> PathBuf {
        self.out.join(table.name())
    }

    /// The path of usage file `index`.
    pub(crate) fn usage_file(&self, index: usize) -> PathBuf {
        self.table_dir(Table::Usage).join(part_name(index))
    }

    fn files_to_write(&self, table: Table) -> usize {
        if table == Table::Usage {
            self.usage_files
        } else {
            1
        }
    }

    /// Creates the table folders and clears them of earlier generated files this run
    /// will not overwrite. A data file the generator did not write fails the run before
    /// anything is removed: mixing it with generated data would corrupt both.
    pub(crate) fn prepare(&self) -> Result<(), GenerateError> {
        let mut stale = Vec::new();
        for table in master_tables().chain([Table::Usage]) {
            let dir = self.table_dir(table);
            fs::create_dir_all(&dir).map_err(io_error("creating folder", &dir))?;
            let entries = fs::read_dir(&dir).map_err(io_error("listing folder", &dir))?;
            for entry in entries {
                let entry = entry.map_err(io_error("listing folder", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_data_file(&name) {
                    continue;
                }
                let ours = is_part_name(&name);
                let kept = ours
                    && name[5..10]
                        .parse()
                        .is_ok_and(|i: usize| i < self.files_to_write(table));
                if !ours {
                    return Err(GenerateError::InvalidOption {
                        option: "out",
                        reason: format!(
                            "{} already holds {name}, which the generator did not write; choose an empty folder",
                            dir.display()
                        ),
                    });
                }
                if !kept {
                    stale.push(entry.path());
                }
            }
        }
        for path in stale {
            fs::remove_file(&path).map_err(io_error("removing stale file", &path))?;
        }
        Ok(())
    }
}

/// A Parquet file being written under a hidden name, renamed into place by
/// [`ParquetFile::finish`] so that readers never see half a file.
///
/// Dropped unfinished (when generation fails), it removes its hidden file.
pub(crate) struct ParquetFile {
    path: PathBuf,
    temporary: PathBuf,
    /// `None` once finished.
    writer: Option<ArrowWriter<BufWriter<File>>>,
}

impl std::fmt::Debug for ParquetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ParquetFile {
    pub(crate) fn create(path: &Path, schema: SchemaRef) -> Result<Self, GenerateError> {
        let name = path
            .file_name()
            .expect("dataset files have names")
            .to_string_lossy();
        let temporary = path.with_file_name(format!(".{name}.tmp"));
        let file = File::create(&temporary).map_err(io_error("creating file", &temporary))?;
        let parquet = |source| GenerateError::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let properties = writer_properties().map_err(parquet)?;
        let writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            schema,
            Some(properties),
        )
        .map_err(parquet)?;
        Ok(Self {
            path: path.to_path_buf(),
            temporary,
            writer: Some(writer),
        })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), GenerateError> {
        self.writer
            .as_mut()
            .expect("written before finish")
            .write(batch)
            .map_err(|source| GenerateError::Parquet {
                path: self.path.clone(),
                source,
            })
    }

    /// Closes the file and moves it to its final name.
    pub(crate) fn finish(mut self) -> Result<PathBuf, GenerateError> {
        let writer = self.writer.take().expect("finished once");
        let buffered = writer
            .into_inner()
            .map_err(|source| GenerateError::Parquet {
                path: self.path.clone(),
                source,
            })?;
        let file = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_error("writing file", &self.temporary))?;
        file.sync_all()
            .map_err(io_error("writing file", &self.temporary))?;
        fs::rename(&self.temporary, &self.path)
            .map_err(io_error("renaming file into", &self.path))?;
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for ParquetFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Best effort: the hidden file is ignored by readers anyway.
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

fn decimals(values: impl IntoIterator<Item = Option<i128>>) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter(values)
            .with_precision_and_scale(DECIMAL_PRECISION, QUANTITY_SCALE)
            .expect("scale 12 fits precision 38"),
    )
}

fn micros_decimals(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    decimals(
        values
            .into_iter()
            .map(|v| v.map(|m| i128::from(m) * MICROS_TO_DECIMAL)),
    )
}

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn dates(values: impl IntoIterator<Item = Option<chrono::NaiveDate>>) -> ArrayRef {
    Arc::new(Date32Array::from_iter(
        values.into_iter().map(|d| d.map(date32)),
    ))
}

fn integers(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(values))
}

/// The columns of master table `table`, in template order.
fn master_columns(table: Table, world: &World) -> Vec<ArrayRef> {
    let customers = &world.customers;
    let plans = &world.catalog.plans;
    match table {
        Table::Customers => vec![
            strings(customers.iter().map(|c| Some(c.id.as_str()))),
            strings(customers.iter().map(|c| Some(c.name.as_str()))),
            strings(customers.iter().map(|c| Some(c.currency.code()))),
            integers(customers.iter().map(|c| Some(i64::from(c.billing_day)))),
            integers(customers.iter().map(|c| c.payment_terms_days)),
            strings(customers.iter().map(|c| c.tax_region)),
            strings(customers.iter().map(|c| c.email.as_deref())),
        ],
        Table::Products => vec![
            strings(PRODUCTS.iter().map(|p| Some(p.id))),
            strings(PRODUCTS.iter().map(|p| Some(p.name))),
            strings(PRODUCTS.iter().map(|p| Some(p.kind))),
            strings(PRODUCTS.iter().map(|p| Some(p.unit))),
            strings(PRODUCTS.iter().map(|p| Some(p.revenue_account))),
            decimals(PRODUCTS.iter().map(|_| None)),
        ],
        Table::PricePlans => {
            let rows: Vec<_> = plans
                .iter()
                .flat_map(|p| {
                    p.versions
                        .iter()
                        .flat_map(move |v| v.tiers.iter().map(move |t| (p, v, t)))
                })
                .collect();
            vec![
                strings(rows.iter().map(|(p, _, _)| Some(p.id.as_str()))),
                strings(rows.iter().map(|(p, _, _)| Some(PRODUCTS[p.product].id))),
                strings(rows.iter().map(|(p, _, _)| Some(p.currency.code()))),
                strings(rows.iter().map(|(p, _, _)| Some(p.model.as_str()))),
                decimals(
                    rows.iter()
                        .map(|(_, _, t)| Some(i128::from(t.start_units) * ONE)),
                ),
                micros_decimals(rows.iter().map(|(_, _, t)| Some(t.unit_price_micros))),
                micros_decimals(rows.iter().map(|(_, _, t)| t.flat_fee_micros)),
                decimals(
                    rows.iter()
                        .map(|(p, _, _)| p.package_size.map(|s| i128::from(s) * ONE)),
                ),
                dates(rows.iter().map(|(_, v, _)| Some(v.from))),
                dates(rows.iter().map(|(_, v, _)| v.to)),
            ]
        }
        Table::Subscriptions => {
            let subs = &world.subscriptions;
            vec![
                strings(subs.iter().map(|s| Some(s.id.as_str()))),
                strings(subs.iter().map(|s| Some(customers[s.customer].id.as_str()))),
                strings(subs.iter().map(|s| Some(plans[s.plan].id.as_str()))),
                dates(subs.iter().map(|s| Some(s.start))),
                dates(subs.iter().map(|s| s.end)),
                decimals(subs.iter().map(|s| s.quantity.map(|q| i128::from(q) * ONE))),
                decimals(
                    subs.iter()
                        .map(|s| s.discount_percent.map(|d| i128::from(d) * ONE)),
                ),
                micros_decimals(subs.iter().map(|s| s.min_commitment_micros)),
            ]
        }
        Table::TaxRates => {
            let rates = &world.catalog.tax_rates;
            vec![
                strings(rates.iter().map(|r| Some(r.region))),
                micros_decimals(rates.iter().map(|r| Some(r.rate_micros))),
                dates(rates.iter().map(|r| Some(r.from))),
            ]
        }
        Table::CreditMemos => {
            let memos = &world.credit_memos;
            vec![
                strings(memos.iter().map(|m| Some(m.id.as_str()))),
                strings(
                    memos
                        .iter()
                        .map(|m| Some(customers[m.customer].id.as_str())),
                ),
                strings(memos.iter().map(|m| Some(m.currency.code()))),
                micros_decimals(memos.iter().map(|m| Some(m.amount_micros))),
                dates(memos.iter().map(|m| Some(m.issued_on))),
                strings(memos.iter().map(|m| Some(m.reason))),
            ]
        }
        Table::Usage => unreachable!("usage is written by usage files"),
        // The generator writes billing data only; revenue contracts are hand-made samples.
        Table::Orders
        | Table::Ssp
        | Table::RevPolicies
        | Table::CarveRules
        | Table::Conditions
        | Table::Modifications
        | Table::Payments
        | Table::GlAccounts
        | Table::Contacts
        | Table::Salespeople => unreachable!("the generator writes only Table::ALL"),
    }
}

/// Writes every table but usage, one file each.
pub(crate) fn write_master_tables(
    layout: &Layout,
    world: &World,
) -> Result<Vec<PathBuf>, GenerateError> {
    master_tables()
        .map(|table| {
            let schema = file_schema(table);
            let batch = RecordBatch::try_new(Arc::clone(&schema), master_columns(table, world))
                .map_err(|source| GenerateError::Arrow {
                    table: table.name(),
                    source,
                })?;
            let path = layout.table_dir(table).join(part_name(0));
            let mut file = ParquetFile::create(&path, schema)?;
            file.write(&batch)?;
            file.finish()
        })
        .collect()
}

/// Writes usage file `index` of `ctx`, reporting rows to `progress` batch by batch.
pub(crate) fn write_usage_file(
    layout: &Layout,
    ctx: &usage::UsageContext<'_>,
    index: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(PathBuf, usage::FileStats), GenerateError> {
    let mut file = ParquetFile::create(&layout.usage_file(index), file_schema(Table::Usage))?;
    let stats = ctx.generate_file(index, |batch| {
        file.write(&batch)?;
        progress(batch.num_rows() as u64);
        Ok(())
    })?;
    Ok((file.finish()?, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(part_name(7), "part-00007.parquet");
        assert!(is_part_name("part-00007.parquet"));
        assert!(!is_part_name("part-7.parquet"));
        assert!(is_data_file("2026-10.CSV"));
        assert!(!is_data_file(".part-00000.parquet.tmp"));
        assert!(!is_data_file("_SUCCESS"));
    }

    #[test]
    fn file_schemas_follow_the_templates() {
        for table in Table::ALL {
            let schema = file_schema(table);
            let canonical = table.schema();
            assert_eq!(schema.fields().len(), table.columns().len());
            for (field, spec) in schema.fields().iter().zip(table.columns()) {
                assert_eq!(field.name(), spec.name);
                let canonical = canonical.field_with_name(spec.name).unwrap();
                assert_eq!(field.data_type(), canonical.data_type());
            }
        }
    }
}
