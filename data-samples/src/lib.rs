//! # billrun-samples: synthetic billing datasets at any scale
//!
//! billrun's hand-made sample (`data-samples/sample/`) checks every rule on a few dozen
//! rows; this crate writes the other kind of test data: a complete, realistic billrun
//! dataset of any size, so that the pipeline can be exercised, profiled and demonstrated
//! at a million or a hundred million usage events. [`generate`] writes one Parquet
//! dataset (`<out>/<table>/part-NNNNN.parquet`) in the input templates of the data
//! contract (`../shared/spec/DATA-CONTRACT.md`), with the canonical template types of
//! [`billrun_schemas`] (Utf8 ids, Int64 integers, `Decimal128(38, 12)` for every decimal,
//! Date32 dates, `Timestamp(µs, UTC)` event times):
//!
//! * **customers** `C000001..` in USD and EUR mostly, some in JPY (no minor digits) and
//!   KWD (three), billing on day 1 mostly and on the 5th, 15th or 28th, with payment terms
//!   and tax regions (and some without either);
//! * **products**: API calls, storage, compute and SMS (metered), seats and support
//!   (recurring);
//! * **price_plans** for every currency and every pricing model (`per_unit`, `graduated`,
//!   `volume`, `package`, `flat`); several plans get a new version on the 16th of the
//!   billed month, so prices change inside billing windows;
//! * **subscriptions**: one to three metered products per customer, usually seats,
//!   sometimes support; some start or end inside the window, some switch plan inside it,
//!   some replaced an earlier plan; discounts and minimum commitments here and there;
//! * **tax_rates** for every region, one of which changes on the invoices' issue date;
//! * **credit_memos** for a few customers (a few in a foreign currency or issued before
//!   the window, so they are not applied);
//! * **usage**: exactly [`GenerateOptions::events`] rows over
//!   [`GenerateOptions::usage_files`] files. Customers' volumes follow a power law (a few
//!   customers produce most events), event times fall inside each customer's billing
//!   window (about 2 % fall in the month before it), and a few rows are deliberately
//!   imperfect the way real metering exports are: duplicates of earlier events (retries
//!   and conflicting re-sends) in later files, events of an unknown customer, and rows
//!   with a negative quantity or an empty required cell.
//!
//! Everything is derived from [`GenerateOptions::seed`]: the same options give
//! byte-identical files whatever the number of threads, because every usage file draws
//! from its own ChaCha8 stream seeded by (seed, file index), and the few rows that refer
//! to other files (duplicates) are planned up front. Usage files are written in parallel
//! with rayon. No money ever passes through a binary float: prices are integers in
//! millionths of a currency unit, and Arrow decimals are built from integer mantissas.

mod calendar;
mod catalog;
mod rng;
mod usage;
mod world;
mod write;

use std::path::PathBuf;

use rayon::prelude::*;

pub use write::file_schema;

/// What [`generate`] should write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Number of customers (`C000001` ..), 1 to 99 999 998. Ids have six digits up to
    /// 999 998 customers and `C999999` is kept for usage of an unknown customer; above
    /// that they are as wide as `customers + 1`, whose all-nines id is the unknown one.
    pub customers: usize,
    /// Number of usage rows written in total, imperfect rows (duplicates included).
    pub events: u64,
    /// Seed of every random choice: the same options give byte-identical files.
    pub seed: u64,
    /// Output dataset folder; one sub-folder per table is created in it.
    pub out: PathBuf,
    /// Number of usage files (`usage/part-00000.parquet` ..), 1 to 99 999.
    pub usage_files: usize,
    /// Billing month `(year, month)` the data is centred on.
    pub period: (i32, u32),
    /// Put before every event id (`E00000-000000001`), so that datasets generated for
    /// several months can be billed one after another without their ids colliding.
    pub event_id_prefix: String,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            customers: 1_000,
            events: 1_000_000,
            seed: 42,
            out: PathBuf::from("data"),
            usage_files: 8,
            period: (2026, 10),
            event_id_prefix: String::new(),
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Rows of `customers`.
    pub customers: usize,
    /// Rows of `subscriptions`.
    pub subscriptions: usize,
    /// Rows of `price_plans` (one per tier of each plan version).
    pub plan_rows: usize,
    /// Rows of `credit_memos`.
    pub credit_memos: usize,
    /// Rows of `usage`, all files together: always [`GenerateOptions::events`].
    pub events_written: u64,
    /// Usage rows repeating the `event_id` of a row of an earlier file (half identical
    /// retries, half with another quantity). Included in `events_written`.
    pub duplicates: u64,
    /// Usage rows a validator must reject: a negative quantity or an empty required
    /// cell. Included in `events_written`.
    pub bad_rows: u64,
    /// Usage rows of the unknown customer (`C999999` up to 999 998 customers). Included
    /// in `events_written`.
    pub unknown_customer_rows: u64,
    /// Usage rows whose `ts` lies in the month before the customer's billing window of
    /// [`GenerateOptions::period`]. Included in `events_written`.
    pub outside_window_rows: u64,
    /// Every file written: the master tables first, then the usage files in order.
    pub files: Vec<PathBuf>,
}

