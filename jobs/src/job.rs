//! Job files: what a job is, read from TOML and checked whole before anything runs.
//!
//! ```toml
//! name = "nightly"
//! inbox = "../data-samples/inbox"     # relative to this file's folder, or a URL
//! dataset = "../var/dataset"
//! out = "../var/runs/{period}"        # `{period}` becomes the billed month
//! period = "previous"                  # or "2026-10"
//! schedule = "30 2 * * *"              # cron, in UTC
//! carve_order = "allocate-then-carve"  # optional
//! as_of = "2026-11-02T10:15:00Z"       # optional: bill the dataset as it was then
//! books = "../var/books"               # optional: post each run to these books
//! steps = ["import", "rate", "notify"]
//!
//! [[mappings]]
//! name = "crm accounts"
//! file_pattern = "crm/accounts*.csv"
//! table = "customers"
//! sql = "SELECT AccountId AS customer_id, ... FROM source"
//!
//! [[notify]]
//! kind = "outbox"
//! path = "../var/outbox"
//! on = ["job_finished"]
//! ```
//!
//! Keys are named in errors as a path: `steps[2]`, `notify[0].smtp_host` (indexes count
//! from 0, in the order the file lists them).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use billrun_engine::{BillingMonth, CarveOrder};
use billrun_pipeline::import::Mapping;
use billrun_schemas::Table;
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use crate::error::{Error, Result};

/// One step of a job, in the order the job file lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Sweep the inbox into the dataset (`billrun_pipeline::import::sweep`).
    Import,
    /// The bill run (`billrun_pipeline::run_bill`): rating, invoicing, allocation and
    /// carves, recognition, the journal and every output table, at once.
    Rate,
    /// Send the summary so far to the job's channels.
    Notify,
}

/// Names a job file may use for work the `rate` step does, and what to write instead.
///
/// Earlier job files could list these as steps and they silently did nothing of their
/// own, so a job listing `carve` before `allocate` did not do what it said. Now they
/// are refused with the way to get what was meant.
const DONE_BY_RATE: [(&str, &str); 5] = [
    ("invoice", "the `rate` step invoices"),
    (
        "carve",
        "the `rate` step applies carves; to apply them before the SSP allocation set \
         `carve_order = \"carve-then-allocate\"`",
    ),
    (
        "allocate",
        "the `rate` step allocates by SSP; the order of allocation and carves is \
         `carve_order` (\"allocate-then-carve\" by default)",
    ),
    ("recognise", "the `rate` step recognises revenue"),
    (
        "export",
        "the `rate` step writes every output table and the journal exports",
    ),
];

impl Step {
    /// Every step, in the order a job would usually list them.
    pub const ALL: [Step; 3] = [Step::Import, Step::Rate, Step::Notify];

    /// The name used in job files.
    pub fn name(self) -> &'static str {
        match self {
            Step::Import => "import",
            Step::Rate => "rate",
            Step::Notify => "notify",
        }
    }

    fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which month a job bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodSpec {
    /// The calendar month before the day the job runs (`"previous"`).
    Previous,
    /// A fixed month (`"2026-10"`).
    Month(BillingMonth),
}

impl PeriodSpec {
    /// The month billed by a run on `today`.
    pub fn resolve(self, today: NaiveDate) -> BillingMonth {
        match self {
            PeriodSpec::Month(m) => m,
            PeriodSpec::Previous => {
                if today.month() == 1 {
                    BillingMonth {
                        year: today.year() - 1,
                        month: 12,
                    }
                } else {
                    BillingMonth {
                        year: today.year(),
                        month: today.month() - 1,
                    }
                }
            }
        }
    }
}

/// When a notification channel is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Every time the job notifies, whatever happened (the default).
    JobFinished,
    /// Only when a step failed.
    JobFailed,
    /// Only when the import step failed or a swept file was moved to `failed/`.
    ImportFailed,
}

impl Trigger {
    const ALL: [Trigger; 3] = [
        Trigger::JobFinished,
        Trigger::JobFailed,
        Trigger::ImportFailed,
    ];

    /// The name used in job files.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::JobFinished => "job_finished",
            Trigger::JobFailed => "job_failed",
            Trigger::ImportFailed => "import_failed",
        }
    }
}

