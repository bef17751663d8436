//! Bases for delta chunks at create (format-spec/delta.md; design.md "Delta chunks"): one resembler per
//! stream that has a previous version (the newest snapshot of the same name, the stream of the same name).
//! A reader thread decodes the stretches of the old stream the resembler asks for, as a restore would (a
//! stretch ahead of where the new stream is; a far anchor moves the window without reading between); the
//! resembler (repo/resemble.rs decides) hands every new chunk that does not deduplicate the old chunk most
//! like it, which the sealing workers then try as a delta base.
//!
//! Invariants upheld here:
//! - A base is a chunk of a committed snapshot, read through the index and verified like any restored chunk,
//!   whose copy is in a pack no segment marks deleted (as for deduplication), and whose chain leaves room:
//!   the new delta's depth stays within the writer's limit (staggered per chunk, so keyframes spread over
//!   days instead of all falling on one). At the limit the base is `choose_base`'s, a pure function of the
//!   old chunk's chain.
//! - Anything going wrong with the old stream (damage, a missing pack, a slow store) only costs deltas: the
//!   reader stops, a warning is logged, and the snapshot is written with whole chunks.
//! - Memory: the window holds about 2 x `REACH` of old plaintext, plus one stretch (`REQUEST_CHUNKS`
//!   chunks) asked for ahead.

use super::previous::OldStream;
use super::read::{self, ReadChunk};
use super::resemble::{Aligner, OldChunk, Sketch, REACH};
use crate::cache::Location;
use crossbeam_channel::{bounded, Receiver};
use silo_format::ObjectId;
use std::collections::HashMap;
use std::sync::Arc;

/// The deepest delta a writer makes; the format allows 32 (restore reads at most that many bases per chunk).
/// Per chunk the limit is between half of this and this, so chains of chunks stored on the same day end on
/// different days.
pub const DEPTH_LIMIT: u8 = 8;
/// Read groups the old stream's reader keeps in flight.
const PREFETCH: usize = 1;

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

/// What a new delta of an old chunk takes as its base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseChoice {
    /// The old chunk itself: its chain leaves room.
    Itself,
    /// The ancestor at this depth in the old chunk's chain (a re-anchor: the new chain goes on from there).
    Ancestor(u8),
    /// No base: the new chunk is stored whole and starts a new chain.
    Whole,
}

/// The base for a new delta of an old chunk whose chain has these stored sizes, indexed by depth (`sizes[0]`
/// the whole chunk at the bottom, the last the old chunk itself), under the depth limit `limit`.
///
/// Below the limit the old chunk itself. At it, the choice that costs least per day until the next one,
/// estimated from the sizes alone: a delta from the ancestor at depth `j` holds about every change stored
/// above it plus today's (`today`, the smallest delta of the chain: about one day), then leaves room for
/// `limit - j - 1` daily deltas; storing the chunk whole costs `sizes[0]` and leaves room for `limit`. An
/// ancestor that never moved would make every re-anchored delta hold all the days since it (sysbench's
/// increments climbed to 4.4x patch-from over 30 days with a fixed one, docs/benchmarks.md "Thirty days again");
/// weighing the span against the room lets anchors advance — a re-anchor deep in the chain while the
/// changes above it are few, a shallower one or a whole chunk once they are many. Within the depth budget
/// this is close to the least total (design.md "Bounded chains"; benches/chain_model.py). `sizes[0]` is an
/// estimate: the caller scales the chain's whole chunk to the old chunk's length (an edit may have merged
/// chunks since); a chunk whose rows compress worse than they did still costs more whole than it says.
pub fn choose_base(limit: u8, sizes: &[u32]) -> BaseChoice {
    let Some(depth) = sizes.len().checked_sub(1) else { return BaseChoice::Whole };
    let limit = usize::from(limit);
    if depth < limit {
        return BaseChoice::Itself;
    }
    // A day's changes: the smallest delta in the chain (a re-anchored one holds several days).
    let today = sizes[1..].iter().copied().min().map_or(0, u64::from);
    let whole = u64::from(sizes[0]);
    // Costs per day as fractions compared by cross-multiplying: (cost, days).
    let whole_rate = (whole + limit as u64 * today, limit as u64 + 1);
    let mut best = (whole_rate, BaseChoice::Whole);
    let mut above: u64 = 0;
    for j in (0..depth).rev() {
        above += u64::from(sizes[j + 1]);
        if j + 1 > limit {
            continue;
        }
        let span = (above + today).min(whole);
        let room = (limit - j - 1) as u64;
        let rate = (span + room * today, room + 1);
        if u128::from(rate.0) * u128::from(best.0 .1) < u128::from(best.0 .0) * u128::from(rate.1) {
            best = (rate, BaseChoice::Ancestor(j as u8));
        }
    }
    best.1
}

