//! Resemblance: for a chunk that does not deduplicate, which chunk of the previous snapshot of the same name
//! and stream is most like it, so it can be stored as a delta of that one (format-spec/delta.md; design.md
//! "Delta chunks"). Pure: the writer (write.rs, bases.rs) feeds the old stream's decoded chunks in order and
//! asks about each new chunk in order.
//!
//! The two streams are aligned by position: an offset `drift` maps the new stream onto the old one, set
//! exactly by every chunk found in both (an anchor) and by every chosen base, so rows that grew or an
//! inserted table do not break the alignment. Around the aligned position a window of old chunks is compared
//! by content sketch: the samples of a 64-byte rolling hash at content-defined positions (about one per
//! 512 bytes), so a chunk with a few changed rows shares nearly all samples with its old self and few with
//! its neighbours. (Content sketches are the idea of Finesse, FAST'19, and Odess, 2021; sampling the hashes
//! themselves rather than building super-features keeps the comparison exact for the handful of candidates a
//! window holds.)

pub use silo_format::sketch::Sketch;
use silo_format::ObjectId;
use std::collections::VecDeque;

/// How far (bytes) from the aligned position a base may lie.
pub const REACH: u64 = 1 << 20;
/// The least share of the new chunk's samples a base must have in common with it (1/`MIN_SHARE`).
const MIN_SHARE: usize = 8;

/// A chunk of the old stream as the window holds it.
pub struct OldChunk<T> {
    pub id: ObjectId,
    /// Offset in the old stream.
    pub offset: u64,
    pub len: u64,
    pub sketch: Sketch,
    /// Whether it may be a base (its copy is in an unmarked pack and its chain has room).
    pub usable: bool,
    /// What the caller keeps with it (the plaintext).
    pub data: T,
}

/// The alignment of a new stream onto an old one and the window of old chunks around it.
pub struct Aligner<T> {
    /// Old offset minus new offset at the last anchor or chosen base.
    drift: i64,
    window: VecDeque<OldChunk<T>>,
    /// Offset in the old stream just past the last chunk pushed.
    old_end: u64,
}

impl<T> Default for Aligner<T> {
    fn default() -> Self {
        Aligner { drift: 0, window: VecDeque::new(), old_end: 0 }
    }
}

impl<T> Aligner<T> {
    /// The old stream's offset the new chunk at `new_offset` aligns with.
    pub fn target(&self, new_offset: u64) -> u64 {
        (new_offset as i64 + self.drift).max(0) as u64
    }

    /// Whether the window should take more old chunks before the new chunk `[new_offset, +len)` is judged.
    pub fn wants_more(&self, new_offset: u64, len: u64) -> bool {
        self.old_end < self.target(new_offset) + len + REACH
    }

    /// Offset just past the last old chunk pushed.
    pub fn old_end(&self) -> u64 {
        self.old_end
    }

    pub fn push(&mut self, chunk: OldChunk<T>) {
        self.old_end = chunk.offset + chunk.len;
        self.window.push_back(chunk);
    }

    /// Drops old chunks that lie wholly more than `REACH` before the new chunk at `new_offset`.
    pub fn forget_before(&mut self, new_offset: u64) {
        let floor = self.target(new_offset).saturating_sub(REACH);
        while self.window.front().is_some_and(|c| c.offset + c.len < floor) {
            self.window.pop_front();
        }
    }

    /// Empties the window (the caller moves it elsewhere in the old stream).
    pub fn clear(&mut self) {
        self.window.clear();
        self.old_end = 0;
    }

    /// Re-aligns on a chunk found in both streams: new offset `new_offset`, old offset `old_offset`.
    pub fn anchor(&mut self, new_offset: u64, old_offset: u64) {
        self.drift = old_offset as i64 - new_offset as i64;
    }

