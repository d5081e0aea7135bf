//! Notifications: a summary of a sweep or a job, as plain text and JSON, sent to each
//! configured channel.
//!
//! - **email**: SMTP with `lettre`; STARTTLS required unless `starttls = false`; the user
//!   name and password are read from the environment variables the job names, at send
//!   time. The body is the plain-text summary.
//! - **webhook**: `POST` of the JSON summary with `Content-Type: application/json` and
//!   `X-Billrun-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`, keyed with
//!   the value of the job's `secret_env` variable. A receiver recomputes the HMAC over the
//!   raw body and compares in constant time. Any non-2xx answer is a failure.
//! - **outbox**: `<path>/<job>-<YYYYMMDDTHHMMSSZ>.json` and `.txt` in a folder or an
//!   object-store prefix (`s3://bucket/outbox`), each written whole in one step (a local
//!   file under a temporary name and renamed; one S3 PUT), so a reader never sees half a file.
//!
//! Each channel is tried in turn; one channel's failure is reported in its
//! [`ChannelOutcome`] and does not stop the others.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use billrun_pipeline::Manifest;
use billrun_pipeline::dataset::Dataset;
use billrun_pipeline::import::{FileStatus, ImportSummary};
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::job::{Channel, EmailChannel, NotifyChannel, OutboxChannel, Trigger, WebhookChannel};

/// The header carrying the webhook body's signature.
pub const SIGNATURE_HEADER: &str = "X-Billrun-Signature";

/// How long one channel may take to deliver.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows loaded and rejected for one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TableRows {
    pub loaded: u64,
    pub rejected: u64,
}

/// A reject reason and how many rows it rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

/// A swept file that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedFile {
    pub file: String,
    pub reason: String,
}

/// What a sweep did, in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportPart {
    pub inbox: String,
    pub dataset: String,
    pub files_loaded: u64,
    pub files_already_loaded: u64,
    pub files_failed: u64,
    pub failed_files: Vec<FailedFile>,
    pub rows_by_table: BTreeMap<String, TableRows>,
    pub top_reject_reasons: Vec<ReasonCount>,
}

impl ImportPart {
    /// The numbers of a sweep.
    pub fn from_summary(s: &ImportSummary) -> Self {
        let count =
            |status: FileStatus| s.files.iter().filter(|f| f.status == status).count() as u64;
        Self {
            inbox: s.inbox.clone(),
            dataset: s.dataset.clone(),
            files_loaded: count(FileStatus::Loaded),
            files_already_loaded: count(FileStatus::AlreadyLoaded),
            files_failed: count(FileStatus::Failed),
            failed_files: s
                .files
                .iter()
                .filter(|f| f.status == FileStatus::Failed)
                .map(|f| FailedFile {
                    file: f.file.clone(),
                    reason: f.reason.clone().unwrap_or_default(),
                })
                .collect(),
            rows_by_table: s
                .rows_by_table
                .iter()
                .map(|(t, &(loaded, rejected))| (t.clone(), TableRows { loaded, rejected }))
                .collect(),
            top_reject_reasons: s
                .top_reject_reasons
                .iter()
                .map(|(reason, count)| ReasonCount {
                    reason: reason.clone(),
                    count: *count,
                })
                .collect(),
        }
    }
}

/// What a bill run did, in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunPart {
    pub period: String,
    pub dataset: String,
    pub invoices: usize,
    /// Σ invoice totals per currency, as the run's manifest states them.
    pub billed: BTreeMap<String, String>,
    pub usage_read: u64,
    pub usage_rated: u64,
    pub usage_unrated: u64,
    pub usage_rejected: u64,
    pub rejects_by_table: BTreeMap<String, u64>,
}

impl RunPart {
    /// The numbers of a bill run's manifest.
    pub fn from_manifest(m: &Manifest) -> Self {
        Self {
            period: m.period.clone(),
            dataset: m.dataset.clone(),
            invoices: m.invoices,
            billed: m.billed.clone(),
            usage_read: m.usage.read,
            usage_rated: m.usage.rated,
            usage_unrated: m.usage.unrated,
            usage_rejected: m.usage.rejected,
            rejects_by_table: m.rejects_by_table.clone(),
        }
    }
}

