//! Index segments: immutable lists of chunk locations for the packs one writer session (or one gc run)
//! produced, plus gc's deletion marks (format-spec/index.md). The union of all segments is the index.

use crate::pack::{validate_entries, PackEntry, MAX_PACK_LEN};
use crate::{encoding, envelope, Aad, FormatError, Keys, ObjectId, ObjectKind, RepoId};
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

    pub fn seal(&self, keys: &Keys, repo: RepoId, id: ObjectId, nonce: [u8; 12]) -> Vec<u8> {
        let key = keys.object_key(ObjectKind::IndexSegment, &id);
        envelope::seal(&key, &Aad::new(repo, ObjectKind::IndexSegment, id), &encoding::encode(self), Some(3), nonce)
    }

    pub fn open(keys: &Keys, repo: RepoId, id: ObjectId, sealed: &[u8]) -> Result<Self, FormatError> {
        let key = keys.object_key(ObjectKind::IndexSegment, &id);
        let body = envelope::open(&key, &Aad::new(repo, ObjectKind::IndexSegment, id), sealed, encoding::MAX_BODY)?;
        Self::decode_body(&body)
    }

    pub fn decode_body(body: &[u8]) -> Result<Self, FormatError> {
        let seg: IndexSegment = encoding::decode("index segment", body)?;
        if seg.version != INDEX_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "index segment",
                found: seg.version,
                supported: INDEX_VERSION,
            });
        }
        for p in &seg.packs {
            if p.pack_size > MAX_PACK_LEN {
                return Err(FormatError::malformed(
                    "index segment",
                    format!("pack {} larger than 4 GiB", p.pack.short()),
                ));
            }
            validate_entries("index segment", &p.entries, p.pack_size)?;
        }
        Ok(seg)
    }
}
