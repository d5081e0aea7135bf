//! A bill run with `--books`: what the books decide before the run (post, run a posted
//! period again, or refuse), and the posting after it.

use billrun_engine::BillingMonth;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use billrun_accounting::books::BooksState;

use crate::books::{Books, Commit, RunFingerprint};
use crate::error::{PipelineError, Result};

/// What the books make of a run.
#[derive(Debug)]
pub(super) enum Decision {
    /// Post the period as the books' next version.
    Post { version: u64 },
    /// The period is the last one posted: run it on the books as they were before, and
    /// post nothing if the inputs are the same.
    Again { posted: Box<Commit> },
}

/// A run's view of its books.
#[derive(Debug)]
pub(super) struct BooksRun {
    pub books: Books,
    pub decision: Decision,
    /// The state the run starts from.
    pub base: BooksState,
    /// The postings that made `base`, in order.
    pub history: Vec<Commit>,
    /// Whether anything was posted before `base` (then deferred-revenue balances are
    /// brought forward by the books, not booked again).
    pub has_history: bool,
    /// The first day after the period's calendar month.
    pub as_of: NaiveDate,
    pub preview: bool,
}

/// What the manifest says of the books.
#[derive(Debug, Clone, Serialize)]
pub struct BooksOutcome {
    pub location: String,
    /// `posted`, `already_posted` (the last posted period run again on the same
    /// inputs) or `preview`.
    pub outcome: &'static str,
    /// The books' version this run posted, or the one it repeated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    pub as_of: NaiveDate,
}

impl BooksRun {
    /// Opens the books at `location` and decides what a run of `period` may do.
    ///
    /// # Errors
    /// [`PipelineError::BooksRefused`] for a period older than the last posted one or
    /// one after a gap; damaged books.
    pub(super) async fn open(location: &str, period: BillingMonth, preview: bool) -> Result<Self> {
        let books = Books::open(location)?;
        let commits = books.commits().await?;
        let refused = |reason: String| PipelineError::BooksRefused {
            books: location.to_string(),
            reason,
        };
        let as_of = super::as_of_day(period)?;
        let Some(last) = commits.last() else {
            return Ok(Self {
                books,
                decision: Decision::Post { version: 1 },
                base: BooksState::empty(),
                history: Vec::new(),
                has_history: false,
                as_of,
                preview,
            });
        };
        let last_period =
            BillingMonth::parse(&last.period).map_err(|_| PipelineError::BooksDamaged {
                books: location.to_string(),
                file: format!("log/{:010}.json", last.version),
                reason: format!("names period `{}`", last.period),
            })?;
        let next = last_period.next()?;
        if period == next {
            let base = books.state_after(Some(last)).await?;
            return Ok(Self {
                books,
                decision: Decision::Post {
                    version: last.version + 1,
                },
                base,
                history: commits.clone(),
                has_history: true,
                as_of,
                preview,
            });
        }
        if period == last_period {
            let before = commits.len().checked_sub(2).map(|i| &commits[i]);
            let base = books.state_after(before).await?;
            return Ok(Self {
                books,
                decision: Decision::Again {
                    posted: Box::new(last.clone()),
                },
                base,
                history: commits[..commits.len() - 1].to_vec(),
                has_history: before.is_some(),
                as_of,
                preview,
            });
        }
        if period < last_period {
            return Err(refused(format!(
                "period {period} is already posted (the books run to {last_period}, version {}); a posted period is never billed again: its late usage and changes are billed as corrections by the run of {next}",
                last.version
            )));
        }
        Err(refused(format!(
            "the books end at {last_period}: post {next} first (periods are posted in order, without gaps)"
        )))
    }

    /// Refuses a run of the last posted period on inputs other than those it was posted
    /// with; `None` when the run may go on.
    pub(super) fn check_again(&self, fingerprint: &RunFingerprint) -> Result<()> {
        let Decision::Again { posted } = &self.decision else {
            return Ok(());
        };
        if posted.fingerprint == *fingerprint {
            return Ok(());
        }
        let changed = describe_change(&posted.fingerprint, fingerprint);
        let next = BillingMonth::parse(&posted.period)
            .ok()
            .and_then(|p| p.next().ok())
            .map_or_else(|| "the next period".to_string(), |p| p.to_string());
        Err(PipelineError::BooksRefused {
            books: self.books.location.clone(),
            reason: format!(
                "period {} is already posted (version {}) and its inputs have changed since ({changed}); a posted invoice is never changed: the change reaches the books as corrections by the run of {next}",
                posted.period, posted.version
            ),
        })
    }

