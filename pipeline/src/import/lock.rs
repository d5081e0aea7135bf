//! The sweep lock: one sweep of an inbox at a time, across machines.

use bytes::Bytes;

use super::BOOKKEEPING;
use crate::error::{PipelineError, Result};
use crate::store::dataset::Dataset;

/// A lock older than this is left by a sweep that died; it is broken.
const LOCK_STALE_HOURS: i64 = 6;

/// Holds the inbox for one sweep at a time: an object created only if absent.
pub(super) struct SweepLock {
    location: object_store::path::Path,
}

impl SweepLock {
    pub(super) async fn acquire(inbox: &Dataset) -> Result<Self> {
        let location = inbox.path(&format!("{BOOKKEEPING}/sweep.lock"))?;
        let now = chrono::Utc::now();
        let holder = format!(
            "{{\"pid\": {}, \"host\": \"{}\", \"since\": \"{}\"}}",
            std::process::id(),
            hostname(),
            now.to_rfc3339()
        );
        for _ in 0..2 {
            if inbox
                .put_new(&location, Bytes::from(holder.clone()))
                .await?
            {
                return Ok(Self { location });
            }
            let held = inbox.get(&location).await.unwrap_or_default();
            let held = String::from_utf8_lossy(&held).into_owned();
            let since = held
                .split("\"since\": \"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            match since {
                Some(t)
                    if now.signed_duration_since(t) > chrono::Duration::hours(LOCK_STALE_HOURS) =>
                {
                    tracing::warn!("breaking a stale inbox lock held since {t}: {held}");
                    inbox.delete(&location).await?;
                }
                _ => {
                    return Err(PipelineError::InboxLocked {
                        inbox: inbox.location.clone(),
                        holder: held,
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

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_string())
}