/// Why [`generate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// An option is out of range, or the output folder holds data this run would mix with.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    /// A file or folder could not be created, written, renamed or removed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Parquet writer failed on a file.
    #[error("writing Parquet file {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A batch of a table could not be assembled (a bug: columns are built to the schema).
    #[error("building a batch of table `{table}`: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
}

/// Writes a synthetic billrun dataset into `options.out`.
///
/// Master tables are written first, then the usage files in parallel (on the current
/// rayon pool). `progress` is called with the number of usage rows just written, from
/// any of the pool's threads. Files appear atomically (written under a hidden name, then
/// renamed). Earlier generated files (`part-NNNNN.parquet`) that this run would not
/// rewrite are removed, so that a smaller re-generation does not leave stale usage
/// behind; any other data file in a table folder is an error rather than silently mixed
/// in.
///
/// # Errors
/// [`GenerateError::InvalidOption`] for options out of range or a foreign data file in
/// the output; I/O, Parquet and Arrow errors while writing.
pub fn generate(
    options: &GenerateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<GenerateSummary, GenerateError> {
    validate(options)?;
    let world = world::World::build(options);
    let plan = usage::SpecialRows::plan(options);
    let layout = write::Layout::new(&options.out, options.usage_files);
    layout.prepare()?;

    let mut files = write::write_master_tables(&layout, &world)?;

    let ctx = usage::UsageContext {
        world: &world,
        specials: &plan,
        seed: options.seed,
    };
    let stats = (0..options.usage_files)
        .into_par_iter()
        .map(|file| write::write_usage_file(&layout, &ctx, file, progress))
        .collect::<Result<Vec<_>, GenerateError>>()?;

    let mut total = usage::FileStats::default();
    for (path, s) in stats {
        total.add(&s);
        files.push(path);
    }
    Ok(GenerateSummary {
        customers: world.customers.len(),
        subscriptions: world.subscriptions.len(),
        plan_rows: world.catalog.plan_rows(),
        credit_memos: world.credit_memos.len(),
        events_written: total.rows,
        duplicates: total.duplicates,
        bad_rows: total.bad_rows,
        unknown_customer_rows: total.unknown_customer_rows,
        outside_window_rows: total.outside_window_rows,
        files,
    })
}

fn validate(options: &GenerateOptions) -> Result<(), GenerateError> {
    let invalid = |option, reason: String| Err(GenerateError::InvalidOption { option, reason });
    if !(1..=world::MAX_CUSTOMERS).contains(&options.customers) {
        return invalid(
            "customers",
            format!(
                "must be from 1 to {}, got {}",
                world::MAX_CUSTOMERS,
                options.customers
            ),
        );
    }
    if !(1..=write::MAX_USAGE_FILES).contains(&options.usage_files) {
        return invalid(
            "usage_files",
            format!(
                "must be from 1 to {}, got {}",
                write::MAX_USAGE_FILES,
                options.usage_files
            ),
        );
    }
    let (year, month) = options.period;
    if !(1..=12).contains(&month) || !calendar::YEARS.contains(&year) {
        return invalid(
            "period",
            format!(
                "must be a month of the years {} to {}, got {year}-{month:02}",
                calendar::YEARS.start(),
                calendar::YEARS.end()
            ),
        );
    }
    Ok(())
}
