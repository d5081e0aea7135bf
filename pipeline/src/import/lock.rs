//! The sweep lock: one sweep of an inbox at a time, across machines.

use bytes::Bytes;

use super::BOOKKEEPING;
use crate::error::{PipelineError, Result};
use crate::store::dataset::Dataset;

/// A lock older than this is left by a sweep that died; it is broken. A lock of a
/// process of this host that is gone is broken at once.
const LOCK_STALE_HOURS: i64 = 6;

/// Holds the inbox for one sweep at a time: an object created only if absent.
pub(super) struct SweepLock {
    location: object_store::path::Path,
}

impl SweepLock {
    pub(super) async fn acquire(inbox: &Dataset) -> Result<Self> {
        let location = inbox.path(&format!("{BOOKKEEPING}/sweep.lock"))?;
        let now = chrono::Utc::now();
        let me = Holder::this_process(now);
        let holder = serde_json::to_vec(&me).unwrap_or_default();
        for _ in 0..2 {
            if inbox
                .put_new(&location, Bytes::from(holder.clone()))
                .await?
            {
                return Ok(Self { location });
            }
            let held = inbox.get(&location).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&held).into_owned();
            let parsed: Option<Holder> = serde_json::from_slice(&held).ok();
            let breakable = parsed.as_ref().and_then(|h| {
                if h.host == me.host && !h.is_alive_here() {
                    Some(format!("its process {} on this host is gone", h.pid))
                } else if now.signed_duration_since(h.since)
                    > chrono::Duration::hours(LOCK_STALE_HOURS)
                {
                    Some(format!("it is older than {LOCK_STALE_HOURS} hours"))
                } else {
                    None
                }
            });
            match breakable {
                Some(why) => {
                    tracing::warn!("breaking the inbox lock ({why}): {text}");
                    inbox.delete(&location).await?;
                }
                None => {
                    return Err(PipelineError::InboxLocked {
                        inbox: inbox.location.clone(),
                        holder: text,
                    });
                }
            }
        }
        Err(PipelineError::InboxLocked {
            inbox: inbox.location.clone(),
            holder: "another sweep (the lock came back while breaking it)".into(),
        })
    }

    pub(super) async fn release(self, inbox: &Dataset) -> Result<()> {
        inbox.delete(&self.location).await
    }
}

/// Who holds the lock, as the lock file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    since: chrono::DateTime<chrono::Utc>,
    /// The process's start time in clock ticks after boot (Linux), so that a new
    /// process that reused the pid is not taken for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<u64>,
}

impl Holder {
    fn this_process(now: chrono::DateTime<chrono::Utc>) -> Self {
        let pid = std::process::id();
        Self {
            pid,
            host: hostname(),
            since: now,
            started: process_start(pid),
        }
    }

    /// Whether the holder, a process of this host, still runs. Where the system does
    /// not say (no `/proc`), it is taken to run: only the timeout breaks its lock.
    fn is_alive_here(&self) -> bool {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return true;
        }
        match process_start(self.pid) {
            None => false,
            Some(started) => self.started.is_none_or(|s| s == started),
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`: the process's start time after boot.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_or_reused_pid_is_not() {
        let me = Holder::this_process(chrono::Utc::now());
        assert!(me.is_alive_here());
        // A pid above the kernel's maximum (2^22) never runs.
        let gone = Holder {
            pid: 4_194_305,
            ..me.clone()
        };
        assert!(!gone.is_alive_here());
        let reused = Holder {
            started: me.started.map(|s| s + 1),
            ..me
        };
        assert!(!reused.is_alive_here());
    }
}
