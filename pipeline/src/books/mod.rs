//! The books: a location (a folder, `file://` or `s3://`) that holds every posted period,
//! written only by posting, atomically and exactly once.
//!
//! Layout, below the location:
//!
//! ```text
//! _billrun_books.json          the format marker, created by the first posting
//! log/0000000001.json          one commit per posting, created only if absent
//! v0000000001-<token>/         the files of that posting, written before its commit:
//!     state.json               what the next run starts from (open receivables,
//!                              credit and unapplied cash, memos posted, the files
//!                              settled, the next invoice number)
//!     invoices.json            the invoices it posted, numbered (for reports)
//!     applications.json        what paid or credited what
//!     payments.json            the payments it posted
//!     payment_ids.txt          their ids, sorted, one per line: a payment id sent
//!                              again is looked up here, without reading every
//!                              posted payment (the state does not grow with them)
//!     journal.ledger, journal.csv
//!     rated_usage.parquet      the events it billed (duplicates across runs), and
//!     rated_usage-late.parquet the late events it billed, if any
//!     usage_totals.json        rated usage per (period, subscription, product)
//!     lines.json               its invoice lines (what corrections compare against)
//!   master/<sha256>            every master-data file a posting run read, by content
//!                              (its fingerprint names them): late usage of a posted
//!                              period is priced with its run's master data
//! ```
//!
//! A posting writes its files into a folder of its own (the token is unique to the
//! attempt), then creates its commit with a create-only put: on a local disk an atomic
//! hard link, on S3 a conditional `If-None-Match` put. Readers see only committed
//! versions, so a killed posting leaves an orphan folder and nothing else; two runs
//! posting at once race for the same commit name and the second is refused, naming
//! the first. A version's files are never rewritten.
//!
//! Why not Delta Lake: see `docs/CONTRACT-NOTES.md` ("The books"). The commit protocol
//! is the same idea (a numbered log entry created only if absent) without the 200
//! crates delta-rs brings into every build.

mod reports;
pub use reports::{BooksReport, ReportOptions, books_report};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use billrun_accounting::books::{Application, BooksState, Receivable};
use billrun_accounting::ledger::Payment;

use crate::error::{PipelineError, Result};
use crate::store::dataset::Dataset;

/// The books format this billrun writes and reads.
///
/// 2: posted payments kept per posting (`payments.json`, `payment_ids.txt`), no longer
/// in `state.json`.
pub const BOOKS_FORMAT: u32 = 2;

const MARKER: &str = "_billrun_books.json";

/// One posting, as its commit records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub format: u32,
    pub version: u64,
    /// The billing period posted (`2026-10`).
    pub period: String,
    pub posted_at: DateTime<Utc>,
    /// The instant the run read its dataset at.
    pub dataset_read_at: DateTime<Utc>,
    pub billrun_version: String,
    pub dataset: String,
    /// What decides a run's outputs besides the books: the period, the options and the
    /// inputs (file, SHA-256).
    pub fingerprint: RunFingerprint,
    /// The folder of this version's files.
    pub files: String,
    /// Invoices posted, and the numbers they took.
    pub invoices: u64,
    pub first_invoice_number: Option<u64>,
}

/// What a run's outputs depend on besides the books: running a posted period again is
/// "on the same inputs" when this is equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFingerprint {
    pub carve_order: String,
    /// (table, file, sha256) of every input file read, in reading order.
    pub inputs: Vec<(String, String, String)>,
}

/// An invoice as posted: its receivable at posting, its number and period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedInvoice {
    pub receivable: Receivable,
    pub invoice_number: u64,
    pub period: String,
    pub corrects_invoice_id: Option<String>,
    /// The customer's tax region when it was posted, and the rate its tax was computed
    /// at (none without a region).
    #[serde(default)]
    pub tax_region: Option<String>,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub tax_rate: Option<rust_decimal::Decimal>,
}

/// Rated usage of one (subscription, product) in one period, as a posting billed it:
/// what late usage of that period continues from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedUsageTotal {
    pub period: String,
    pub subscription_id: String,
    pub product_id: String,
    pub events: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: rust_decimal::Decimal,
    /// Σ of the events' unrounded amounts.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: rust_decimal::Decimal,
}

