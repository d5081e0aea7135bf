//! The import workflow: sweep an inbox on object storage into a dataset, exactly once.
//!
//! Upstream systems drop extracts into an inbox (`<inbox>/<table>/<file>` or
//! `<inbox>/<table>[-_.]<anything>.csv|parquet`). A sweep recognises each file's table,
//! validates it as a bill run does, appends transactional rows (usage, orders, payments,
//! credit memos) and upserts master data by key into the dataset, and moves the file to
//! `processed/<date>/` or, when it is unusable as a whole, to `failed/<date>/` with a
//! reason file beside it. Files are identified by content hash, so a file dropped twice or
//! a sweep killed half-way and run again loads every row exactly once.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};

use billrun_schemas::{Table, rejects_batch};

use crate::error::{PipelineError, Result};
use crate::progress::Progress;
use crate::read::decode_and_validate;
use crate::store::dataset::{Dataset, FileFormat, InputFile};

mod lock;
mod mapped;
mod summary;
mod upsert;

use lock::SweepLock;
use mapped::decode_mapped;
use upsert::{file_batches, file_schema, parquet_bytes, upsert};

/// Maps an upstream export onto a template with a SQL `SELECT` over a table named
/// `source` (the file's columns, as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// A name for messages.
    pub name: String,
    /// Glob on the file's name within the inbox (`crm/accounts*.csv`).
    pub file_pattern: String,
    /// The template the SELECT produces.
    pub table: Table,
    /// `SELECT ... FROM source`.
    pub sql: String,
}

/// What a sweep is asked to do.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Inbox location: a folder or URL (`file:///x`, `s3://bucket/inbox`).
    pub inbox: String,
    /// Dataset location the good rows are loaded into.
    pub dataset: String,
    pub mappings: Vec<Mapping>,
    /// The date of the `processed/<date>/` and `failed/<date>/` folders.
    pub today: NaiveDate,
    pub progress: Progress,
}

/// What happened to one swept file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Its good rows were loaded (its bad rows, if any, are in the rejects).
    Loaded,
    /// The same content was loaded before; nothing was loaded again.
    AlreadyLoaded,
    /// Unusable as a whole (unknown table, wrong header, unreadable): moved to `failed/`.
    Failed,
}

/// One swept file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOutcome {
    /// Path within the inbox.
    pub file: String,
    pub table: Option<String>,
    pub sha256: String,
    pub status: FileStatus,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    /// Why the file failed.
    pub reason: Option<String>,
    /// Where the file was moved, within the inbox.
    pub moved_to: String,
}

/// A sweep's outcome, also the body of its notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub inbox: String,
    pub dataset: String,
    pub files: Vec<FileOutcome>,
    /// Rows loaded and rejected per table.
    pub rows_by_table: std::collections::BTreeMap<String, (u64, u64)>,
    /// The most frequent reject reasons with their counts, most frequent first.
    pub top_reject_reasons: Vec<(String, u64)>,
}

/// Sweeps `options.inbox` into `options.dataset`.
///
/// # Errors
/// The inbox or dataset cannot be reached, or another sweep holds the inbox's lock.
/// Problems of single files are not errors: they are reported in the summary.
pub async fn sweep(options: &ImportOptions) -> Result<ImportSummary> {
    let inbox = Dataset::open(&options.inbox)?;
    let dataset = Dataset::open_or_create(&options.dataset)?;
    let lock = SweepLock::acquire(&inbox).await?;
    let result = sweep_locked(&inbox, &dataset, options).await;
    // The lock goes whatever happened; a failed release is only worth a warning, since
    // a stale lock is broken after LOCK_STALE_HOURS.
    if let Err(e) = lock.release(&inbox).await {
        tracing::warn!("could not release the inbox lock: {e}");
    }
    result
}

/// Folders of the inbox a sweep never reads from.
const PROCESSED: &str = "processed";

const FAILED: &str = "failed";

/// The lock and other bookkeeping of billrun in an inbox.
const BOOKKEEPING: &str = "_billrun";

use crate::failpoint;

