//! Bases for delta chunks at create (format-spec/delta.md; design.md "Delta chunks"): one resembler per
//! stream that has a previous version (the newest snapshot of the same name, the stream of the same name).
//! A reader thread decodes the old stream in order, as a restore would, a few MiB ahead of the new one; the
//! resembler (repo/resemble.rs decides) hands every new chunk that does not deduplicate the old chunk most
//! like it, which the sealing workers then try as a delta base.
//!
//! Invariants upheld here:
//! - A base is a chunk of a committed snapshot, read through the index and verified like any restored chunk,
//!   whose copy is in a pack no segment marks deleted (as for deduplication), and whose chain leaves room:
//!   the new delta's depth stays within the writer's limit (staggered per chunk, so keyframes spread over
//!   days instead of all falling on one).
//! - Anything going wrong with the old stream (damage, a missing pack, a slow store) only costs deltas: the
//!   reader stops, a warning is logged, and the snapshot is written with whole chunks.
//! - Memory: the window holds about 2 x `REACH` of old plaintext, the reader `PREFETCH` groups ahead.

use super::read::{self, ReadChunk};
use super::resemble::{Aligner, OldChunk, Sketch};
use crate::backend::Backend;
use crate::cache::IndexCache;
use crossbeam_channel::{bounded, Receiver};
use silo_format::{Keys, ObjectId, RepoId};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::runtime::Handle;

/// The deepest delta a writer makes; the format allows 32 (restore reads at most that many bases per chunk).
/// Per chunk the limit is between half of this and this, so chains of chunks stored on the same day end on
/// different days.
pub const DEPTH_LIMIT: u8 = 12;
/// Read groups the old stream's reader keeps in flight.
const PREFETCH: usize = 2;

/// A chunk's delta base as the sealing workers get it.
pub struct BaseChunk {
    pub id: ObjectId,
    pub depth: u8,
    pub data: Arc<Vec<u8>>,
}

/// The deepest chain a delta of `base` may end: between `DEPTH_LIMIT / 2` and `DEPTH_LIMIT`, fixed per base.
pub fn depth_limit(base: &ObjectId) -> u8 {
    let half = DEPTH_LIMIT / 2;
    half + base.0[31] % (DEPTH_LIMIT - half + 1)
}

/// An old chunk, decoded, with what the window needs of it.
struct Decoded {
    id: ObjectId,
    depth: u8,
    usable: bool,
    len: u64,
    sketch: Sketch,
    data: Arc<Vec<u8>>,
}

/// What a resembler needs to reach the repository.
#[derive(Clone)]
pub struct Source {
    pub rt: Handle,
    pub backend: Arc<dyn Backend>,
    pub keys: Arc<Keys>,
    pub repo: RepoId,
    pub cache: Arc<IndexCache>,
}

/// Finds bases for one stream's new chunks, in stream order.
pub struct Resembler {
    source: Source,
    old: Arc<Vec<ObjectId>>,
    /// Index and offset of each chunk id the old stream holds once, for anchors (a chunk it holds several
    /// times, like a run of zeros, says nothing about where the streams align).
    offsets: HashMap<ObjectId, Option<(usize, u64)>>,
    aligner: Aligner<(u8, Arc<Vec<u8>>)>,
    feed: Option<Receiver<Vec<Decoded>>>,
    pending: VecDeque<Decoded>,
    /// Offset of the next old chunk the reader delivers.
    next_offset: u64,
    new_offset: u64,
    stopped: bool,
    /// Chunks given a base, for the report.
    pub offered: u64,
}

impl Resembler {
    /// A resembler over the old stream `old` (its chunk ids in order, each with its length).
    pub fn new(source: Source, old: Vec<(ObjectId, u32)>) -> Self {
        let mut offsets = HashMap::with_capacity(old.len());
        let mut at = 0u64;
        for (i, (id, len)) in old.iter().enumerate() {
            offsets.entry(*id).and_modify(|o| *o = None).or_insert(Some((i, at)));
            at += u64::from(*len);
        }
        let old = Arc::new(old.into_iter().map(|(id, _)| id).collect::<Vec<_>>());
        let mut r = Resembler {
            source,
            old,
            offsets,
            aligner: Aligner::default(),
            feed: None,
            pending: VecDeque::new(),
            next_offset: 0,
            new_offset: 0,
            stopped: false,
            offered: 0,
        };
        r.restart(0, 0);
        r
    }

