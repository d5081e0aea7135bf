//! The bill run: every stage, in order, once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use billrun_accounting::ValidatedRows;
use billrun_accounting::catalog::{Catalog, MasterTables, build_catalog};
use billrun_accounting::invoicing::{Invoicing, UsageTotals, build_invoices};
use billrun_accounting::ledger::{
    GlChart, JournalEntry, Payment, credit_memo_entries, hledger_journal, journal_batch,
    journal_csv, journal_entries, payment_entries, payments,
};
use billrun_accounting::recognition::{
    AccountingTables, ConsumedUsage, ContractBook, Recognition, RecognitionOptions,
};
use billrun_engine::{
    BillingMonth, CarveOrder, DateWindow, PlanVersion, billing_window, next_month_start,
};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{Reject, Table, rejects_batch};
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};

use crate::error::{PipelineError, Result};
use crate::progress::Progress;
use crate::rating::order::{Limits, RatingOrderStats, SubscriptionRanges};
use crate::rating::{self, Deduped, SegmentLookup, StreamingAttribution};
use crate::read::{LoadedTable, UsageSpill, load_table};
use crate::store::dataset::Dataset;
use crate::store::scratch::Scratch;
use crate::write::{OutputRecord, Staging};

mod manifest;
mod session;
mod totals;

use manifest::Stopwatch;
pub use manifest::{Manifest, StageTime, UsageCounts};
pub use session::default_memory_limit;
use session::session;
use totals::TotalsBuilder;

/// What a bill run is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Dataset location: a local folder or a URL.
    pub data: String,
    /// Output folder; replaced atomically.
    pub out: PathBuf,
    pub period: BillingMonth,
    /// Worker threads for the query engine (default: all cores).
    pub threads: Option<usize>,
    /// Whether carves apply before or after the SSP allocation of contracts.
    pub carve_order: CarveOrder,
    /// Bytes the query engine may hold for sorts, joins and aggregates before they
    /// spill to disk (default: [`default_memory_limit`]).
    pub memory_limit: Option<usize>,
    /// Bill the dataset as it was at this instant (`billrun run --as-of`), to repeat a
    /// past bill run; `None` reads it as it is.
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    pub progress: Progress,
}

