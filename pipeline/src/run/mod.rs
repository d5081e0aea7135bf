//! The bill run: every stage, in order, once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use billrun_accounting::ValidatedRows;
use billrun_accounting::books::{
    Posted, applications_batch, ar_aging, ar_aging_batch, cash_not_conserved, customer_balances,
    customer_balances_batch, post_run, receivables_batch,
};
use billrun_accounting::catalog::{Catalog, MasterTables, build_catalog};
use billrun_accounting::invoicing::{
    CreditScope, Invoicing, OpenCredit, UsageTotals, build_invoices_with_credit,
};
use billrun_accounting::ledger::{
    AccountTypes, ErpFile, ErpLayouts, GlAccountType, GlChart, JournalEntry, Payment,
    credit_memo_entries, extend_journal_entries, journal_batch, payment_entries, payments,
    write_beancount_journal, write_hledger_journal, write_journal_csv,
};
use billrun_accounting::recognition::{
    AccountingTables, ConsumedUsage, ContractBook, Recognition, RecognitionOptions,
};
use billrun_engine::{
    BillingMonth, CarveOrder, DateWindow, PlanVersion, billing_window, next_month_start,
};
use billrun_schemas::outputs::OutputTable;
use billrun_schemas::{Reject, RejectCode, Table, rejects_batch};
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use rayon::slice::ParallelSliceMut;

use crate::error::{PipelineError, Result};
use crate::progress::Progress;
use crate::rating::order::{Limits, RatingOrderStats, SubscriptionRanges};
use crate::rating::{self, Deduped, SegmentLookup, StreamingAttribution};
use crate::read::{InputRecord, LoadedTable, UsageSpill, load_table};
use crate::store::dataset::Dataset;
use crate::store::scratch::Scratch;
use crate::write::{OutputRecord, Staging};

mod late;
mod manifest;
mod posted_usage;
mod posting;
mod session;
mod totals;

use manifest::Stopwatch;
pub use manifest::{Manifest, StageTime, UsageCounts};
pub use posting::BooksOutcome;
use posting::BooksRun;
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
    /// The books the run bills on top of and posts to (`--books`): a folder or URL.
    pub books: Option<String>,
    /// With `books`: write what a posting would, post nothing (`--preview`).
    pub preview: bool,
    pub progress: Progress,
}