    /// (Re)starts the reader at old chunk `index` (at old offset `offset`), dropping the window.
    fn restart(&mut self, index: usize, offset: u64) {
        self.feed = None; // the old reader stops at its next send
        self.pending.clear();
        self.aligner = Aligner::default();
        self.next_offset = offset;
        let (tx, rx) = bounded::<Vec<Decoded>>(PREFETCH);
        let (source, old) = (self.source.clone(), self.old.clone());
        let spawned = std::thread::Builder::new().name("silo-bases".into()).spawn(move || {
            let cache = source.cache.clone();
            let mut deleted: HashMap<ObjectId, bool> = HashMap::new();
            let result = read::read_chunks(
                &source.rt,
                source.backend,
                source.keys,
                source.repo,
                source.cache,
                &old[index.min(old.len())..],
                PREFETCH,
                |group: Vec<ReadChunk>| {
                    let batch = group
                        .into_iter()
                        .map(|c| {
                            let depth = super::chains::depth(&c.loc);
                            let marked = *deleted
                                .entry(c.loc.pack)
                                .or_insert_with(|| cache.is_marked_deleted(&c.loc.pack).unwrap_or(true));
                            Decoded {
                                id: c.id,
                                depth,
                                usable: !marked && depth < depth_limit(&c.id),
                                len: c.data.len() as u64,
                                sketch: Sketch::of(&c.data),
                                data: Arc::new(c.data),
                            }
                        })
                        .collect();
                    tx.send(batch).is_ok()
                },
            );
            if let Err(e) = result {
                tracing::warn!("reading the previous snapshot for delta bases stopped: {e}; chunks are stored whole");
            }
        });
        match spawned {
            Ok(_) => self.feed = Some(rx),
            Err(e) => {
                tracing::warn!("could not start the delta base reader: {e}; chunks are stored whole");
                self.stopped = true;
            }
        }
    }

    /// The next decoded old chunk, if the reader has one.
    fn next_old(&mut self) -> Option<Decoded> {
        if self.pending.is_empty() {
            let batch = self.feed.as_ref()?.recv().ok()?;
            self.pending.extend(batch);
        }
        self.pending.pop_front()
    }

    /// The base for the next chunk of the new stream (`id`, `data`), or None. `known` says the chunk
    /// deduplicates (it then only re-aligns). Call for every chunk, in stream order.
    pub fn base_for(&mut self, id: &ObjectId, data: &[u8], known: bool) -> Option<BaseChunk> {
        let offset = self.new_offset;
        let len = data.len() as u64;
        self.new_offset += len;
        if self.stopped {
            return None;
        }
        if let Some(&Some((index, old_offset))) = self.offsets.get(id) {
            // The same chunk in both streams: align on it. Far outside the window, the reader jumps there.
            let window = self.aligner.target(offset).saturating_sub(super::resemble::REACH)
                ..self.aligner.old_end() + super::resemble::REACH;
            if !window.contains(&old_offset) {
                self.restart(index, old_offset);
            }
            self.aligner.anchor(offset, old_offset);
            return None;
        }
        if known {
            return None;
        }
        while self.aligner.wants_more(offset, len) {
            let Some(d) = self.next_old() else { break };
            let chunk = OldChunk {
                id: d.id,
                offset: self.next_offset,
                len: d.len,
                sketch: d.sketch,
                usable: d.usable,
                data: (d.depth, d.data),
            };
            self.next_offset += d.len;
            self.aligner.push(chunk);
        }
        self.aligner.forget_before(offset);
        let sketch = Sketch::of(data);
        let chosen = self.aligner.choose(offset, len, &sketch)?;
        self.offered += 1;
        Some(BaseChunk { id: chosen.id, depth: chosen.data.0, data: chosen.data.1.clone() })
    }
}
