//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong loading a job or sending a notification.
///
/// Job-file errors name the file, the key and what is wrong; channel errors name the
/// channel. None of them ever carries a secret's value, only the name of its variable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job file or folder cannot be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        path: PathBuf,
        // Not a `source`: the message already says it, and the CLI prints the chain.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or has a key of the wrong type or an unknown key.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key has a value the job cannot use.
    #[error("{}: `{key}`: {problem}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
    /// Two job files in one folder have the same name.
    #[error("{}: job name `{name}` is also used by {}", file.display(), other.display())]
    DuplicateName {
        file: PathBuf,
        other: PathBuf,
        name: String,
    },
    /// A credential's environment variable is not set.
    #[error("{channel}: environment variable {var} is not set")]
    MissingEnv { channel: String, var: String },
    /// A notification channel failed.
    #[error("{channel}: {message}")]
    Channel { channel: String, message: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