/// One step's line in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepLine {
    pub step: String,
    /// `done`, `failed` or `skipped`.
    pub status: String,
    pub detail: String,
}

/// The step that stopped a job, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedStep {
    pub step: String,
    pub error: String,
}

/// The summary of a sweep or a job: the body of every notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The job's name (`import` for a sweep run by itself).
    pub job: String,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// The month billed, when the job bills.
    pub period: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub failed_step: Option<FailedStep>,
    pub steps: Vec<StepLine>,
    pub import: Option<ImportPart>,
    pub run: Option<RunPart>,
    /// Names outbox files; not part of the body.
    #[serde(skip)]
    pub finished: DateTime<Utc>,
}

impl Summary {
    /// The summary of a sweep run by itself (`billrun import`).
    pub fn for_import(
        summary: &ImportSummary,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) -> Self {
        let import = ImportPart::from_summary(summary);
        Self {
            job: "import".into(),
            outcome: "succeeded".into(),
            period: None,
            started_at: rfc3339(started),
            finished_at: rfc3339(finished),
            failed_step: None,
            steps: vec![StepLine {
                step: "import".into(),
                status: "done".into(),
                detail: import_detail(&import),
            }],
            import: Some(import),
            run: None,
            finished,
        }
    }

    /// The summary of a sweep run by itself that could not run at all (the inbox is
    /// locked or unreachable): the `import` step failed with `error`. Fires `job_failed`
    /// and `import_failed`.
    pub fn for_failed_import(
        error: String,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) -> Self {
        Self {
            job: "import".into(),
            outcome: "failed".into(),
            period: None,
            started_at: rfc3339(started),
            finished_at: rfc3339(finished),
            failed_step: Some(FailedStep {
                step: "import".into(),
                error: error.clone(),
            }),
            steps: vec![StepLine {
                step: "import".into(),
                status: "failed".into(),
                detail: error,
            }],
            import: None,
            run: None,
            finished,
        }
    }

    /// Whether a step failed.
    pub fn failed(&self) -> bool {
        self.failed_step.is_some()
    }

    /// Whether the import failed or a swept file went to `failed/`.
    pub fn import_failed(&self) -> bool {
        self.failed_step
            .as_ref()
            .is_some_and(|f| f.step == "import")
            || self.import.as_ref().is_some_and(|i| i.files_failed > 0)
    }

    /// Whether a channel listening on `on` is sent this summary.
    pub fn triggers(&self, on: &std::collections::BTreeSet<Trigger>) -> bool {
        on.iter().any(|t| match t {
            Trigger::JobFinished => true,
            Trigger::JobFailed => self.failed(),
            Trigger::ImportFailed => self.import_failed(),
        })
    }

    /// The e-mail subject: `billrun nightly: succeeded (2026-10)`.
    pub fn subject(&self) -> String {
        let what = match &self.failed_step {
            Some(f) => format!("FAILED at step {}", f.step),
            None => "succeeded".into(),
        };
        match &self.period {
            Some(p) => format!("billrun {}: {what} ({p})", self.job),
            None => format!("billrun {}: {what}", self.job),
        }
    }

