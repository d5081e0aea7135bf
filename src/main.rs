//! `billrun`: the command line of the billrun bill-run pipeline.
//!
//! The binary is thin on purpose: it parses options, wires progress and logging, and
//! calls the pipeline. Errors are printed with their chain, each cause once, and exit
//! with a status by kind: 2 command line, 65 input data, 70 internal, 74 I/O, 75 busy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use billrun_pipeline::display::{ResultWriter, Totals, render_batches, write_stream};
use billrun_pipeline::query::{OutputFormat, Report, query_stream, report};
use billrun_pipeline::{Progress, RunOptions, run_bill};
use clap::{Parser, Subcommand, ValueEnum};

// The query engine allocates and frees many batch-sized buffers from several threads;
// glibc's per-thread arenas kept freed memory resident (see benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!`, except that a closed stdout (`billrun query … | head`) ends the process
/// quietly with status 0 (a reader that stopped reading is no failure), and any other
/// write error ends it with status 74 (EX_IOERR) naming the error, never a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!`, as [`say!`].
macro_rules! say_raw {
    ($($arg:tt)*) => {
        write_stdout(format_args!($($arg)*))
    };
}

/// An error and its causes, each said once: a cause whose text its error already
/// shows (object_store and DataFusion repeat their sources) is not printed again.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn write_stdout(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("billrun: error: writing to stdout: {e}");
        std::process::exit(74);
    }
}

/// `billrun --version`: the version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BILLRUN_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "billrun",
    version = VERSION,
    about = "Rate usage, invoice customers and export ledgers from CSV/Parquet datasets"
)]
struct Cli {
    /// Print no progress bars, and log errors only. Results and the run's data warnings
    /// (also in manifest.json) are still printed.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Log more on stderr: -v each stage's time and memory, notifications sent;
    /// -vv debug detail. `BILLRUN_LOG` (an env-filter, `billrun_pipeline=debug`) overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    verbose: u8,