async fn sweep_locked(
    inbox: &Dataset,
    dataset: &Dataset,
    options: &ImportOptions,
) -> Result<ImportSummary> {
    let mut summary = ImportSummary {
        inbox: options.inbox.clone(),
        dataset: options.dataset.clone(),
        ..ImportSummary::default()
    };
    let files: Vec<(String, object_store::path::Path, u64)> = inbox
        .list_all()
        .await?
        .into_iter()
        .filter(|(name, _, _)| {
            let first = name.split('/').next().unwrap_or_default();
            !(first == PROCESSED
                || first == FAILED
                || first.starts_with('_')
                || first.starts_with('.')
                || name.rsplit('/').next().unwrap_or_default().starts_with('.'))
        })
        .collect();
    let bar = options
        .progress
        .items("sweeping the inbox", files.len() as u64);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for (seq, (name, location, size)) in files.into_iter().enumerate() {
        let seq = u32::try_from(seq).unwrap_or(u32::MAX);
        let outcome = sweep_file(inbox, dataset, options, (&name, seq), &location, size).await?;
        if let Some(table) = &outcome.0.table {
            let entry = summary.rows_by_table.entry(table.clone()).or_default();
            entry.0 += outcome.0.rows_loaded;
            entry.1 += outcome.0.rows_rejected;
        }
        for reason in outcome.1 {
            *reasons.entry(reason).or_default() += 1;
        }
        summary.files.push(outcome.0);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    reasons.truncate(5);
    summary.top_reject_reasons = reasons;
    Ok(summary)
}

/// Which table a file is for, and how to read it.
#[derive(Debug, Clone)]
enum Source<'a> {
    Template(Table),
    Mapped(&'a Mapping),
}

impl Source<'_> {
    fn table(&self) -> Table {
        match self {
            Source::Template(t) => *t,
            Source::Mapped(m) => m.table,
        }
    }
}

/// Recognises a file's table: a mapping whose pattern matches, else the folder
/// (`usage/x.csv`), else the start of the file name (`usage-2026-10.csv`).
fn recognise<'a>(name: &str, mappings: &'a [Mapping]) -> Option<Source<'a>> {
    if let Some(m) = mappings
        .iter()
        .find(|m| glob::Pattern::new(&m.file_pattern).is_ok_and(|p| p.matches(name)))
    {
        return Some(Source::Mapped(m));
    }
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or_default();
    if parts.next().is_some()
        && let Some(t) = Table::from_name(first)
    {
        return Some(Source::Template(t));
    }
    let file = name.rsplit('/').next().unwrap_or_default();
    let stem = file.split_once('.').map_or(file, |(s, _)| s);
    Table::every()
        .filter(|t| {
            stem == t.name()
                || stem
                    .strip_prefix(t.name())
                    .is_some_and(|rest| rest.starts_with(['-', '_', '.']))
        })
        .max_by_key(|t| t.name().len())
        .map(Source::Template)
}

/// A name safe to use below `processed/` and `failed/`: `..` can never address a
/// folder above.
fn safe_name(name: &str) -> String {
    name.replace("..", "__")
}

async fn move_to(
    inbox: &Dataset,
    from: &object_store::path::Path,
    folder: &str,
    today: NaiveDate,
    name: &str,
) -> Result<String> {
    let moved_to = format!("{folder}/{today}/{}", safe_name(name));
    inbox.rename(from, &inbox.path(&moved_to)?).await?;
    Ok(moved_to)
}