    /// The summary as pretty-printed JSON (the webhook body and the outbox `.json`).
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and maps with string keys always serializes.
        serde_json::to_string_pretty(self).expect("a summary serializes to JSON")
    }

    /// The summary as plain text (the e-mail body and the outbox `.txt`).
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut t = String::new();
        let _ = writeln!(t, "{}", self.subject());
        let _ = writeln!(
            t,
            "started {}, finished {}",
            self.started_at, self.finished_at
        );
        if let Some(f) = &self.failed_step {
            let _ = writeln!(t, "failed step: {}: {}", f.step, f.error);
        }
        let _ = writeln!(t, "\nsteps:");
        for s in &self.steps {
            let _ = writeln!(t, "  {:<10} {:<16} {}", s.step, s.status, s.detail);
        }
        if let Some(i) = &self.import {
            let _ = writeln!(t, "\nimport from {} into {}:", i.inbox, i.dataset);
            let _ = writeln!(
                t,
                "  files: {} loaded, {} already loaded, {} failed",
                i.files_loaded, i.files_already_loaded, i.files_failed
            );
            for f in &i.failed_files {
                let _ = writeln!(t, "  failed file {}: {}", f.file, f.reason);
            }
            if !i.rows_by_table.is_empty() {
                let _ = writeln!(t, "  rows by table (loaded / rejected):");
                for (table, r) in &i.rows_by_table {
                    let _ = writeln!(t, "    {table:<16} {} / {}", r.loaded, r.rejected);
                }
            }
            if !i.top_reject_reasons.is_empty() {
                let _ = writeln!(t, "  most frequent reject reasons:");
                for r in &i.top_reject_reasons {
                    let _ = writeln!(t, "    {:>6}  {}", r.count, r.reason);
                }
            }
        }
        if let Some(r) = &self.run {
            let _ = writeln!(t, "\nbill run {} of {}:", r.period, r.dataset);
            let _ = writeln!(t, "  invoices: {}", r.invoices);
            for (currency, total) in &r.billed {
                let _ = writeln!(t, "  billed {currency}: {total}");
            }
            let _ = writeln!(
                t,
                "  usage: {} read, {} rated, {} unrated, {} rejected",
                r.usage_read, r.usage_rated, r.usage_unrated, r.usage_rejected
            );
            let rejects: u64 = r.rejects_by_table.values().sum();
            let _ = writeln!(t, "  rejected rows, all tables: {rejects}");
        }
        t
    }
}

pub(crate) fn import_detail(i: &ImportPart) -> String {
    let (loaded, rejected) = i
        .rows_by_table
        .values()
        .fold((0, 0), |(l, r), t| (l + t.loaded, r + t.rejected));
    format!(
        "{} files loaded, {} already loaded, {} failed; {loaded} rows loaded, {rejected} rejected",
        i.files_loaded, i.files_already_loaded, i.files_failed
    )
}

pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What became of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelOutcome {
    /// `email to a@x.test`, `webhook https://...`, `outbox /var/outbox`.
    pub channel: String,
    /// `sent`, `not_triggered` or `failed`.
    pub status: String,
    pub error: Option<String>,
}