/// A run's as_of with the books: the first day after its period's calendar month.
///
/// # Errors
/// A period at the end of the calendar.
pub fn as_of_day(period: BillingMonth) -> Result<chrono::NaiveDate> {
    Ok(next_month_start(billing_window(period, 1)?.start)?)
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
    let started = chrono::Utc::now();
    let books = match &options.books {
        Some(location) => Some(BooksRun::open(location, options.period, options.preview).await?),
        None if options.preview => {
            return Err(PipelineError::InvalidOption(
                "--preview shows what posting to the books would write: give --books too".into(),
            ));
        }
        None => None,
    };
    // Validated usage waits here for the query engine, instead of in memory; its files
    // are removed once the rating has read them, the rest when the run ends, however it
    // ends.
    let scratch = Scratch::create("billrun-usage-")?;

    let settled: BTreeMap<Table, crate::read::SettledFiles> = books
        .as_ref()
        .map(|b| {
            let table = |files: &BTreeMap<_, _>| {
                Arc::new(crate::read::SettledTable {
                    files: files.clone(),
                    digests: b.base.file_digests.clone(),
                })
            };
            BTreeMap::from([
                (Table::Usage, table(&b.base.usage_files)),
                (Table::Payments, table(&b.base.payment_files)),
            ])
        })
        .unwrap_or_default();
    let mut inputs = read_inputs(&dataset, &scratch, progress, &settled).await?;
    clock.lap("read");
    let fingerprint = crate::books::RunFingerprint {
        carve_order: options.carve_order.as_str().to_string(),
        inputs: inputs
            .loaded
            .values()
            .flat_map(|t| t.files.iter())
            .map(|f| (f.table.clone(), f.file.clone(), f.sha256.clone()))
            .collect(),
    };
    if let Some(books) = &books {
        books.check_again(&fingerprint)?;
    }

    let master = validate(&inputs, options.period)?;
    // The master tables live on in the catalog, the chart and the contracts: their rows
    // as read (hundreds of megabytes at a million customers) are dropped here. Payments
    // are read again when posting; usage is in its scratch files.
    for (table, loaded) in &mut inputs.loaded {
        if !matches!(table, Table::Usage | Table::Payments) {
            loaded.batches = Vec::new();
        }
    }
    // The payments earlier postings posted under the ids this run's payments use: a
    // retry (same fields) is skipped, a conflict refused.
    let posted_payments = match &books {
        Some(b) => {
            let ids: BTreeSet<&str> = master
                .payments
                .iter()
                .map(|p| p.payment_id.as_str())
                .collect();
            b.books.posted_payments(&b.history, &ids).await?
        }
        None => BTreeMap::new(),
    };
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
        books: books.as_ref().map(|b| {
            b.posted_periods()
                .and_then(|(first, _)| billing_window(first, 1).ok())
                .map(|w| w.start)
        }),
    };
    let mut rated = rating.rate(&inputs, &master, &deduped).await?;
    let posted_usage = match (&books, books.as_ref().and_then(BooksRun::posted_periods)) {
        (Some(b), Some(range)) => {
            let tried = tried_rows_of(&b.base.usage_files, &inputs);
            posted_usage::sort_posted_period_usage(
                b,
                &rated.posted_periods,
                range,
                &master.catalog,
                &inputs.file_names,
                &rated.unrated_schema,
                &tried,
            )
            .await?
        }
        _ => posted_usage::PostedPeriodUsage::default(),
    };
    let late = match &books {
        Some(b) => {
            late::bill_late_usage(
                &b.books,
                &b.history,
                &posted_usage.late,
                &master.catalog,
                &master.windows,
            )
            .await?
        }
        None => late::LateBilling::default(),
    };
    rated.unrated_raw.extend(late.unrated.iter().cloned());
    rated
        .unrated_raw
        .extend(posted_usage.unrated_again.iter().cloned());
    // Where each unrated row falls, for the books: a later run answers it again.
    let tried = books
        .as_ref()
        .map(|_| tried_in_periods(&rated.unrated_raw, &master.catalog))
        .transpose()?
        .unwrap_or_default();
    let unrated = rating::unrated_usage(std::mem::take(&mut rated.unrated_raw), &master.catalog)?;
    clock.lap("rate");

    let carried = books
        .as_ref()
        .map(|b| b.base.customer_credit())
        .unwrap_or_default();
    let scope = CreditScope {
        carried: &carried,
        posted_memos: books.as_ref().map(|b| &b.base.posted_memos),
        corrections: &late.corrections,
    };
    let mut invoicing = build_invoices_with_credit(
        &master.catalog,
        options.period,
        &master.windows,
        &rated.totals,
        scope,
    )?;
    let posted = match &books {
        Some(b) => Some(post(b, &master, &posted_payments, scope, &mut invoicing)?),
        None => None,
    };
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

    let entries = journal(
        &master,
        options.period,
        &invoicing,
        &recognition,
        JournalScope {
            credit: scope,
            posted: posted.as_ref(),
            book_opening: books.as_ref().is_none_or(|b| !b.has_history),
        },
    )?;
    clock.lap("journal");

    let mut rejects = all_rejects(&inputs, &master, &recognition, &deduped);
    if let Some(p) = &posted {
        rejects.extend(refused_payments(&inputs, p));
        rejects.extend(posted_usage.duplicates.iter().cloned());
        sort_rejects(&inputs, &mut rejects);
    }
    let usage = inputs.usage();
    let unrated_rows: u64 = unrated.iter().map(|b| b.num_rows() as u64).sum();
    let counts = UsageCounts {
        read: usage.rows_read(),
        rejected: rejects.iter().filter(|r| r.table == Table::Usage).count() as u64,
        duplicates: (deduped.rejects.len() + posted_usage.duplicates.len()) as u64,
        outside_period: deduped_rows(&inputs, &deduped)
            - rated.rated_rows
            - rated.unrated_in_period
            - rated.posted_period_rows()
            + posted_usage.outside,
        unrated: unrated_rows,
        rated: rated.rated_rows + late.billed,
        late: late.billed,
        settled: usage.rows_settled(),
    };
    // Paired with validation: every usage row read is accounted for exactly once.
    if counts.read
        != counts.rated + counts.unrated + counts.rejected + counts.outside_period + counts.settled
    {
        return Err(PipelineError::Internal(format!(
            "usage rows do not add up: {counts:?}"
        )));
    }

    let mut outputs = vec![rated.output];
    if !late.rated.is_empty() {
        outputs.push(staging.write_part(
            OutputTable::RatedUsage.name(),
            LATE_RATED_PART,
            OutputTable::RatedUsage.schema(),
            &late.rated,
        )?);
    }
    let header = format!(
        "billrun {} journal for billing period {}\nevery entry balances; commodities and accounts are declared",
        env!("CARGO_PKG_VERSION"),
        options.period
    );
    let types = account_types(&master, &recognition);
    let mut warnings = input_warnings(&inputs);
    let erp_files = match ErpLayouts::build(&entries, &types)? {
        ErpLayouts::Files(files) => files,
        ErpLayouts::NoChart => Vec::new(),
        ErpLayouts::Unmapped(accounts) => {
            warnings.push(format!(
                "the ERP journal layouts (erp/) are not written: {} of the journal's accounts \
                 have no GL account in gl_accounts ({}); map each with gl_accounts.billrun_account",
                accounts.len(),
                accounts.join(", ")
            ));
            Vec::new()
        }
    };
    outputs.extend(write_outputs(
        &staging,
        &RunTables {
            invoicing: &invoicing,
            recognition: &recognition,
            rendering: (&entries, &header, &types),
            erp_files: &erp_files,
            books: books.as_ref().zip(posted.as_ref()),
        },
        &rejects,
        &unrated,
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
        inputs: inputs_with_rejects(&inputs, &rejects),
        outputs,
        stages: clock.stages,
        rating_order: rated.order_stats,
        books: books.as_ref().map(BooksRun::outcome),
        warnings,
    };
    if let (Some(b), Some(p)) = (&books, posted)
        && b.posts()
    {
        b.keep_master_data(&dataset, &fingerprint).await?;
        let commit = b.commit(
            options.period,
            &dataset.location,
            dataset.read_at().unwrap_or(started),
            fingerprint,
            invoicing.invoices.len() as u64,
        );
        let mut state = p.next;
        state.usage_files = usage_files_after(
            &state.usage_files,
            &inputs,
            [
                rated.open_rows.as_slice(),
                posted_usage.open.as_slice(),
                late.open.as_slice(),
            ],
            &tried,
        );
        state.payment_files = payment_files_after(&state.payment_files, &inputs, b.as_of);
        state.file_digests = file_digests_after(&inputs);
        let rated_usage = std::fs::read(
            staging
                .path()
                .join(OutputTable::RatedUsage.name())
                .join("part-00000.parquet"),
        )
        .map_err(PipelineError::io("reading the staged rated_usage"))?;
        let rated_usage_late = if late.rated.is_empty() {
            None
        } else {
            Some(bytes::Bytes::from(
                std::fs::read(
                    staging
                        .path()
                        .join(OutputTable::RatedUsage.name())
                        .join(format!("{LATE_RATED_PART}.parquet")),
                )
                .map_err(PipelineError::io("reading the staged late rated_usage"))?,
            ))
        };
        let mut usage_totals: Vec<crate::books::PostedUsageTotal> = rated
            .totals
            .iter()
            .map(
                |((subscription_id, product_id), t)| crate::books::PostedUsageTotal {
                    period: options.period.to_string(),
                    subscription_id: subscription_id.clone(),
                    product_id: product_id.clone(),
                    events: t.events,
                    quantity: t.quantity,
                    amount: t.amount,
                },
            )
            .collect();
        usage_totals.extend(late.totals.iter().cloned());
        let lines = invoicing
            .invoices
            .iter()
            .flat_map(|i| {
                i.composed.lines.iter().map(|l| crate::books::PostedLine {
                    invoice_id: i.invoice_id.clone(),
                    kind: l.kind.as_str().to_string(),
                    subscription_id: l.subscription_id.clone(),
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                    amount: l.amount,
                })
            })
            .collect();
        // Indexed once: a search per invoice made posting grow with invoices².
        let receivable_by_id: BTreeMap<&str, &billrun_accounting::books::Receivable> = p
            .receivables
            .iter()
            .map(|(r, _)| (r.invoice_id.as_str(), r))
            .collect();
        let files = crate::books::PostingFiles {
            invoices: invoicing
                .invoices
                .iter()
                .map(|i| {
                    // The rate the invoice was taxed at: a correction's is the one in
                    // force on its original's issue date, which is its window's end.
                    let tax_region = master
                        .catalog
                        .customers
                        .get(&i.customer_id)
                        .and_then(|c| c.tax_region.clone());
                    let tax_rate = tax_region
                        .as_deref()
                        .and_then(|r| master.catalog.tax_rate(r, i.window.end));
                    crate::books::PostedInvoice {
                        receivable: receivable_by_id.get(i.invoice_id.as_str()).map_or_else(
                            || billrun_accounting::books::receivable_of(i),
                            |r| (*r).clone(),
                        ),
                        invoice_number: i.invoice_number.unwrap_or_default(),
                        period: options.period.to_string(),
                        corrects_invoice_id: i.corrects_invoice_id.clone(),
                        tax_region,
                        tax_rate,
                    }
                })
                .collect(),
            applications: p.applications,
            payments: p.payments,
            state,
            journal_ledger: std::fs::read_to_string(staging.path().join("journal.ledger"))
                .map_err(PipelineError::io("reading the staged journal.ledger"))?,
            journal_csv: std::fs::read(staging.path().join("journal.csv"))
                .map_err(PipelineError::io("reading the staged journal.csv"))?,
            rated_usage: bytes::Bytes::from(rated_usage),
            rated_usage_late,
            usage_totals,
            lines,
        };
        b.books.post(commit, &files).await?;
    }
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PipelineError::Internal(format!("manifest does not serialise: {e}")))?;
    staging.write_file("manifest.json", &json)?;
    staging.publish()?;
    Ok(manifest)
}