/// One posted invoice line, as corrections compare against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedLine {
    pub invoice_id: String,
    /// `usage`, `recurring`, `minimum`, `discount`, `credit` or `tax`.
    pub kind: String,
    pub subscription_id: Option<String>,
    pub product_id: Option<String>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub quantity: Option<rust_decimal::Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: rust_decimal::Decimal,
}

/// The files a posting writes into its version's folder.
#[derive(Debug)]
pub struct PostingFiles {
    pub state: BooksState,
    pub invoices: Vec<PostedInvoice>,
    pub applications: Vec<Application>,
    /// The payments the run posted.
    pub payments: Vec<Payment>,
    pub journal_ledger: String,
    pub journal_csv: Vec<u8>,
    /// The run's `rated_usage` (its Parquet file as written): the events billed, for
    /// duplicates across runs.
    pub rated_usage: Bytes,
    /// The late events it billed (`rated_usage/part-00001.parquet`), if any.
    pub rated_usage_late: Option<Bytes>,
    pub usage_totals: Vec<PostedUsageTotal>,
    pub lines: Vec<PostedLine>,
}

/// A books location.
#[derive(Debug, Clone)]
pub struct Books {
    store: Dataset,
    pub location: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: u32,
    created_by: String,
}

impl Books {
    /// Opens (a local folder: creates) a books location; nothing is written until the
    /// first posting.
    ///
    /// # Errors
    /// A location that cannot be resolved.
    pub fn open(location: &str) -> Result<Self> {
        Ok(Self {
            store: Dataset::open_or_create(location)?,
            location: location.to_string(),
        })
    }

    /// Books on an object store already built (tests).
    pub fn in_store(store: Dataset, location: &str) -> Self {
        Self {
            store,
            location: location.to_string(),
        }
    }

    fn damaged(&self, file: &str, reason: impl Into<String>) -> PipelineError {
        PipelineError::BooksDamaged {
            books: self.location.clone(),
            file: file.to_string(),
            reason: reason.into(),
        }
    }

    /// The object at `relative` below the books' root.
    ///
    /// # Errors
    /// [`PipelineError::BooksDamaged`] when it cannot be read.
    pub async fn get(&self, relative: &str) -> Result<Bytes> {
        self.store
            .get(&self.store.path(relative)?)
            .await
            .map_err(|e| self.damaged(relative, format!("cannot be read: {e}")))
    }

