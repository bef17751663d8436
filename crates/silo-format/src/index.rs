//! Index segments: immutable lists of chunk locations for the packs one writer session (or one gc run)
//! produced, plus gc's deletion marks (format-spec/index.md). The union of all segments is the index.

use crate::pack::{validate_deltas, validate_entries, DeltaRef, PackEntry, MAX_PACK_LEN};
use crate::{encoding, FormatError, ObjectId, ObjectKind, Sealed};
use bincode::{Decode, Encode};

/// The newest segment version: 2 lists delta references per pack. Writers use version 1 when no pack it
/// names holds a delta, so such segments stay readable by silo versions that know only version 1; a
/// version 1 reader refuses a version 2 segment by name (and so never collects a base a delta needs).
pub const INDEX_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct IndexPack {
    pub pack: ObjectId,
    /// Size of the whole pack file in bytes.
    pub pack_size: u64,
    pub entries: Vec<PackEntry>,
    /// Version 2: the entries that are deltas (as in the pack's trailer).
    pub deltas: Vec<DeltaRef>,
}

impl IndexPack {
    /// This pack's entries without those of `chunks`, delta references renumbered to the entries kept
    /// (format-spec/index.md: a segment may omit trailer entries, for copies found damaged). `None` when no
    /// entry is left.
    pub fn without(&self, chunks: &std::collections::HashSet<ObjectId>) -> Option<IndexPack> {
        let mut renumbered: Vec<Option<u32>> = Vec::with_capacity(self.entries.len());
        let mut entries = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            if chunks.contains(&e.chunk) {
                renumbered.push(None);
            } else {
                renumbered.push(Some(entries.len() as u32));
                entries.push(*e);
            }
        }
        if entries.is_empty() {
            return None;
        }
        let deltas = self
            .deltas
            .iter()
            .filter_map(|d| {
                let entry = (*renumbered.get(d.entry as usize)?)?;
                Some(DeltaRef { entry, ..*d })
            })
            .collect();
        Some(IndexPack { pack: self.pack, pack_size: self.pack_size, entries, deltas })
    }

    /// Whether this index entry list is `trailer`'s (entries and delta references) with some entries left
    /// out, as `without` leaves them out.
    pub fn agrees_with(&self, trailer_entries: &[PackEntry], trailer_deltas: &[DeltaRef]) -> bool {
        let kept: std::collections::HashSet<ObjectId> = self.entries.iter().map(|e| e.chunk).collect();
        let left_out: std::collections::HashSet<ObjectId> =
            trailer_entries.iter().map(|e| e.chunk).filter(|c| !kept.contains(c)).collect();
        let whole = IndexPack {
            pack: self.pack,
            pack_size: self.pack_size,
            entries: trailer_entries.to_vec(),
            deltas: trailer_deltas.to_vec(),
        };
        whole.without(&left_out).is_some_and(|w| w.entries == self.entries && w.deltas == self.deltas)
    }
}

#[derive(Encode, Decode)]
struct IndexPackV1 {
    pack: ObjectId,
    pack_size: u64,
    entries: Vec<PackEntry>,
}

#[derive(Encode, Decode)]
struct IndexSegmentV1 {
    version: u32,
    packs: Vec<IndexPackV1>,
    deleted: Vec<DeletedPack>,
    supersedes: Vec<ObjectId>,
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
    /// An empty segment; `seal` gives it the version its content needs.
    pub fn new() -> Self {
        IndexSegment { version: 1, ..Default::default() }
    }

    /// The version a writer gives this segment: 2 only when a pack holds a delta.
    pub fn version_needed(&self) -> u32 {
        if self.packs.iter().any(|p| !p.deltas.is_empty()) {
            INDEX_VERSION
        } else {
            1
        }
    }

