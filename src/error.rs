//! The library's error type. Every variant names the object involved and, where there is one, what the user
//! can do about it; the CLI maps variants to documented exit codes.

use crate::backend::BackendError;
use silo_format::FormatError;
use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{location} is not a silo repository (no config object); create one with `silo init`")]
    NotARepository { location: String },
    #[error("{location} already contains a repository or other files; choose an empty or new directory")]
    AlreadyExists { location: String },
    #[error("repository format {found} is not supported by this silo (supports {supported}); upgrade silo")]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("wrong password: no key file in keys/ accepts it")]
    WrongPassword,
    #[error("no password given: set SILO_PASSWORD or SILO_PASSWORD_FILE, pass --password-file, or run on a terminal")]
    NoPassword,
    #[error("{object}: {source} (repository damaged? run `silo check`)")]
    Damaged { object: String, source: FormatError },
    #[error("{object}: {reason} (repository damaged? run `silo check`)")]
    Inconsistent { object: String, reason: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("index cache {path}: {reason}")]
    Cache { path: String, reason: String },
    #[error("no snapshot matches {spec:?}; list them with `silo snapshot list`")]
    SnapshotNotFound { spec: String },
    #[error("{spec:?} matches {count} snapshots; give more characters of the id")]
    AmbiguousSnapshot { spec: String, count: usize },
    #[error("{what}: {message}")]
    Input { what: String, message: String },
    #[error("command `{command}` {status}; no snapshot was written{stderr_tail}")]
    CommandFailed { command: String, status: String, stderr_tail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    /// Another part of the pipeline failed first; that error is the one reported.
    #[error("aborted")]
    Aborted,
}

impl Error {
    pub fn damaged(object: impl Into<String>, source: FormatError) -> Self {
        Error::Damaged { object: object.into(), source }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }
}