/// The `rated_usage` part file of the late events a books run billed.
const LATE_RATED_PART: &str = "part-00001";

/// The books' usage files after a posting: every usage file the run read, with its
/// rows still open (`open`: (file index, row number) of rows left unrated, outside the
/// period, or late), and every file known before that the run did not read.
fn usage_files_after(
    before: &BTreeMap<String, billrun_accounting::books::SettledFile>,
    inputs: &Inputs,
    open: [&[(u32, u64)]; 3],
    tried: &BTreeMap<u32, BTreeMap<u64, billrun_accounting::books::TriedRow>>,
) -> BTreeMap<String, billrun_accounting::books::SettledFile> {
    let mut open_by_file: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (file, row) in open.into_iter().flatten() {
        open_by_file.entry(*file).or_default().push(*row);
    }
    let mut after = before.clone();
    // Files are numbered in reading order, the order of `file_names`.
    for file in &inputs.usage().files {
        let Some(index) = inputs.file_names.iter().position(|n| *n == file.file) else {
            continue;
        };
        let mut rows = open_by_file.remove(&(index as u32)).unwrap_or_default();
        rows.sort_unstable();
        rows.dedup();
        let tried_here = tried
            .get(&(index as u32))
            .map(|t| {
                t.iter()
                    .filter(|(row, _)| rows.binary_search(row).is_ok())
                    .map(|(row, t)| (*row, t.clone()))
                    .collect()
            })
            .unwrap_or_default();
        after.insert(
            file.sha256.clone(),
            billrun_accounting::books::SettledFile {
                rows: file.rows,
                open_rows: rows,
                tried: tried_here,
            },
        );
    }
    after
}

