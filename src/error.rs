//! The library's error type. Every variant names the object involved and, where there is one, what the user
//! can do about it; the CLI maps variants to documented exit codes.

use crate::backend::BackendError;
use silo_format::FormatError;
use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "{location} is not a silo repository (no config object there): check the location given by --repo or SILO_REPO"
    )]
    NotARepository { location: String },
    #[error("{location} holds a `config` that is not silo's (a restic or borg repository?); point --repo at a silo repository, or `silo init` an empty directory")]
    ForeignRepository { location: String },
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
    #[error("{spec}: manifest {object} is unreadable ({reason}) and may be a newer snapshot of that name; nothing was restored. Restore an older one by id, or pass --fallback to take the newest readable one (repository damaged? run `silo check`)")]
    NewerManifestUnreadable { spec: String, object: String, reason: String },
    #[error("no snapshot matches {spec:?}{hint}; list them with `silo snapshot list`")]
    SnapshotNotFound { spec: String, hint: String },
    #[error("{spec:?} matches {count} snapshots; give more characters of the id")]
    AmbiguousSnapshot { spec: String, count: usize },
    #[error("{what}: {message}")]
    Input { what: String, message: String },
    #[error("command `{command}` {status}; {outcome}{stderr_tail}")]
    CommandFailed { command: String, status: String, outcome: &'static str, stderr_tail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("gc is already running on {host} (pid {pid}); its lease expires at {until}. Wait, or if that gc is dead, retry after then")]
    GcBusy { host: String, pid: u32, until: String },
    #[error(
        "gc lost its lease (it was paused or ran past {until}); stopped before deleting anything more. Run gc again"
    )]
    LeaseLost { until: String },
    #[error("clock skew: this machine's clock differs from the repository's by {seconds} s; gc refuses to run. Fix the clock (NTP)")]
    ClockSkew { seconds: i64 },
    #[error("{action} needs an owner key (it deletes, rewrites or grants access), and this password opens a writer key (append-only): run it where an owner password is kept")]
    WriterKey { action: String },
    #[error("{reason}; nothing was committed and nothing stored was lost: run it again")]
    SessionExpired { reason: String },
    #[error("stream {stream} is empty (0 bytes read): nothing was committed. A dump that failed inside a pipe looks like this; check the command, or pass --allow-empty if an empty stream is expected")]
    EmptyStream { stream: String },
    #[error("snapshot {name} would be {bytes} bytes, below the job's min_size of {min} bytes: nothing was committed (a dump that failed early looks like this); check the dump, or lower min_size")]
    TooSmall { name: String, bytes: u64, min: u64 },
    #[error("stream {stream} is a {format} that is not whole: {problem}; nothing was committed. Check the dump command's errors, or pass --accept-invalid to store it marked as invalid (--no-validate {stream} if the stream only looks like a {format})")]
    InvalidDump { stream: String, format: String, problem: String },
    #[error("check found {objects} damaged objects; {snapshots} snapshots cannot be fully restored (details above)")]
    CheckDamaged { objects: usize, snapshots: usize },
    #[error("stale: {what}")]
    Stale { what: String },
    /// Another part of the pipeline failed first; that error is the one reported.
    #[error("aborted")]
    Aborted,
    /// Ctrl-C, SIGTERM or the deadline stopped a create before its commit (crate::interrupt exits).
    #[error("interrupted before {what} was committed; nothing was committed")]
    Interrupted { what: String },
}

impl Error {
    pub fn damaged(object: impl Into<String>, source: FormatError) -> Self {
        Error::Damaged { object: object.into(), source }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }
}
