//! The staging folder: every output written beside the output folder, then published
//! in one atomic step.
//!
//! Beside `out`, a run holds `.out.lock` (created only if absent, naming its pid, host
//! and start time) from start to end, so that runs into one `--out` are serialised: a
//! second run fails naming the holder, and a lock whose process is gone is broken at
//! once. Holding the lock, a run removes what killed runs left beside `out`
//! (`.out.staging-*`, `.out.old-*`). It writes into `.out.staging-<pid>` and publishes
//! by exchanging that folder with `out` in one `renameat2(RENAME_EXCHANGE)`, then
//! removes the previous run now at the staging name: at every instant `out` is the old
//! run or the new one. Where the file system cannot exchange (not Linux, or a file
//! system without it), `out` is renamed aside and the staging folder renamed into
//! place; a kill between the two leaves no `out`, and the next run restores it.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::table_writer::TableWriter;
use sha2::{Digest, Sha256};

use super::{Hashed, OutputRecord};
use crate::error::{PipelineError, Result};

/// The staging folder of a run and where it will be published.
#[derive(Debug)]
pub struct Staging {
    staging: PathBuf,
    target: PathBuf,
    published: bool,
    /// `.out.lock`, removed when the run ends.
    lock: PathBuf,
}

impl Staging {
    /// Creates a fresh staging folder beside `target`.
    ///
    /// # Errors
    /// [`PipelineError::OutputNotOurs`] if `target` exists, is not empty and is not a
    /// billrun output; I/O errors.
    pub fn create(target: &Path) -> Result<Self> {
        if target.exists() && !is_billrun_output(target) {
            return Err(PipelineError::OutputNotOurs {
                path: target.to_path_buf(),
            });
        }
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(PipelineError::io(format!("creating {}", parent.display())))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let lock = acquire_lock(parent, &name, target)?;
        // From here the lock is ours: `Drop` releases it, whatever happens next.
        let mut this = Self {
            staging: parent.join(format!(".{name}.staging-{}", std::process::id())),
            target: target.to_path_buf(),
            published: false,
            lock,
        };
        this.clean_leftovers(parent, &name)?;
        std::fs::create_dir_all(&this.staging).map_err(PipelineError::io(format!(
            "creating {}",
            this.staging.display()
        )))?;
        this.published = false;
        Ok(this)
    }