/// The SHA-256 of every usage and payments file the run read, by name, with the
/// identity the store listed it with (files without one are hashed by every run).
fn file_digests_after(inputs: &Inputs) -> BTreeMap<String, billrun_accounting::books::FileDigest> {
    [Table::Usage, Table::Payments]
        .iter()
        .flat_map(|t| inputs.loaded[t].files.iter())
        .filter_map(|f| {
            Some((
                f.file.clone(),
                billrun_accounting::books::FileDigest {
                    identity: f.identity.clone()?,
                    sha256: f.sha256.clone(),
                },
            ))
        })
        .collect()
}

/// The books' payments files after a posting: every payments file the run read, with
/// its rows still open (payments dated on or after `as_of`, for a later run), and every
/// file known before that the run did not read.
fn payment_files_after(
    before: &BTreeMap<String, billrun_accounting::books::SettledFile>,
    inputs: &Inputs,
    as_of: chrono::NaiveDate,
) -> BTreeMap<String, billrun_accounting::books::SettledFile> {
    let mut open_by_file: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in inputs.rows(Table::Payments).iter() {
        if row.date("paid_on").is_some_and(|d| d >= as_of) {
            let origin = row.origin();
            open_by_file
                .entry(origin.source_file)
                .or_default()
                .push(origin.row_number);
        }
    }
    let mut after = before.clone();
    for file in &inputs.loaded[&Table::Payments].files {
        let mut rows = open_by_file.remove(&file.file).unwrap_or_default();
        rows.sort_unstable();
        rows.dedup();
        after.insert(
            file.sha256.clone(),
            billrun_accounting::books::SettledFile {
                rows: file.rows,
                open_rows: rows,
                tried: BTreeMap::new(),
            },
        );
    }
    after
}

/// Per file index of this run's usage files, the rows the books say a posting left
/// unrated in a posted period.
fn tried_rows_of<'a>(
    usage_files: &'a BTreeMap<String, billrun_accounting::books::SettledFile>,
    inputs: &Inputs,
) -> posted_usage::TriedRows<'a> {
    let mut tried = BTreeMap::new();
    for file in &inputs.usage().files {
        let Some(known) = usage_files
            .get(&file.sha256)
            .filter(|k| !k.tried.is_empty())
        else {
            continue;
        };
        if let Some(index) = inputs.file_names.iter().position(|n| *n == file.file) {
            tried.insert(index as u32, &known.tried);
        }
    }
    tried
}

/// The period and reason of every unrated row (`unrated_raw`, the scan's unrated
/// columns), by file index and row number.
fn tried_in_periods(
    unrated_raw: &[RecordBatch],
    catalog: &Catalog,
) -> Result<BTreeMap<u32, BTreeMap<u64, billrun_accounting::books::TriedRow>>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{TimestampMicrosecondType, UInt32Type, UInt64Type};
    let mut tried: BTreeMap<u32, BTreeMap<u64, billrun_accounting::books::TriedRow>> =
        BTreeMap::new();
    for batch in unrated_raw {
        let customers = batch.column(1).as_string::<i32>();
        let ts = batch.column(3).as_primitive::<TimestampMicrosecondType>();
        let codes = batch.column(5).as_string::<i32>();
        let files = batch.column(6).as_primitive::<UInt32Type>();
        let rows = batch.column(7).as_primitive::<UInt64Type>();
        for i in 0..batch.num_rows() {
            let billing_day = catalog
                .customers
                .get(customers.value(i))
                .map_or(1, |c| c.billing_day);
            let day = chrono::DateTime::from_timestamp_micros(ts.value(i))
                .map(|t| t.date_naive())
                .ok_or_else(|| PipelineError::Internal("event time out of range".into()))?;
            tried.entry(files.value(i)).or_default().insert(
                rows.value(i),
                billrun_accounting::books::TriedRow {
                    period: posted_usage::period_of(day, billing_day).to_string(),
                    code: codes.value(i).to_string(),
                },
            );
        }
    }
    Ok(tried)
}