/// The reader's hook (read.rs): the ancestor to hand out with an old chunk at its limit. The whole chunk's
/// size is scaled to the old chunk's length: where an edit merged chunks, the chain's bottom is a fraction
/// of what the chunk now costs whole.
fn reanchor(id: &ObjectId, chain: &[Location]) -> Option<u8> {
    match choose_base(depth_limit(id), &estimated_sizes(chain)) {
        BaseChoice::Ancestor(j) => Some(j),
        BaseChoice::Itself | BaseChoice::Whole => None,
    }
}

/// The stored sizes of a chain (bottom first) as `choose_base` takes them: the whole chunk's scaled to the
/// top chunk's length.
fn estimated_sizes(chain: &[Location]) -> Vec<u32> {
    let mut sizes: Vec<u32> = chain.iter().map(|l| l.stored_len).collect();
    if let (Some(bottom), Some(top), Some(first)) = (chain.first(), chain.last(), sizes.first_mut()) {
        let scaled = u64::from(bottom.stored_len) * u64::from(top.raw_len) / u64::from(bottom.raw_len.max(1));
        *first = u32::try_from(scaled).unwrap_or(u32::MAX);
    }
    sizes
}

/// An old chunk, decoded, with what the window needs of it.
struct Decoded {
    id: ObjectId,
    /// The base a new delta of it uses: itself, or the ancestor it re-anchors on.
    base_id: ObjectId,
    depth: u8,
    usable: bool,
    len: u64,
    sketch: Sketch,
    data: Arc<Vec<u8>>,
}

/// What the window keeps of an old chunk: the base a new delta of it uses (itself, or the ancestor it
/// re-anchors on when it is at its depth limit; no data when the new chunk is to be stored whole).
type WindowData = (ObjectId, u8, Arc<Vec<u8>>);

pub use super::read::Source;

/// Old chunks a reader is asked to decode: indexes `from..to` of the old stream, in request `generation`.
struct Request {
    generation: u64,
    from: usize,
    to: usize,
}

/// Finds bases for one stream's new chunks, in stream order.
pub struct Resembler {
    /// The old stream: ids, anchors, offsets (looked up once, beside the stream; the first chunk that needs
    /// a base waits for them).
    old: Arc<OldStream>,
    /// The last anchor (new offset, old index) seen before the offsets were known.
    pending_anchor: Option<(u64, usize)>,
    /// Whether the offsets are known (and the pending anchor applied).
    aligned: bool,
    aligner: Aligner<WindowData>,
    requests: Option<crossbeam_channel::Sender<Request>>,
    replies: Option<Receiver<(u64, Vec<Decoded>)>>,
    /// Requests are numbered; a jump (an anchor far away) starts a new generation and replies of older
    /// ones are dropped.
    generation: u64,
    /// The next old chunk index to ask for, and whether a request is out.
    next_index: usize,
    outstanding: usize,
    new_offset: u64,
    stopped: bool,
    /// The reader thread, joined when the resembler is dropped: it holds the cache and the runtime, and a
    /// thread still decoding while the process exits can crash it (a SIGSEGV after a committed snapshot).
    reader: Option<std::thread::JoinHandle<()>>,
}