    /// Log lines as text, or as one JSON object per line (for log collectors); with
    /// json, the run's warnings and the final error are JSON log lines too.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bill run for one period: validate, rate, invoice, write tables and journal.
    Run {
        /// Dataset: a folder or URL (file:///x) with one sub-folder per input table.
        #[arg(long)]
        data: String,
        /// Output folder; replaced atomically when the run succeeds.
        #[arg(long)]
        out: PathBuf,
        /// Billing period, as a month: 2026-10.
        #[arg(long)]
        period: String,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// For contracts: apply carve rules before or after the SSP allocation.
        #[arg(long, value_enum, default_value_t = CarveOrderArg::AllocateThenCarve)]
        carve_order: CarveOrderArg,
        /// Memory the query engine may use before sorts, joins and aggregates spill to
        /// disk: bytes, or with a K, M, G or T suffix (powers of 1024). Default: a
        /// twelfth of the machine's memory.
        #[arg(long, value_parser = parse_bytes)]
        memory_limit: Option<usize>,
        /// Read the dataset as it was at this instant (RFC 3339, 2026-11-02T10:15:00Z) or
        /// at the end of this day (2026-11-02, UTC): master data as it was then, and only
        /// the usage and other files imported by then. Repeats a past bill run as it was.
        #[arg(long, value_parser = billrun_pipeline::dataset::parse_instant)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
        /// Bill the period on top of the books at this location (a folder, file:// or
        /// s3:// URL; created by the first posting) and post it when the run succeeds:
        /// payments applied, credit carried, invoices numbered, late usage corrected.
        #[arg(long)]
        books: Option<String>,
        /// With --books: write exactly the outputs a posting would, and post nothing.
        #[arg(long, requires = "books")]
        preview: bool,
    },
    /// Print a report of a run: deferred-revenue roll-forward, revenue waterfall, trial balance.
    Report {
        /// Which report.
        #[arg(value_enum)]
        report: ReportArg,
        /// Output folder of a run (deferred-revenue, revenue-waterfall, trial-balance).
        #[arg(long, required_unless_present = "books")]
        out: Option<PathBuf>,
        /// Books location (ar-aging, invoice-register, invoice-accuracy, dso, statement,
        /// tax, mrr).
        #[arg(long)]
        books: Option<String>,
        /// ar-aging, invoice-register: the day it stands on (invoices issued on or before
        /// it, payments paid before it). Default: the as_of of the last posting.
        #[arg(long)]
        on: Option<chrono::NaiveDate>,
        /// statement: the first day (default: the first posted period's first day).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// statement: the last day (default: the as_of of the last posting).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// statement: one customer only.
        #[arg(long)]
        customer: Option<String>,
        /// How to print it.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Write a synthetic dataset with skewed usage, every pricing model and a few bad rows.
    Generate {
        /// Customers, in USD, EUR, JPY and KWD, each subscribed to one to three products.
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        /// Usage events in all, skewed so that a few customers send most of them;
        /// a few are duplicates or bad rows on purpose.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Random seed: the same seed and options write the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Number of usage files.
        #[arg(long, default_value_t = 8)]
        usage_files: usize,
        /// Billing period the data is centred on.
        #[arg(long, default_value = "2026-10")]
        period: String,
        /// Put before every event id: months generated apart and billed one after
        /// another into one books need ids that do not collide (`--event-id-prefix M03-`).
        #[arg(long, default_value = "")]
        event_id_prefix: String,
        /// Folder to write the dataset into, one sub-folder per input table.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the input templates: an empty CSV and a documentation page per table.
    Templates {
        /// Folder to write `<table>.csv` and `<table>.md` into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sweep an inbox into a dataset: validate, load each file exactly once, move it.
    Import {
        /// Inbox: a folder or URL (file:///x, s3://bucket/prefix).
        #[arg(long)]
        inbox: String,
        /// Dataset the good rows are loaded into: a folder or URL.
        #[arg(long)]
        dataset: String,
        /// Read the files of TABLE (in `TABLE/` or named `TABLE-….csv`) as an upstream
        /// export, through the SQL SELECT in FILE (`customers=crm/accounts.sql`).
        /// Repeatable, one per table.
        #[arg(long, value_name = "TABLE=FILE")]
        mapping: Vec<String>,
        /// Tell people: send the summary to the [[notify]] channels of this job file, on
        /// their triggers (job_finished: always; import_failed: a file failed or the sweep
        /// could not run; job_failed: the sweep could not run).
        #[arg(long, value_name = "JOB_FILE")]
        notify: Option<PathBuf>,
        /// The date of the processed/<date>/ and failed/<date>/ folders (default: today, UTC).
        #[arg(long)]
        today: Option<chrono::NaiveDate>,
    },
    /// Run declarative jobs (jobs/*.toml): import, bill run, notifications.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Run SQL over a run's output tables (rated_usage, invoices, invoice_lines, ...);
    /// `SHOW TABLES` lists them. Money is shown at its currency's minor unit. CSV and
    /// JSON are written as the result is computed, so any size of result can be exported.
    Query {
        /// Output folder of a run.
        #[arg(long)]
        out: PathBuf,
        /// Also query this dataset's tables (all but usage), as `data.customers`,
        /// `data.price_plans`, …: a folder or URL, as for `run --data`.
        #[arg(long)]
        data: Option<String>,
        /// How to print the result.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// The SQL statement.
        sql: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Run one job now, all its steps in order.
    Run {
        /// The job file (paths in it are relative to its folder).
        file: PathBuf,
        /// Run as if today were this date (YYYY-MM-DD); decides the "previous" period.
        #[arg(long)]
        today: Option<chrono::NaiveDate>,
    },
    /// Run the jobs of a folder on their cron schedules (UTC), one at a time, until stopped.
    Schedule {
        /// Folder of job files (*.toml).
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CarveOrderArg {
    /// Allocate the contract price by SSP, then carve from the allocated amounts.
    AllocateThenCarve,
    /// Carve from the stated prices, then allocate the rest by SSP.
    CarveThenAllocate,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportArg {
    /// Open receivables per customer and currency by days past due, from the books.
    ArAging,
    /// Every posted invoice by number with its status, from the books.
    InvoiceRegister,
    /// Per period, the share of its invoices that no correction corrects, from the books.
    InvoiceAccuracy,
    /// Days sales outstanding per period and currency, and over three months, from the
    /// books.
    Dso,
    /// Customer statements: opening balance, invoices, corrections, payments, closing
    /// balance, from the books.
    Statement,
    /// Tax by issue month, currency, region and rate, from the books.
    Tax,
    /// Monthly recurring revenue with new, expansion, contraction and churn, from the
    /// books.
    Mrr,
    DeferredRevenue,
    RevenueWaterfall,
    TrialBalance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The log format chosen on the command line, for messages printed outside tracing.
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

fn json_logs() -> bool {
    LOG_FORMAT.get() == Some(&LogFormat::Json)
}

/// A warning about the run's data: `billrun: warning: …` on stderr, or a JSON log line.
fn warn(text: &str) {
    if json_logs() {
        tracing::warn!("{text}");
    } else {
        eprintln!("billrun: warning: {text}");
    }
}

/// Logging on stderr: the level from -q/-v unless `BILLRUN_LOG` says otherwise; colour
/// only on a terminal (and never with `NO_COLOR`).
fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        // A store's retries are said as they happen: a slow S3 is never silent.
        (false, 0) => "warn,object_store::client::retry=info",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = match std::env::var("BILLRUN_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            tracing_subscriber::EnvFilter::new(directives)
        }
        _ => tracing_subscriber::EnvFilter::new(level),
    };
    let _ = LOG_FORMAT.set(cli.log_format);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .chain()
                .find_map(|cause| cause.downcast_ref::<billrun_pipeline::error::PipelineError>())
                .map_or(2, billrun_pipeline::error::PipelineError::exit_code);
            if json_logs() {
                tracing::error!(exit_code = code, "{}", error_text(&e));
            } else {
                eprintln!("billrun: error: {}", error_text(&e));
            }
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let progress = if cli.quiet {
        Progress::hidden()
    } else {
        Progress::stderr()
    };
    match cli.command {
        Command::Run {
            data,
            out,
            period,
            threads,
            carve_order,
            memory_limit,
            as_of,
            books,
            preview,
        } => {
            let period = billrun_engine_month(&period)?;
            let carve_order = match carve_order {
                CarveOrderArg::AllocateThenCarve => billrun_engine::CarveOrder::AllocateThenCarve,
                CarveOrderArg::CarveThenAllocate => billrun_engine::CarveOrder::CarveThenAllocate,
            };
            let runtime = runtime(threads)?;
            let manifest = runtime.block_on(run_bill(RunOptions {
                as_of,
                data: data.clone(),
                out: out.clone(),
                period,
                threads,
                carve_order,
                memory_limit,
                books,
                preview,
                progress,
            }))?;
            let u = &manifest.usage;
            say!(
                "bill run {} of {} -> {}",
                manifest.period,
                data,
                out.display()
            );
            for warning in &manifest.warnings {
                warn(warning);
            }
            let late = if u.late > 0 {
                format!(" ({} late, billed as corrections)", u.late)
            } else {
                String::new()
            };
            say!(
                "usage: {} read, {} rated{late}, {} unrated, {} rejected ({} duplicates), {} outside the period",
                u.read,
                u.rated,
                u.unrated,
                u.rejected,
                u.duplicates,
                u.outside_period
            );
            if u.settled > 0 {
                say!(
                    "usage: {} rows of files read again were settled by earlier postings",
                    u.settled
                );
            }
            let billed: Vec<String> = manifest
                .billed
                .iter()
                .map(|(c, t)| format!("{t} {c}"))
                .collect();
            say!("invoices: {} ({})", manifest.invoices, billed.join(", "));
            if manifest.contracts > 0 {
                say!(
                    "contracts: {} recognised (see revenue_schedule, `billrun report deferred-revenue`)",
                    manifest.contracts
                );
            }
            let rejects: u64 = manifest.rejects_by_table.values().sum();
            say!("rejects: {rejects} rows (see the rejects table)");
            if let Some(b) = &manifest.books {
                match b.outcome {
                    "posted" => say!(
                        "books: posted version {} to {} (as of {})",
                        b.version.unwrap_or_default(),
                        b.location,
                        b.as_of
                    ),
                    "already_posted" => say!(
                        "books: {} was posted already (version {}) on these same inputs; nothing posted, outputs written again",
                        manifest.period,
                        b.version.unwrap_or_default()
                    ),
                    _ => say!("books: preview only, nothing posted to {}", b.location),
                }
            }
            let wall: f64 = manifest.stages.iter().map(|s| s.seconds).sum();
            say!("wall time: {wall:.2} s");
        }
        Command::Generate {
            customers,
            events,
            seed,
            usage_files,
            period,
            event_id_prefix,
            out,
        } => {
            let month = billrun_engine_month(&period)?;
            let options = billrun_samples::GenerateOptions {
                customers,
                events,
                seed,
                out: out.clone(),
                usage_files,
                period: (month.year, month.month),
                event_id_prefix,
            };
            let bar = progress.items("generating usage", events);
            let summary = billrun_samples::generate(&options, &|n| bar.inc(n))
                .with_context(|| format!("generating a dataset in {}", out.display()))?;
            bar.finish_and_clear();
            say!(
                "wrote {} customers, {} subscriptions, {} usage events ({} duplicates, {} bad rows) to {}",
                summary.customers,
                summary.subscriptions,
                summary.events_written,
                summary.duplicates,
                summary.bad_rows,
                out.display()
            );
        }
        Command::Templates { out } => {
            let written = write_templates(&out)?;
            say!("wrote {written} templates to {}", out.display());
        }
        Command::Import {
            inbox,
            dataset,
            mapping,
            notify,
            today,
        } => import(inbox, dataset, &mapping, notify, today, progress)?,
        Command::Job { command } => job(command)?,
        Command::Query {
            out,
            data,
            format,
            sql,
        } => {
            let runtime = runtime(None)?;
            runtime.block_on(async {
                let stream = query_stream(&out, data.as_deref(), &sql).await?;
                let writer = ResultWriter::new(
                    QuietStdout(std::io::stdout().lock()),
                    format.into(),
                    stream.schema(),
                    Totals::None,
                );
                write_stream(stream, writer).await
            })?;
        }
        Command::Report {
            report: which,
            out,
            books,
            on,
            from,
            to,
            customer,
            format,
        } => {
            use billrun_pipeline::books::{BooksReport, ReportOptions, books_report};
            let runtime = runtime(None)?;
            let on_books = match which {
                ReportArg::InvoiceRegister => Some(BooksReport::InvoiceRegister),
                ReportArg::InvoiceAccuracy => Some(BooksReport::InvoiceAccuracy),
                ReportArg::Dso => Some(BooksReport::Dso),
                ReportArg::Statement => Some(BooksReport::Statement),
                ReportArg::Tax => Some(BooksReport::Tax),
                ReportArg::Mrr => Some(BooksReport::Mrr),
                _ => None,
            };
            let batches = match (which, on_books) {
                (ReportArg::ArAging, _) => {
                    let Some(books) = books else {
                        anyhow::bail!("the ar-aging report reads the books: give --books");
                    };
                    vec![runtime.block_on(billrun_pipeline::books::ar_aging_report(&books, on))?]
                }
                (_, Some(report)) => {
                    let Some(books) = books else {
                        anyhow::bail!("this report reads the books: give --books");
                    };
                    let options = ReportOptions {
                        on,
                        from,
                        to,
                        customer,
                    };
                    vec![runtime.block_on(books_report(&books, report, &options))?]
                }
                (other, None) => {
                    let which = match other {
                        ReportArg::DeferredRevenue => Report::DeferredRevenue,
                        ReportArg::RevenueWaterfall => Report::RevenueWaterfall,
                        _ => Report::TrialBalance,
                    };
                    let Some(out) = out else {
                        anyhow::bail!("this report reads a run's outputs: give --out");
                    };
                    runtime.block_on(report(&out, which))?
                }
            };
            let totals = match which {
                ReportArg::TrialBalance => Totals::Columns(&["debit", "credit", "balance"]),
                ReportArg::DeferredRevenue => Totals::Columns(&["billed", "recognised"]),
                ReportArg::RevenueWaterfall | ReportArg::ArAging => Totals::AllMoney,
                ReportArg::InvoiceRegister => {
                    Totals::Columns(&["total", "paid", "credited", "open"])
                }
                ReportArg::Tax => Totals::Columns(&["taxable", "tax"]),
                ReportArg::InvoiceAccuracy
                | ReportArg::Dso
                | ReportArg::Statement
                | ReportArg::Mrr => Totals::None,
            };
            say_raw!("{}", render_batches(&batches, format.into(), totals)?);
        }
    }
    Ok(())
}

/// Standard output for results written as they come: a closed stdout (`| head`) ends
/// the process quietly with status 0, as [`say!`] does.
struct QuietStdout<'a>(std::io::StdoutLock<'a>);

impl std::io::Write for QuietStdout<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        quiet_on_broken_pipe(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        quiet_on_broken_pipe(self.0.flush())
    }
}

fn quiet_on_broken_pipe<T>(result: std::io::Result<T>) -> std::io::Result<T> {
    if let Err(e) = &result
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
    result
}

/// Writes `<table>.csv` and `<table>.md` for every input table, and an index.
fn write_templates(out: &std::path::Path) -> Result<usize> {
    use billrun_schemas::Table;
    use billrun_schemas::docs::{template_csv, template_markdown};
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut index = String::from(
        "# billrun input templates\n\nGenerated by `billrun templates` from billrun's schemas.\n\n",
    );
    let mut count = 0;
    for table in Table::every() {
        let write = |name: String, text: String| {
            let path = out.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        };
        write(format!("{table}.csv"), template_csv(table))?;
        write(format!("{table}.md"), template_markdown(table))?;
        index.push_str(&format!(
            "- [`{table}`]({table}.md): {}\n",
            table.description()
        ));
        count += 1;
    }
    std::fs::write(out.join("README.md"), index)
        .with_context(|| format!("writing {}", out.join("README.md").display()))?;
    Ok(count)
}

/// `billrun import`: one sweep, told to the channels of `--notify`'s job file.
fn import(
    inbox: String,
    dataset: String,
    mapping: &[String],
    notify: Option<PathBuf>,
    today: Option<chrono::NaiveDate>,
    progress: Progress,
) -> Result<()> {
    let mappings = mapping
        .iter()
        .map(|m| parse_mapping(m))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    // The job file is read (and checked whole) before anything is swept.
    let channels = match &notify {
        Some(file) => billrun_jobs::load_job(file)?.notify,
        None => Vec::new(),
    };
    let runtime = runtime(None)?;
    let started = chrono::Utc::now();
    let result = runtime.block_on(billrun_pipeline::import::sweep(
        &billrun_pipeline::import::ImportOptions {
            inbox,
            dataset,
            mappings,
            today: today.unwrap_or_else(|| chrono::Utc::now().date_naive()),
            progress,
        },
    ));
    let finished = chrono::Utc::now();
    let summary = match &result {
        Ok(summary) => {
            say_raw!("{}", summary.render_text());
            billrun_jobs::Summary::for_import(summary, started, finished)
        }
        Err(e) => billrun_jobs::Summary::for_failed_import(format!("{e:#}"), started, finished),
    };
    let outcomes = runtime.block_on(billrun_jobs::send_all(&channels, &summary));
    for n in &outcomes {
        match &n.error {
            Some(e) => eprintln!("notification {}: failed: {e}", n.channel),
            None => eprintln!("notification {}: {}", n.channel, n.status),
        }
    }
    result?;
    if outcomes.iter().any(billrun_jobs::ChannelOutcome::failed) {
        anyhow::bail!("the sweep was done, but a notification failed (see above)");
    }
    Ok(())
}

/// `customers=crm/accounts.sql`: the files of `customers` (in `customers/` or named
/// `customers-….csv`) are read through the SELECT in `crm/accounts.sql`. One mapping per
/// way the table's files are recognised.
fn parse_mapping(arg: &str) -> Result<[billrun_pipeline::import::Mapping; 2]> {
    use billrun_schemas::Table;
    let (table_name, file) = arg
        .split_once('=')
        .with_context(|| format!("--mapping `{arg}`: expected TABLE=FILE.sql"))?;
    let table = Table::from_name(table_name).with_context(|| {
        format!(
            "--mapping `{arg}`: unknown table `{table_name}` (known tables: {})",
            Table::every()
                .map(Table::name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let sql = std::fs::read_to_string(file)
        .with_context(|| format!("--mapping `{arg}`: reading {file}"))?;
    if !billrun_jobs::job::is_select(&sql) {
        anyhow::bail!(
            "--mapping `{arg}`: {file} must hold a SELECT (or WITH ... SELECT) over the table `source`"
        );
    }
    let mapping = |file_pattern: String| billrun_pipeline::import::Mapping {
        name: format!("{table_name}={file}"),
        file_pattern,
        table,
        sql: sql.clone(),
    };
    Ok([
        mapping(format!("{table_name}/*")),
        mapping(format!("{table_name}[-_.]*")),
    ])
}

fn job(command: JobCommand) -> Result<()> {
    match command {
        JobCommand::Run { file, today } => {
            let job = billrun_jobs::load_job(&file)?;
            let today = today.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let report = runtime(None)?.block_on(billrun_jobs::run_job(&job, today));
            say_raw!("{}", report.summary().to_text());
            print_notifications(&report);
            if !report.succeeded() {
                anyhow::bail!("job {} did not succeed (see above)", job.name);
            }
        }
        JobCommand::Schedule { dir } => {
            let jobs = billrun_jobs::load_dir(&dir)?;
            for j in &jobs {
                match &j.schedule {
                    Some(s) => eprintln!("job {}: schedule `{}` (UTC)", j.name, s.expr),
                    None => eprintln!(
                        "job {}: no schedule, runs only by `billrun job run`",
                        j.name
                    ),
                }
            }
            let mut scheduler = billrun_jobs::Scheduler::new(
                jobs,
                billrun_jobs::SystemClock,
                billrun_jobs::PipelineSteps,
            );
            runtime(None)?.block_on(scheduler.run(|event| match event {
                billrun_jobs::TickEvent::Ran { due, report, .. } => {
                    eprintln!("job {} (due {due}):", report.job);
                    eprint!("{}", report.summary().to_text());
                    print_notifications(report);
                }
                billrun_jobs::TickEvent::SkippedStillRunning {
                    job,
                    due,
                    previous_started,
                    ..
                } => eprintln!(
                    "job {job}: skipped the run due {due}: its run started {previous_started} was still going"
                ),
            }));
        }
    }
    Ok(())
}

fn print_notifications(report: &billrun_jobs::JobReport) {
    for n in &report.notifications {
        match &n.error {
            Some(e) => eprintln!("notification {}: failed: {e}", n.channel),
            None => eprintln!("notification {}: {}", n.channel, n.status),
        }
    }
}

impl From<Format> for OutputFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Table => OutputFormat::Table,
            Format::Csv => OutputFormat::Csv,
            Format::Json => OutputFormat::Json,
        }
    }
}

fn billrun_engine_month(period: &str) -> Result<billrun_engine::BillingMonth> {
    billrun_engine::BillingMonth::parse(period)
        .with_context(|| format!("--period `{period}` is not a month like 2026-10"))
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `4G`, `512M`, `1048576`: a size in bytes, suffixes in powers of 1024.
fn parse_bytes(text: &str) -> std::result::Result<usize, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix `{c}` (use K, M, G or T)")),
            };
            (&text[..i], shift)
        }
        _ => (text, 0),
    };
    let value: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4G, 512M or 1048576"))?;
    value
        .checked_mul(1 << shift)
        .filter(|&bytes| bytes > 0)
        .ok_or_else(|| format!("`{text}` is not a usable memory limit"))
}
