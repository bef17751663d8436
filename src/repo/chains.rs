//! Delta chains as the index describes them (format-spec/delta.md): which copy of a chunk a reader uses,
//! the bases below it, and the closure of a set of chunks under "is the base of". Every walk over chunks that
//! must keep or read them (restore, gc's mark, a writer's pre-commit checks, check) goes through here.
//!
//! Invariants upheld here:
//! - I16 (docs/design.md): a chain descends strictly in depth to a whole chunk within `MAX_DEPTH` steps; one
//!   that does not (a cycle, a missing base, a depth that does not fall) is an error naming the chunk, never a
//!   loop or a guess.
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
        if depth(&base) >= d.depth {
            return Err(broken(format!(
                "its delta chain does not descend: chunk {} at depth {} has a base at depth {}",
                id.short(),
                d.depth,
                depth(&base)
            )));
        }
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