/// Old chunks asked for at a time: about 2 MiB of a 64 KiB-chunked stream.
const REQUEST_CHUNKS: usize = 32;
impl Resembler {
    /// A resembler over the old stream `old`. The reader thread decodes only what the resembler asks for.
    pub fn new(source: Source, old: Arc<OldStream>) -> Self {
        let (req_tx, req_rx) = bounded::<Request>(2);
        let (rep_tx, rep_rx) = bounded::<(u64, Vec<Decoded>)>(2);
        let reader_old = old.clone();
        let spawned = std::thread::Builder::new()
            .name("silo-bases".into())
            .spawn(move || read_requested(source, reader_old, req_rx, rep_tx));
        let mut r = Resembler {
            old,
            pending_anchor: None,
            aligned: false,
            aligner: Aligner::default(),
            requests: Some(req_tx),
            replies: Some(rep_rx),
            generation: 0,
            next_index: 0,
            outstanding: 0,
            new_offset: 0,
            stopped: false,
            reader: None,
        };
        match spawned {
            Ok(handle) => r.reader = Some(handle),
            Err(e) => {
                tracing::warn!("could not start the delta base reader: {e}; chunks are stored whole");
                r.stopped = true;
            }
        }
        r
    }

    /// The offset of old chunk `i` (or the end, for `i` = the chunk count); 0 before the offsets are known.
    fn offset(&self, i: usize) -> u64 {
        self.old.offsets_if_known().and_then(|o| o.get(i).copied()).unwrap_or(0)
    }

    /// Learns the old chunks' offsets (old_stream looks them up once), then applies the last anchor seen
    /// before. False when the index does not know every old chunk: a stream that cannot be aligned by offset
    /// gives no bases.
    fn ensure_offsets(&mut self) -> bool {
        if self.aligned {
            return true;
        }
        if self.old.offsets().is_none() {
            return false;
        }
        self.aligned = true;
        if let Some((new_offset, index)) = self.pending_anchor.take() {
            self.align_on(new_offset, index);
        }
        true
    }

    /// Aligns the chunk at `new_offset` of the new stream with old chunk `index` (the same chunk in both).
    /// Outside the window (behind it, or ahead of what was asked for by more than the reach), the window
    /// moves there without reading what lies between.
    fn align_on(&mut self, new_offset: u64, index: usize) {
        let old_offset = self.offset(index);
        let held = self.aligner.target(new_offset).saturating_sub(REACH)..self.offset(self.next_index) + REACH;
        if !held.contains(&old_offset) {
            self.jump(index + 1);
        }
        self.aligner.anchor(new_offset, old_offset);
    }

    /// Asks for the next stretch of old chunks, if none is out and any are left.
    fn ask(&mut self) {
        if self.outstanding > 0 || self.next_index >= self.old.len() || self.stopped {
            return;
        }
        let to = (self.next_index + REQUEST_CHUNKS).min(self.old.len());
        let request = Request { generation: self.generation, from: self.next_index, to };
        match self.requests.as_ref().map(|r| r.send(request)) {
            Some(Ok(())) => {
                self.outstanding = to - self.next_index;
                self.next_index = to;
            }
            _ => self.stopped = true,
        }
    }

    /// Waits for the outstanding stretch and puts it in the window; asks for the next one at once.
    fn take(&mut self) -> bool {
        self.ask();
        if self.outstanding == 0 {
            return false;
        }
        loop {
            let Some(Ok((generation, batch))) = self.replies.as_ref().map(|r| r.recv()) else {
                self.stopped = true;
                return false;
            };
            if generation != self.generation {
                continue;
            }
            let first = self.next_index - self.outstanding;
            self.outstanding = 0;
            if batch.is_empty() {
                // The reader stopped (it logged why).
                self.stopped = true;
                return false;
            }
            for (i, d) in batch.into_iter().enumerate() {
                let offset = self.offset(first + i);
                self.aligner.push(OldChunk {
                    id: d.id,
                    offset,
                    len: d.len,
                    sketch: d.sketch,
                    usable: d.usable,
                    data: (d.base_id, d.depth, d.data),
                });
            }
            self.ask();
            return true;
        }
    }

