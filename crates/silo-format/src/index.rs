//! Index segments: immutable lists of chunk locations for the packs one writer session (or one gc run)
//! produced, plus gc's deletion marks (format-spec/index.md). The union of all segments is the index.

use crate::pack::{validate_entries, PackEntry, MAX_PACK_LEN};
use crate::{encoding, FormatError, ObjectId, ObjectKind, Sealed};
use bincode::{Decode, Encode};

pub const INDEX_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct IndexPack {
    pub pack: ObjectId,
    /// Size of the whole pack file in bytes.
    pub pack_size: u64,
    pub entries: Vec<PackEntry>,
}

/// A pack that gc found unreferenced and marked deleted at `marked_at` (microseconds since the Unix epoch).
/// Writers never deduplicate against chunks of a marked pack.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DeletedPack {
    pub pack: ObjectId,
    pub marked_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Default)]
pub struct IndexSegment {
    pub version: u32,
    pub packs: Vec<IndexPack>,
    pub deleted: Vec<DeletedPack>,
    /// Segments whose whole content this segment repeats (index compaction); they may be deleted once this
    /// segment is durable.
    pub supersedes: Vec<ObjectId>,
}

impl IndexSegment {
    pub fn new() -> Self {
        IndexSegment { version: INDEX_VERSION, ..Default::default() }
    }
}

impl Sealed for IndexSegment {
    const KIND: ObjectKind = ObjectKind::IndexSegment;
    const WHAT: &'static str = "index segment";
    const VERSION: u32 = INDEX_VERSION;
    const COMPRESSION: Option<i32> = Some(3);
    const MAX_BODY: usize = encoding::MAX_BODY;

    fn version(&self) -> u32 {
        self.version
    }

    fn validate(&self) -> Result<(), FormatError> {
        for p in &self.packs {
            if p.pack_size > MAX_PACK_LEN {
                return Err(FormatError::malformed(
                    "index segment",
                    format!("pack {} larger than 4 GiB", p.pack.short()),
                ));
            }
            validate_entries("index segment", &p.entries, p.pack_size)?;
        }
        Ok(())
    }
}
