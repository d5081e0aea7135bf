//! The pipeline's one error type.
//!
//! Bad input that makes a whole run impossible is an operating error with a precise
//! variant naming the file, table or customer at fault; bad *rows* never reach here, they
//! go to `rejects`. A broken invariant is [`PipelineError::Internal`]: a bug in billrun.

use std::path::PathBuf;

use billrun_schemas::TemplateError;

/// Everything that can stop a bill run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("dataset location `{location}` is not usable: {reason}")]
    DatasetLocation { location: String, reason: String },

    /// The dataset cannot be read as it was at an instant (a file without its import
    /// record, a record or history file that cannot be placed before or after it).
    #[error("{file}: cannot read the dataset as of {as_of}: {reason}")]
    AsOf {
        file: String,
        as_of: String,
        reason: String,
    },

    #[error("{file}: {source}")]
    Template {
        file: String,
        #[source]
        source: TemplateError,
    },

    #[error("{file}: cannot read {format} file: {reason}")]
    UnreadableFile {
        file: String,
        format: &'static str,
        reason: String,
    },

    #[error("{file}: files of table `{table}` must end in .csv or .parquet")]
    UnknownFormat { file: String, table: String },

    #[error("dataset has no `{table}` table (expected files under `{table}/`)")]
    MissingTable { table: &'static str },

    /// Invoicing, recognition or the ledger cannot go on (a region without a tax rate,
    /// an overflow, a broken invariant).
    #[error(transparent)]
    Accounting(#[from] billrun_accounting::AccountingError),

    #[error("output directory `{}` exists and is not a billrun output (no manifest.json); refusing to replace it", path.display())]
    OutputNotOurs { path: PathBuf },

    #[error(
        "output directory `{}` is being written by another billrun run (lock `{}` held: {holder}); wait for it to finish",
        path.display(),
        lock.display()
    )]
    OutputLocked {
        path: PathBuf,
        lock: PathBuf,
        holder: String,
    },

    #[error(
        "inbox `{inbox}` is being swept by another billrun (lock held: {holder}); wait for it to finish, or remove `_billrun/sweep.lock` if that sweep is dead"
    )]
    InboxLocked { inbox: String, holder: String },

    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// The books refuse this run: a period already posted, a gap, changed inputs for
    /// the last posted period. `reason` says where the change will go instead.
    #[error("books `{books}`: {reason}")]
    BooksRefused { books: String, reason: String },

    /// Another run posted to the books between this run's start and its commit.
    #[error(
        "books `{books}`: another run posted version {version} (period {period}, at {posted_at}) while this one ran; nothing of this run was posted: run it again"
    )]
    BooksConflict {
        books: String,
        version: u64,
        period: String,
        posted_at: String,
    },

    /// A books location that cannot be read as billrun books: written by an
    /// incompatible version, or a damaged file. Nothing is changed.
    #[error("books `{books}`: {file}: {reason}")]
    BooksDamaged {
        books: String,
        file: String,
        reason: String,
    },

    #[error("billing arithmetic failed: {0}")]
    Engine(#[from] billrun_engine::EngineError),

    #[error("query engine: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),

    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("internal error (a bug in billrun, please report it): {0}")]
    Internal(String),
}

impl PipelineError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| PipelineError::Io { context, source }
    }
}

/// Result alias of the pipeline.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    /// The process exit status for this error (documented in the README): 2 for the
    /// command line, 65 for input data (a file, a row, master data, the books), 74 for
    /// the file system or object store, 75 when another process holds what the run
    /// needs (try again later), 70 for a fault of billrun itself.
    pub fn exit_code(&self) -> u8 {
        match self {
            PipelineError::InvalidOption(_) | PipelineError::OutputNotOurs { .. } => 2,
            PipelineError::DatasetLocation { .. }
            | PipelineError::AsOf { .. }
            | PipelineError::Template { .. }
            | PipelineError::UnreadableFile { .. }
            | PipelineError::UnknownFormat { .. }
            | PipelineError::MissingTable { .. }
            | PipelineError::Accounting(_)
            | PipelineError::Engine(_)
            | PipelineError::BooksRefused { .. }
            | PipelineError::BooksDamaged { .. } => 65,
            PipelineError::ObjectStore(_) | PipelineError::Io { .. } => 74,
            PipelineError::OutputLocked { .. }
            | PipelineError::InboxLocked { .. }
            | PipelineError::BooksConflict { .. } => 75,
            PipelineError::DataFusion(_)
            | PipelineError::Parquet(_)
            | PipelineError::Arrow(_)
            | PipelineError::Internal(_) => 70,
        }
    }
}
