//! Datasets on object storage: one folder (prefix) per table, CSV or Parquet files in it.
//!
//! A dataset opened [`Dataset::as_of`] an instant (what `billrun run --as-of` does) is
//! read **as it was at that instant**, from what the import keeps:
//! each master table is the version that was current then (the current file, or the
//! `_history/<table>/` file of the first replacement after the instant), and a
//! transactional table holds only the files whose `_imports/<sha256>.json` record says
//! they were loaded by then. So a past bill run can be repeated as it was.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use billrun_schemas::Table;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{PipelineError, Result};

/// How a file's rows are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Parquet,
}

impl FileFormat {
    /// The format a file name's extension says (`.csv`, `.parquet`), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(FileFormat::Csv)
        } else if lower.ends_with(".parquet") || lower.ends_with(".parq") {
            Some(FileFormat::Parquet)
        } else {
            None
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "CSV",
            FileFormat::Parquet => "Parquet",
        }
    }
}

/// One input file of a table.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub table: Table,
    /// Path relative to the dataset root, as shown to people (`usage/2026-10-a.csv`).
    pub name: String,
    pub location: Path,
    pub format: FileFormat,
    pub size: u64,
    /// Size, ETag and modification time as the store listed them, when it gives an
    /// ETag: what the books remember a file's SHA-256 by.
    pub identity: Option<String>,
}

/// Whether a file name is a data file's: names starting with `.` (hidden: `.DS_Store`)
/// or `_` (markers: `_SUCCESS`) are not. The import and the run share this rule, so
/// that a file the import loads is a file the run reads.
pub fn is_data_file_name(file_name: &str) -> bool {
    !(file_name.starts_with('.') || file_name.starts_with('_'))
}

/// What a table's folder holds.
#[derive(Debug, Clone, Default)]
pub struct TableListing {
    /// Its data files, in name order.
    pub files: Vec<InputFile>,
    /// Hidden or marker files in it, not read (see [`is_data_file_name`]).
    pub skipped: Vec<String>,
}

/// A dataset: a folder or object-store prefix with one sub-folder per table.
#[derive(Debug, Clone)]
pub struct Dataset {
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// The location as the user gave it, for messages and the manifest.
    pub location: String,
    /// Read as it was at this instant, not as it is.
    as_of: Option<AsOf>,
}

/// An instant given as RFC 3339 (`2026-11-02T10:15:00Z`) or as a date (`2026-11-02`,
/// meaning the end of that day, UTC: everything loaded that day counts).
///
/// # Errors
/// The text is neither, as a message for the user.
pub fn parse_instant(text: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let end = d
            .and_hms_nano_opt(23, 59, 59, 999_999_999)
            .expect("23:59:59.999999999 is a time of every day");
        return Ok(end.and_utc());
    }
    Err(format!(
        "`{text}` is neither an RFC 3339 instant (2026-11-02T10:15:00Z) nor a date (2026-11-02)"
    ))
}

/// When something happened to a dataset: an instant, or only a day (records written
/// before instants were kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    Instant(DateTime<Utc>),
    Day(NaiveDate),
}

impl When {
    /// Whether it happened at or before `t`; `None` when only the day is known and it is
    /// `t`'s day.
    fn at_or_before(self, t: DateTime<Utc>) -> Option<bool> {
        match self {
            When::Instant(i) => Some(i <= t),
            When::Day(d) => match d.cmp(&t.date_naive()) {
                std::cmp::Ordering::Less => Some(true),
                std::cmp::Ordering::Greater => Some(false),
                std::cmp::Ordering::Equal => None,
            },
        }
    }

    /// For ordering: a day counts from its start.
    fn sort_key(self) -> DateTime<Utc> {
        match self {
            When::Instant(i) => i,
            When::Day(d) => d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
        }
    }
}