    /// The window's chunk most like the new chunk `[new_offset, +len)`, if one is alike enough, and
    /// re-aligns on it. Among equally alike chunks the one nearest the aligned position wins.
    pub fn choose(&mut self, new_offset: u64, len: u64, sketch: &Sketch) -> Option<&OldChunk<T>> {
        if sketch.len() < 2 {
            return None;
        }
        let target = self.target(new_offset) as i64;
        let mut best: Option<(usize, usize, i64)> = None;
        for (i, c) in self.window.iter().enumerate() {
            let distance = (c.offset as i64 - target).abs();
            if !c.usable || distance > (REACH + len) as i64 {
                continue;
            }
            let common = sketch.common(&c.sketch);
            // Share of the larger sketch, so a big old chunk does not win by holding more samples.
            let score = common * 1024 / sketch.len().max(c.sketch.len()).max(1);
            if common < 2 || common * MIN_SHARE < sketch.len() {
                continue;
            }
            if best.is_none_or(|(_, s, d)| score > s || score == s && distance < d) {
                best = Some((i, score, distance));
            }
        }
        let (i, _, _) = best?;
        let chosen = &self.window[i];
        self.drift = chosen.offset as i64 - new_offset as i64;
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows like a dump's: `id \t name \t balance`.
    fn rows(from: u32, to: u32, balance: impl Fn(u32) -> i64) -> Vec<u8> {
        (from..to).flat_map(|i| format!("{i}\tcustomer {i:08}\t{}\n", balance(i)).into_bytes()).collect()
    }

    fn old(id: u8, offset: u64, data: &[u8]) -> OldChunk<()> {
        OldChunk {
            id: ObjectId([id; 32]),
            offset,
            len: data.len() as u64,
            sketch: Sketch::of(data),
            usable: true,
            data: (),
        }
    }

    #[test]
    fn a_chunk_with_a_few_changed_rows_is_like_its_old_self_and_not_its_neighbours() {
        let a = rows(0, 2000, |_| 0);
        let b = rows(2000, 4000, |_| 0);
        let a2 = rows(0, 2000, |i| if i % 400 == 7 { -4321 } else { 0 });
        let (sa, sb, sa2) = (Sketch::of(&a), Sketch::of(&b), Sketch::of(&a2));
        assert!(sa.len() > 40, "{} samples in {} bytes", sa.len(), a.len());
        assert!(sa2.common(&sa) * 10 > sa.len() * 8, "{} of {}", sa2.common(&sa), sa.len());
        assert!(sa2.common(&sb) * 10 < sa.len(), "{} of {}", sa2.common(&sb), sa.len());
        assert_eq!(Sketch::of(&a), sa, "deterministic");
        assert!(Sketch::of(b"short").is_empty());
    }

    #[test]
    fn the_window_follows_drift_and_prefers_the_nearest_of_equals() {
        let chunks: Vec<Vec<u8>> = (0..8).map(|k| rows(k * 1000, k * 1000 + 1000, |_| 0)).collect();
        let mut al: Aligner<()> = Aligner::default();
        let mut off = 0;
        for (k, c) in chunks.iter().enumerate() {
            al.push(old(k as u8, off, c));
            off += c.len() as u64;
        }
        // The new stream starts with 5000 inserted bytes, then old chunk 3 with one row changed.
        let mut changed = chunks[3].clone();
        changed[10] = b'9';
        let new_offset = 5000 + chunks[..3].iter().map(|c| c.len() as u64).sum::<u64>();
        let pick = al.choose(new_offset, changed.len() as u64, &Sketch::of(&changed)).map(|c| c.id);
        assert_eq!(pick, Some(ObjectId([3; 32])));
        // Aligned now: the next new chunk's target is old chunk 4's offset.
        let next = new_offset + changed.len() as u64;
        assert_eq!(al.target(next), chunks[..4].iter().map(|c| c.len() as u64).sum::<u64>());
        // Unrelated content finds nothing.
        let noise: Vec<u8> = (0..60_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert!(al.choose(next, noise.len() as u64, &Sketch::of(&noise)).is_none());
        // An unusable chunk is never chosen.
        al.window[4].usable = false;
        assert_ne!(
            al.choose(next, chunks[4].len() as u64, &Sketch::of(&chunks[4])).map(|c| c.id),
            Some(ObjectId([4; 32]))
        );
    }

    #[test]
    fn the_window_asks_for_more_and_forgets_what_is_far_behind() {
        let mut al: Aligner<()> = Aligner::default();
        assert!(al.wants_more(0, 1000));
        let c = rows(0, 100, |_| 0);
        let mut off = 0;
        while al.wants_more(0, 1000) {
            al.push(old(1, off, &c));
            off += c.len() as u64;
        }
        assert!(al.old_end() >= 1000 + REACH);
        let n = al.window.len();
        al.forget_before(3 * REACH);
        assert!(al.window.len() < n);
        al.anchor(100, 50);
        assert_eq!(al.target(1000), 950);
        assert_eq!(al.target(10), 0, "never before the start");
    }
}
