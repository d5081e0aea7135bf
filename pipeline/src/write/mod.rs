//! The `write` stage: the run's tables written, then published in one step.
//!
//! Everything is written under a hidden staging folder beside the output folder; only
//! when every table, the journal and the manifest are complete is the staging folder
//! renamed into place. A run killed half-way leaves at most a stray staging folder, never
//! a half-written table where a reader looks.
//!
//! Files are byte-for-byte reproducible: rows arrive in a fixed order, are re-cut into
//! fixed-size batches before the writer sees them, and the writer's properties (including
//! `created_by`) are fixed.
//!
//! The columns of a row group are encoded and compressed in parallel (rayon), each by its
//! own column writer fed the same slices in the same order as `ArrowWriter` would feed
//! it, so the bytes are those `ArrowWriter` writes. Encoding `rated_usage` on one thread
//! was the slowest step of a large run.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{PipelineError, Result};

mod staging;
mod table_writer;

pub use staging::Staging;
pub use table_writer::TableWriter;
pub(crate) use table_writer::writer_properties;

/// What the manifest records of one output file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputRecord {
    pub table: String,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// A writer that hashes what passes through it: the manifest's SHA-256 and size of a
/// file taken as it is written, never by reading the file back.
pub(crate) struct Hashed<W> {
    inner: W,
    digest: Sha256,
    bytes: u64,
}

impl<W> Hashed<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            digest: Sha256::new(),
            bytes: 0,
        }
    }

    /// The writer, with the size and hex SHA-256 of everything written through it.
    pub(crate) fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.digest.finalize()))
    }
}

impl<W: std::io::Write> std::io::Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// SHA-256 and size of a file.
///
/// # Errors
/// I/O errors.
pub fn file_digest(path: &Path) -> Result<(u64, String)> {
    let mut file =
        File::open(path).map_err(PipelineError::io(format!("reading {}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(PipelineError::io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((total, hex::encode(hasher.finalize())))
}
