//! Delta chains as the index describes them (format-spec/delta.md): which copy of a chunk a reader uses,
//! the bases below it, and the closure of a set of chunks under "is the base of". Every walk over chunks that
//! must keep or read them (restore, gc's mark, a writer's pre-commit checks, check) goes through here.
//!
//! Invariants upheld here:
//! - I16 (docs/design.md): a chain reaches a whole chunk within `MAX_DEPTH` steps; one that does not (a
//!   cycle, a missing base) is an error naming the chunk, never a loop or a guess.
//! - A reader prefers copies in packs gc has not marked, then the shallowest copy.

use crate::cache::{IndexCache, Location};
use crate::{Error, Result};
use silo_format::codec::delta::MAX_DEPTH;
use silo_format::ObjectId;
use std::collections::{HashMap, HashSet};

/// Depth of a copy: 0 for a whole chunk.
pub fn depth(loc: &Location) -> u8 {
    loc.delta.map_or(0, |d| d.depth)
}

/// The copy of `chunk` a reader uses: in an unmarked pack if there is one, the shallowest among those.
/// `deleted` memoises each pack's deletion mark.
pub fn pick(cache: &IndexCache, chunk: &ObjectId, deleted: &mut HashMap<ObjectId, bool>) -> Result<Option<Location>> {
    let all = cache.locations(chunk)?;
    let mut best: Option<(bool, u8, Location)> = None;
    for loc in all {
        let dead = match deleted.get(&loc.pack) {
            Some(d) => *d,
            None => {
                let d = cache.is_marked_deleted(&loc.pack)?;
                deleted.insert(loc.pack, d);
                d
            }
        };
        let rank = (dead, depth(&loc));
        if best.as_ref().is_none_or(|(d, k, _)| rank < (*d, *k)) {
            best = Some((rank.0, rank.1, loc));
        }
    }
    Ok(best.map(|(_, _, loc)| loc))
}

/// The bases below `loc` (a copy of `chunk`), nearest first, each with the copy a reader uses; empty for a
/// whole chunk.
pub fn bases(
    cache: &IndexCache,
    chunk: &ObjectId,
    loc: &Location,
    deleted: &mut HashMap<ObjectId, bool>,
) -> Result<Vec<(ObjectId, Location)>> {
    let mut out = Vec::new();
    let (mut id, mut current) = (*chunk, *loc);
    while let Some(d) = current.delta {
        let broken = |reason: String| Error::Inconsistent { object: format!("chunk {}", chunk.short()), reason };
        if out.len() >= usize::from(MAX_DEPTH) {
            return Err(broken(format!("its delta chain is longer than {MAX_DEPTH}")));
        }
        let Some(base) = pick(cache, &d.base, deleted)? else {
            return Err(broken(format!(
                "it is a delta of chunk {}, which is in no index segment (via chunk {})",
                d.base.short(),
                id.short()
            )));
        };
        out.push((d.base, base));
        (id, current) = (d.base, base);
    }
    Ok(out)
}

/// `chunks` and every base any copy of them depends on, transitively: what must stay stored and readable
/// for `chunks` to be restorable. A base the index does not know is left out (the caller's own check of it
/// reports that chunk as missing).
pub fn closure<'a>(cache: &IndexCache, chunks: impl Iterator<Item = &'a ObjectId>) -> Result<Vec<ObjectId>> {
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut out = Vec::new();
    let mut todo: Vec<ObjectId> = Vec::new();
    for c in chunks {
        if seen.insert(*c) {
            out.push(*c);
            todo.push(*c);
        }
    }
    while let Some(c) = todo.pop() {
        for loc in cache.locations(&c)? {
            if let Some(d) = loc.delta {
                if seen.insert(d.base) {
                    out.push(d.base);
                    todo.push(d.base);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_format::index::{DeletedPack, IndexPack, IndexSegment};
    use silo_format::pack::{DeltaRef, PackEntry};
    use silo_format::RepoId;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 32])
    }

    /// A cache holding pack `pack` with `chunks` (id, delta of (base, depth)).
    fn absorb(cache: &IndexCache, pack: u8, chunks: &[(u8, Option<(u8, u8)>)]) {
        let entries: Vec<PackEntry> = chunks
            .iter()
            .enumerate()
            .map(|(i, (c, _))| PackEntry { chunk: id(*c), offset: 12 + 100 * i as u32, stored_len: 100, raw_len: 1000 })
            .collect();
        let deltas = chunks
            .iter()
            .enumerate()
            .filter_map(|(i, (_, d))| d.map(|(b, depth)| DeltaRef { entry: i as u32, base: id(b), depth }))
            .collect();
        let mut seg = IndexSegment::new();
        seg.packs.push(IndexPack { pack: id(pack), pack_size: 1 << 20, entries, deltas });
        cache.absorb(&ObjectId::random(), &seg).unwrap();
    }

    #[test]
    fn chains_are_followed_to_a_whole_chunk_preferring_live_and_shallow_copies() {
        let cache = IndexCache::open_private(RepoId([1; 16])).unwrap();
        // 1 whole; 2 = delta of 1; 3 = delta of 2; 4 has a delta copy (of 3) and a whole copy.
        absorb(&cache, 100, &[(1, None), (2, Some((1, 1))), (3, Some((2, 2))), (4, Some((3, 3)))]);
        absorb(&cache, 101, &[(4, None)]);
        let mut memo = HashMap::new();
        let loc3 = pick(&cache, &id(3), &mut memo).unwrap().unwrap();
        let chain: Vec<ObjectId> = bases(&cache, &id(3), &loc3, &mut memo).unwrap().into_iter().map(|b| b.0).collect();
        assert_eq!(chain, vec![id(2), id(1)]);
        assert_eq!(depth(&pick(&cache, &id(4), &mut memo).unwrap().unwrap()), 0, "the whole copy is shallower");
        // Once the whole copy's pack is marked deleted, the live delta copy is preferred.
        let mut seg = IndexSegment::new();
        seg.deleted.push(DeletedPack { pack: id(101), marked_at: 1 });
        cache.absorb(&ObjectId::random(), &seg).unwrap();
        let mut memo = HashMap::new();
        assert_eq!(depth(&pick(&cache, &id(4), &mut memo).unwrap().unwrap()), 3);
        let mut all = closure(&cache, [id(4)].iter()).unwrap();
        all.sort();
        assert_eq!(all, vec![id(1), id(2), id(3), id(4)], "every copy's bases, transitively");
    }

    #[test]
    fn a_cycle_or_a_missing_base_is_an_error_not_a_loop() {
        let cache = IndexCache::open_private(RepoId([2; 16])).unwrap();
        absorb(&cache, 100, &[(5, Some((6, 2))), (6, Some((5, 1))), (7, Some((9, 1)))]);
        let mut memo = HashMap::new();
        let loc = pick(&cache, &id(5), &mut memo).unwrap().unwrap();
        let e = bases(&cache, &id(5), &loc, &mut memo).unwrap_err().to_string();
        assert!(e.contains("longer than"), "{e}");
        let loc = pick(&cache, &id(7), &mut memo).unwrap().unwrap();
        let e = bases(&cache, &id(7), &loc, &mut memo).unwrap_err().to_string();
        assert!(e.contains("in no index segment"), "{e}");
        // The closure stops at the cycle too.
        assert_eq!(closure(&cache, [id(5)].iter()).unwrap().len(), 2);
    }
}