    /// Removes what killed runs into the same `--out` left beside it; a run killed
    /// between the two renames of a publish without exchange left `out` aside, and it
    /// is put back first.
    fn clean_leftovers(&mut self, parent: &Path, name: &str) -> Result<()> {
        let staging_prefix = format!(".{name}.staging-");
        let old_prefix = format!(".{name}.old-");
        let entries = std::fs::read_dir(parent)
            .map_err(PipelineError::io(format!("listing {}", parent.display())))?;
        let mut leftovers: Vec<PathBuf> = Vec::new();
        let mut aside: Vec<PathBuf> = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with(&staging_prefix) {
                leftovers.push(entry.path());
            } else if file_name.starts_with(&old_prefix) {
                aside.push(entry.path());
            }
        }
        aside.sort();
        for old in aside {
            if !self.target.exists() && is_billrun_output(&old) {
                tracing::warn!(
                    "restoring {} from {} (a run was killed while publishing)",
                    self.target.display(),
                    old.display()
                );
                std::fs::rename(&old, &self.target).map_err(PipelineError::io(format!(
                    "restoring {}",
                    self.target.display()
                )))?;
            } else {
                leftovers.push(old);
            }
        }
        for leftover in leftovers {
            tracing::warn!("removing {} (left by a killed run)", leftover.display());
            std::fs::remove_dir_all(&leftover).map_err(PipelineError::io(format!(
                "removing {}",
                leftover.display()
            )))?;
        }
        Ok(())
    }

    /// The staging folder.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Opens a writer for `table`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn table_writer(&self, table: &str, schema: SchemaRef) -> Result<TableWriter> {
        let relative = format!("{table}/part-00000.parquet");
        let dir = self.staging.join(table);
        std::fs::create_dir_all(&dir)
            .map_err(PipelineError::io(format!("creating {}", dir.display())))?;
        let path = self.staging.join(&relative);
        TableWriter::create(table, relative, path, schema)
    }

    /// Writes a whole table from `batches`, each written and dropped before the next is
    /// taken: a table built a block at a time is never held whole.
    ///
    /// # Errors
    /// The first error of `batches`; as [`TableWriter::write`].
    pub fn write_table<E>(
        &self,
        table: &str,
        schema: SchemaRef,
        batches: impl IntoIterator<Item = std::result::Result<RecordBatch, E>>,
    ) -> Result<OutputRecord>
    where
        PipelineError: From<E>,
    {
        let mut writer = self.table_writer(table, schema)?;
        for batch in batches {
            writer.write(&batch?)?;
        }
        writer.finish()
    }

    /// Writes `batches` as a further part file of `table` (`<table>/<part>.parquet`),
    /// beside the one [`Staging::table_writer`] writes.
    ///
    /// # Errors
    /// As [`TableWriter::write`].
    pub fn write_part(
        &self,
        table: &str,
        part: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<OutputRecord> {
        let relative = format!("{table}/{part}.parquet");
        let dir = self.staging.join(table);
        std::fs::create_dir_all(&dir)
            .map_err(PipelineError::io(format!("creating {}", dir.display())))?;
        let path = self.staging.join(&relative);
        let mut writer = TableWriter::create(table, relative, path, schema)?;
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()
    }

    /// Writes a non-table file (journal text, manifest).
    ///
    /// # Errors
    /// I/O errors.
    pub fn write_file(&self, relative: &str, contents: &[u8]) -> Result<OutputRecord> {
        let path = self.staging.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(PipelineError::io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, contents)
            .map_err(PipelineError::io(format!("writing {}", path.display())))?;
        Ok(OutputRecord {
            table: relative.to_string(),
            file: relative.to_string(),
            rows: 0,
            bytes: contents.len() as u64,
            sha256: hex::encode(Sha256::digest(contents)),
        })
    }

    /// Writes the text `render` writes into a file of the staging folder, through a
    /// buffer: a rendering of hundreds of megabytes is never held whole.
    ///
    /// # Errors
    /// I/O errors, and those of `render`.
    pub fn write_text(
        &self,
        relative: &str,
        render: impl FnOnce(&mut TextFile) -> Result<()>,
    ) -> Result<OutputRecord> {
        let path = self.staging.join(relative);
        let io = |e| PipelineError::io(format!("writing {}", path.display()))(e);
        let file = std::fs::File::create(&path).map_err(io)?;
        let mut text = TextFile {
            out: Hashed::new(std::io::BufWriter::with_capacity(1 << 20, file)),
            error: None,
        };
        render(&mut text)?;
        if let Some(e) = text.error.take() {
            return Err(io(e));
        }
        let (mut file, bytes, sha256) = text.out.finish();
        std::io::Write::flush(&mut file).map_err(io)?;
        Ok(OutputRecord {
            table: relative.to_string(),
            file: relative.to_string(),
            rows: 0,
            bytes,
            sha256,
        })
    }

    /// Moves the staging folder into place. A previous run's output is swapped out and
    /// removed; readers see the old run or the new one, never a mix.
    ///
    /// # Errors
    /// I/O errors.
    pub fn publish(mut self) -> Result<PathBuf> {
        let io = |what: &str| PipelineError::io(format!("{what} {}", self.target.display()));
        crate::failpoint("publish_before");
        if !self.target.exists() {
            std::fs::rename(&self.staging, &self.target).map_err(io("publishing"))?;
        } else if exchange(&self.staging, &self.target).map_err(io("publishing"))? {
            // The previous run is now at the staging name.
            self.published = true;
            crate::failpoint("publish_exchanged");
            std::fs::remove_dir_all(&self.staging).map_err(io("removing the previous run of"))?;
        } else {
            let old = self.staging.with_file_name(
                self.staging
                    .file_name()
                    .map(|n| n.to_string_lossy().replace(".staging-", ".old-"))
                    .unwrap_or_default(),
            );
            std::fs::rename(&self.target, &old).map_err(io("moving aside"))?;
            crate::failpoint("publish_aside");
            std::fs::rename(&self.staging, &self.target).map_err(io("publishing"))?;
            std::fs::remove_dir_all(&old).map_err(io("removing the previous run of"))?;
        }
        self.published = true;
        Ok(self.target.clone())
    }
}