/// With the books: the run's invoices posted on top of the books' state, numbered
/// (unless a preview), and the credit left replacing the invoicing's.
fn post(
    books: &BooksRun,
    master: &MasterData,
    posted_payments: &BTreeMap<String, billrun_accounting::ledger::Payment>,
    scope: CreditScope<'_>,
    invoicing: &mut Invoicing,
) -> Result<Posted> {
    let mut posted = post_run(
        &books.base,
        invoicing,
        &master.payments,
        posted_payments,
        books.as_of,
    )?;
    // Paired with the application: cash is applied or left over, never made or lost.
    let lost = cash_not_conserved(&books.base, &posted)?;
    if !lost.is_zero() {
        return Err(PipelineError::Internal(format!(
            "posting does not conserve cash: {lost} unaccounted for"
        )));
    }
    if !books.preview {
        let numbers = posted.numbers();
        for invoice in &mut invoicing.invoices {
            invoice.invoice_number = numbers.get(invoice.invoice_id.as_str()).copied();
        }
    } else {
        let run: BTreeSet<&str> = invoicing
            .invoices
            .iter()
            .map(|i| i.invoice_id.as_str())
            .collect();
        posted.unnumbered = run.into_iter().map(str::to_string).collect();
    }
    for memo in &master.catalog.credit_memos {
        if master
            .windows
            .get(&memo.customer_id)
            .is_some_and(|w| scope.takes_memo(memo, *w))
        {
            posted.next.posted_memos.insert(memo.credit_memo_id.clone());
        }
    }
    invoicing.open_credits = posted.credits.iter().map(OpenCredit::from_credit).collect();
    invoicing
        .open_credits
        .sort_by(|a, b| a.memo.credit_memo_id.cmp(&b.memo.credit_memo_id));
    Ok(posted)
}

/// The payments rows the posting refused, as rejects.
fn refused_payments(inputs: &Inputs, posted: &Posted) -> Vec<Reject> {
    let refused: BTreeMap<&str, &billrun_accounting::books::PaymentRefusal> = posted
        .refused_payments
        .iter()
        .map(|r| (r.payment_id.as_str(), r))
        .collect();
    if refused.is_empty() {
        return Vec::new();
    }
    inputs
        .rows(Table::Payments)
        .iter()
        .filter_map(|row| {
            let r = refused.get(row.req("payment_id").as_str())?;
            let code = if r.column == "invoice_id" {
                RejectCode::UnknownReference
            } else {
                RejectCode::DuplicateKey
            };
            Some(row.reject(Some(r.column), code, r.reason.clone()))
        })
        .collect()
}

/// What the billing team is told about the inputs besides rejects: files not read, and
/// a run without any usage file.
fn input_warnings(inputs: &Inputs) -> Vec<String> {
    let mut warnings: Vec<String> = inputs
        .loaded
        .values()
        .flat_map(|t| t.skipped.iter())
        .map(|name| {
            format!(
                "{name} was not read: names starting with `.` or `_` are hidden or marker files, never data"
            )
        })
        .collect();
    if inputs.loaded[&Table::Usage].files.is_empty() {
        warnings.push(
            "no usage file in `usage/`: the run bills recurring fees and minimums only".into(),
        );
    }
    warnings
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
async fn read_inputs(
    dataset: &Dataset,
    scratch: &Scratch,
    progress: &Progress,
    settled: &BTreeMap<Table, crate::read::SettledFiles>,
) -> Result<Inputs> {
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
            settled.get(&table),
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

/// The master data a posted period was billed with, from the files its posting kept
/// in the books (named by its fingerprint, in reading order), validated as that run
/// validated them.
///
/// # Errors
/// Damaged books (a kept file missing or changed); validation errors.
async fn posted_master(
    books: &crate::books::Books,
    posting: &crate::books::Commit,
    period: BillingMonth,
) -> Result<MasterData> {
    let mut loaded: BTreeMap<Table, LoadedTable> = BTreeMap::new();
    let mut file_names: Vec<String> = Vec::new();
    for table in Table::every() {
        let mut files = Vec::new();
        if posting::is_master_data(table) {
            for (_, file, sha256) in posting
                .fingerprint
                .inputs
                .iter()
                .filter(|(t, _, _)| t == table.name())
            {
                files.push((file.clone(), books.master_file(sha256).await?));
            }
        }
        let t = crate::read::decode_table(table, files, file_names.len() as u32)?;
        file_names.extend(t.files.iter().map(|f| f.file.clone()));
        loaded.insert(table, t);
    }
    validate(&Inputs { loaded, file_names }, period)
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
        refused_price_plans: &inputs.loaded[&Table::PricePlans].refused,
        refused_tax_rates: &inputs.loaded[&Table::TaxRates].refused,
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
    /// With the books: the first day of the first posted period, if any.
    books: Option<Option<chrono::NaiveDate>>,
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
    /// The events of the period that could not be rated, as the scan set them aside
    /// (for [`rating::unrated_usage`]).
    unrated_raw: Vec<RecordBatch>,
    unrated_schema: arrow::datatypes::SchemaRef,
    unrated_in_period: u64,
    /// With the books: events of posted periods, and (file, row) of the rows that stay
    /// open (unrated, or outside the period).
    posted_periods: Vec<RecordBatch>,
    open_rows: Vec<(u32, u64)>,
    order_stats: RatingOrderStats,
}

impl Rated {
    fn posted_period_rows(&self) -> u64 {
        self.posted_periods
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum()
    }
}

impl Rating<'_> {
    /// Stage 4: places, orders and prices every event of the period, writing
    /// `rated_usage` as it goes and summing it for invoicing and recognition.
    async fn rate(&self, inputs: &Inputs, master: &MasterData, deduped: &Deduped) -> Result<Rated> {
        let catalog = &master.catalog;
        let deduped_rows = deduped_rows(inputs, deduped);
        let spinner = self.progress.spinner("rating usage");
        let mut lookup =
            SegmentLookup::new(catalog, &master.windows, billing_window(self.period, 1)?)?;
        if let Some(posted_from) = self.books {
            lookup = lookup.with_books(posted_from);
        }
        let lookup = Arc::new(lookup);
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
        let unrated_schema = input.unrated_schema();
        let unrated_in_period: u64 = input.unrated.iter().map(|b| b.num_rows() as u64).sum();
        let mut open_rows = input.outside;
        if self.books.is_some() {
            open_rows.extend(provenance(&input.unrated)?);
        }
        let unrated_raw = input.unrated;
        let posted_periods = input.posted_periods;

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
            unrated_raw,
            unrated_schema,
            unrated_in_period,
            posted_periods,
            open_rows,
            order_stats,
        })
    }
}

