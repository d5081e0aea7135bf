//! Who holds a lock (an inbox sweep, a run's `--out`): the pid, host and start time of
//! the process, so that a lock left by a process of this host that is gone is broken at
//! once, while one of another host waits for its timeout.

/// Who holds the lock, as the lock file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) host: String,
    pub(crate) since: chrono::DateTime<chrono::Utc>,
    /// The process's start time in clock ticks after boot (Linux), so that a new
    /// process that reused the pid is not taken for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<u64>,
}

impl Holder {
    pub(crate) fn this_process(now: chrono::DateTime<chrono::Utc>) -> Self {
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
    pub(crate) fn is_alive_here(&self) -> bool {
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

pub(crate) fn hostname() -> String {
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