/// Runs the whole bill run and publishes its outputs: each stage below, in order, once.
///
/// # Errors
/// Anything that makes the run impossible: unreadable inputs, a missing table, a missing
/// tax rate, I/O. Bad rows are not errors; they are written to `rejects`.
pub async fn run_bill(options: RunOptions) -> Result<Manifest> {
    let mut clock = Stopwatch::new();
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let dataset = match options.as_of {
        Some(at) => Dataset::open(&options.data)?.as_of(at),
        None => Dataset::open(&options.data)?,
    };
    let progress = &options.progress;
    // Validated usage waits here for the query engine, instead of in memory; its files
    // are removed once the rating has read them, the rest when the run ends, however it
    // ends.
    let scratch = Scratch::create("billrun-usage-")?;

    let mut inputs = read_inputs(&dataset, &scratch, progress).await?;
    clock.lap("read");

    let master = validate(&inputs, options.period)?;
    clock.lap("validate");

    let memory_limit = options.memory_limit.unwrap_or_else(default_memory_limit);
    let ctx = session(threads, memory_limit)?;
    let deduped = dedupe(&ctx, &mut inputs, progress).await?;
    clock.lap("dedupe");

    let staging = Staging::create(&options.out)?;
    let rating = Rating {
        ctx: &ctx,
        scratch: &scratch,
        staging: &staging,
        progress,
        period: options.period,
        memory_limit,
    };
    let rated = rating.rate(&inputs, &master, &deduped).await?;
    clock.lap("rate");

    let invoicing = build_invoices(
        &master.catalog,
        options.period,
        &master.windows,
        &rated.totals,
    )?;
    clock.lap("invoice");

    let recognition = master.contracts.recognise(
        &master.catalog,
        &rated.consumed,
        RecognitionOptions {
            period: options.period,
            carve_order: options.carve_order,
        },
    )?;
    clock.lap("recognise");

    let entries = journal(&master, options.period, &invoicing, &recognition)?;
    clock.lap("journal");

    let rejects = all_rejects(&inputs, &master, &recognition, &deduped);
    let usage = inputs.usage();
    let counts = UsageCounts {
        read: usage.rows_read(),
        rejected: rejects.iter().filter(|r| r.table == Table::Usage).count() as u64,
        duplicates: deduped.rejects.len() as u64,
        outside_period: deduped_rows(&inputs, &deduped) - rated.rated_rows - rated.unrated_rows(),
        unrated: rated.unrated_rows(),
        rated: rated.rated_rows,
    };
    // Paired with validation: every usage row read is accounted for exactly once.
    if counts.read != counts.rated + counts.unrated + counts.rejected + counts.outside_period {
        return Err(PipelineError::Internal(format!(
            "usage rows do not add up: {counts:?}"
        )));
    }

    let mut outputs = vec![rated.output];
    let header = format!(
        "billrun {} journal for billing period {}\nevery entry balances; commodities and accounts are declared",
        env!("CARGO_PKG_VERSION"),
        options.period
    );
    outputs.extend(write_outputs(
        &staging,
        &Books {
            invoicing: &invoicing,
            recognition: &recognition,
            entries: &entries,
            chart: &master.chart,
            journal_header: &header,
        },
        &rejects,
        &rated.unrated,
    )?);
    clock.lap("write");

    let mut rejects_by_table: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rejects {
        *rejects_by_table
            .entry(r.table.name().to_string())
            .or_default() += 1;
    }
    let manifest = Manifest {
        billrun_version: env!("CARGO_PKG_VERSION"),
        period: options.period.to_string(),
        dataset: dataset.location.clone(),
        as_of: dataset
            .read_at()
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        threads,
        carve_order: options.carve_order.as_str(),
        usage: counts,
        invoices: invoicing.invoices.len(),
        contracts: recognition
            .allocations
            .iter()
            .map(|a| &a.contract_id)
            .collect::<BTreeSet<_>>()
            .len(),
        billed: invoicing
            .billed_by_currency()?
            .into_iter()
            .map(|(c, t)| (c, t.to_string()))
            .collect(),
        rejects_by_table,
        inputs: inputs.loaded.into_values().flat_map(|t| t.files).collect(),
        outputs,
        stages: clock.stages,
        rating_order: rated.order_stats,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PipelineError::Internal(format!("manifest does not serialise: {e}")))?;
    staging.write_file("manifest.json", &json)?;
    staging.publish()?;
    Ok(manifest)
}

/// Every input table, read and validated row by row.
struct Inputs {
    loaded: BTreeMap<Table, LoadedTable>,
    /// Every file read, numbered in reading order (the provenance column of each row).
    file_names: Vec<String>,
}

impl Inputs {
    fn rows(&self, table: Table) -> ValidatedRows<'_> {
        ValidatedRows::new(table, &self.loaded[&table].batches, &self.file_names)
    }

    fn usage(&self) -> &LoadedTable {
        &self.loaded[&Table::Usage]
    }
}

/// Stage 1: reads and validates every table, master data first; validated usage goes
/// to Parquet files in `scratch`.
async fn read_inputs(dataset: &Dataset, scratch: &Scratch, progress: &Progress) -> Result<Inputs> {
    let spill = UsageSpill::new(scratch.path());
    let mut loaded: BTreeMap<Table, LoadedTable> = BTreeMap::new();
    let mut file_names: Vec<String> = Vec::new();
    for table in Table::every() {
        let t = load_table(
            dataset,
            table,
            file_names.len() as u32,
            progress,
            Some(&spill),
        )
        .await?;
        let required = matches!(
            table,
            Table::Customers | Table::Products | Table::PricePlans | Table::Subscriptions
        );
        if required && t.files.is_empty() {
            return Err(PipelineError::MissingTable {
                table: table.name(),
            });
        }
        file_names.extend(t.files.iter().map(|f| f.file.clone()));
        loaded.insert(table, t);
    }
    Ok(Inputs { loaded, file_names })
}