    /// Moves the window to start at old chunk `index`: what was asked for before is dropped.
    fn jump(&mut self, index: usize) {
        self.generation += 1;
        self.outstanding = 0;
        self.next_index = index;
        self.aligner.clear();
    }

    /// The base for the next chunk of the new stream (`id`, `data`), or None. `known` says whether the chunk
    /// deduplicates (it then only re-aligns); it is asked only for chunks the old stream does not hold, so an
    /// unchanged stream costs no index lookups here. Call for every chunk, in stream order.
    pub fn base_for(&mut self, id: &ObjectId, data: &[u8], known: impl FnOnce() -> bool) -> Option<BaseChunk> {
        let offset = self.new_offset;
        let len = data.len() as u64;
        self.new_offset += len;
        if self.stopped {
            return None;
        }
        if let Some(index) = self.old.anchor(id) {
            // The same chunk in both streams: align on it (once the offsets are known).
            if !self.aligned {
                self.pending_anchor = Some((offset, index));
            } else {
                self.align_on(offset, index);
            }
            return None;
        }
        if known() {
            return None;
        }
        if !self.ensure_offsets() {
            self.stopped = true;
            return None;
        }
        while self.aligner.wants_more(offset, len) && self.take() {}
        self.aligner.forget_before(offset);
        let sketch = Sketch::of(data);
        let chosen = self.aligner.choose(offset, len, &sketch)?;
        // A chosen chunk without data is one `choose_base` stores whole: aligned on, no base.
        (!chosen.data.2.is_empty()).then(|| BaseChunk {
            id: chosen.data.0,
            depth: chosen.data.1,
            data: chosen.data.2.clone(),
        })
    }
}

impl Drop for Resembler {
    /// Closes both channels (the reader ends after its current stretch, or at once when blocked on a
    /// reply) and waits for the reader thread.
    fn drop(&mut self) {
        self.requests = None;
        self.replies = None;
        if let Some(handle) = self.reader.take() {
            let _ = handle.join();
        }
    }
}

