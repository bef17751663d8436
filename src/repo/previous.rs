//! A previous version of a stream (the newest snapshot of the same name, the stream of the same name): its
//! chunk ids, which of them mark one place in it (anchors), and, once looked up, its chunks' offsets. Shared
//! by the chunker's guide (below), which lets an unchanged stretch skip the cut search, and the delta
//! resembler (bases.rs).
//!
//! Invariants upheld here:
//! - Cuts stay the chunker's own (silo_format::chunker::Guide): a predicted chunk is taken only when its
//!   keyed id equals the previous stream's chunk there, and the previous stream's last chunk (which its end
//!   may have cut short) is never predicted.
//! - Anything wrong with the previous stream (a chunk the index lacks, a failed lookup) only costs the
//!   shortcut and the deltas, never a snapshot.
//! - Memory: 32 bytes per old chunk for ids, ~16 for anchors, 8 for offsets (~9 MiB at 10 GiB of 64 KiB
//!   chunks), held once for both users.

use crate::cache::IndexCache;
use silo_format::chunker::Guide;
use silo_format::{Keys, ObjectId};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// An anchor key the old stream holds more than once.
const AMBIGUOUS: u32 = u32::MAX;

fn anchor_key(id: &ObjectId) -> u64 {
    u64::from_le_bytes([id.0[0], id.0[1], id.0[2], id.0[3], id.0[4], id.0[5], id.0[6], id.0[7]])
}

pub struct OldStream {
    pub ids: Vec<ObjectId>,
    /// Index of each chunk the old stream holds once, by the first 8 bytes of its id (a chunk it holds
    /// several times, like a run of zeros, says nothing about where the streams align).
    anchors: HashMap<u64, u32>,
    offsets: OnceLock<Option<Offsets>>,
    cache: Arc<IndexCache>,
}

struct Offsets {
    /// Offset of each chunk in the old stream, and the stream's end.
    at: Vec<u64>,
    /// Every chunk length the old stream has, sorted.
    lengths: Vec<u32>,
}

impl OldStream {
    pub fn new(ids: Vec<ObjectId>, cache: Arc<IndexCache>) -> Self {
        let mut anchors = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            anchors.entry(anchor_key(id)).and_modify(|o| *o = AMBIGUOUS).or_insert(i as u32);
        }
        OldStream { ids, anchors, offsets: OnceLock::new(), cache }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The index of `id` in the old stream, if it holds it exactly once.
    pub fn anchor(&self, id: &ObjectId) -> Option<usize> {
        let i = *self.anchors.get(&anchor_key(id)).filter(|i| **i != AMBIGUOUS)? as usize;
        (self.ids.get(i) == Some(id)).then_some(i)
    }

    /// The offset of every chunk and of the end, looked up in the index the first time (one lookup per
    /// chunk; a caller arriving meanwhile waits); None when the index does not know every chunk.
    pub fn offsets(&self) -> Option<&[u64]> {
        self.offsets.get_or_init(|| self.look_up()).as_ref().map(|o| o.at.as_slice())
    }

    /// The offsets if they were looked up already.
    pub fn offsets_if_known(&self) -> Option<&[u64]> {
        self.offsets.get()?.as_ref().map(|o| o.at.as_slice())
    }

    /// Whether a chunk of `len` bytes may be one of the old stream's (true while the lengths are unknown).
    fn may_hold(&self, len: usize) -> bool {
        match self.offsets.get() {
            Some(Some(o)) => u32::try_from(len).is_ok_and(|l| o.lengths.binary_search(&l).is_ok()),
            Some(None) => false,
            None => true,
        }
    }

    fn look_up(&self) -> Option<Offsets> {
        let mut at = Vec::with_capacity(self.ids.len() + 1);
        let mut lengths = Vec::with_capacity(self.ids.len());
        let mut end = 0u64;
        for id in &self.ids {
            match self.cache.any_location(id) {
                Ok(Some(loc)) => {
                    at.push(end);
                    end += u64::from(loc.raw_len);
                    lengths.push(loc.raw_len);
                }
                Ok(None) => {
                    tracing::info!("chunk {} of the previous snapshot is not in the index; no delta bases", id.short());
                    return None;
                }
                Err(e) => {
                    tracing::warn!("looking up the previous snapshot's chunks failed: {e}; chunks are stored whole");
                    return None;
                }
            }
        }
        at.push(end);
        lengths.sort_unstable();
        lengths.dedup();
        Some(Offsets { at, lengths })
    }
}

/// Predicts a stream's chunks from its previous version (see `Guide`): while the streams agree, the next
/// chunk is the old stream's next one, confirmed by its keyed id; after a difference, a searched chunk with
/// an old chunk's length is identified, and if the old stream holds it once, prediction resumes after it.
/// Ids it computes go along with the chunks, so nothing hashes a chunk twice.
pub struct StreamGuide {
    old: Arc<OldStream>,
    keys: Arc<Keys>,
    /// The old chunk expected next.
    next: Option<usize>,
    /// Chunks confirmed (no cut search) and searched, for the debug log.
    confirmed: u64,
    searched: u64,
}

impl StreamGuide {
    pub fn new(old: Arc<OldStream>, keys: Arc<Keys>) -> Self {
        StreamGuide { old, keys, next: Some(0), confirmed: 0, searched: 0 }
    }
}

impl Drop for StreamGuide {
    fn drop(&mut self) {
        tracing::debug!(
            "chunking guided by the previous snapshot: {} chunks confirmed by id, {} searched",
            self.confirmed,
            self.searched
        );
    }
}

impl Guide for StreamGuide {
    fn expected(&mut self) -> Option<usize> {
        let k = self.next?;
        // Waits for the lookups (started on their own thread with the stream) the first time.
        let at = self.old.offsets()?;
        (k + 1 < self.old.len()).then(|| (at[k + 1] - at[k]) as usize)
    }

    fn confirm(&mut self, data: &[u8]) -> Option<ObjectId> {
        let k = self.next.take()?;
        let id = self.keys.chunk_id(data);
        (self.old.ids.get(k) == Some(&id)).then(|| {
            self.next = Some(k + 1);
            self.confirmed += 1;
            id
        })
    }

    fn searched(&mut self, data: &[u8]) -> Option<ObjectId> {
        self.searched += 1;
        if !self.old.may_hold(data.len()) {
            self.next = None;
            return None;
        }
        let id = self.keys.chunk_id(data);
        self.next = self.old.anchor(&id).map(|i| i + 1);
        Some(id)
    }
}
