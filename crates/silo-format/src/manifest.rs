//! Snapshot manifests: what a snapshot is (name, host, tags, times) and, per stream, the ordered chunk list,
//! byte count, whole-stream BLAKE3 and the producing command with its exit status (format-spec/manifest.md).

use crate::{encoding, FormatError, ObjectId, ObjectKind, Sealed};
use bincode::{Decode, Encode};

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StreamManifest {
    pub name: String,
    /// argv of the command silo ran to produce the stream; `None` for standard input.
    pub command: Option<Vec<String>>,
    /// The command's exit code (always 0 in a committed snapshot; kept for the record).
    pub exit_status: Option<i32>,
    pub size: u64,
    /// Unkeyed BLAKE3 of the whole stream, so a user can compare with `b3sum` of the original.
    pub blake3: [u8; 32],
    pub chunks: Vec<ObjectId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SnapshotManifest {
    pub version: u32,
    pub name: String,
    pub host: String,
    pub tags: Vec<String>,
    /// Microseconds since the Unix epoch, UTC.
    pub started: i64,
    pub finished: i64,
    pub silo_version: String,
    pub streams: Vec<StreamManifest>,
}

impl SnapshotManifest {
    pub fn total_size(&self) -> u64 {
        self.streams.iter().map(|s| s.size).sum()
    }
}

impl Sealed for SnapshotManifest {
    const KIND: ObjectKind = ObjectKind::Snapshot;
    const WHAT: &'static str = "snapshot manifest";
    const VERSION: u32 = MANIFEST_VERSION;
    const COMPRESSION: Option<i32> = Some(3);
    const MAX_BODY: usize = encoding::MAX_BODY;

    fn version(&self) -> u32 {
        self.version
    }

    fn validate(&self) -> Result<(), FormatError> {
        if self.streams.is_empty() {
            return Err(FormatError::malformed("snapshot manifest", "no streams"));
        }
        Ok(())
    }
}
