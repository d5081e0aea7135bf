//! The query engine's session for a bill run: threads, and memory under one limit.

use std::sync::Arc;

use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::Result;

/// A twelfth of the machine's memory (2 GiB of 24), or 2 GiB if `/proc/meminfo` cannot be
/// read: the share of the query engine and of the events held to be put in rating order
/// (see [`crate::rating::order::Limits`]). What it does not count stays bounded: usage waits in
/// scratch Parquet files, deduplication holds 8 bytes per event (800 MB at 100M events),
/// each file being read holds its bytes and a row group, and the `rated_usage` writer a
/// row group. `benches/README.md` has the peak of a 100M-event run, stage by stage.
pub fn default_memory_limit() -> usize {
    physical_memory().map_or(2 << 30, |bytes| bytes / 12)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn physical_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A session of `threads` partitions whose sorts, aggregates and joins share
/// `memory_limit` and spill beyond it.
pub(super) fn session(threads: usize, memory_limit: usize) -> Result<SessionContext> {
    // A sort reserves memory for its final merge up front, 10 MiB by default: more than
    // a small limit holds, which would fail the run instead of spilling.
    let merge_reservation = (memory_limit / 16).min(10 << 20);
    let config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_information_schema(false)
        .with_sort_spill_reservation_bytes(merge_reservation);
    // Sorts, aggregates and joins share the limit fairly and spill to the OS temp folder
    // instead of failing or growing without bound.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
        .with_disk_manager_builder(DiskManagerBuilder::default())
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}