impl ChannelOutcome {
    /// Whether the channel failed.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Looks up an environment variable: [`process_env`], or a map in tests.
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// The process's environment.
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Sends `summary` to every channel whose triggers match, one after the other, with
/// credentials from the process's environment.
///
/// Never fails as a whole: each channel's failure is in its outcome.
pub async fn send_all(channels: &[NotifyChannel], summary: &Summary) -> Vec<ChannelOutcome> {
    send_all_with(channels, summary, &process_env).await
}

/// As [`send_all`], with credentials looked up in `env`.
pub async fn send_all_with(
    channels: &[NotifyChannel],
    summary: &Summary,
    env: Env<'_>,
) -> Vec<ChannelOutcome> {
    let mut outcomes = Vec::with_capacity(channels.len());
    for c in channels {
        let label = c.label();
        if !summary.triggers(&c.on) {
            outcomes.push(ChannelOutcome {
                channel: label,
                status: "not_triggered".into(),
                error: None,
            });
            continue;
        }
        let result = match &c.channel {
            Channel::Email(e) => send_email(e, summary, env).await,
            Channel::Webhook(w) => send_webhook(w, summary, env).await,
            Channel::Outbox(o) => write_outbox(o, summary).await.map(|_| ()),
        };
        match result {
            Ok(()) => {
                tracing::info!(channel = %label, "notification sent");
                outcomes.push(ChannelOutcome {
                    channel: label,
                    status: "sent".into(),
                    error: None,
                });
            }
            Err(e) => {
                tracing::warn!(channel = %label, error = %e, "notification failed");
                outcomes.push(ChannelOutcome {
                    channel: label,
                    status: "failed".into(),
                    error: Some(e.to_string()),
                });
            }
        }
    }
    outcomes
}

fn env_secret(env: Env<'_>, channel: &str, var: &str) -> Result<String> {
    match env(var) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::MissingEnv {
            channel: channel.to_string(),
            var: var.to_string(),
        }),
    }
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`: the signature header's value.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC-SHA256 takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends the summary by e-mail.
///
/// # Errors
/// [`Error::MissingEnv`] when a credential variable is unset (its value is never part of
/// an error), [`Error::Channel`] when the message cannot be built or the server refuses it.
pub async fn send_email(c: &EmailChannel, summary: &Summary, env: Env<'_>) -> Result<()> {
    use lettre::message::Mailbox;
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let label = format!("email to {}", c.to.join(", "));
    let fail = |message: String| Error::Channel {
        channel: label.clone(),
        message,
    };
    let mailbox = |a: &str| Mailbox::from_str(a).map_err(|e| fail(format!("address `{a}`: {e}")));
    let mut builder = Message::builder()
        .from(mailbox(&c.from)?)
        .subject(summary.subject());
    for to in &c.to {
        builder = builder.to(mailbox(to)?);
    }
    let message = builder
        .header(ContentType::TEXT_PLAIN)
        .body(summary.to_text())
        .map_err(|e| fail(format!("building the message: {e}")))?;

    let mut transport = if c.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.smtp_host)
            .map_err(|e| fail(format!("TLS setup for {}: {e}", c.smtp_host)))?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.smtp_host)
    }
    .port(c.smtp_port)
    .timeout(Some(SEND_TIMEOUT));
    if let (Some(user_var), Some(pass_var)) = (&c.username_env, &c.password_env) {
        let user = env_secret(env, &label, user_var)?;
        let pass = env_secret(env, &label, pass_var)?;
        transport = transport.credentials(Credentials::new(user, pass));
    }
    transport
        .build()
        .send(message)
        .await
        .map_err(|e| fail(format!("SMTP {}:{}: {e}", c.smtp_host, c.smtp_port)))?;
    Ok(())
}

/// POSTs the summary's JSON, signed.
///
/// # Errors
/// [`Error::MissingEnv`] when the secret's variable is unset or empty, [`Error::Channel`]
/// when the request fails or the answer is not 2xx.
pub async fn send_webhook(c: &WebhookChannel, summary: &Summary, env: Env<'_>) -> Result<()> {
    let label = format!("webhook {}", c.url);
    let secret = env_secret(env, &label, &c.secret_env)?;
    let body = summary.to_json().into_bytes();
    let sig = signature(secret.as_bytes(), &body);
    let fail = |message: String| Error::Channel {
        channel: label.clone(),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .map_err(|e| fail(format!("HTTP client: {e}")))?;
    let response = client
        .post(&c.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await
        .map_err(|e| fail(format!("POST: {}", error_chain(&e))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("POST answered {status}")));
    }
    Ok(())
}

/// Writes `<job>-<timestamp>.json` and `.txt` into the outbox (a folder or an
/// object-store prefix). Each is written in one step (object_store writes a local file
/// under a temporary name and renames it; an S3 PUT is whole or absent), so a reader never
/// sees half a file. Returns the two locations, as the outbox's location plus the name.
///
/// # Errors
/// [`Error::Channel`] when the outbox cannot be opened or a file cannot be written.
pub async fn write_outbox(c: &OutboxChannel, summary: &Summary) -> Result<[String; 2]> {
    let fail = |e: billrun_pipeline::PipelineError| Error::Channel {
        channel: format!("outbox {}", c.path),
        message: error_chain(&e),
    };
    let outbox = Dataset::open_or_create(&c.path).map_err(fail)?;
    let stem = format!(
        "{}-{}",
        summary.job,
        summary.finished.format("%Y%m%dT%H%M%SZ")
    );
    let json = format!("{stem}.json");
    let text = format!("{stem}.txt");
    for (name, content) in [(&json, summary.to_json()), (&text, summary.to_text())] {
        let location = outbox.path(name).map_err(fail)?;
        outbox.put(&location, content.into()).await.map_err(fail)?;
    }
    let at = |name: &str| format!("{}/{name}", c.path.trim_end_matches('/'));
    Ok([at(&json), at(&text)])
}

/// An error and its sources, joined by `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}
