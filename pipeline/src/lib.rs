//! # billrun-pipeline: the stages of a bill run
//!
//! Data flows one way, each stage a folder, each using only those before it:
//!
//! 1. [`store`] finds the files of every table on object storage ([`store::dataset`],
//!    as they are or as they were at an instant) and holds the run's local
//!    [`store::scratch`] folder;
//! 2. [`read`] reads every file and validates it against its template: bad rows become
//!    rejects, never disappear; validated usage waits in scratch Parquet files;
//! 3. master data is checked across rows and tables and turned into a catalog,
//!    contracts and a chart of accounts by `billrun-accounting`, which does not link
//!    DataFusion;
//! 4. [`rating`] deduplicates usage and rates it: one scan places each event in its
//!    billing window and rating segment and deals it into a bucket of subscriptions,
//!    buckets are sorted one by one (spilling under the memory limit), and the engine's
//!    grouped attribution kernel prices each (subscription, product, period) as the
//!    ordered events go by;
//! 5. invoicing, revenue recognition (ASC 606 / IFRS 15) and the journal are
//!    `billrun-accounting`'s, fed the rated totals;
//! 6. [`write`] writes Parquet and the plain-text journal to a staging folder and
//!    publishes it atomically with a manifest.
//!
//! [`run::run_bill`] strings them together; [`import`] sweeps an inbox into a dataset
//! before a run, and [`query`] serves SQL over the results after it. Scans,
//! deduplication, spilling sorts and SQL over the outputs are DataFusion's, so that the
//! same plans can later run distributed. Two steps of rating were DataFusion plans and
//! are now billrun's own, because the profile of a 100M-event run said so
//! (`benches/README.md`): placing each event in master data is a lookup instead of two
//! broadcast hash joins, and the events are ordered bucket by bucket instead of by one
//! sort merged on one thread.

pub mod books;
pub mod display;
pub mod error;
pub mod import;
pub mod progress;
pub mod query;
pub mod rating;
pub mod read;
pub mod run;
pub mod store;
pub mod write;

pub use error::{PipelineError, Result};
pub use progress::Progress;
pub use run::{Manifest, RunOptions, UsageCounts, run_bill};
pub use store::dataset;

/// Aborts the process at a named point when `BILLRUN_FAILPOINT` names it: how the fault
/// tests kill a sweep or a run half-way. Unset in normal use.
pub(crate) fn failpoint(name: &str) {
    if std::env::var("BILLRUN_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("billrun: failpoint {name}: aborting");
        std::process::abort();
    }
}