/// The instant a dataset is read at, and its import records, read once.
#[derive(Debug, Clone)]
struct AsOf {
    at: DateTime<Utc>,
    records: Arc<OnceLock<Vec<ImportRecord>>>,
}

/// What `_imports/<sha256>.json` says about a loaded file.
#[derive(Debug, Clone)]
struct ImportRecord {
    table: String,
    sha256: String,
    loaded: When,
}

#[derive(serde::Deserialize)]
struct RawImportRecord {
    table: String,
    sha256: String,
    loaded_at: Option<String>,
    loaded_on: Option<String>,
}

/// How long billrun waits on an S3-compatible store, from the environment (seconds):
/// `BILLRUN_S3_TIMEOUT` per request (default 30), `BILLRUN_S3_CONNECT_TIMEOUT` to
/// connect (5), `BILLRUN_S3_RETRIES` attempts after a failure (3, with exponential
/// backoff) and `BILLRUN_S3_RETRY_TIMEOUT` for a request and its retries in all (60).
/// object_store's own defaults (10 retries within 3 minutes) left a store that accepts
/// and never answers hanging for minutes; each retry is logged (at the default level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Patience {
    pub timeout: std::time::Duration,
    pub connect_timeout: std::time::Duration,
    pub retries: usize,
    pub retry_timeout: std::time::Duration,
}

impl S3Patience {
    /// The settings of the environment.
    ///
    /// # Errors
    /// A variable that is not a whole number of seconds (or retries), named.
    pub fn from_env() -> std::result::Result<Self, String> {
        let read = |name: &str, default: u64| -> std::result::Result<u64, String> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                    format!("{name}=`{text}` is not a whole number (of seconds, or of retries)")
                }),
            }
        };
        let secs = std::time::Duration::from_secs;
        Ok(Self {
            timeout: secs(read("BILLRUN_S3_TIMEOUT", 30)?),
            connect_timeout: secs(read("BILLRUN_S3_CONNECT_TIMEOUT", 5)?),
            retries: read("BILLRUN_S3_RETRIES", 3)? as usize,
            retry_timeout: secs(read("BILLRUN_S3_RETRY_TIMEOUT", 60)?),
        })
    }
}

/// An S3 store for `url` with billrun's [`S3Patience`] and the `AWS_*` settings.
fn s3_store(
    url: &url::Url,
    settings: impl Iterator<Item = (String, String)>,
) -> std::result::Result<(Box<dyn ObjectStore>, Path), String> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    let patience = S3Patience::from_env()?;
    let client = object_store::ClientOptions::new()
        .with_timeout(patience.timeout)
        .with_connect_timeout(patience.connect_timeout);
    let retry = object_store::RetryConfig {
        max_retries: patience.retries,
        retry_timeout: patience.retry_timeout,
        ..Default::default()
    };
    // Client options first: `AWS_ALLOW_HTTP` and the like are set on top of them.
    let mut builder = AmazonS3Builder::new()
        .with_client_options(client)
        .with_retry(retry)
        .with_url(url.as_str());
    for (key, value) in settings {
        if let Ok(key) = key.parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    let store = builder.build().map_err(|e| e.to_string())?;
    let root = Path::from_url_path(url.path()).map_err(|e| e.to_string())?;
    Ok((Box::new(store), root))
}

