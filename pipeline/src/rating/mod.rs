//! The `dedupe` and `rate` stages: usage deduplicated, then rated in one pass over the
//! events.
//!
//! 1. [`dedupe`] drops later occurrences of an event id (rejects, with the file and row
//!    of the first);
//! 2. [`placement`] finds, for every event, its customer's billing window and the rating
//!    segment in force at its timestamp, from master data computed before any usage is
//!    read;
//! 3. [`scan`] places every event in one scan and deals the priced ones into buckets of
//!    consecutive subscriptions, keyed by [`order::RATING_KEY`];
//! 4. [`order`] sorts bucket by bucket (spilling under the memory limit);
//! 5. [`attribution`] prices each (subscription, product, period) with the engine's
//!    grouped kernel as the ordered events go by, and [`unrated`] writes up the events
//!    that could not be priced.
//!
//! Each step uses only those before it.

pub mod attribution;
pub mod dedupe;
mod id_index;
pub mod order;
pub mod placement;
pub mod reason;
pub mod scan;
pub mod unrated;

use arrow::array::{ArrayRef, RecordBatch};

use crate::error::{PipelineError, Result};

pub use attribution::{StreamingAttribution, rate_in_order};
pub use dedupe::{Deduped, dedupe_usage};
pub use placement::SegmentLookup;
pub use reason::UnratedReason;
pub use scan::{RatingInput, rating_input};
pub use unrated::unrated_usage;

/// The column `name` of `batch`; its absence is a bug of billrun, not of the data.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| PipelineError::Internal(format!("batch lacks column {name}")))
}
