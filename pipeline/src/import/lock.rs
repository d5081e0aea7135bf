//! The sweep lock: one sweep of an inbox at a time, across machines.

use bytes::Bytes;

use super::BOOKKEEPING;
use crate::error::{PipelineError, Result};
use crate::store::dataset::Dataset;
use crate::store::holder::Holder;

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
