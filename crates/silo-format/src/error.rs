//! The one error type of the format crate: what was wrong with a byte string, never where it came from
//! (the caller names the object).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FormatError {
    #[error("authentication failed (wrong key, or the object was damaged or tampered with)")]
    Authentication,
    #[error("truncated: need at least {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
    #[error("bad magic bytes (not a silo {what})")]
    BadMagic { what: &'static str },
    #[error("unsupported {what} version {found} (this build supports {supported})")]
    UnsupportedVersion { what: &'static str, found: u32, supported: u32 },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

impl FormatError {
    pub fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        FormatError::Malformed { what, reason: reason.into() }
    }
}