impl Dataset {
    /// Opens a dataset from a local path or a URL (`file:///x`).
    ///
    /// # Errors
    /// [`PipelineError::DatasetLocation`] when the location cannot be resolved to a store.
    pub fn open(location: &str) -> Result<Self> {
        let local = location.strip_prefix("file://").unwrap_or(location);
        if !location.contains("://") || location.starts_with("file://") {
            let path = std::path::Path::new(local);
            if path.is_file() {
                return Err(PipelineError::DatasetLocation {
                    location: location.to_string(),
                    reason: "it is a file; give the folder that holds one sub-folder per table (customers/, usage/, …)".into(),
                });
            }
        }
        let url = location_url(location)?;
        // Object-store settings (credentials, endpoint, region, allow_http) come from the
        // environment, as `AWS_*` variables: never from job files or logs.
        let settings = std::env::vars()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .filter(|(k, _)| k.starts_with("aws_"));
        let unusable = |reason: String| PipelineError::DatasetLocation {
            location: location.to_string(),
            reason,
        };
        let (store, root) = if matches!(url.scheme(), "s3" | "s3a") {
            s3_store(&url, settings).map_err(unusable)?
        } else {
            object_store::parse_url_opts(&url, settings).map_err(|e| unusable(e.to_string()))?
        };
        Ok(Self {
            store: Arc::from(store),
            root,
            location: location.to_string(),
            as_of: None,
        })
    }

    /// A dataset at `root` of an object store already built (an `InMemory` store in
    /// tests, or a store configured by an embedding program); `location` names it in
    /// messages and the manifest.
    pub fn in_store(store: Arc<dyn ObjectStore>, root: &str, location: &str) -> Self {
        Self {
            store,
            root: Path::from(root),
            location: location.to_string(),
            as_of: None,
        }
    }

    /// This dataset read as it was at `at` (see the module's documentation).
    #[must_use]
    pub fn as_of(mut self, at: DateTime<Utc>) -> Self {
        self.as_of = Some(AsOf {
            at,
            records: Arc::default(),
        });
        self
    }

    /// The instant this dataset is read at, if not now.
    pub fn read_at(&self) -> Option<DateTime<Utc>> {
        self.as_of.as_ref().map(|a| a.at)
    }

    /// Lists a table's files in file-name order (the order that decides which duplicate
    /// comes first). Files that are neither CSV nor Parquet are an error rather than skipped,
    /// so a mistyped extension cannot quietly leave usage unbilled.
    ///
    /// # Errors
    /// Listing failures, and [`PipelineError::UnknownFormat`].
    pub async fn table_files(&self, table: Table) -> Result<Vec<InputFile>> {
        Ok(self.table_listing(table).await?.files)
    }

    /// [`Dataset::table_files`], and the names in the table's folder that are not data
    /// files (hidden or marker files: names starting with `.` or `_`), which a run
    /// reports instead of skipping them in silence.
    ///
    /// # Errors
    /// As [`Dataset::table_files`].
    pub async fn table_listing(&self, table: Table) -> Result<TableListing> {
        let listing = self.files_under(table.name(), table).await?;
        match &self.as_of {
            None => Ok(listing),
            Some(as_of) => Ok(TableListing {
                files: self.files_as_of(table, listing.files, as_of).await?,
                skipped: listing.skipped,
            }),
        }
    }