/// E-mail over SMTP. Credentials come from the environment variables named here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChannel {
    pub to: Vec<String>,
    pub from: String,
    pub smtp_host: String,
    /// Default 587 with STARTTLS, 25 without.
    pub smtp_port: u16,
    /// Upgrade the connection with STARTTLS and require it (default true). `false` sends
    /// in plain text: only for a relay on the same host or a test server.
    pub starttls: bool,
    /// Names of the variables holding the SMTP user name and password (both or neither).
    pub username_env: Option<String>,
    pub password_env: Option<String>,
}

/// A POST of the summary's JSON, signed with HMAC-SHA256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookChannel {
    pub url: String,
    /// Name of the variable holding the HMAC key.
    pub secret_env: String,
}

/// Summary files in a folder or object-store prefix: `<job>-<timestamp>.json` and `.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxChannel {
    /// A local folder (resolved against the job file's folder) or a URL (`file:///x`,
    /// `s3://bucket/outbox`), written through `object_store`.
    pub path: String,
}

/// Where a summary goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    Email(EmailChannel),
    Webhook(WebhookChannel),
    Outbox(OutboxChannel),
}

/// A configured channel and the events it is sent on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyChannel {
    pub channel: Channel,
    pub on: BTreeSet<Trigger>,
}

impl NotifyChannel {
    /// A short name for logs and reports: `email to a@x.test`, `webhook https://...`.
    pub fn label(&self) -> String {
        match &self.channel {
            Channel::Email(e) => format!("email to {}", e.to.join(", ")),
            Channel::Webhook(w) => format!("webhook {}", w.url),
            Channel::Outbox(o) => format!("outbox {}", o.path),
        }
    }
}

/// A cron schedule, evaluated in UTC.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as written.
    pub expr: String,
    pub(crate) cron: croner::Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

/// A checked job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The file it was read from.
    pub file: PathBuf,
    pub name: String,
    /// Inbox location (resolved): a folder or URL. Required when the job imports.
    pub inbox: Option<String>,
    /// Dataset location (resolved): where imports load to and bill runs read from.
    pub dataset: String,
    /// Output folder of the bill run (resolved); `{period}` is replaced by the month.
    pub out: Option<String>,
    pub period: PeriodSpec,
    /// `None`: the job runs only by hand (`billrun job run`).
    pub schedule: Option<Schedule>,
    pub carve_order: CarveOrder,
    /// The bill run reads the dataset as it was at this instant (`as_of`), to repeat a
    /// past run; `None`: as it is.
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// The books the bill run posts to (resolved), if any (`billrun run --books`).
    pub books: Option<String>,
    pub steps: Vec<Step>,
    pub mappings: Vec<Mapping>,
    pub notify: Vec<NotifyChannel>,
}

impl Job {
    /// The bill run's output folder for `period`.
    pub fn out_for(&self, period: BillingMonth) -> Option<PathBuf> {
        self.out
            .as_ref()
            .map(|o| PathBuf::from(o.replace("{period}", &period.to_string())))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: String,
    inbox: Option<String>,
    dataset: String,
    out: Option<String>,
    period: Option<String>,
    schedule: Option<String>,
    carve_order: Option<String>,
    as_of: Option<String>,
    books: Option<String>,
    steps: Vec<String>,
    #[serde(default)]
    mappings: Vec<RawMapping>,
    #[serde(default)]
    notify: Vec<RawChannel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    name: String,
    file_pattern: String,
    table: String,
    sql: String,
}

/// Every key any channel kind has; which ones a kind may use is checked after parsing,
/// so that the error can say "`url` is not a key of an email channel".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    kind: String,
    on: Option<Vec<String>>,
    to: Option<Vec<String>>,
    from: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    starttls: Option<bool>,
    username_env: Option<String>,
    password_env: Option<String>,
    url: Option<String>,
    secret_env: Option<String>,
    path: Option<String>,
}

/// Reads and checks one job file.
///
/// # Errors
/// [`Error::Read`] when the file cannot be read; [`Error::Syntax`] (with line and column)
/// for TOML errors, keys of the wrong type and unknown keys; [`Error::Invalid`] naming
/// the key for values the job cannot use.
pub fn load_job(file: &Path) -> Result<Job> {
    let text = std::fs::read_to_string(file).map_err(|error| Error::Read {
        path: file.to_path_buf(),
        error,
    })?;
    parse_job(file, &text)
}