    async fn read_json<T: DeserializeOwned>(&self, relative: &str) -> Result<T> {
        let bytes = self
            .store
            .get(&self.store.path(relative)?)
            .await
            .map_err(|e| self.damaged(relative, format!("cannot be read: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| self.damaged(relative, format!("is not what billrun wrote: {e}")))
    }

    /// Every committed posting, in version order, checked: the format is one this
    /// billrun reads and versions run 1, 2, 3… without a gap.
    ///
    /// # Errors
    /// [`PipelineError::BooksDamaged`] for books of another format or a broken log.
    pub async fn commits(&self) -> Result<Vec<Commit>> {
        let listed = self.store.list_all().await?;
        if listed.is_empty() {
            return Ok(Vec::new());
        }
        if !listed.iter().any(|(name, _, _)| name == MARKER) {
            return Err(self.damaged(
                MARKER,
                "is missing: this location holds files but is not billrun books; give --books an empty or new location",
            ));
        }
        let marker: Marker = self.read_json(MARKER).await?;
        if marker.format != BOOKS_FORMAT {
            return Err(self.damaged(
                MARKER,
                format!(
                    "the books are in format {} (written by {}); this billrun {} reads format {BOOKS_FORMAT} only",
                    marker.format,
                    marker.created_by,
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        let mut commits = Vec::new();
        for (name, _, _) in listed
            .iter()
            .filter(|(n, _, _)| n.starts_with("log/") && n.ends_with(".json"))
        {
            let commit: Commit = self.read_json(name).await?;
            if commit.format != BOOKS_FORMAT {
                return Err(self.damaged(
                    name,
                    format!(
                        "is in books format {}; this billrun reads {BOOKS_FORMAT}",
                        commit.format
                    ),
                ));
            }
            if commit_name(commit.version) != *name {
                return Err(self.damaged(
                    name,
                    format!("holds version {} under another name", commit.version),
                ));
            }
            commits.push(commit);
        }
        for (i, c) in commits.iter().enumerate() {
            if c.version != i as u64 + 1 {
                return Err(
                    self.damaged(&commit_name(i as u64 + 1), "is missing: the log has a gap")
                );
            }
        }
        Ok(commits)
    }

    /// The state a run starts from after `commit` (empty books before the first).
    ///
    /// # Errors
    /// A damaged state file.
    pub async fn state_after(&self, commit: Option<&Commit>) -> Result<BooksState> {
        match commit {
            None => Ok(BooksState::empty()),
            Some(c) => self.read_json(&format!("{}/state.json", c.files)).await,
        }
    }

    /// Every invoice posted up to and including `commits`' last, in posting order.
    ///
    /// # Errors
    /// A damaged file.
    pub async fn posted_invoices(&self, commits: &[Commit]) -> Result<Vec<PostedInvoice>> {
        self.read_each(commits, "invoices.json").await
    }

    /// The JSON list `name` of every posting of `commits`, concatenated in posting order.
    async fn read_each<T: DeserializeOwned>(
        &self,
        commits: &[Commit],
        name: &str,
    ) -> Result<Vec<T>> {
        let mut all = Vec::new();
        for c in commits {
            let part: Vec<T> = self.read_json(&format!("{}/{name}", c.files)).await?;
            all.extend(part);
        }
        Ok(all)
    }

    /// Every usage total posted by `commits`, in posting order.
    ///
    /// # Errors
    /// A damaged file.
    pub async fn usage_totals(&self, commits: &[Commit]) -> Result<Vec<PostedUsageTotal>> {
        self.read_each(commits, "usage_totals.json").await
    }

    /// Every invoice line posted by `commits`, in posting order.
    ///
    /// # Errors
    /// A damaged file.
    pub async fn lines(&self, commits: &[Commit]) -> Result<Vec<PostedLine>> {
        self.read_each(commits, "lines.json").await
    }

    /// Keeps a master-data file the posting run read, by its content's SHA-256
    /// (`master/<sha256>`), unless the books have it already: late usage of a posted
    /// period is priced with the master data its run used.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn keep_master_file(&self, sha256: &str, bytes: Bytes) -> Result<()> {
        let path = self.store.path(&master_file_name(sha256))?;
        // Another posting may have kept the same content: same name, same bytes.
        self.store.put_new(&path, bytes).await.map(|_| ())
    }

    /// Whether the books keep the master-data file with this SHA-256.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn has_master_file(&self, sha256: &str) -> Result<bool> {
        self.has(&master_file_name(sha256)).await
    }

    /// A master-data file a posting kept, checked against its SHA-256.
    ///
    /// # Errors
    /// [`PipelineError::BooksDamaged`] if it is missing or its content changed.
    pub async fn master_file(&self, sha256: &str) -> Result<Bytes> {
        use sha2::{Digest, Sha256};
        let name = master_file_name(sha256);
        let bytes = self.get(&name).await?;
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(self.damaged(&name, "does not hold the content it is named by"));
        }
        Ok(bytes)
    }

    /// Whether `relative` exists below the books' root.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn has(&self, relative: &str) -> Result<bool> {
        self.store.exists(&self.store.path(relative)?).await
    }

    /// Every application posted by `commits`, in posting order.
    ///
    /// # Errors
    /// A damaged file.
    pub async fn applications(&self, commits: &[Commit]) -> Result<Vec<Application>> {
        self.read_each(commits, "applications.json").await
    }

    /// Every payment posted by `commits`, in posting order.
    ///
    /// # Errors
    /// A damaged file.
    pub async fn payments(&self, commits: &[Commit]) -> Result<Vec<Payment>> {
        self.read_each(commits, "payments.json").await
    }

    /// Of `ids`, those a posting of `commits` posted, with the payment as posted. Reads
    /// each posting's sorted id list and, only where one of `ids` is in it, its
    /// payments: a run's new ids cost a scan of the posted ids, not of every payment.
    ///
    /// # Errors
    /// A damaged file.
    pub async fn posted_payments(
        &self,
        commits: &[Commit],
        ids: &BTreeSet<&str>,
    ) -> Result<BTreeMap<String, Payment>> {
        let mut found = BTreeMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        for c in commits {
            let relative = format!("{}/payment_ids.txt", c.files);
            let bytes = self.get(&relative).await?;
            let text =
                std::str::from_utf8(&bytes).map_err(|_| self.damaged(&relative, "is not UTF-8"))?;
            let hits = sorted_hits(text, ids)
                .map_err(|line| self.damaged(&relative, format!("is not sorted at line {line}")))?;
            if hits.is_empty() {
                continue;
            }
            let posted: Vec<Payment> = self
                .read_json(&format!("{}/payments.json", c.files))
                .await?;
            for p in posted {
                if hits.contains(p.payment_id.as_str()) {
                    found.insert(p.payment_id.clone(), p);
                }
            }
        }
        Ok(found)
    }

    /// The books' journal: every posting's `journal.ledger`, in order.
    ///
    /// # Errors
    /// A damaged file.
    pub async fn journal(&self, commits: &[Commit]) -> Result<String> {
        let mut text = String::new();
        for c in commits {
            let relative = format!("{}/journal.ledger", c.files);
            let bytes = self.store.get(&self.store.path(&relative)?).await?;
            text.push_str(
                std::str::from_utf8(&bytes).map_err(|_| self.damaged(&relative, "is not UTF-8"))?,
            );
        }
        Ok(text)
    }

    /// Posts `files` as version `commit.version`: the files first, into a folder of this
    /// attempt's own, then the commit, created only if no other run created it first.
    ///
    /// # Errors
    /// [`PipelineError::BooksConflict`] when another run committed this version first
    /// (nothing of this run is then part of the books); object-store failures.
    pub async fn post(&self, mut commit: Commit, files: &PostingFiles) -> Result<Commit> {
        let token = attempt_token(&commit);
        commit.files = format!("v{:010}-{token}", commit.version);
        let json = |v: &dyn erased::Json| -> Result<Bytes> { v.to_json() };
        let put = |name: &str, bytes: Bytes| {
            let relative = format!("{}/{name}", commit.files);
            async move {
                let path = self.store.path(&relative)?;
                self.store.put(&path, bytes).await
            }
        };
        put("state.json", json(&files.state)?).await?;
        put("invoices.json", json(&files.invoices)?).await?;
        put("applications.json", json(&files.applications)?).await?;
        put("payments.json", json(&files.payments)?).await?;
        put("payment_ids.txt", payment_ids_text(&files.payments)).await?;
        put(
            "journal.ledger",
            Bytes::from(files.journal_ledger.clone().into_bytes()),
        )
        .await?;
        put("journal.csv", Bytes::from(files.journal_csv.clone())).await?;
        put("rated_usage.parquet", files.rated_usage.clone()).await?;
        if let Some(late) = &files.rated_usage_late {
            put("rated_usage-late.parquet", late.clone()).await?;
        }
        put("usage_totals.json", json(&files.usage_totals)?).await?;
        put("lines.json", json(&files.lines)?).await?;
        let marker = self.store.path(MARKER)?;
        if !self.store.exists(&marker).await? {
            let bytes = serde_json::to_vec_pretty(&Marker {
                format: BOOKS_FORMAT,
                created_by: format!("billrun {}", env!("CARGO_PKG_VERSION")),
            })
            .map_err(internal)?;
            // Two first postings may both create it; either marker says the same.
            let _ = self.store.put_new(&marker, Bytes::from(bytes)).await?;
        }
        let name = commit_name(commit.version);
        let bytes = serde_json::to_vec_pretty(&commit).map_err(internal)?;
        if !self
            .store
            .put_new(&self.store.path(&name)?, Bytes::from(bytes))
            .await?
        {
            let winner: Commit = self.read_json(&name).await?;
            return Err(PipelineError::BooksConflict {
                books: self.location.clone(),
                version: winner.version,
                period: winner.period,
                posted_at: winner.posted_at.to_rfc3339(),
            });
        }
        Ok(commit)
    }
}

fn internal(e: serde_json::Error) -> PipelineError {
    PipelineError::Internal(format!("books file does not serialise: {e}"))
}

/// `payment_ids.txt`: the payments' ids, sorted, one per line (ids hold no control
/// characters: validation rejects them).
fn payment_ids_text(payments: &[Payment]) -> Bytes {
    let mut ids: Vec<&str> = payments.iter().map(|p| p.payment_id.as_str()).collect();
    ids.sort_unstable();
    let mut text = String::with_capacity(ids.iter().map(|i| i.len() + 1).sum());
    for id in ids {
        text.push_str(id);
        text.push('\n');
    }
    Bytes::from(text.into_bytes())
}

/// The lines of `sorted` (ascending) that are in `wanted`, by one merge of the two;
/// `Err(line)` when `sorted` is out of order there.
fn sorted_hits<'a>(
    sorted: &str,
    wanted: &BTreeSet<&'a str>,
) -> std::result::Result<BTreeSet<&'a str>, usize> {
    let mut hits = BTreeSet::new();
    let mut want = wanted.iter().copied().peekable();
    let mut previous: Option<&str> = None;
    for (i, line) in sorted.lines().enumerate() {
        if previous.is_some_and(|p| p >= line) {
            return Err(i + 1);
        }
        previous = Some(line);
        // The whole list is read, so that one out of order is seen wherever it is.
        while want.next_if(|w| *w < line).is_some() {}
        if let Some(w) = want.next_if(|w| *w == line) {
            hits.insert(w);
        }
    }
    Ok(hits)
}

/// `master/<sha256>`.
fn master_file_name(sha256: &str) -> String {
    format!("master/{sha256}")
}

/// `log/0000000001.json`.
fn commit_name(version: u64) -> String {
    format!("log/{version:010}.json")
}

/// A name unique to one posting attempt: the commit's content and the process and
/// instant that wrote it.
fn attempt_token(commit: &Commit) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(commit).unwrap_or_default());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(
        Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes(),
    );
    hex::encode(&hasher.finalize()[..8])
}