/// (file index, row number) of each row of `batches`.
fn provenance(batches: &[RecordBatch]) -> Result<Vec<(u32, u64)>> {
    use arrow::array::AsArray;
    use billrun_schemas::templates::{FILE_INDEX_COLUMN, ROW_NUMBER_COLUMN};
    let mut out = Vec::new();
    for b in batches {
        let column = |n: &str| {
            b.column_by_name(n)
                .ok_or_else(|| PipelineError::Internal(format!("set-aside events lack {n}")))
        };
        let files = column(FILE_INDEX_COLUMN)?.as_primitive::<arrow::datatypes::UInt32Type>();
        let rows = column(ROW_NUMBER_COLUMN)?.as_primitive::<arrow::datatypes::UInt64Type>();
        out.extend(
            files
                .values()
                .iter()
                .copied()
                .zip(rows.values().iter().copied()),
        );
    }
    Ok(out)
}

/// Stage 7: the run's journal: invoices, credit memos issued and payments received in
/// the period, and contract billing and recognition in its calendar month, in (date,
/// entry id) order.
fn journal(
    master: &MasterData,
    period: BillingMonth,
    invoicing: &Invoicing,
    recognition: &Recognition,
    scope: JournalScope<'_>,
) -> Result<Vec<JournalEntry>> {
    let calendar = billing_window(period, 1)?;
    // The entries besides the invoices' first, so that the vector of a million
    // invoices' entries is allocated once at its size, never grown by copying.
    let mut others = credit_memo_entries(&master.catalog, &master.windows, scope.credit)?;
    others.extend(match scope.posted {
        // With the books, the payments the run posts, whatever their month.
        Some(posted) => payment_entries(
            &posted.payments,
            chrono::NaiveDate::MIN,
            chrono::NaiveDate::MAX,
        )?,
        None => payment_entries(
            &master.payments,
            calendar.start,
            next_month_start(calendar.start)?,
        )?,
    });
    others.extend(recognition.journal_entries(scope.book_opening)?);
    let mut entries = Vec::with_capacity(2 * invoicing.invoices.len() + others.len());
    extend_journal_entries(&master.catalog, &invoicing.invoices, &mut entries)?;
    entries.append(&mut others);
    sort_journal(&mut entries)?;
    Ok(entries)
}

/// Orders `entries` by (date, entry_id), entries of one date and id in the order they
/// came (a stable sort). The keys are sorted, then the entries moved into their places
/// in one pass: a merge sort of the entries themselves copied them all into a buffer
/// as large as the journal.
fn sort_journal(entries: &mut [JournalEntry]) -> Result<()> {
    let too_many = |_| PipelineError::Internal("more than 2^32 journal entries".into());
    let mut keys = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok((
                e.date,
                e.entry_id.as_str(),
                u32::try_from(i).map_err(too_many)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    // The position breaks ties, so an unstable sort has the stable sort's one outcome.
    keys.par_sort_unstable();
    let order: Vec<u32> = keys.into_iter().map(|(_, _, i)| i).collect();
    permute(entries, order);
    Ok(())
}

/// Reorders `items` so that position `k` holds what was at `order[k]`, by following
/// each cycle of the permutation: every item is moved once, nothing is copied aside.
fn permute<T>(items: &mut [T], mut order: Vec<u32>) {
    debug_assert_eq!(items.len(), order.len());
    for start in 0..items.len() {
        let mut current = start;
        // A position whose own index is in `order` holds its item already.
        while order[current] as usize != current {
            let source = order[current] as usize;
            order[current] = current as u32;
            if source == start {
                break;
            }
            items.swap(current, source);
            current = source;
        }
    }
}

/// What decides which entries a run's journal holds besides its invoices.
#[derive(Clone, Copy)]
struct JournalScope<'a> {
    credit: CreditScope<'a>,
    /// With the books: what the run posts.
    posted: Option<&'a Posted>,
    /// Whether deferred revenue brought forward is booked (not on top of posted books).
    book_opening: bool,
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
    sort_rejects(inputs, &mut rejects);
    rejects
}

/// Rejects in file then row order; a stable sort, so that the rejects of one row keep
/// the order of the stages that found them.
fn sort_rejects(inputs: &Inputs, rejects: &mut [Reject]) {
    let order: BTreeMap<&str, usize> = inputs
        .file_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    rejects.sort_by_key(|r| (order.get(r.source_file.as_str()).copied(), r.row_number));
}

/// Writes `table` from batches built one at a time, each dropped once it is written.
fn write_streamed<E>(
    staging: &Staging,
    table: OutputTable,
    batches: impl IntoIterator<Item = std::result::Result<RecordBatch, E>>,
) -> Result<OutputRecord>
where
    PipelineError: From<E>,
{
    staging.write_table(table.name(), table.schema(), batches)
}

/// Journal entries turned into `journal` rows at a time (an entry is two to a few
/// postings): a few megabytes of Arrow arrays.
const JOURNAL_BLOCK_ENTRIES: usize = 16 * 1024;

/// The run's tables and journal, to write.
struct RunTables<'a> {
    invoicing: &'a Invoicing,
    recognition: &'a Recognition,
    /// The entries, header and account types `journal.ledger` and `journal.beancount`
    /// are rendered from, as they are written (a million customers' journal is
    /// gigabytes of text: never held whole).
    rendering: (&'a [JournalEntry], &'a str, &'a AccountTypes<'a>),
    erp_files: &'a [ErpFile],
    /// With the books: what the run posts (or would).
    books: Option<(&'a BooksRun, &'a Posted)>,
}

