//! silo's repository format: every byte silo writes to a repository is produced and parsed here.
//! Pure codecs and cryptography only — no files, no sockets, no clocks — so that every decoder can be fuzzed
//! and every encoder checked against the test vectors in `format-spec/`.

pub mod chunker;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod encoding;
pub mod envelope;
pub mod error;
pub mod id;
pub mod index;
mod kdf_memory;
pub mod keyfile;
pub mod maintenance;
pub mod manifest;
pub mod pack;
pub mod sealed;
pub mod sketch;

pub use codec::{columns, Codec};
pub use crypto::{Keys, MasterSecret};
pub use envelope::{Aad, ObjectKind};
pub use error::FormatError;
pub use id::{ObjectId, RepoId};
pub use sealed::Sealed;

/// The repository format version this build reads and writes (`config` header field `format_version`).
pub const FORMAT_VERSION: u32 = 1;