/// Serialising the books' files without a generic closure.
mod erased {
    use bytes::Bytes;

    use crate::error::Result;

    pub(super) trait Json {
        fn to_json(&self) -> Result<Bytes>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<Bytes> {
            Ok(Bytes::from(
                serde_json::to_vec(self).map_err(super::internal)?,
            ))
        }
    }
}

/// `billrun report ar-aging --books B --on DATE`: the books' receivables as they stood
/// at the start of `on` (invoices issued on or before it, cash applied before it),
/// aged as of `on`; `None` for `on` ages as of the last posting's as_of.
///
/// # Errors
/// Damaged books; books nothing was posted to.
pub async fn ar_aging_report(
    location: &str,
    on: Option<chrono::NaiveDate>,
) -> Result<arrow::array::RecordBatch> {
    use billrun_accounting::books::{ar_aging, ar_aging_batch, receivables_on};
    let books = Books::open(location)?;
    let commits = books.commits().await?;
    let Some(last) = commits.last() else {
        return Err(PipelineError::BooksRefused {
            books: location.to_string(),
            reason: "nothing is posted yet: run `billrun run --books` first".into(),
        });
    };
    let on = match on {
        Some(day) => day,
        None => crate::run::as_of_day(billrun_engine::BillingMonth::parse(&last.period)?)?,
    };
    let posted: Vec<Receivable> = books
        .posted_invoices(&commits)
        .await?
        .into_iter()
        .map(|p| Receivable {
            paid: rust_decimal::Decimal::ZERO,
            ..p.receivable
        })
        .collect();
    let applications = books.applications(&commits).await?;
    let receivables = receivables_on(&posted, &applications, on)?;
    Ok(ar_aging_batch(&ar_aging(&receivables, on)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sorted_id_list_is_merged_with_the_ids_wanted() {
        let wanted: BTreeSet<&str> = ["P-02", "P-05", "P-07", "P-99"].into();
        let hits = sorted_hits("P-01\nP-02\nP-03\nP-05\nP-06\n", &wanted).unwrap();
        assert_eq!(hits, BTreeSet::from(["P-02", "P-05"]));
        assert_eq!(sorted_hits("", &wanted).unwrap(), BTreeSet::new());
    }

    #[test]
    fn an_id_list_out_of_order_is_damage_named_by_its_line() {
        let wanted: BTreeSet<&str> = ["P-01"].into();
        assert_eq!(sorted_hits("P-01\nP-03\nP-02\n", &wanted), Err(3));
        assert_eq!(sorted_hits("P-01\nP-01\n", &wanted), Err(2));
    }

    #[test]
    fn payment_ids_are_written_sorted_one_per_line() {
        let payment = |id: &str| Payment {
            payment_id: id.to_string(),
            customer_id: "C1".into(),
            currency: "USD".into(),
            amount: rust_decimal::Decimal::ONE,
            paid_on: chrono::NaiveDate::from_ymd_opt(2026, 11, 10).unwrap(),
            invoice_id: None,
            method: None,
        };
        let text = payment_ids_text(&[payment("P-9"), payment("P-10"), payment("P-1")]);
        assert_eq!(&text[..], b"P-1\nP-10\nP-9\n");
    }
}