    /// The files of `table` as they were at `as_of.at` (see the module's note).
    async fn files_as_of(
        &self,
        table: Table,
        current: Vec<InputFile>,
        as_of: &AsOf,
    ) -> Result<Vec<InputFile>> {
        let at = as_of.at;
        let error = |file: &str, reason: String| PipelineError::AsOf {
            file: file.to_string(),
            as_of: at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            reason,
        };
        let day_only = |what: &str| {
            format!(
                "{what} records only the day, not the instant; give --as-of an instant on another day"
            )
        };
        let records = self.import_records(as_of).await?;
        if table.is_transactional() {
            let mut kept = Vec::with_capacity(current.len());
            for file in current {
                // Imported files are named `<source stem>-<first 16 hex of SHA-256>`.
                let stem = file.name.rsplit('/').next().unwrap_or_default();
                let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
                let short = stem.rsplit_once('-').map(|(_, s)| s).unwrap_or_default();
                let record = records.iter().find(|r| {
                    r.table == table.name() && short.len() == 16 && r.sha256.starts_with(short)
                });
                let Some(record) = record else {
                    return Err(error(
                        &file.name,
                        "no import record (`_imports/<sha256>.json`) says when it was loaded; \
                         only files loaded by `billrun import` can be read as of an instant"
                            .into(),
                    ));
                };
                match record.loaded.at_or_before(at) {
                    Some(true) => kept.push(file),
                    Some(false) => {}
                    None => {
                        return Err(error(
                            &file.name,
                            day_only(&format!(
                                "its import record _imports/{}.json",
                                record.sha256
                            )),
                        ));
                    }
                }
            }
            return Ok(kept);
        }
        // Master data: nothing, if no file of the table had been loaded by then.
        let mut loaded = records
            .iter()
            .filter(|r| r.table == table.name())
            .map(|r| (r, r.loaded.at_or_before(at)));
        if !loaded.clone().any(|(_, by_then)| by_then == Some(true)) {
            if let Some((r, _)) = loaded.find(|(_, by_then)| by_then.is_none()) {
                return Err(error(
                    &format!("_imports/{}.json", r.sha256),
                    day_only("this import record"),
                ));
            }
            return Ok(Vec::new());
        }
        // Else the version the first replacement after the instant kept, or the current.
        let mut history = Vec::new();
        for file in self
            .files_under(&format!("_history/{}", table.name()), table)
            .await?
            .files
        {
            let replaced = history_time(&file.name).ok_or_else(|| {
                error(&file.name, "not a history file name billrun writes".into())
            })?;
            history.push((replaced, file));
        }
        history.sort_by(|a, b| {
            (a.0.0.sort_key(), a.0.1, &a.1.name).cmp(&(b.0.0.sort_key(), b.0.1, &b.1.name))
        });
        for ((replaced, _), file) in history {
            match replaced.at_or_before(at) {
                Some(true) => {}
                Some(false) => return Ok(vec![file]),
                None => return Err(error(&file.name, day_only("this history file's name"))),
            }
        }
        Ok(current)
    }