/// Stage 8: writes every table but `rated_usage` (written while rating) into `staging`.
fn write_outputs(
    staging: &Staging,
    run: &RunTables<'_>,
    rejects: &[Reject],
    unrated: &[RecordBatch],
) -> Result<Vec<OutputRecord>> {
    let RunTables {
        invoicing,
        recognition,
        rendering,
        erp_files,
        books,
    } = run;
    // The journal's text renderings are written beside the tables, on a thread of their
    // own: the Parquet writer encodes a table's columns in parallel, but a few wide
    // columns (memos, ids) leave a core idle that the renderings fill.
    let (entries, header, types) = *rendering;
    let render_texts = || -> Result<Vec<OutputRecord>> {
        let ledger = staging.write_text("journal.ledger", |out| {
            Ok(write_hledger_journal(out, entries, header, types)?)
        })?;
        let mut csv =
            staging.write_text("journal.csv", |out| Ok(write_journal_csv(out, entries)?))?;
        csv.rows = entries.iter().map(|e| e.postings.len() as u64).sum();
        let beancount = staging.write_text("journal.beancount", |out| {
            Ok(write_beancount_journal(out, entries, header, types)?)
        })?;
        Ok(vec![ledger, csv, beancount])
    };
    // Each table is built, written and dropped before the next is built: at a million
    // customers they are hundreds of megabytes each.
    let write_tables = || -> Result<Vec<OutputRecord>> {
        let mut outputs = Vec::with_capacity(16);
        let put = |outputs: &mut Vec<OutputRecord>,
                   table: OutputTable,
                   batches: Vec<RecordBatch>|
         -> Result<()> {
            outputs.push(write_streamed(
                staging,
                table,
                batches.into_iter().map(Ok::<_, PipelineError>),
            )?);
            Ok(())
        };
        // The tables of a million invoices a block of invoices at a time.
        outputs.push(write_streamed(
            staging,
            OutputTable::InvoiceLines,
            invoicing.lines_batches(),
        )?);
        outputs.push(write_streamed(
            staging,
            OutputTable::Invoices,
            invoicing.invoices_batches(),
        )?);
        put(
            &mut outputs,
            OutputTable::OpenCredits,
            vec![invoicing.open_credits_batch()?],
        )?;
        // The journal table a block of entries at a time: whole, at a million customers it
        // was a gigabyte beside the entries it is built from.
        outputs.push(write_streamed(
            staging,
            OutputTable::Journal,
            entries.chunks(JOURNAL_BLOCK_ENTRIES).map(journal_batch),
        )?);
        put(
            &mut outputs,
            OutputTable::Rejects,
            vec![rejects_batch(rejects)?],
        )?;
        put(&mut outputs, OutputTable::Unrated, unrated.to_vec())?;
        put(
            &mut outputs,
            OutputTable::RevenueAllocations,
            vec![recognition.allocations_batch()?],
        )?;
        put(
            &mut outputs,
            OutputTable::RevenueSchedule,
            vec![recognition.schedule_batch()?],
        )?;
        put(
            &mut outputs,
            OutputTable::ContractBillings,
            vec![recognition.billings_batch()?],
        )?;
        put(
            &mut outputs,
            OutputTable::DeferredRevenue,
            vec![recognition.roll_forward_batch()?],
        )?;
        put(
            &mut outputs,
            OutputTable::RevenueWaterfall,
            vec![recognition.waterfall_batch()?],
        )?;
        if let Some((books, posted)) = books {
            let numbered: Vec<_> = posted
                .receivables
                .iter()
                .map(|(r, n)| {
                    let shown = (!posted.unnumbered.contains(&r.invoice_id)).then_some(*n);
                    (r.clone(), shown)
                })
                .collect();
            put(
                &mut outputs,
                OutputTable::Receivables,
                vec![receivables_batch(&numbered, books.as_of)?],
            )?;
            drop(numbered);
            let open: Vec<_> = posted.receivables.iter().map(|(r, _)| r.clone()).collect();
            put(
                &mut outputs,
                OutputTable::ArAging,
                vec![ar_aging_batch(&ar_aging(&open, books.as_of)?)?],
            )?;
            put(
                &mut outputs,
                OutputTable::Applications,
                vec![applications_batch(&posted.applications)?],
            )?;
            put(
                &mut outputs,
                OutputTable::CustomerBalances,
                vec![customer_balances_batch(&customer_balances(
                    &open,
                    &posted.credits,
                    books.as_of,
                )?)?],
            )?;
        }
        Ok(outputs)
    };
    let (tables, texts) = std::thread::scope(|scope| {
        let texts = scope.spawn(render_texts);
        let tables = write_tables();
        let texts = texts
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (tables, texts)
    });
    let mut outputs = tables?;
    outputs.extend(texts?);
    for file in *erp_files {
        let mut output = staging.write_file(&format!("erp/{}", file.name), &file.bytes)?;
        output.rows = file.rows;
        outputs.push(output);
    }
    Ok(outputs)
}

