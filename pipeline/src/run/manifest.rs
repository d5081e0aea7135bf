//! The manifest of a bill run: what it read, wrote and counted, and how long each stage
//! took.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::rating::order::RatingOrderStats;
use crate::read::InputRecord;
use crate::write::OutputRecord;

/// Usage rows, accounted for: `read = rated + unrated + rejected + outside_period +
/// settled`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageCounts {
    pub read: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub outside_period: u64,
    pub unrated: u64,
    pub rated: u64,
    /// With the books: of `rated`, late events of posted periods, billed as corrections.
    pub late: u64,
    /// With the books: rows of files a posted run read that it billed or rejected,
    /// skipped (`read = rated + unrated + rejected + outside_period + settled`).
    pub settled: u64,
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
    /// With `--books`: what the run did to them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub books: Option<super::BooksOutcome>,
    /// What the billing team should know that is not an error: files in a table's
    /// folder that were not read (hidden or marker names), no usage at all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub(super) struct Stopwatch {
    pub(super) stages: Vec<StageTime>,
    started: Instant,
}

impl Stopwatch {
    pub(super) fn new() -> Self {
        Self {
            stages: Vec::new(),
            started: Instant::now(),
        }
    }

    pub(super) fn lap(&mut self, stage: &'static str) {
        let now = Instant::now();
        let seconds = (now - self.started).as_secs_f64();
        let peak = peak_rss_bytes();
        tracing::info!(
            stage,
            seconds = format!("{seconds:.3}"),
            peak_rss_mib = peak.map(|b| b / (1 << 20)),
            rss_mib = rss_bytes("VmRSS:").map(|b| b / (1 << 20)),
            "stage done"
        );
        self.stages.push(StageTime {
            stage,
            seconds,
            peak_rss_bytes: peak,
        });
        self.started = now;
    }
}

/// The resident-set high-water mark of this process, where the OS reports one (Linux).
fn peak_rss_bytes() -> Option<u64> {
    rss_bytes("VmHWM:")
}

/// A resident-set figure of this process (`VmHWM:` the high-water mark, `VmRSS:` now),
/// where the OS reports one (Linux).
fn rss_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix(field))?;
    let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