/// Sweeps one file; returns its outcome and the reasons of its rejected rows.
async fn sweep_file(
    inbox: &Dataset,
    dataset: &Dataset,
    options: &ImportOptions,
    (name, seq): (&str, u32),
    location: &object_store::path::Path,
    size: u64,
) -> Result<(FileOutcome, Vec<String>)> {
    let mut outcome = FileOutcome {
        file: name.to_string(),
        table: None,
        sha256: String::new(),
        status: FileStatus::Failed,
        rows_loaded: 0,
        rows_rejected: 0,
        reason: None,
        moved_to: String::new(),
    };
    let today = options.today;
    let fail = |mut outcome: FileOutcome, reason: String| async move {
        tracing::warn!("{}: {reason}", outcome.file);
        let moved_to = move_to(inbox, location, FAILED, today, &outcome.file).await?;
        let reason_file = inbox.path(&format!("{moved_to}.reason.txt"))?;
        inbox
            .put(
                &reason_file,
                Bytes::from(format!("{}: {reason}\n", outcome.file)),
            )
            .await?;
        outcome.reason = Some(reason);
        outcome.moved_to = moved_to;
        Ok::<_, PipelineError>((outcome, Vec::new()))
    };

    if name.contains("..") {
        return fail(
            outcome,
            "the file name contains `..`; refused so that no name can address a path outside the inbox"
                .to_string(),
        )
        .await;
    }
    let Some(source) = recognise(name, &options.mappings) else {
        let known: Vec<&str> = Table::every().map(Table::name).collect();
        return fail(
            outcome,
            format!(
                "no table is named by its folder or file name; put it in `<table>/` or name it `<table>-….csv` (tables: {})",
                known.join(", ")
            ),
        )
        .await;
    };
    let table = source.table();
    outcome.table = Some(table.name().to_string());
    let Some(format) = FileFormat::from_name(name) else {
        return fail(outcome, "not a .csv or .parquet file".to_string()).await;
    };
    if size == 0 {
        return fail(outcome, "the file is empty (0 bytes)".to_string()).await;
    }
    let bytes = inbox.get(location).await?;
    let sha = hex::encode(Sha256::digest(&bytes));
    outcome.sha256 = sha.clone();
    if format == FileFormat::Csv {
        let data = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        if let Err(e) = std::str::from_utf8(data) {
            return fail(
                outcome,
                format!(
                    "not UTF-8 text (invalid byte at offset {}); export the file as UTF-8",
                    e.valid_up_to()
                ),
            )
            .await;
        }
    }

    // Exactly once: a file whose content was loaded before loads nothing again.
    let marker = dataset.path(&format!("_imports/{sha}.json"))?;
    if dataset.exists(&marker).await? {
        outcome.status = FileStatus::AlreadyLoaded;
        outcome.moved_to = move_to(inbox, location, PROCESSED, today, name).await?;
        return Ok((outcome, Vec::new()));
    }

    let file = InputFile {
        table,
        name: name.to_string(),
        location: location.clone(),
        format,
        size,
        identity: None,
    };
    let decoded = match &source {
        Source::Template(_) => {
            let bytes = bytes.clone();
            let file = file.clone();
            tokio::task::spawn_blocking(move || decode_and_validate(&file, bytes, 0))
                .await
                .map_err(|e| PipelineError::Internal(format!("decoder task failed: {e}")))?
        }
        Source::Mapped(mapping) => decode_mapped(&file, &bytes, mapping).await,
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(
            e @ (PipelineError::Template { .. }
            | PipelineError::UnreadableFile { .. }
            | PipelineError::DataFusion(_)
            | PipelineError::Arrow(_)),
        ) => {
            return fail(outcome, e.to_string()).await;
        }
        Err(e) => return Err(e),
    };
    // A file of effective-dated versions (plans, tax rates) loads whole or not at all:
    // its good rows alone would leave a version without its rejected row, or the
    // version before it in force in its place.
    if !table.version_key().is_empty()
        && let Some(first) = decoded.refused.first()
    {
        let reason = format!(
            "{} row(s) rejected, the first {}; a {} file loads whole or not at all (a version without its rejected rows would bill at another price): fix the rows and send the file again",
            decoded.rejects.len(),
            first.what,
            table.name()
        );
        return fail(outcome, reason).await;
    }
    outcome.rows_loaded = decoded.batches.iter().map(|b| b.num_rows() as u64).sum();
    outcome.rows_rejected = decoded.rejects.len() as u64;
    let reasons: Vec<String> = decoded
        .rejects
        .iter()
        .map(|r| r.code.as_str().to_string())
        .collect();

    // Load: append (named by content, so a re-run rewrites the same file) or upsert.
    // The instant the file's rows join the dataset, recorded in its history file name and
    // its import record, so that the dataset can be read as it was at any instant.
    let now = chrono::Utc::now();
    let short = &sha[..16];
    let rows = file_batches(table, &decoded.batches)?;
    if table.is_transactional() {
        if !rows.is_empty() {
            // Named after the source file, so that file-name order (which decides the
            // first of two duplicate events) stays the upstream system's order, and after
            // the content, so that a re-run rewrites the same file.
            let to = dataset.path(&format!("{}/{}-{short}.parquet", table.name(), stem(name)))?;
            dataset
                .put(&to, parquet_bytes(&file_schema(table), &rows)?)
                .await?;
        }
    } else {
        upsert(dataset, table, rows, (now, seq), short).await?;
    }
    if !decoded.rejects.is_empty() {
        let to = dataset.path(&format!("_rejects/{}/import-{short}.parquet", table.name()))?;
        let batch = rejects_batch(&decoded.rejects)?;
        dataset
            .put(&to, parquet_bytes(&batch.schema(), &[batch])?)
            .await?;
    }
    failpoint("after_load");
    let record = serde_json::json!({
        "file": name,
        "table": table.name(),
        "sha256": sha,
        "rows_loaded": outcome.rows_loaded,
        "rows_rejected": outcome.rows_rejected,
        "loaded_on": today.to_string(),
        "loaded_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    dataset
        .put(&marker, Bytes::from(record.to_string()))
        .await?;
    failpoint("after_marker");
    outcome.status = FileStatus::Loaded;
    outcome.moved_to = move_to(inbox, location, PROCESSED, today, name).await?;
    Ok((outcome, reasons))
}

/// A file's name without folders and extension, safe as part of an object name.
fn stem(name: &str) -> String {
    let file = name.rsplit('/').next().unwrap_or(name);
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    // A loaded file is a data file by name (`is_data_file_name`): a source named
    // `_late.csv` is loaded as `late-<sha>.parquet`, never as a name the run skips.
    let stem = stem.trim_start_matches(['.', '_']);
    safe_name(if stem.is_empty() { "file" } else { stem })
}