/// Master data checked across rows and tables, ready to bill and recognise with.
struct MasterData {
    catalog: Catalog,
    chart: GlChart,
    contracts: ContractBook,
    payments: Vec<Payment>,
    /// Every known customer's billing window for the period.
    windows: BTreeMap<String, DateWindow>,
    /// Rows of master data that failed the checks across rows and tables.
    rejects: Vec<Reject>,
}

/// Stage 2: checks master data across rows and tables (billrun-accounting's rules).
fn validate(inputs: &Inputs, period: BillingMonth) -> Result<MasterData> {
    let rows = |table| inputs.rows(table);
    let (catalog, mut rejects) = build_catalog(&MasterTables {
        customers: rows(Table::Customers),
        products: rows(Table::Products),
        price_plans: rows(Table::PricePlans),
        subscriptions: rows(Table::Subscriptions),
        tax_rates: rows(Table::TaxRates),
        credit_memos: rows(Table::CreditMemos),
    })?;
    let (chart, chart_rejects) = GlChart::build(rows(Table::GlAccounts))?;
    let (contracts, contract_rejects) = ContractBook::build(
        &catalog,
        &AccountingTables {
            orders: rows(Table::Orders),
            ssp: rows(Table::Ssp),
            rev_policies: rows(Table::RevPolicies),
            carve_rules: rows(Table::CarveRules),
            conditions: rows(Table::Conditions),
            modifications: rows(Table::Modifications),
        },
        &chart,
    );
    // Rejects of one row keep this order through the final (stable) sort.
    rejects.extend(contract_rejects);
    rejects.extend(chart_rejects);
    let (payments, payment_rejects) = payments(&catalog, rows(Table::Payments));
    rejects.extend(payment_rejects);
    let windows = catalog.billing_windows(period)?;
    Ok(MasterData {
        catalog,
        chart,
        contracts,
        payments,
        windows,
        rejects,
    })
}

/// Stage 3: removes later occurrences of an event id from the validated usage.
async fn dedupe(ctx: &SessionContext, inputs: &mut Inputs, progress: &Progress) -> Result<Deduped> {
    // Deduplication consumes the hashes; the rest of the run has no use for them.
    let event_hashes = inputs
        .loaded
        .get_mut(&Table::Usage)
        .map(|t| std::mem::take(&mut t.event_hashes))
        .unwrap_or_default();
    let spinner = progress.spinner("deduplicating usage");
    let usage_raw = validated_usage(ctx, inputs.usage()).await?;
    let deduped = rating::dedupe_usage(ctx, usage_raw, event_hashes, &inputs.file_names).await?;
    spinner.finish_and_clear();
    Ok(deduped)
}

/// The validated usage, as DataFusion reads it back from its scratch files.
async fn validated_usage(ctx: &SessionContext, usage: &LoadedTable) -> Result<DataFrame> {
    let schema = UsageSpill::schema();
    if usage.spilled.is_empty() {
        return Ok(ctx.read_table(Arc::new(MemTable::try_new(schema, vec![Vec::new()])?))?);
    }
    let paths: Vec<String> = usage
        .spilled
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok(ctx
        .read_parquet(paths, ParquetReadOptions::default().schema(&schema))
        .await?)
}

/// Usage rows left after deduplication: dedupe removes exactly the rows it rejects, so
/// this needs no scan.
fn deduped_rows(inputs: &Inputs, deduped: &Deduped) -> u64 {
    inputs.usage().rows() as u64 - deduped.rejects.len() as u64
}

/// What stage 4, rating, needs beside its inputs.
struct Rating<'a> {
    ctx: &'a SessionContext,
    scratch: &'a Scratch,
    staging: &'a Staging,
    progress: &'a Progress,
    period: BillingMonth,
    memory_limit: usize,
}

/// What rating produced.
struct Rated {
    /// `rated_usage`, written.
    output: OutputRecord,
    rated_rows: u64,
    /// Rated usage per (subscription, product), for invoicing.
    totals: BTreeMap<(String, String), UsageTotals>,
    /// Usage consumed by contracts recognised as consumed.
    consumed: ConsumedUsage,
    /// The `unrated` table.
    unrated: Vec<RecordBatch>,
    order_stats: RatingOrderStats,
}