    /// Every `_imports/<sha256>.json` record, read once per opened dataset.
    async fn import_records<'a>(&self, as_of: &'a AsOf) -> Result<&'a Vec<ImportRecord>> {
        if let Some(records) = as_of.records.get() {
            return Ok(records);
        }
        let prefix = self.path("_imports")?;
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut records = Vec::with_capacity(metas.len());
        for meta in metas {
            let name = relative_name(&self.root, &meta.location);
            let bad = |reason: String| PipelineError::AsOf {
                file: name.clone(),
                as_of: as_of
                    .at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                reason,
            };
            let bytes = self.get(&meta.location).await?;
            let raw: RawImportRecord = serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("not an import record: {e}")))?;
            let loaded = match (&raw.loaded_at, &raw.loaded_on) {
                (Some(t), _) => When::Instant(
                    DateTime::parse_from_rfc3339(t)
                        .map_err(|e| bad(format!("`loaded_at` `{t}`: {e}")))?
                        .with_timezone(&Utc),
                ),
                (None, Some(d)) => When::Day(
                    NaiveDate::parse_from_str(d, "%Y-%m-%d")
                        .map_err(|e| bad(format!("`loaded_on` `{d}`: {e}")))?,
                ),
                (None, None) => return Err(bad("says neither `loaded_at` nor `loaded_on`".into())),
            };
            records.push(ImportRecord {
                table: raw.table,
                sha256: raw.sha256,
                loaded,
            });
        }
        let _ = as_of.records.set(records);
        Ok(as_of.records.get().expect("set just now"))
    }

    /// The CSV and Parquet files below `prefix` (relative to the root), in name order.
    async fn files_under(&self, prefix: &str, table: Table) -> Result<TableListing> {
        let prefix = self.path(prefix)?;
        let mut metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        let mut files = Vec::with_capacity(metas.len());
        let mut skipped = Vec::new();
        for meta in metas {
            let name = relative_name(&self.root, &meta.location);
            let file_name = meta.location.filename().unwrap_or_default();
            if !is_data_file_name(file_name) {
                // Hidden and marker files (`.DS_Store`, `_SUCCESS`) carry no rows.
                skipped.push(name);
                continue;
            }
            let format =
                FileFormat::from_name(file_name).ok_or_else(|| PipelineError::UnknownFormat {
                    file: name.clone(),
                    table: table.name().to_string(),
                })?;
            let identity = meta.e_tag.as_ref().map(|tag| {
                format!(
                    "{} {tag} {}",
                    meta.size,
                    meta.last_modified
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                )
            });
            files.push(InputFile {
                table,
                name,
                location: meta.location,
                format,
                size: meta.size,
                identity,
            });
        }
        Ok(TableListing { files, skipped })
    }

    /// Reads a whole file.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn read(&self, file: &InputFile) -> Result<Bytes> {
        Ok(self.store.get(&file.location).await?.bytes().await?)
    }

    /// Opens a location that may not exist yet: a local folder is created first.
    ///
    /// # Errors
    /// As [`Dataset::open`], and I/O creating the folder.
    pub fn open_or_create(location: &str) -> Result<Self> {
        if !location.contains("://") {
            std::fs::create_dir_all(location)
                .map_err(PipelineError::io(format!("creating {location}")))?;
        }
        Self::open(location)
    }

    /// The object at `relative` (a `/`-separated path below the root).
    ///
    /// # Errors
    /// [`PipelineError::DatasetLocation`] when `relative` is not a valid object path
    /// (for example a `..` segment).
    pub fn path(&self, relative: &str) -> Result<Path> {
        let full = if self.root.as_ref().is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.root.as_ref())
        };
        Path::parse(&full).map_err(|e| PipelineError::DatasetLocation {
            location: format!("{}/{relative}", self.location),
            reason: e.to_string(),
        })
    }

    /// Every object below the root, with its path relative to the root and its size, in
    /// name order.
    ///
    /// # Errors
    /// Listing failures.
    pub async fn list_all(&self) -> Result<Vec<(String, Path, u64)>> {
        let mut metas: Vec<_> = self.store.list(Some(&self.root)).try_collect().await?;
        metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        Ok(metas
            .into_iter()
            .map(|m| (relative_name(&self.root, &m.location), m.location, m.size))
            .collect())
    }

    /// Reads the object at `location`.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn get(&self, location: &Path) -> Result<Bytes> {
        Ok(self.store.get(location).await?.bytes().await?)
    }

    /// Whether an object exists at `location`.
    ///
    /// # Errors
    /// Object-store failures other than "not found".
    pub async fn exists(&self, location: &Path) -> Result<bool> {
        match self.store.head(location).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `bytes` at `location`, replacing what was there, in one step.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn put(&self, location: &Path, bytes: Bytes) -> Result<()> {
        self.store.put(location, bytes.into()).await?;
        Ok(())
    }

    /// Writes `bytes` at `location` only if nothing is there: `false` if something was.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn put_new(&self, location: &Path, bytes: Bytes) -> Result<bool> {
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        match self.store.put_opts(location, bytes.into(), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves an object (copy and delete where the store has no rename).
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.store.rename(from, to).await?;
        Ok(())
    }

    /// Deletes an object; a missing object is not an error.
    ///
    /// # Errors
    /// Object-store failures other than "not found".
    pub async fn delete(&self, location: &Path) -> Result<()> {
        match self.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// When a history file's version was replaced, and its sequence within that instant:
/// `20261102T101500.123456Z-0003-before-<sha>.parquet`, or (written before instants
/// were kept) `2026-11-02-before-<sha>.parquet`.
fn history_time(name: &str) -> Option<(When, u32)> {
    let file = name.rsplit('/').next()?;
    let (head, _) = file.split_once("-before-")?;
    if let Ok(day) = NaiveDate::parse_from_str(head, "%Y-%m-%d") {
        return Some((When::Day(day), 0));
    }
    let (instant, seq) = head.split_once('-')?;
    let instant = NaiveDateTime::parse_from_str(instant, "%Y%m%dT%H%M%S%.fZ").ok()?;
    Some((When::Instant(instant.and_utc()), seq.parse().ok()?))
}

/// The name of the history file that keeps the version replaced at `at`, the `seq`th
/// replacement of its sweep, by the file with SHA-256 prefix `short_sha`.
pub fn history_file_name(at: DateTime<Utc>, seq: u32, short_sha: &str) -> String {
    format!(
        "{}-{seq:04}-before-{short_sha}.parquet",
        at.format("%Y%m%dT%H%M%S%.6fZ")
    )
}

fn relative_name(root: &Path, location: &Path) -> String {
    let full = location.as_ref();
    let root = root.as_ref();
    full.strip_prefix(root)
        .map(|s| s.trim_start_matches('/'))
        .unwrap_or(full)
        .to_string()
}

/// Turns a user-given location into a URL: URLs pass through, local paths become `file://`.
fn location_url(location: &str) -> Result<Url> {
    if location.contains("://") {
        return Url::parse(location).map_err(|e| PipelineError::DatasetLocation {
            location: location.to_string(),
            reason: e.to_string(),
        });
    }
    let path = std::path::Path::new(location);
    let absolute = path
        .canonicalize()
        .map_err(|e| PipelineError::DatasetLocation {
            location: location.to_string(),
            reason: e.to_string(),
        })?;
    Url::from_directory_path(&absolute).map_err(|()| PipelineError::DatasetLocation {
        location: location.to_string(),
        reason: "not an absolute directory path".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_names_order_by_instant_and_sequence_and_old_names_still_read() {
        let at = DateTime::parse_from_rfc3339("2026-11-02T10:15:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let name = history_file_name(at, 3, "abcdef0123456789");
        assert_eq!(
            name,
            "20261102T101500.123456Z-0003-before-abcdef0123456789.parquet"
        );
        assert_eq!(
            history_time(&format!("_history/customers/{name}")),
            Some((When::Instant(at), 3))
        );
        let day = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert_eq!(
            history_time("_history/customers/2026-11-02-before-abcdef0123456789.parquet"),
            Some((When::Day(day), 0))
        );
        assert_eq!(history_time("_history/customers/notes.parquet"), None);
        // A day-only time cannot be placed against an instant of the same day.
        assert_eq!(When::Day(day).at_or_before(at), None);
        assert_eq!(
            When::Day(day).at_or_before(at + chrono::Duration::days(1)),
            Some(true)
        );
        assert_eq!(
            When::Day(day).at_or_before(at - chrono::Duration::days(1)),
            Some(false)
        );
    }

    #[test]
    fn as_of_takes_an_instant_or_a_whole_day() {
        assert_eq!(
            parse_instant("2026-11-02T11:15:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-02T10:15:00+00:00"
        );
        assert_eq!(
            parse_instant("2026-11-02").unwrap().to_rfc3339(),
            "2026-11-02T23:59:59.999999999+00:00"
        );
        assert_eq!(
            parse_instant("yesterday").unwrap_err(),
            "`yesterday` is neither an RFC 3339 instant (2026-11-02T10:15:00Z) nor a date (2026-11-02)"
        );
    }

    #[tokio::test]
    async fn lists_table_files_in_name_order_and_refuses_unknown_formats() {
        let dir = tempfile::tempdir().unwrap();
        let usage = dir.path().join("usage");
        std::fs::create_dir(&usage).unwrap();
        for name in ["b.csv", "a.parquet", "_SUCCESS", ".hidden"] {
            std::fs::write(usage.join(name), b"").unwrap();
        }
        let dataset = Dataset::open(dir.path().to_str().unwrap()).unwrap();
        let files = dataset.table_files(Table::Usage).await.unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["usage/a.parquet", "usage/b.csv"]);
        // Hidden and marker files are not read, and said so.
        let listing = dataset.table_listing(Table::Usage).await.unwrap();
        assert_eq!(listing.skipped, ["usage/.hidden", "usage/_SUCCESS"]);

        std::fs::write(usage.join("c.xlsx"), b"").unwrap();
        let err = dataset.table_files(Table::Usage).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "usage/c.xlsx: files of table `usage` must end in .csv or .parquet"
        );
        assert!(
            dataset
                .table_files(Table::Customers)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// A dataset in an `InMemory` store holding `files` (name, content).
    async fn in_memory(files: &[(&str, &str)]) -> Dataset {
        let dataset = Dataset::in_store(
            Arc::new(object_store::memory::InMemory::new()),
            "ds",
            "memory:///ds",
        );
        for (name, content) in files {
            let at = dataset.path(name).unwrap();
            dataset
                .put(&at, Bytes::from(content.to_string()))
                .await
                .unwrap();
        }
        dataset
    }

    /// The names of the usage files `dataset` reads.
    async fn usage_files(dataset: &Dataset) -> Vec<String> {
        let files = dataset.table_files(Table::Usage).await.unwrap();
        files.into_iter().map(|f| f.name).collect()
    }

    #[tokio::test]
    async fn an_in_memory_dataset_lists_its_tables_and_creates_objects_only_once() {
        let dataset = in_memory(&[
            ("usage/2026-10-b.csv", "event_id\n"),
            ("usage/2026-10-a.parquet", "PAR1"),
            ("usage/_SUCCESS", ""),
            ("customers/customers.csv", "customer_id\n"),
        ])
        .await;
        assert_eq!(
            usage_files(&dataset).await,
            ["usage/2026-10-a.parquet", "usage/2026-10-b.csv"]
        );
        assert!(dataset.table_files(Table::Orders).await.unwrap().is_empty());
        // `put_new` is a create-only put: what the sweep lock relies on.
        let lock = dataset.path("_billrun/sweep.lock").unwrap();
        assert!(dataset.put_new(&lock, Bytes::from("first")).await.unwrap());
        assert!(!dataset.put_new(&lock, Bytes::from("second")).await.unwrap());
        assert_eq!(dataset.get(&lock).await.unwrap(), Bytes::from("first"));
        // An unknown extension is an error naming the file, not a file skipped.
        let notes = dataset.path("usage/notes.txt").unwrap();
        dataset.put(&notes, Bytes::from("x")).await.unwrap();
        let error = dataset.table_files(Table::Usage).await.unwrap_err();
        assert!(error.to_string().contains("usage/notes.txt"), "{error}");
    }

    #[tokio::test]
    async fn a_dataset_as_of_an_instant_keeps_the_usage_files_loaded_by_then() {
        let sha = |c: char| c.to_string().repeat(64);
        let record = |c: char, at: &str| {
            format!(
                r#"{{"table": "usage", "sha256": "{}", "loaded_at": "{at}"}}"#,
                sha(c)
            )
        };
        let early = format!("usage/oct-{}.csv", &sha('a')[..16]);
        let late = format!("usage/nov-{}.csv", &sha('b')[..16]);
        let dataset = in_memory(&[
            (early.as_str(), "event_id\n"),
            (late.as_str(), "event_id\n"),
            (
                &format!("_imports/{}.json", sha('a')),
                &record('a', "2026-11-01T02:00:00Z"),
            ),
            (
                &format!("_imports/{}.json", sha('b')),
                &record('b', "2026-11-02T02:00:00Z"),
            ),
        ])
        .await;
        let at = parse_instant("2026-11-01T12:00:00Z").unwrap();
        assert_eq!(usage_files(&dataset.clone().as_of(at)).await, [early]);
        // As it is now, both.
        assert_eq!(dataset.table_files(Table::Usage).await.unwrap().len(), 2);
    }
}
