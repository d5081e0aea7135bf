//! The bill run: every stage, in order, once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::Decimal128Type;
use billrun_engine::{
    BillingMonth, CarveOrder, DateWindow, PlanVersion, billing_window, decimal_from_i128_scaled,
    next_month_start,
};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{QUANTITY_SCALE, Table};
use datafusion::datasource::MemTable;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use rust_decimal::Decimal;
use serde::Serialize;

use billrun_accounting::ValidatedRows;
use billrun_accounting::catalog::{Catalog, MasterTables, build_catalog};
use billrun_accounting::invoicing::{UsageTotals, build_invoices};
use billrun_accounting::ledger::{
    GlChart, credit_memo_entries, hledger_journal, journal_batch, journal_csv, journal_entries,
    payment_entries, payments,
};
use billrun_accounting::recognition::{
    AccountingTables, ConsumedUsage, ContractBook, RecognitionOptions,
};
use billrun_schemas::{Reject, rejects_batch};

use crate::dataset::Dataset;
use crate::error::{PipelineError, Result};
use crate::load::{InputRecord, LoadedTable, UsageSpill, load_table};
use crate::progress::Progress;
use crate::rate::{self, AttributeCharge};
use crate::rating_order::{self, RatingOrderStats};
use crate::scratch::Scratch;
use crate::write::{OutputRecord, Staging};

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

/// Usage rows, accounted for: `read = rated + unrated + rejected + outside_period`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageCounts {
    pub read: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub outside_period: u64,
    pub unrated: u64,
    pub rated: u64,
}

/// Wall time of one stage, and the process's peak resident memory when it ended.
#[derive(Debug, Clone, Serialize)]
pub struct StageTime {
    pub stage: &'static str,
    pub seconds: f64,
    /// The process's resident-set high-water mark so far (Linux `VmHWM`), in bytes:
    /// the first stage whose value reaches the run's peak is the stage that set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// The outcome of a run, also written as `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub billrun_version: &'static str,
    pub period: String,
    pub dataset: String,
    /// The instant the dataset was read at (RFC 3339), when the run repeated a past one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    pub threads: usize,
    /// Whether carves applied before or after the SSP allocation (`--carve-order`).
    pub carve_order: &'static str,
    pub usage: UsageCounts,
    pub invoices: usize,
    /// Contracts (from orders) recognised.
    pub contracts: usize,
    /// Σ invoice totals per currency.
    pub billed: BTreeMap<String, String>,
    pub rejects_by_table: BTreeMap<String, u64>,
    pub inputs: Vec<InputRecord>,
    pub outputs: Vec<OutputRecord>,
    pub stages: Vec<StageTime>,
    /// How the events to rate were put in rating order: buckets of subscriptions, the
    /// scratch files written under the memory limit, the buckets sorted externally.
    pub rating_order: RatingOrderStats,
}

struct Stopwatch {
    stages: Vec<StageTime>,
    started: Instant,
}

impl Stopwatch {
    fn new() -> Self {
        Self {
            stages: Vec::new(),
            started: Instant::now(),
        }
    }

    fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.stages.push(StageTime {
            stage,
            seconds: (now - self.started).as_secs_f64(),
            peak_rss_bytes: peak_rss_bytes(),
        });
        self.started = now;
    }
}