impl Rated {
    fn unrated_rows(&self) -> u64 {
        self.unrated.iter().map(|b| b.num_rows() as u64).sum()
    }
}

impl Rating<'_> {
    /// Stage 4: places, orders and prices every event of the period, writing
    /// `rated_usage` as it goes and summing it for invoicing and recognition.
    async fn rate(&self, inputs: &Inputs, master: &MasterData, deduped: &Deduped) -> Result<Rated> {
        let catalog = &master.catalog;
        let deduped_rows = deduped_rows(inputs, deduped);
        let spinner = self.progress.spinner("rating usage");
        let lookup = Arc::new(SegmentLookup::new(
            catalog,
            &master.windows,
            billing_window(self.period, 1)?,
        )?);
        let step = Instant::now();
        let scan_bar = self.progress.items("ordering usage", deduped_rows);
        spinner.finish_and_clear();
        let limits = Limits::for_memory_limit(self.memory_limit);
        let ranges =
            SubscriptionRanges::new(catalog.subscriptions.len(), deduped_rows, limits.bucket);
        let input =
            rating::rating_input(self.ctx, lookup, ranges, limits, self.scratch, &scan_bar).await?;
        // Validated usage has been read for the last time.
        let remover = self.scratch.remover();
        inputs
            .usage()
            .spilled
            .iter()
            .for_each(|file| remover.remove(file.clone()));
        scan_bar.finish_and_clear();
        let order_stats = input.buckets.stats().clone();
        tracing::debug!(
            seconds = step.elapsed().as_secs_f64(),
            stats = ?order_stats,
            "usage of the period dealt into buckets"
        );
        let unrated = rating::unrated_usage(input.unrated)?;

        let step = Instant::now();
        let rated_bar = self.progress.items("rating usage", deduped_rows);
        let rated_writer = self.staging.table_writer(
            OutputTable::RatedUsage.name(),
            OutputTable::RatedUsage.schema(),
        )?;
        // Parquet encoding and compression run on their own thread, beside rating.
        let (rated_tx, rated_rx) = std::sync::mpsc::sync_channel::<RecordBatch>(4);
        let mut consumed = ConsumedUsage::new(master.contracts.consumed_keys());
        let writer_thread = std::thread::spawn(move || -> Result<_> {
            let mut writer = rated_writer;
            let mut totals = TotalsBuilder::default();
            for batch in rated_rx {
                totals.add(&batch)?;
                consumed.add(&batch)?;
                writer.write(&batch)?;
            }
            Ok((writer.finish()?, totals, consumed))
        });
        let book: Arc<Vec<PlanVersion>> = Arc::new(
            catalog
                .plan_versions
                .iter()
                .map(|v| v.version.clone())
                .collect(),
        );
        let mut attribution = StreamingAttribution::new(book, catalog);
        let send = |rated: Option<RecordBatch>| -> Result<()> {
            if let Some(rated) = rated {
                rated_bar.inc(rated.num_rows() as u64);
                rated_tx.send(rated).map_err(|_| {
                    PipelineError::Internal("the rated_usage writer stopped early".into())
                })?;
            }
            Ok(())
        };
        let rating = rating::rate_in_order(self.ctx, input.buckets, &mut attribution, send).await;
        drop(rated_tx);
        // The writer's error, if it failed, explains a failed send better than the send.
        let (output, totals, consumed) = writer_thread
            .join()
            .map_err(|_| PipelineError::Internal("the rated_usage writer panicked".into()))??;
        rating?;
        rated_bar.finish_and_clear();
        let rated_rows = totals.events();
        tracing::debug!(
            seconds = step.elapsed().as_secs_f64(),
            rows = rated_rows,
            "usage rated and written"
        );
        Ok(Rated {
            output,
            rated_rows,
            totals: totals.finish()?,
            consumed,
            unrated,
            order_stats,
        })
    }
}