/// The reader thread: decodes each requested stretch of the old stream, as a restore would. An error ends
/// it (logged once; the resembler then stops offering bases).
fn read_requested(
    source: Source,
    old: Arc<OldStream>,
    requests: Receiver<Request>,
    replies: crossbeam_channel::Sender<(u64, Vec<Decoded>)>,
) {
    let cache = source.cache.clone();
    let mut deleted: HashMap<ObjectId, bool> = HashMap::new();
    for req in requests {
        let mut out = Vec::with_capacity(req.to - req.from);
        let result = read::read_chunks(
            &source,
            &old.ids[req.from..req.to],
            PREFETCH,
            Some(reanchor),
            |group: Vec<ReadChunk>| {
                for c in group {
                    let mut marked = |pack: ObjectId| {
                        *deleted.entry(pack).or_insert_with(|| cache.is_marked_deleted(&pack).unwrap_or(true))
                    };
                    let depth = super::chains::depth(&c.loc);
                    let len = c.data.len() as u64;
                    let sketch = Sketch::of(&c.data);
                    // At its depth limit a chunk is compared as itself, but a new delta takes the ancestor
                    // `choose_base` named, or none (no data: the new chunk is stored whole).
                    let (base_id, base_depth, data, usable) = match c.ancestor {
                        _ if depth < depth_limit(&c.id) => (c.id, depth, c.data, !marked(c.loc.pack)),
                        Some(a) => {
                            let usable = !marked(c.loc.pack) && !marked(a.loc.pack);
                            (a.id, super::chains::depth(&a.loc), a.data, usable)
                        }
                        None => (c.id, depth, Vec::new(), !marked(c.loc.pack)),
                    };
                    out.push(Decoded {
                        id: c.id,
                        base_id,
                        depth: base_depth,
                        usable,
                        len,
                        sketch,
                        data: Arc::new(data),
                    });
                }
                true
            },
        );
        if let Err(e) = result {
            tracing::warn!("reading the previous snapshot for delta bases stopped: {e}; chunks are stored whole");
            let _ = replies.send((req.generation, Vec::new()));
            return;
        }
        if replies.send((req.generation, out)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_its_limit_a_chunk_is_its_own_base() {
        assert_eq!(choose_base(4, &[30_000, 500, 400, 600]), BaseChoice::Itself);
        assert_eq!(choose_base(8, &[30_000]), BaseChoice::Itself);
    }

    #[test]
    fn a_chain_of_small_daily_deltas_re_anchors_deep() {
        // Equal days: every re-anchor costs two days a day until the next; the deepest is kept.
        assert_eq!(choose_base(4, &[30_000, 500, 500, 500, 500]), BaseChoice::Ancestor(3));
    }

    #[test]
    fn anchors_advance_once_the_changes_above_them_are_many() {
        // The parent is a recent re-anchor (its delta is big, but today's above it is one day): build on it.
        assert_eq!(choose_base(5, &[30_000, 300, 300, 300, 6_000, 300]), BaseChoice::Ancestor(4));
        // Every ancestor but the whole chunk has many days above it: a delta from the whole chunk costs
        // them once and leaves the most room (a fixed depth-2 anchor would pay 5,700 again and again).
        assert_eq!(choose_base(4, &[30_000, 300, 300, 2_400, 2_700]), BaseChoice::Ancestor(0));
        // A whole chunk barely bigger than the changes: store it whole.
        assert_eq!(choose_base(4, &[6_000, 3_000, 3_000, 3_000, 1_000]), BaseChoice::Whole);
    }

    #[test]
    fn a_chunk_that_compresses_poorly_is_not_stored_whole_for_a_few_days_of_changes() {
        assert!(matches!(choose_base(4, &[60_000, 2_000, 2_000, 2_000, 2_000]), BaseChoice::Ancestor(_)));
    }

    #[test]
    fn a_chain_deeper_than_the_limit_re_anchors_within_it() {
        // A chunk written under a larger limit (its own id's) is read under a smaller one.
        for limit in 1..=DEPTH_LIMIT {
            match choose_base(limit, &[60_000, 100, 100, 100, 100, 100, 100, 100, 100]) {
                BaseChoice::Ancestor(j) => assert!(j < limit, "limit {limit}: ancestor {j}"),
                BaseChoice::Whole => {}
                BaseChoice::Itself => panic!("limit {limit}: a chain over it kept growing"),
            }
        }
        assert_eq!(choose_base(3, &[]), BaseChoice::Whole);
    }

    #[test]
    fn the_whole_chunks_size_is_scaled_to_the_chunk_it_became() {
        let copy =
            |stored_len, raw_len| Location { pack: ObjectId([1; 32]), offset: 12, stored_len, raw_len, delta: None };
        // An edit merged two neighbours into a chunk three times as long: whole, it costs about three times
        // what the chain's bottom did.
        assert_eq!(
            estimated_sizes(&[copy(5_000, 20_000), copy(100, 20_000), copy(30_000, 60_000)]),
            [15_000, 100, 30_000]
        );
        assert_eq!(estimated_sizes(&[copy(5_000, 20_000)]), [5_000]);
        assert_eq!(estimated_sizes(&[copy(5_000, 0), copy(7, u32::MAX)]), [u32::MAX, 7]);
        assert!(estimated_sizes(&[]).is_empty());
    }

    #[test]
    fn depth_limits_spread_between_half_and_the_whole_limit() {
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..=255u8 {
            let mut id = [0u8; 32];
            id[31] = n;
            let l = depth_limit(&ObjectId(id));
            assert!((DEPTH_LIMIT / 2..=DEPTH_LIMIT).contains(&l));
            seen.insert(l);
        }
        assert_eq!(seen.len(), usize::from(DEPTH_LIMIT - DEPTH_LIMIT / 2 + 1), "every limit in the range occurs");
        const { assert!(DEPTH_LIMIT < silo_format::codec::delta::MAX_DEPTH) };
    }
}