/// The resident-set high-water mark of this process, where the OS reports one (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Runs the whole bill run and publishes its outputs.
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
    let spill = UsageSpill::new(scratch.path());

    // Read and validate every table, master data first.
    let mut loaded: BTreeMap<Table, LoadedTable> = BTreeMap::new();
    let mut file_names: Vec<String> = Vec::new();
    for table in Table::every() {
        let t = load_table(
            &dataset,
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
    clock.lap("read");
    // Deduplication consumes the hashes; the rest of the run has no use for them.
    let event_hashes = loaded
        .get_mut(&Table::Usage)
        .map(|t| std::mem::take(&mut t.event_hashes))
        .unwrap_or_default();

    let rows = |table: Table| ValidatedRows::new(table, &loaded[&table].batches, &file_names);
    let master = MasterTables {
        customers: rows(Table::Customers),
        products: rows(Table::Products),
        price_plans: rows(Table::PricePlans),
        subscriptions: rows(Table::Subscriptions),
        tax_rates: rows(Table::TaxRates),
        credit_memos: rows(Table::CreditMemos),
    };
    let (catalog, catalog_rejects) = build_catalog(&master)?;
    let (chart, chart_rejects) = GlChart::build(rows(Table::GlAccounts))?;
    let (contracts, mut contract_rejects) = ContractBook::build(
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
    contract_rejects.extend(chart_rejects);
    let (payments, payment_rejects) = payments(&catalog, rows(Table::Payments));
    let windows = customer_windows(&catalog, options.period)?;
    clock.lap("validate");

    let book: Arc<Vec<PlanVersion>> = Arc::new(
        catalog
            .plan_versions
            .iter()
            .map(|v| v.version.clone())
            .collect(),
    );
    let memory_limit = options.memory_limit.unwrap_or_else(default_memory_limit);
    let ctx = session(threads, memory_limit, Arc::clone(&book))?;
    let usage = &loaded[&Table::Usage];
    let usage_raw = if usage.spilled.is_empty() {
        ctx.read_table(Arc::new(MemTable::try_new(
            UsageSpill::schema(),
            vec![Vec::new()],
        )?))?
    } else {
        let paths: Vec<String> = usage
            .spilled
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let schema = UsageSpill::schema();
        ctx.read_parquet(paths, ParquetReadOptions::default().schema(&schema))
            .await?
    };
    let spinner = progress.spinner("deduplicating usage");
    let deduped = rate::dedupe_usage(&ctx, usage_raw, event_hashes, &file_names).await?;
    // Dedupe removes exactly the rows it rejects; no need to scan the result to count it.
    let deduped_rows = usage.rows() as u64 - deduped.rejects.len() as u64;
    spinner.finish_and_clear();
    clock.lap("dedupe");

    let staging = Staging::create(&options.out)?;
    let spinner = progress.spinner("rating usage");
    let lookup = Arc::new(rate::SegmentLookup::new(
        &catalog,
        &windows,
        billing_window(options.period, 1)?,
    )?);
    let step = Instant::now();
    let scan_bar = progress.items("ordering usage", deduped_rows);
    spinner.finish_and_clear();
    let limits = rating_order::Limits::for_memory_limit(memory_limit);
    let ranges = rating_order::SubscriptionRanges::new(
        catalog.subscriptions.len(),
        deduped_rows,
        limits.bucket,
    );
    let input = rate::rating_input(&ctx, lookup, ranges, limits, &scratch, &scan_bar).await?;
    // Validated usage has been read for the last time.
    let remover = scratch.remover();
    usage
        .spilled
        .iter()
        .for_each(|file| remover.remove(file.clone()));
    scan_bar.finish_and_clear();
    let rating_order_stats = input.buckets.stats().clone();
    tracing::debug!(
        seconds = step.elapsed().as_secs_f64(),
        stats = ?rating_order_stats,
        "usage of the period dealt into buckets"
    );
    let unrated = rate::unrated_usage(input.unrated)?;

    let step = Instant::now();
    let rated_bar = progress.items("rating usage", deduped_rows);
    let mut outputs = Vec::new();
    let rated_writer = staging.table_writer(
        OutputTable::RatedUsage.name(),
        OutputTable::RatedUsage.schema(),
    )?;
    // Parquet encoding and compression run on their own thread, beside rating.
    let (rated_tx, rated_rx) = std::sync::mpsc::sync_channel::<RecordBatch>(4);
    let mut consumed = ConsumedUsage::new(contracts.consumed_keys());
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
    let mut attribution = rate::StreamingAttribution::new(Arc::clone(&book), &catalog);
    let send = |rated: Option<RecordBatch>| -> Result<()> {
        if let Some(rated) = rated {
            rated_bar.inc(rated.num_rows() as u64);
            rated_tx.send(rated).map_err(|_| {
                PipelineError::Internal("the rated_usage writer stopped early".into())
            })?;
        }
        Ok(())
    };
    let rating = rate::rate_in_order(&ctx, input.buckets, &mut attribution, send).await;
    drop(rated_tx);
    // The writer's error, if it failed, explains a failed send better than the send.
    let (rated_output, totals, consumed) = writer_thread
        .join()
        .map_err(|_| PipelineError::Internal("the rated_usage writer panicked".into()))??;
    rating?;
    rated_bar.finish_and_clear();
    let rated_rows = totals.events;
    tracing::debug!(
        seconds = step.elapsed().as_secs_f64(),
        rows = rated_rows,
        "usage rated and written"
    );
    outputs.push(rated_output);
    let unrated_rows: u64 = unrated.iter().map(|b| b.num_rows() as u64).sum();
    let in_period_rows = rated_rows + unrated_rows;
    clock.lap("rate");

    let invoicing = build_invoices(&catalog, options.period, &windows, &totals.finish()?)?;
    clock.lap("invoice");

    let recognition = contracts.recognise(
        &catalog,
        &consumed,
        RecognitionOptions {
            period: options.period,
            carve_order: options.carve_order,
        },
    )?;
    clock.lap("recognise");

    // The run's journal: invoices, credit memos issued and payments received in the
    // period, and contract billing and recognition in its calendar month.
    let calendar = billing_window(options.period, 1)?;
    let mut entries = journal_entries(&catalog, &invoicing.invoices)?;
    entries.extend(credit_memo_entries(&catalog, &windows)?);
    entries.extend(payment_entries(
        &payments,
        calendar.start,
        next_month_start(calendar.start)?,
    )?);
    entries.extend(recognition.journal_entries()?);
    entries.sort_by(|a, b| (a.date, &a.entry_id).cmp(&(b.date, &b.entry_id)));
    clock.lap("journal");

    // Rejects of every table, in file then row order.
    let mut rejects: Vec<Reject> = loaded
        .values()
        .flat_map(|t| t.rejects.iter().cloned())
        .collect();
    rejects.extend(catalog_rejects);
    rejects.extend(contract_rejects);
    rejects.extend(recognition.rejects.iter().cloned());
    rejects.extend(payment_rejects);
    rejects.extend(deduped.rejects.iter().cloned());
    let order: BTreeMap<&str, usize> = file_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    rejects.sort_by_key(|r| (order.get(r.source_file.as_str()).copied(), r.row_number));

    let usage_rejected = rejects.iter().filter(|r| r.table == Table::Usage).count() as u64;
    let counts = UsageCounts {
        read: usage.rows_read(),
        rejected: usage_rejected,
        duplicates: deduped.rejects.len() as u64,
        outside_period: deduped_rows - in_period_rows,
        unrated: unrated_rows,
        rated: rated_rows,
    };
    // Paired with validation: every usage row read is accounted for exactly once.
    if counts.read != counts.rated + counts.unrated + counts.rejected + counts.outside_period {
        return Err(PipelineError::Internal(format!(
            "usage rows do not add up: {counts:?}"
        )));
    }

    let schema = |t: OutputTable| (t.name(), t.schema());
    let (name, s) = schema(OutputTable::InvoiceLines);
    outputs.push(staging.write_table(name, s, &[invoicing.lines_batch()?])?);
    let (name, s) = schema(OutputTable::Invoices);
    outputs.push(staging.write_table(name, s, &[invoicing.invoices_batch()?])?);
    let (name, s) = schema(OutputTable::OpenCredits);
    outputs.push(staging.write_table(name, s, &[invoicing.open_credits_batch()?])?);
    let journal = journal_batch(&entries)?;
    let (name, s) = schema(OutputTable::Journal);
    outputs.push(staging.write_table(name, s, std::slice::from_ref(&journal))?);
    let (name, s) = schema(OutputTable::Rejects);
    outputs.push(staging.write_table(name, s, &[rejects_batch(&rejects)?])?);
    let (name, s) = schema(OutputTable::Unrated);
    outputs.push(staging.write_table(name, s, &unrated)?);
    let (name, s) = schema(OutputTable::RevenueAllocations);
    outputs.push(staging.write_table(name, s, &[recognition.allocations_batch()?])?);
    let (name, s) = schema(OutputTable::RevenueSchedule);
    outputs.push(staging.write_table(name, s, &[recognition.schedule_batch()?])?);
    let (name, s) = schema(OutputTable::ContractBillings);
    outputs.push(staging.write_table(name, s, &[recognition.billings_batch()?])?);
    let (name, s) = schema(OutputTable::DeferredRevenue);
    outputs.push(staging.write_table(name, s, &[recognition.roll_forward_batch()?])?);
    let (name, s) = schema(OutputTable::RevenueWaterfall);
    outputs.push(staging.write_table(name, s, &[recognition.waterfall_batch()?])?);
    let header = format!(
        "billrun {} journal for billing period {}\nevery entry balances; commodities and accounts are declared",
        env!("CARGO_PKG_VERSION"),
        options.period
    );
    outputs.push(staging.write_file(
        "journal.ledger",
        hledger_journal(&entries, &header, &chart)?.as_bytes(),
    )?);
    let mut journal_csv_output = staging.write_file("journal.csv", &journal_csv(&journal)?)?;
    journal_csv_output.rows = journal.num_rows() as u64;
    outputs.push(journal_csv_output);
    clock.lap("write");

    let mut billed: BTreeMap<String, Decimal> = BTreeMap::new();
    for invoice in &invoicing.invoices {
        *billed.entry(invoice.currency.clone()).or_default() += invoice.composed.total;
    }
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
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        billed: billed
            .into_iter()
            .map(|(c, t)| (c, t.to_string()))
            .collect(),
        rejects_by_table,
        inputs: loaded.into_values().flat_map(|t| t.files).collect(),
        outputs,
        stages: clock.stages,
        rating_order: rating_order_stats,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PipelineError::Internal(format!("manifest does not serialise: {e}")))?;
    staging.write_file("manifest.json", &json)?;
    staging.publish()?;
    Ok(manifest)
}

/// Every known customer's billing window for the period.
fn customer_windows(
    catalog: &Catalog,
    period: BillingMonth,
) -> Result<BTreeMap<String, DateWindow>> {
    catalog
        .customers
        .values()
        .map(|c| {
            Ok((
                c.customer_id.clone(),
                billing_window(period, c.billing_day)?,
            ))
        })
        .collect()
}

/// A twelfth of the machine's memory (2 GiB of 24), or 2 GiB if `/proc/meminfo` cannot be
/// read: the share of the query engine and of the events held to be put in rating order
/// (see [`rating_order::Limits`]). What it does not count stays bounded: usage waits in
/// scratch Parquet files, deduplication holds 8 bytes per event (800 MB at 100M events),
/// each file being read holds its bytes and a row group, and the `rated_usage` writer a
/// row group. `benches/README.md` has the peak of a 100M-event run, stage by stage.
pub fn default_memory_limit() -> usize {
    physical_memory().map_or(2 << 30, |bytes| bytes / 12)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn physical_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn session(
    threads: usize,
    memory_limit: usize,
    book: Arc<Vec<PlanVersion>>,
) -> Result<SessionContext> {
    // A sort reserves memory for its final merge up front, 10 MiB by default: more than
    // a small limit holds, which would fail the run instead of spilling.
    let merge_reservation = (memory_limit / 16).min(10 << 20);
    let config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_information_schema(false)
        .with_sort_spill_reservation_bytes(merge_reservation);
    // Sorts, aggregates and joins share the limit fairly and spill to the OS temp folder
    // instead of failing or growing without bound.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
        .with_disk_manager_builder(DiskManagerBuilder::default())
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_udwf(AttributeCharge::udwf(book));
    Ok(ctx)
}

/// Sums rated usage per (subscription, product) while it streams to disk, so the
/// invoicing stage needs no second pass over events. Input is ordered by subscription and
/// product, so a key changes rarely and is only looked up when it does.
#[derive(Default)]
struct TotalsBuilder {
    totals: BTreeMap<(String, String), (u64, i128, i128)>,
    events: u64,
}

impl TotalsBuilder {
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| PipelineError::Internal(format!("rated usage lacks {name}")))
        };
        let subs: &StringArray = col("subscription_id")?.as_string::<i32>();
        let products: &StringArray = col("product_id")?.as_string::<i32>();
        let quantities = col("quantity")?.as_primitive::<Decimal128Type>();
        let amounts = col("amount")?.as_primitive::<Decimal128Type>();
        let overflow = || PipelineError::Internal("rated totals overflow Decimal128".into());
        let mut i = 0;
        while i < batch.num_rows() {
            let (sub, product) = (subs.value(i), products.value(i));
            let mut j = i;
            let (mut q, mut a) = (0i128, 0i128);
            while j < batch.num_rows() && subs.value(j) == sub && products.value(j) == product {
                q = q.checked_add(quantities.value(j)).ok_or_else(overflow)?;
                a = a.checked_add(amounts.value(j)).ok_or_else(overflow)?;
                j += 1;
            }
            let entry = self
                .totals
                .entry((sub.to_string(), product.to_string()))
                .or_default();
            entry.0 += (j - i) as u64;
            entry.1 = entry.1.checked_add(q).ok_or_else(overflow)?;
            entry.2 = entry.2.checked_add(a).ok_or_else(overflow)?;
            i = j;
        }
        self.events += batch.num_rows() as u64;
        debug_assert_eq!(quantities.null_count(), 0);
        Ok(())
    }

    fn finish(self) -> Result<BTreeMap<(String, String), UsageTotals>> {
        self.totals
            .into_iter()
            .map(|(key, (events, q, a))| {
                Ok((
                    key,
                    UsageTotals {
                        events,
                        quantity: decimal_from_i128_scaled(q, QUANTITY_SCALE as u32)?,
                        amount: decimal_from_i128_scaled(a, QUANTITY_SCALE as u32)?,
                    },
                ))
            })
            .collect()
    }
}
