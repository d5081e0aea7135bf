//! Where a bill run's data lives: [`dataset`] on object storage (local folders, S3,
//! GCS, Azure), and the local [`scratch`] folder of one run.

pub mod dataset;
pub(crate) mod holder;
pub mod scratch;