/// A file of the staging folder written as text (`std::fmt::Write`), buffered and
/// hashed as it is written (the manifest's SHA-256 without reading the file back); the
/// first I/O error is kept for [`Staging::write_text`] to report.
pub struct TextFile {
    out: Hashed<std::io::BufWriter<std::fs::File>>,
    error: Option<std::io::Error>,
}

impl std::fmt::Debug for TextFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextFile").finish_non_exhaustive()
    }
}

impl std::fmt::Write for TextFile {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        use std::io::Write as _;
        if self.error.is_some() {
            return Err(std::fmt::Error);
        }
        self.out.write_all(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            std::fmt::Error
        })
    }
}

impl std::io::Write for TextFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Exchanges two folders atomically; `Ok(false)` where the system cannot.
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    // The tests take the fallback as a system without the exchange would.
    if std::env::var_os("BILLRUN_PUBLISH_WITHOUT_EXCHANGE").is_some() {
        return Ok(false);
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
            Ok(()) => Ok(true),
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Takes `.out.lock` beside `target`: created only if absent; a lock of a process of
/// this host that is gone is broken.
fn acquire_lock(parent: &Path, name: &str, target: &Path) -> Result<PathBuf> {
    use std::io::Write;
    let lock = parent.join(format!(".{name}.lock"));
    let me = crate::store::holder::Holder::this_process(chrono::Utc::now());
    let body = serde_json::to_vec(&me).unwrap_or_default();
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(mut file) => {
                file.write_all(&body)
                    .map_err(PipelineError::io(format!("writing {}", lock.display())))?;
                return Ok(lock);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let held = std::fs::read(&lock).unwrap_or_default();
                let holder: Option<crate::store::holder::Holder> =
                    serde_json::from_slice(&held).ok();
                // An empty or unreadable lock is one being written right now: wait for
                // its holder to fail or finish rather than guess.
                let gone = holder
                    .as_ref()
                    .is_some_and(|h| h.host == me.host && !h.is_alive_here());
                if !gone {
                    return Err(PipelineError::OutputLocked {
                        path: target.to_path_buf(),
                        lock,
                        holder: String::from_utf8_lossy(&held).into_owned(),
                    });
                }
                tracing::warn!(
                    "breaking {} (its process {} on this host is gone)",
                    lock.display(),
                    holder.map(|h| h.pid).unwrap_or_default()
                );
                std::fs::remove_file(&lock)
                    .map_err(PipelineError::io(format!("removing {}", lock.display())))?;
            }
            Err(e) => {
                return Err(PipelineError::io(format!("creating {}", lock.display()))(e));
            }
        }
    }
    Err(PipelineError::OutputLocked {
        path: target.to_path_buf(),
        lock,
        holder: "another run (the lock came back while breaking it)".into(),
    })
}

impl Drop for Staging {
    fn drop(&mut self) {
        // A failed run cleans up after itself; a killed one leaves a hidden folder and
        // its lock, which the next run into the same `--out` removes.
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// Whether `dir` is empty or holds a billrun run (it has a manifest).
fn is_billrun_output(dir: &Path) -> bool {
    dir.join("manifest.json").is_file()
        || std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}
