//! The run's scratch folder, whose files are removed on a thread of their own as soon
//! as they have been read for the last time.
//!
//! Why a thread: on a file system mounted with `discard`, removing a file waits for its
//! blocks to be trimmed, about 0.7 s per GB measured here. At 100M events the rating
//! alone writes 6.3 GB of scratch files; removing them all when the run ended took 8.7 s
//! after the last stage, and removing each where it was read put that wait on the
//! rating's path. Here nobody waits for a removal but the end of the run, for the files
//! read last.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::error::{PipelineError, Result};

/// The scratch folder of one run. Whatever is left in it is removed when it is dropped,
/// however the run ends.
#[derive(Debug)]
pub struct Scratch {
    /// Stopped in `drop`, before the folder goes.
    remover: Option<(Remover, JoinHandle<()>)>,
    dir: tempfile::TempDir,
}

/// Hands scratch files that will not be read again to the removing thread.
#[derive(Debug, Clone)]
pub struct Remover {
    /// `None` stops the thread.
    files: mpsc::Sender<Option<PathBuf>>,
}

impl Remover {
    /// Removes `path` in the background. A file that cannot be removed now (the thread
    /// has stopped because the run is ending) is removed with the folder.
    pub fn remove(&self, path: PathBuf) {
        let _ = self.files.send(Some(path));
    }

    /// A remover that removes nothing before the run ends: for code that works on
    /// scratch files outside a run, such as tests.
    pub fn deferred() -> Self {
        let (files, _) = mpsc::channel();
        Self { files }
    }
}

impl Scratch {
    /// A new folder under the system's temporary folder.
    ///
    /// # Errors
    /// The folder or the thread cannot be created.
    pub fn create(prefix: &str) -> Result<Self> {
        remove_left_by_dead_runs(&std::env::temp_dir(), prefix);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|source| PipelineError::Io {
                context: format!(
                    "creating a scratch folder in {}",
                    std::env::temp_dir().display()
                ),
                source,
            })?;
        // Who owns it: a run killed before it could remove its folder leaves this, and
        // the next run removes the folder when its process is gone.
        let owner = crate::store::holder::Holder::this_process(chrono::Utc::now());
        std::fs::write(
            dir.path().join(OWNER_FILE),
            serde_json::to_vec(&owner).unwrap_or_default(),
        )
        .map_err(|source| PipelineError::Io {
            context: format!("writing {}", dir.path().join(OWNER_FILE).display()),
            source,
        })?;
        let (files, received) = mpsc::channel::<Option<PathBuf>>();
        let thread = std::thread::Builder::new()
            .name("scratch-remover".into())
            .spawn(move || {
                // Until told to stop: clones of the sender may outlive the folder (a task
                // of a failed run not yet dropped), and must not keep the run waiting.
                while let Ok(Some(path)) = received.recv() {
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::debug!(path = %path.display(), error = %e, "scratch file left for the end of the run");
                    }
                }
            })
            .map_err(|source| PipelineError::Io {
                context: "starting the scratch file remover".into(),
                source,
            })?;
        Ok(Self {
            remover: Some((Remover { files }, thread)),
            dir,
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A handle to remove files of this folder in the background.
    pub fn remover(&self) -> Remover {
        self.remover
            .as_ref()
            .map_or_else(Remover::deferred, |(remover, _)| remover.clone())
    }
}

/// The file naming a scratch folder's owner.
const OWNER_FILE: &str = "billrun-owner.json";

/// Removes the scratch folders (`<prefix>*` in `dir`) of runs of this host whose process
/// is gone. Best effort: a folder that cannot be read or removed is left, with a note
/// in the log.
fn remove_left_by_dead_runs(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let host = crate::store::holder::hostname();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let Ok(owner) = std::fs::read(path.join(OWNER_FILE)) else {
            continue;
        };
        let Ok(owner) = serde_json::from_slice::<crate::store::holder::Holder>(&owner) else {
            continue;
        };
        if owner.host == host && !owner.is_alive_here() {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::warn!(
                    "removed {} (scratch of a killed run, pid {})",
                    path.display(),
                    owner.pid
                ),
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "could not remove a dead run's scratch")
                }
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some((remover, thread)) = self.remover.take() {
            // The files handed over before this are removed first; the folder takes
            // the rest once the thread has stopped.
            let _ = remover.files.send(None);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_handed_over_are_gone_once_the_folder_is_dropped_and_the_rest_with_it() {
        let scratch = Scratch::create("billrun-test-").unwrap();
        let dir = scratch.path().to_path_buf();
        let read = dir.join("read.arrow");
        let unread = dir.join("unread.arrow");
        std::fs::write(&read, b"rows").unwrap();
        std::fs::write(&unread, b"rows").unwrap();
        let remover = scratch.remover();
        remover.remove(read.clone());
        // A file that is already gone is no error: it is simply not there.
        remover.remove(dir.join("never-written.arrow"));
        // A clone that outlives the folder neither keeps it nor fails.
        drop(scratch);
        assert!(!read.exists());
        assert!(!unread.exists());
        assert!(!dir.exists());
        remover.remove(read);
    }

    #[test]
    fn a_deferred_remover_leaves_files_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept.arrow");
        std::fs::write(&kept, b"rows").unwrap();
        Remover::deferred().remove(kept.clone());
        assert!(kept.exists());
    }
}
