//! # billrun-pipeline: the stages of a bill run
//!
//! Data flows one way, each stage a module:
//!
//! 1. [`load`] reads every file of every input table from object storage and validates
//!    it against its template (bad rows become rejects, never disappear);
//! 2. [`catalog`] checks master data across rows and tables (keys, plan versions,
//!    references) and holds it in ordered maps;
//! 3. [`rate`] deduplicates usage and rates it: one scan places each event in its
//!    billing window and rating segment and deals it into a bucket of subscriptions,
//!    [`rating_order`] sorts bucket by bucket (spilling under the memory limit), and the
//!    engine's grouped attribution kernel prices each (subscription, product, period) as
//!    the ordered events go by;
//! 4. [`invoice`] turns rated totals, flat fees, discounts, minimums, tax and credits into
//!    invoices with the engine's `compose_invoice`; then
//!    [`revenue`] allocates contracts (orders) by SSP, applies carves, and spreads each
//!    obligation into a monthly revenue schedule (ASC 606 / IFRS 15);
//! 5. [`journal`] books invoices, credit memos, payments, contract billing and
//!    recognition as balanced journal entries;
//! 6. [`write`] writes Parquet and the plain-text journal to a staging folder and
//!    publishes it atomically with a manifest.
//!
//! [`run::run_bill`] strings them together in one [`scratch`] folder, whose files are
//! removed in the background once read; [`query`] serves SQL over the results.
//! Scans, deduplication, spilling sorts and SQL over the outputs are DataFusion's, so
//! that the same plans can later run distributed. Two steps of rating were DataFusion
//! plans and are now billrun's own, because the profile of a 100M-event run said so
//! (`benches/README.md`): placing each event in master data is a lookup instead of two
//! broadcast hash joins, and the events are ordered bucket by bucket instead of by one
//! sort merged on one thread. The billing math is `billrun-engine`'s, pure and
//! property-tested.

pub mod dataset;
pub mod error;
pub mod import;
pub mod load;
pub mod progress;
pub mod query;
pub mod rate;
pub mod rating_order;
pub mod run;
pub mod scratch;
pub mod write;

pub use error::{PipelineError, Result};
pub use progress::Progress;
pub use run::{Manifest, RunOptions, UsageCounts, run_bill};