/// Reads every `*.toml` job in `dir`, in file-name order.
///
/// # Errors
/// As [`load_job`] for each file, [`Error::Read`] when the folder cannot be listed, and
/// [`Error::DuplicateName`] when two files declare the same job name.
pub fn load_dir(dir: &Path) -> Result<Vec<Job>> {
    let read_err = |error| Error::Read {
        path: dir.to_path_buf(),
        error,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut jobs: Vec<Job> = Vec::with_capacity(files.len());
    for file in files {
        let job = load_job(&file)?;
        if let Some(other) = jobs.iter().find(|j| j.name == job.name) {
            return Err(Error::DuplicateName {
                file,
                other: other.file.clone(),
                name: job.name,
            });
        }
        jobs.push(job);
    }
    Ok(jobs)
}

/// Checks the text of a job file; `file` names it in errors and anchors relative paths.
///
/// # Errors
/// As [`load_job`].
pub fn parse_job(file: &Path, text: &str) -> Result<Job> {
    let raw: RawJob = toml::from_str(text).map_err(|e| syntax_error(file, text, &e))?;
    let invalid = |key: &str, problem: String| Error::Invalid {
        file: file.to_path_buf(),
        key: key.to_string(),
        problem,
    };
    let base = file.parent().unwrap_or(Path::new(""));

    if raw.name.trim().is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            "name",
            format!(
                "`{}` is not a job name: use letters, digits, `-` and `_` (it names outbox files)",
                raw.name
            ),
        ));
    }

    let mut steps = Vec::with_capacity(raw.steps.len());
    for (i, name) in raw.steps.iter().enumerate() {
        let key = format!("steps[{i}]");
        let step = Step::from_name(name).ok_or_else(|| {
            let why = match DONE_BY_RATE.iter().find(|(n, _)| n == name) {
                Some((_, instead)) => {
                    format!("`{name}` is not a step of its own: {instead}; list `rate` instead")
                }
                None => format!(
                    "unknown step `{name}` (known steps: {})",
                    Step::ALL.map(Step::name).join(", ")
                ),
            };
            invalid(&key, why)
        })?;
        if steps.contains(&step) {
            return Err(invalid(&key, format!("step `{name}` is listed twice")));
        }
        steps.push(step);
    }
    if steps.is_empty() {
        return Err(invalid("steps", "a job needs at least one step".into()));
    }

    let inbox = match (&raw.inbox, steps.contains(&Step::Import)) {
        (Some(i), _) => Some(resolve_location(base, i, || {
            invalid("inbox", "is empty".into())
        })?),
        (None, true) => {
            return Err(invalid(
                "inbox",
                "missing: the `import` step needs an inbox".into(),
            ));
        }
        (None, false) => None,
    };
    let dataset = resolve_location(base, &raw.dataset, || invalid("dataset", "is empty".into()))?;
    let books = raw
        .books
        .as_deref()
        .map(|b| resolve_location(base, b, || invalid("books", "is empty".into())))
        .transpose()?;
    let out = match (&raw.out, steps.contains(&Step::Rate)) {
        (Some(o), _) => {
            if o.contains("://") {
                return Err(invalid(
                    "out",
                    format!("`{o}`: a run's output is a local folder for now, not a URL"),
                ));
            }
            Some(resolve_location(base, o, || {
                invalid("out", "is empty".into())
            })?)
        }
        (None, true) => {
            return Err(invalid(
                "out",
                "missing: the `rate` step needs an output folder".into(),
            ));
        }
        (None, false) => None,
    };

    let period = match raw.period.as_deref() {
        None | Some("previous") => PeriodSpec::Previous,
        Some(p) => PeriodSpec::Month(BillingMonth::from_str(p).map_err(|_| {
            invalid(
                "period",
                format!("`{p}` is neither \"previous\" nor a month like \"2026-10\""),
            )
        })?),
    };

    let schedule = match &raw.schedule {
        None => None,
        Some(expr) => Some(Schedule {
            expr: expr.clone(),
            cron: croner::Cron::from_str(expr).map_err(|e| {
                invalid(
                    "schedule",
                    format!("`{expr}` is not a cron expression: {e}"),
                )
            })?,
        }),
    };

    // Spelled as `CarveOrder::as_str` spells it, like the manifest and `--carve-order`.
    let orders = [CarveOrder::AllocateThenCarve, CarveOrder::CarveThenAllocate];
    let carve_order = match raw.carve_order.as_deref() {
        None => CarveOrder::default(),
        Some(text) => orders
            .into_iter()
            .find(|order| order.as_str() == text)
            .ok_or_else(|| {
                invalid(
                    "carve_order",
                    format!(
                        "`{text}`: expected \"allocate-then-carve\" or \"carve-then-allocate\""
                    ),
                )
            })?,
    };

    let as_of = match &raw.as_of {
        None => None,
        Some(t) => Some(
            billrun_pipeline::dataset::parse_instant(t)
                .map_err(|problem| invalid("as_of", problem))?,
        ),
    };

    let mut mappings = Vec::with_capacity(raw.mappings.len());
    for (i, m) in raw.mappings.into_iter().enumerate() {
        let key = |k: &str| format!("mappings[{i}].{k}");
        let table = Table::from_name(&m.table).ok_or_else(|| {
            invalid(
                &key("table"),
                format!(
                    "unknown table `{}` (known tables: {})",
                    m.table,
                    Table::every()
                        .map(Table::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        if m.file_pattern.trim().is_empty() {
            return Err(invalid(&key("file_pattern"), "is empty".into()));
        }
        if !is_select(&m.sql) {
            return Err(invalid(
                &key("sql"),
                "must be a SELECT (or WITH ... SELECT) over the table `source`".into(),
            ));
        }
        mappings.push(Mapping {
            name: m.name,
            file_pattern: m.file_pattern,
            table,
            sql: m.sql,
        });
    }

    let mut notify = Vec::with_capacity(raw.notify.len());
    for (i, c) in raw.notify.into_iter().enumerate() {
        notify.push(channel(file, base, i, c)?);
    }
    match (steps.contains(&Step::Notify), notify.is_empty()) {
        (true, true) => {
            return Err(invalid(
                "notify",
                "steps list `notify` but no [[notify]] channel is configured".into(),
            ));
        }
        (false, false) => {
            return Err(invalid(
                "steps",
                "[[notify]] channels are configured but steps do not list `notify`".into(),
            ));
        }
        _ => {}
    }

    Ok(Job {
        file: file.to_path_buf(),
        name: raw.name,
        inbox,
        dataset,
        out,
        period,
        schedule,
        carve_order,
        as_of,
        books,
        steps,
        mappings,
        notify,
    })
}

fn channel(file: &Path, base: &Path, i: usize, c: RawChannel) -> Result<NotifyChannel> {
    let invalid = |k: &str, problem: String| Error::Invalid {
        file: file.to_path_buf(),
        key: format!("notify[{i}].{k}"),
        problem,
    };
    let present: Vec<(&str, bool)> = vec![
        ("to", c.to.is_some()),
        ("from", c.from.is_some()),
        ("smtp_host", c.smtp_host.is_some()),
        ("smtp_port", c.smtp_port.is_some()),
        ("starttls", c.starttls.is_some()),
        ("username_env", c.username_env.is_some()),
        ("password_env", c.password_env.is_some()),
        ("url", c.url.is_some()),
        ("secret_env", c.secret_env.is_some()),
        ("path", c.path.is_some()),
    ];
    let allowed: &[&str] = match c.kind.as_str() {
        "email" => &[
            "to",
            "from",
            "smtp_host",
            "smtp_port",
            "starttls",
            "username_env",
            "password_env",
        ],
        "webhook" => &["url", "secret_env"],
        "outbox" => &["path"],
        other => {
            return Err(invalid(
                "kind",
                format!("unknown channel kind `{other}` (known: email, webhook, outbox)"),
            ));
        }
    };
    if let Some((k, _)) = present
        .iter()
        .find(|(k, given)| *given && !allowed.contains(k))
    {
        return Err(invalid(
            k,
            format!("is not a key of {} channel", article(&c.kind)),
        ));
    }
    let required = |k: &str, v: Option<String>| -> Result<String> {
        match v {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(invalid(k, "is empty".into())),
            None => Err(invalid(
                k,
                format!("missing: {} channel needs it", article(&c.kind)),
            )),
        }
    };
    let env_name = |k: &str, v: Option<String>| -> Result<Option<String>> {
        match v {
            None => Ok(None),
            Some(v)
                if !v.is_empty()
                    && !v.starts_with(|ch: char| ch.is_ascii_digit())
                    && v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') =>
            {
                Ok(Some(v))
            }
            Some(v) => Err(invalid(
                k,
                format!(
                    "`{v}` is not an environment variable name; put the secret in the environment and name the variable here"
                ),
            )),
        }
    };

    let channel = match c.kind.as_str() {
        "email" => {
            let to = c.to.unwrap_or_default();
            if to.is_empty() {
                return Err(invalid(
                    "to",
                    "missing: an email channel needs at least one recipient".into(),
                ));
            }
            for (j, addr) in to.iter().enumerate() {
                lettre::message::Mailbox::from_str(addr).map_err(|e| Error::Invalid {
                    file: file.to_path_buf(),
                    key: format!("notify[{i}].to[{j}]"),
                    problem: format!("`{addr}` is not an e-mail address: {e}"),
                })?;
            }
            let from = required("from", c.from)?;
            lettre::message::Mailbox::from_str(&from)
                .map_err(|e| invalid("from", format!("`{from}` is not an e-mail address: {e}")))?;
            let starttls = c.starttls.unwrap_or(true);
            let username_env = env_name("username_env", c.username_env)?;
            let password_env = env_name("password_env", c.password_env)?;
            if username_env.is_some() != password_env.is_some() {
                let k = if username_env.is_some() {
                    "password_env"
                } else {
                    "username_env"
                };
                return Err(invalid(
                    k,
                    "missing: give both username_env and password_env, or neither".into(),
                ));
            }
            Channel::Email(EmailChannel {
                to,
                from,
                smtp_host: required("smtp_host", c.smtp_host)?,
                smtp_port: c.smtp_port.unwrap_or(if starttls { 587 } else { 25 }),
                starttls,
                username_env,
                password_env,
            })
        }
        "webhook" => {
            let url = required("url", c.url)?;
            match reqwest::Url::parse(&url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => {
                    return Err(invalid(
                        "url",
                        format!("`{url}` is not an http:// or https:// URL"),
                    ));
                }
            }
            let secret_env = env_name("secret_env", Some(required("secret_env", c.secret_env)?))?
                .unwrap_or_default();
            Channel::Webhook(WebhookChannel { url, secret_env })
        }
        _ => {
            let path = required("path", c.path)?;
            Channel::Outbox(OutboxChannel {
                path: resolve_location(base, &path, || invalid("path", "is empty".into()))?,
            })
        }
    };

    let mut on = BTreeSet::new();
    for (j, name) in
        c.on.unwrap_or_else(|| vec!["job_finished".into()])
            .iter()
            .enumerate()
    {
        let t = Trigger::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| Error::Invalid {
                file: file.to_path_buf(),
                key: format!("notify[{i}].on[{j}]"),
                problem: format!(
                    "unknown trigger `{name}` (known: {})",
                    Trigger::ALL.map(Trigger::name).join(", ")
                ),
            })?;
        on.insert(t);
    }
    if on.is_empty() {
        return Err(invalid(
            "on",
            "is empty: the channel would never be used".into(),
        ));
    }
    Ok(NotifyChannel { channel, on })
}

/// Whether a mapping's SQL is a `SELECT` (or `WITH ... SELECT`). Leading `--` comment
/// lines (as in data-samples/crm/accounts.sql) are allowed.
pub fn is_select(sql: &str) -> bool {
    let starts = sql
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_lowercase();
    starts.starts_with("select") || starts.starts_with("with")
}

fn article(kind: &str) -> String {
    match kind {
        "email" | "outbox" => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// A location relative to the job file's folder, unless it is a URL.
fn resolve_location(base: &Path, location: &str, empty: impl Fn() -> Error) -> Result<String> {
    if location.trim().is_empty() {
        return Err(empty());
    }
    if location.contains("://") {
        return Ok(location.to_string());
    }
    Ok(base.join(location).to_string_lossy().into_owned())
}

fn syntax_error(file: &Path, text: &str, e: &toml::de::Error) -> Error {
    let (line, column) = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            (line, column)
        }
        None => (1, 1),
    };
    Error::Syntax {
        file: file.to_path_buf(),
        line,
        column,
        message: e.message().trim().to_string(),
    }
}