    fn encode_body(&self) -> Vec<u8> {
        let version = self.version_needed();
        if version != 1 {
            return encoding::encode(&IndexSegment { version, ..self.clone() });
        }
        encoding::encode(&IndexSegmentV1 {
            version: 1,
            packs: self
                .packs
                .iter()
                .map(|p| IndexPackV1 { pack: p.pack, pack_size: p.pack_size, entries: p.entries.clone() })
                .collect(),
            deleted: self.deleted.clone(),
            supersedes: self.supersedes.clone(),
        })
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

    fn seal(&self, keys: &crate::Keys, repo: crate::RepoId, id: ObjectId, nonce: [u8; 12]) -> Vec<u8> {
        let key = keys.object_key(Self::KIND, &id);
        crate::envelope::seal(
            &key,
            &crate::Aad::new(repo, Self::KIND, id),
            &self.encode_body(),
            Self::COMPRESSION,
            nonce,
        )
    }

    fn decode_body(body: &[u8]) -> Result<Self, FormatError> {
        let s = match body.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) {
            Some(1) => {
                let v1: IndexSegmentV1 = encoding::decode(Self::WHAT, body)?;
                IndexSegment {
                    version: 1,
                    packs: v1
                        .packs
                        .into_iter()
                        .map(|p| IndexPack {
                            pack: p.pack,
                            pack_size: p.pack_size,
                            entries: p.entries,
                            deltas: Vec::new(),
                        })
                        .collect(),
                    deleted: v1.deleted,
                    supersedes: v1.supersedes,
                }
            }
            Some(INDEX_VERSION) => encoding::decode(Self::WHAT, body)?,
            Some(found) => {
                return Err(FormatError::UnsupportedVersion { what: Self::WHAT, found, supported: INDEX_VERSION })
            }
            None => return Err(FormatError::Truncated { needed: 4, have: body.len() }),
        };
        s.validate()?;
        Ok(s)
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
            validate_deltas("index segment", &p.entries, &p.deltas)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(c: u8, offset: u32) -> PackEntry {
        PackEntry { chunk: ObjectId([c; 32]), offset, stored_len: 100, raw_len: 200 }
    }

    fn pack() -> IndexPack {
        IndexPack {
            pack: ObjectId([9; 32]),
            pack_size: 10_000,
            entries: vec![entry(1, 16), entry(2, 116), entry(3, 216), entry(4, 316)],
            deltas: vec![
                DeltaRef { entry: 1, base: ObjectId([1; 32]), depth: 1 },
                DeltaRef { entry: 3, base: ObjectId([7; 32]), depth: 2 },
            ],
        }
    }

    #[test]
    fn without_drops_entries_and_renumbers_deltas() {
        let p = pack();
        let w = p.without(&[ObjectId([1; 32]), ObjectId([2; 32])].into_iter().collect()).unwrap();
        assert_eq!(w.entries, vec![entry(3, 216), entry(4, 316)]);
        assert_eq!(w.deltas, vec![DeltaRef { entry: 1, base: ObjectId([7; 32]), depth: 2 }]);
        validate_entries("test", &w.entries, w.pack_size).unwrap();
        validate_deltas("test", &w.entries, &w.deltas).unwrap();
        assert!(p.without(&p.entries.iter().map(|e| e.chunk).collect()).is_none());
        assert_eq!(p.without(&Default::default()).unwrap(), p);
    }

    #[test]
    fn an_index_with_entries_left_out_agrees_with_its_trailer_and_no_other() {
        let p = pack();
        assert!(p.agrees_with(&p.entries, &p.deltas));
        let w = p.without(&[ObjectId([3; 32])].into_iter().collect()).unwrap();
        assert!(w.agrees_with(&p.entries, &p.deltas));
        // A changed entry, a delta reference moved or lost: no longer agrees.
        let mut changed = w.clone();
        changed.entries[0].raw_len += 1;
        assert!(!changed.agrees_with(&p.entries, &p.deltas));
        let mut moved = w.clone();
        moved.deltas[0].entry = 0;
        assert!(!moved.agrees_with(&p.entries, &p.deltas));
        let mut lost = p.clone();
        lost.deltas.pop();
        assert!(!lost.agrees_with(&p.entries, &p.deltas));
    }
}