    /// The periods posted before this run, first and last.
    pub(super) fn posted_periods(&self) -> Option<(BillingMonth, BillingMonth)> {
        let first = BillingMonth::parse(&self.history.first()?.period).ok()?;
        let last = BillingMonth::parse(&self.history.last()?.period).ok()?;
        Some((first, last))
    }

    /// Whether this run posts (not a preview, not a repeat).
    pub(super) fn posts(&self) -> bool {
        !self.preview && matches!(self.decision, Decision::Post { .. })
    }

    pub(super) fn outcome(&self) -> BooksOutcome {
        let (outcome, version) = match (&self.decision, self.preview) {
            (_, true) => ("preview", None),
            (Decision::Post { version }, false) => ("posted", Some(*version)),
            (Decision::Again { posted }, false) => ("already_posted", Some(posted.version)),
        };
        BooksOutcome {
            location: self.books.location.clone(),
            outcome,
            version,
            as_of: self.as_of,
        }
    }

    /// The commit of this run's posting.
    pub(super) fn commit(
        &self,
        period: BillingMonth,
        dataset: &str,
        dataset_read_at: DateTime<Utc>,
        fingerprint: RunFingerprint,
        invoices: u64,
    ) -> Commit {
        let version = match &self.decision {
            Decision::Post { version } => *version,
            Decision::Again { posted } => posted.version,
        };
        Commit {
            format: crate::books::BOOKS_FORMAT,
            version,
            period: period.to_string(),
            posted_at: Utc::now(),
            dataset_read_at,
            billrun_version: env!("CARGO_PKG_VERSION").to_string(),
            dataset: dataset.to_string(),
            fingerprint,
            files: String::new(),
            invoices,
            first_invoice_number: (invoices > 0).then_some(self.base.next_invoice_number),
        }
    }
}

/// What differs between the inputs a period was posted with and a run's.
fn describe_change(posted: &RunFingerprint, now: &RunFingerprint) -> String {
    if posted.carve_order != now.carve_order {
        return format!(
            "carve order {} instead of {}",
            now.carve_order, posted.carve_order
        );
    }
    let before: std::collections::BTreeSet<_> = posted.inputs.iter().collect();
    let after: std::collections::BTreeSet<_> = now.inputs.iter().collect();
    let mut parts = Vec::new();
    let added: Vec<&str> = after
        .difference(&before)
        .map(|(_, f, _)| f.as_str())
        .collect();
    let removed: Vec<&str> = before
        .difference(&after)
        .map(|(_, f, _)| f.as_str())
        .collect();
    if !added.is_empty() {
        parts.push(format!("new or changed: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("gone or changed: {}", removed.join(", ")));
    }
    if parts.is_empty() {
        "the files were read in another order".to_string()
    } else {
        parts.join("; ")
    }
}

/// Whether `table` is master data: what prices and bills usage, kept by the books for
/// late usage (usage and payments are not).
pub(super) fn is_master_data(table: billrun_schemas::Table) -> bool {
    !matches!(
        table,
        billrun_schemas::Table::Usage | billrun_schemas::Table::Payments
    )
}

impl BooksRun {
    /// Keeps in the books every master-data file the run read (`fingerprint`) that
    /// they do not have yet, read again and checked against the SHA-256 the run saw.
    ///
    /// # Errors
    /// Object-store failures; [`PipelineError::UnreadableFile`] for a file that changed
    /// or went away while the run was reading the dataset.
    pub(super) async fn keep_master_data(
        &self,
        dataset: &crate::store::dataset::Dataset,
        fingerprint: &RunFingerprint,
    ) -> Result<()> {
        use sha2::{Digest, Sha256};
        for table in billrun_schemas::Table::every().filter(|t| is_master_data(*t)) {
            let mut missing: Vec<(&str, &str)> = Vec::new();
            for (_, file, sha256) in fingerprint
                .inputs
                .iter()
                .filter(|(t, _, _)| t == table.name())
            {
                if !self.books.has_master_file(sha256).await? {
                    missing.push((file, sha256));
                }
            }
            if missing.is_empty() {
                continue;
            }
            let files = dataset.table_files(table).await?;
            for (name, sha256) in missing {
                let changed = |reason: &str| PipelineError::UnreadableFile {
                    file: name.to_string(),
                    format: "master-data",
                    reason: format!("{reason} while the run read the dataset; run it again"),
                };
                let file = files
                    .iter()
                    .find(|f| f.name == name)
                    .ok_or_else(|| changed("went away"))?;
                let bytes = dataset.read(file).await?;
                if hex::encode(Sha256::digest(&bytes)) != sha256 {
                    return Err(changed("changed"));
                }
                self.books.keep_master_file(sha256, bytes).await?;
            }
        }
        Ok(())
    }
}