/// Stage 7: the run's journal: invoices, credit memos issued and payments received in
/// the period, and contract billing and recognition in its calendar month, in (date,
/// entry id) order.
fn journal(
    master: &MasterData,
    period: BillingMonth,
    invoicing: &Invoicing,
    recognition: &Recognition,
) -> Result<Vec<JournalEntry>> {
    let calendar = billing_window(period, 1)?;
    let mut entries = journal_entries(&master.catalog, &invoicing.invoices)?;
    entries.extend(credit_memo_entries(&master.catalog, &master.windows)?);
    entries.extend(payment_entries(
        &master.payments,
        calendar.start,
        next_month_start(calendar.start)?,
    )?);
    entries.extend(recognition.journal_entries()?);
    entries.sort_by(|a, b| (a.date, &a.entry_id).cmp(&(b.date, &b.entry_id)));
    Ok(entries)
}

/// Rejects of every table and stage, in file then row order.
fn all_rejects(
    inputs: &Inputs,
    master: &MasterData,
    recognition: &Recognition,
    deduped: &Deduped,
) -> Vec<Reject> {
    let mut rejects: Vec<Reject> = inputs
        .loaded
        .values()
        .flat_map(|t| t.rejects.iter().cloned())
        .collect();
    rejects.extend(master.rejects.iter().cloned());
    rejects.extend(recognition.rejects.iter().cloned());
    rejects.extend(deduped.rejects.iter().cloned());
    let order: BTreeMap<&str, usize> = inputs
        .file_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    // A stable sort: rejects of one row keep the order of the stages that found them.
    rejects.sort_by_key(|r| (order.get(r.source_file.as_str()).copied(), r.row_number));
    rejects
}

/// What the books of the run hold, to write.
struct Books<'a> {
    invoicing: &'a Invoicing,
    recognition: &'a Recognition,
    entries: &'a [JournalEntry],
    chart: &'a GlChart,
    journal_header: &'a str,
}

/// Stage 8: writes every table but `rated_usage` (written while rating) into `staging`.
fn write_outputs(
    staging: &Staging,
    books: &Books<'_>,
    rejects: &[Reject],
    unrated: &[RecordBatch],
) -> Result<Vec<OutputRecord>> {
    let Books {
        invoicing,
        recognition,
        entries,
        chart,
        journal_header,
    } = books;
    let journal = journal_batch(entries)?;
    let tables: [(OutputTable, Vec<RecordBatch>); 11] = [
        (OutputTable::InvoiceLines, vec![invoicing.lines_batch()?]),
        (OutputTable::Invoices, vec![invoicing.invoices_batch()?]),
        (
            OutputTable::OpenCredits,
            vec![invoicing.open_credits_batch()?],
        ),
        (OutputTable::Journal, vec![journal.clone()]),
        (OutputTable::Rejects, vec![rejects_batch(rejects)?]),
        (OutputTable::Unrated, unrated.to_vec()),
        (
            OutputTable::RevenueAllocations,
            vec![recognition.allocations_batch()?],
        ),
        (
            OutputTable::RevenueSchedule,
            vec![recognition.schedule_batch()?],
        ),
        (
            OutputTable::ContractBillings,
            vec![recognition.billings_batch()?],
        ),
        (
            OutputTable::DeferredRevenue,
            vec![recognition.roll_forward_batch()?],
        ),
        (
            OutputTable::RevenueWaterfall,
            vec![recognition.waterfall_batch()?],
        ),
    ];
    let mut outputs = Vec::with_capacity(tables.len() + 2);
    for (table, batches) in tables {
        outputs.push(staging.write_table(table.name(), table.schema(), &batches)?);
    }
    outputs.push(staging.write_file(
        "journal.ledger",
        hledger_journal(entries, journal_header, chart)?.as_bytes(),
    )?);
    let mut journal_csv_output = staging.write_file("journal.csv", &journal_csv(&journal)?)?;
    journal_csv_output.rows = journal.num_rows() as u64;
    outputs.push(journal_csv_output);
    Ok(outputs)
}
