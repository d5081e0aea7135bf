//! The staging folder: every output written beside the output folder, then published
//! in one rename.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::table_writer::TableWriter;
use super::{OutputRecord, file_digest};
use crate::error::{PipelineError, Result};

/// The staging folder of a run and where it will be published.
#[derive(Debug)]
pub struct Staging {
    staging: PathBuf,
    target: PathBuf,
    published: bool,
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
        let staging = parent.join(format!(".{name}.staging-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .map_err(PipelineError::io(format!("clearing {}", staging.display())))?;
        }
        std::fs::create_dir_all(&staging)
            .map_err(PipelineError::io(format!("creating {}", staging.display())))?;
        Ok(Self {
            staging,
            target: target.to_path_buf(),
            published: false,
        })
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

    /// Writes a whole table from batches already in memory.
    ///
    /// # Errors
    /// As [`TableWriter::write`].
    pub fn write_table(
        &self,
        table: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<OutputRecord> {
        let mut writer = self.table_writer(table, schema)?;
        for batch in batches {
            writer.write(batch)?;
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
        std::fs::write(&path, contents)
            .map_err(PipelineError::io(format!("writing {}", path.display())))?;
        let (bytes, sha256) = file_digest(&path)?;
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
        if self.target.exists() {
            let old = self.staging.with_extension("old");
            std::fs::rename(&self.target, &old).map_err(io("moving aside"))?;
            std::fs::rename(&self.staging, &self.target).map_err(io("publishing"))?;
            std::fs::remove_dir_all(&old).map_err(io("removing the previous run of"))?;
        } else {
            std::fs::rename(&self.staging, &self.target).map_err(io("publishing"))?;
        }
        self.published = true;
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // A failed run cleans up after itself; a killed one leaves only a hidden folder.
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Whether `dir` is empty or holds a billrun run (it has a manifest).
fn is_billrun_output(dir: &Path) -> bool {
    dir.join("manifest.json").is_file()
        || std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}