/// The manifest's inputs, each file's `rows_rejected` counting every reject of its rows:
/// those of validation and those of the rules across rows and tables (a repeated
/// event_id, a subscription of an unknown plan), so that they sum per table to
/// `rejects_by_table`.
fn inputs_with_rejects(inputs: &Inputs, rejects: &[Reject]) -> Vec<InputRecord> {
    let mut by_file: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rejects {
        *by_file.entry(r.source_file.as_str()).or_default() += 1;
    }
    inputs
        .loaded
        .values()
        .flat_map(|t| t.files.iter())
        .map(|f| {
            let mut f = f.clone();
            f.rows_rejected = by_file.get(f.file.as_str()).copied().unwrap_or(0);
            f
        })
        .collect()
}

/// The type of every account the journal posts to: the chart, then the role billrun
/// posts an account in (revenue of a product, policy or carve; a deferral), then the
/// account's top-level name.
fn account_types<'a>(master: &'a MasterData, recognition: &Recognition) -> AccountTypes<'a> {
    let mut types = AccountTypes::new(&master.chart);
    for product_id in master.catalog.products.keys() {
        types.role(
            &billrun_accounting::ledger::revenue_account(&master.catalog, product_id),
            GlAccountType::Revenue,
        );
    }
    for a in &recognition.allocations {
        types.role(&a.revenue_account, GlAccountType::Revenue);
        if let Some(deferral) = &a.deferral_account {
            types.role(deferral, GlAccountType::Liability);
        }
    }
    for s in &recognition.schedule {
        types.role(&s.revenue_account, GlAccountType::Revenue);
        if let Some(deferral) = &s.deferral_account {
            types.role(deferral, GlAccountType::Liability);
        }
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;
    use billrun_accounting::ledger::Posting;
    use proptest::prelude::*;

    fn entry(id: &str, day: u32, memo: &str) -> JournalEntry {
        JournalEntry {
            entry_id: id.to_string(),
            date: chrono::NaiveDate::from_ymd_opt(2026, 10, day).expect("date"),
            currency: "USD".to_string(),
            source_id: id.to_string(),
            memo: memo.to_string(),
            customer_id: None,
            postings: vec![Posting {
                account: "assets:cash".to_string(),
                debit: rust_decimal::Decimal::ONE,
                credit: rust_decimal::Decimal::ZERO,
            }],
        }
    }

    #[test]
    fn the_journal_is_ordered_by_date_then_id_ties_in_arrival_order() {
        let mut entries = vec![
            entry("JE-B", 31, "first B"),
            entry("JE-A", 31, "A"),
            entry("JE-C", 1, "C"),
            entry("JE-B", 31, "second B"),
            entry("JE-A", 15, "early A"),
        ];
        sort_journal(&mut entries).expect("sorted");
        let order: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.entry_id.as_str(), e.memo.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("JE-C", "C"),
                ("JE-A", "early A"),
                ("JE-A", "A"),
                ("JE-B", "first B"),
                ("JE-B", "second B"),
            ]
        );
    }

    proptest! {
        #[test]
        fn permute_puts_at_each_place_the_item_its_order_names(
            order in Just((0u32..500).collect::<Vec<_>>()).prop_shuffle()
        ) {
            let mut items: Vec<u32> = (0..500).map(|i| i * 10).collect();
            permute(&mut items, order.clone());
            let expected: Vec<u32> = order.iter().map(|&i| i * 10).collect();
            prop_assert_eq!(items, expected);
        }

        #[test]
        fn sort_journal_is_the_stable_sort_by_date_and_id(
            keys in proptest::collection::vec((1u32..=3, 0u8..4), 0..300)
        ) {
            let mut entries: Vec<JournalEntry> = keys
                .iter()
                .enumerate()
                .map(|(i, (day, id))| entry(&format!("JE-{id}"), *day, &i.to_string()))
                .collect();
            let mut expected = entries.clone();
            expected.sort_by(|a, b| (a.date, &a.entry_id).cmp(&(b.date, &b.entry_id)));
            sort_journal(&mut entries).expect("sorted");
            prop_assert_eq!(entries, expected);
        }
    }
}
