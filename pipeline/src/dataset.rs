//! Datasets on object storage: one folder (prefix) per table, CSV or Parquet files in it.

use std::sync::Arc;

use billrun_schemas::Table;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{PipelineError, Result};

/// How a file's rows are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Parquet,
}

impl FileFormat {
    /// The format a file name's extension says (`.csv`, `.parquet`), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(FileFormat::Csv)
        } else if lower.ends_with(".parquet") || lower.ends_with(".parq") {
            Some(FileFormat::Parquet)
        } else {
            None
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "CSV",
            FileFormat::Parquet => "Parquet",
        }
    }
}

/// One input file of a table.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub table: Table,
    /// Path relative to the dataset root, as shown to people (`usage/2026-10-a.csv`).
    pub name: String,
    pub location: Path,
    pub format: FileFormat,
    pub size: u64,
}

/// A dataset: a folder or object-store prefix with one sub-folder per table.
#[derive(Debug, Clone)]
pub struct Dataset {
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// The location as the user gave it, for messages and the manifest.
    pub location: String,
}

impl Dataset {
    /// Opens a dataset from a local path or a URL (`file:///x`).
    ///
    /// # Errors
    /// [`PipelineError::DatasetLocation`] when the location cannot be resolved to a store.
    pub fn open(location: &str) -> Result<Self> {
        let url = location_url(location)?;
        // Object-store settings (credentials, endpoint, region, allow_http) come from the
        // environment, as `AWS_*` variables: never from job files or logs.
        let settings = std::env::vars()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .filter(|(k, _)| k.starts_with("aws_"));
        let (store, root) = object_store::parse_url_opts(&url, settings).map_err(|e| {
            PipelineError::DatasetLocation {
                location: location.to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            store: Arc::from(store),
            root,
            location: location.to_string(),
        })
    }

    /// Lists a table's files in file-name order (the order that decides which duplicate
    /// comes first). Files that are neither CSV nor Parquet are an error rather than skipped,
    /// so a mistyped extension cannot quietly leave usage unbilled.
    ///
    /// # Errors
    /// Listing failures, and [`PipelineError::UnknownFormat`].
    pub async fn table_files(&self, table: Table) -> Result<Vec<InputFile>> {
        let prefix = self.root.clone().join(table.name());
        let mut metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        let mut files = Vec::with_capacity(metas.len());
        for meta in metas {
            let name = relative_name(&self.root, &meta.location);
            let file_name = meta.location.filename().unwrap_or_default();
            if file_name.starts_with('.') || file_name.starts_with('_') {
                // Hidden and marker files (`.DS_Store`, `_SUCCESS`) carry no rows.
                continue;
            }
            let format =
                FileFormat::from_name(file_name).ok_or_else(|| PipelineError::UnknownFormat {
                    file: name.clone(),
                    table: table.name().to_string(),
                })?;
            files.push(InputFile {
                table,
                name,
                location: meta.location,
                format,
                size: meta.size,
            });
        }
        Ok(files)
    }

    /// Reads a whole file.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn read(&self, file: &InputFile) -> Result<Bytes> {
        Ok(self.store.get(&file.location).await?.bytes().await?)
    }

    /// Opens a location that may not exist yet: a local folder is created first.
    ///
    /// # Errors
    /// As [`Dataset::open`], and I/O creating the folder.
    pub fn open_or_create(location: &str) -> Result<Self> {
        if !location.contains("://") {
            std::fs::create_dir_all(location)
                .map_err(PipelineError::io(format!("creating {location}")))?;
        }
        Self::open(location)
    }

    /// The object at `relative` (a `/`-separated path below the root).
    ///
    /// # Errors
    /// [`PipelineError::DatasetLocation`] when `relative` is not a valid object path
    /// (for example a `..` segment).
    pub fn path(&self, relative: &str) -> Result<Path> {
        let full = if self.root.as_ref().is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.root.as_ref())
        };
        Path::parse(&full).map_err(|e| PipelineError::DatasetLocation {
            location: format!("{}/{relative}", self.location),
            reason: e.to_string(),
        })
    }

    /// Every object below the root, with its path relative to the root and its size, in
    /// name order.
    ///
    /// # Errors
    /// Listing failures.
    pub async fn list_all(&self) -> Result<Vec<(String, Path, u64)>> {
        let mut metas: Vec<_> = self.store.list(Some(&self.root)).try_collect().await?;
        metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        Ok(metas
            .into_iter()
            .map(|m| (relative_name(&self.root, &m.location), m.location, m.size))
            .collect())
    }

    /// Reads the object at `location`.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn get(&self, location: &Path) -> Result<Bytes> {
        Ok(self.store.get(location).await?.bytes().await?)
    }

    /// Whether an object exists at `location`.
    ///
    /// # Errors
    /// Object-store failures other than "not found".
    pub async fn exists(&self, location: &Path) -> Result<bool> {
        match self.store.head(location).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `bytes` at `location`, replacing what was there, in one step.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn put(&self, location: &Path, bytes: Bytes) -> Result<()> {
        self.store.put(location, bytes.into()).await?;
        Ok(())
    }

    /// Writes `bytes` at `location` only if nothing is there: `false` if something was.
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn put_new(&self, location: &Path, bytes: Bytes) -> Result<bool> {
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        match self.store.put_opts(location, bytes.into(), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves an object (copy and delete where the store has no rename).
    ///
    /// # Errors
    /// Object-store failures.
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.store.rename(from, to).await?;
        Ok(())
    }

    /// Deletes an object; a missing object is not an error.
    ///
    /// # Errors
    /// Object-store failures other than "not found".
    pub async fn delete(&self, location: &Path) -> Result<()> {
        match self.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn relative_name(root: &Path, location: &Path) -> String {
    let full = location.as_ref();
    let root = root.as_ref();
    full.strip_prefix(root)
        .map(|s| s.trim_start_matches('/'))
        .unwrap_or(full)
        .to_string()
}

/// Turns a user-given location into a URL: URLs pass through, local paths become `file://`.
fn location_url(location: &str) -> Result<Url> {
    if location.contains("://") {
        return Url::parse(location).map_err(|e| PipelineError::DatasetLocation {
            location: location.to_string(),
            reason: e.to_string(),
        });
    }
    let path = std::path::Path::new(location);
    let absolute = path
        .canonicalize()
        .map_err(|e| PipelineError::DatasetLocation {
            location: location.to_string(),
            reason: e.to_string(),
        })?;
    Url::from_directory_path(&absolute).map_err(|()| PipelineError::DatasetLocation {
        location: location.to_string(),
        reason: "not an absolute directory path".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_table_files_in_name_order_and_refuses_unknown_formats() {
        let dir = tempfile::tempdir().unwrap();
        let usage = dir.path().join("usage");
        std::fs::create_dir(&usage).unwrap();
        for name in ["b.csv", "a.parquet", "_SUCCESS", ".hidden"] {
            std::fs::write(usage.join(name), b"").unwrap();
        }
        let dataset = Dataset::open(dir.path().to_str().unwrap()).unwrap();
        let files = dataset.table_files(Table::Usage).await.unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["usage/a.parquet", "usage/b.csv"]);

        std::fs::write(usage.join("c.xlsx"), b"").unwrap();
        let err = dataset.table_files(Table::Usage).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "usage/c.xlsx: files of table `usage` must end in .csv or .parquet"
        );
        assert!(
            dataset
                .table_files(Table::Customers)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
