//! Documented exit codes (docs/operations.md "Exit codes") and the mapping of every error to one of them.

use super::output::OutputFailed;

pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const AUTH: u8 = 4;
pub const DAMAGED: u8 = 5;
pub const BUSY: u8 = 6;
pub const COMMAND_FAILED: u8 = 7;
pub const STALE: u8 = 8;
/// The work is done (a snapshot committed, a report made) but the answer could not be written to stdout.
pub const OUTPUT_FAILED: u8 = 9;
/// `silo status`: a job's latest run failed or its dump shrank (docs/operations.md "Exit codes").
pub const FAILING: u8 = 10;
/// `silo restore-database`: the restored database did not verify; the live database is unchanged.
pub const VERIFY_FAILED: u8 = 11;
/// `silo restore-database`: swapped in, the start command failed, the previous database was put back.
pub const ROLLED_BACK: u8 = 12;
/// The reader of stdout went away (`| head`): silo stopped quietly, as a process killed by SIGPIPE.
pub const BROKEN_PIPE: u8 = 141;

/// A run or status whose report was printed and whose exit code is the worst outcome it found.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RunFailed {
    pub code: u8,
    pub message: String,
}

pub fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(r) = err.downcast_ref::<RunFailed>() {
        return r.code;
    }
    use silo::backend::BackendError as B;
    use silo::Error as E;
    if err.downcast_ref::<OutputFailed>().is_some() {
        return OUTPUT_FAILED;
    }
    let backend = err.downcast_ref::<B>().or(match err.downcast_ref::<silo::Error>() {
        Some(E::Backend(b)) => Some(b),
        _ => None,
    });
    match backend {
        Some(B::Location { .. }) => return USAGE,
        Some(B::GaveUp { .. }) => return UNREACHABLE,
        _ => {}
    }
    match err.downcast_ref::<silo::Error>() {
        Some(E::NotARepository { .. } | E::ForeignRepository { .. } | E::UnsupportedFormat { .. }) => UNREACHABLE,
        Some(E::WrongPassword | E::NoPassword | E::WriterKey { .. }) => AUTH,
        Some(E::Damaged { .. } | E::Inconsistent { .. } | E::NewerManifestUnreadable { .. }) => DAMAGED,
        Some(E::CommandFailed { .. }) => COMMAND_FAILED,
        Some(E::CheckDamaged { .. }) => DAMAGED,
        Some(E::Stale { .. }) => STALE,
        Some(E::Input { .. } | E::SnapshotNotFound { .. } | E::AmbiguousSnapshot { .. }) => USAGE,
        Some(E::EmptyStream { .. } | E::TooSmall { .. } | E::InvalidDump { .. }) => COMMAND_FAILED,
        Some(E::GcBusy { .. } | E::LeaseLost { .. } | E::ClockSkew { .. } | E::SessionExpired { .. }) => BUSY,
        _ => FAILURE,
    }
}
