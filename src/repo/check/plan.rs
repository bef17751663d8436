//! check's decisions as pure functions (restic's checker phases as a model): what to do with each indexed
//! pack given the listing, and — once packs are read — which findings are damage and which snapshots they
//! make unrestorable (I3 authenticated everything; I4: a pack gc deleted on purpose is not damage unless a
//! snapshot still needs it).

use silo_format::ObjectId;
use std::collections::{BTreeSet, HashMap, HashSet};

/// What check does with one pack an index segment names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackCheck {
    /// Not listed, and not marked deleted: damage.
    Missing,
    /// Not listed but marked deleted: gc removed it; damage only if a snapshot needs one of its chunks.
    DeletedByGc,
    /// Listed with another size than the index says.
    WrongSize { actual: u64 },
    /// Read its header and trailer and compare them with the index.
    Structure,
    /// Read it whole: structure, then decrypt, decompress and re-hash every chunk.
    Data,
}

pub fn plan_pack(indexed_size: u64, listed_size: Option<u64>, marked: bool, read_data: bool) -> PackCheck {
    match listed_size {
        None if marked => PackCheck::DeletedByGc,
        None => PackCheck::Missing,
        Some(actual) if actual != indexed_size => PackCheck::WrongSize { actual },
        Some(_) if read_data => PackCheck::Data,
        Some(_) => PackCheck::Structure,
    }
}

/// Something found wrong with an object, and the chunks it takes with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub object: String,
    pub problem: String,
    pub chunks: HashSet<ObjectId>,
    /// A pack gc deleted on purpose: reported only if a snapshot needs one of its chunks.
    pub only_if_needed: bool,
}

impl Finding {
    pub fn new(object: impl Into<String>, problem: impl Into<String>, chunks: HashSet<ObjectId>) -> Self {
        Finding { object: object.into(), problem: problem.into(), chunks, only_if_needed: false }
    }
}

/// A finding as reported, with the snapshots (full ids) it makes unrestorable.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessed {
    pub object: String,
    pub problem: String,
    pub snapshots: Vec<String>,
}

/// Which snapshots can no longer be restored, and why: every snapshot chunk not in `good` is explained by the
/// findings that hold it, or reported on the snapshot itself as unindexed. `already` are snapshots known
/// to be affected beforehand (unreadable manifests). Returns the findings to report and every affected
/// snapshot, sorted.
pub fn assess(
    mut findings: Vec<Finding>,
    snapshots: &[(ObjectId, Vec<ObjectId>)],
    good: &HashSet<ObjectId>,
    already: impl IntoIterator<Item = String>,
    snapshot_object: impl Fn(&ObjectId) -> String,
) -> (Vec<Assessed>, Vec<String>) {
    let mut affected: BTreeSet<String> = already.into_iter().collect();
    let mut per_finding: Vec<BTreeSet<String>> = vec![BTreeSet::new(); findings.len()];
    for (id, chunks) in snapshots {
        let mut unindexed = 0u64;
        for c in chunks {
            if good.contains(c) {
                continue;
            }
            affected.insert(id.to_hex());
            let mut explained = false;
            for (i, f) in findings.iter().enumerate() {
                if f.chunks.contains(c) {
                    per_finding[i].insert(id.to_hex());
                    explained = true;
                }
            }
            if !explained {
                unindexed += 1;
            }
        }
        if unindexed > 0 {
            findings.push(Finding::new(
                snapshot_object(id),
                format!("{unindexed} chunks are in no intact indexed pack"),
                HashSet::new(),
            ));
            per_finding.push([id.to_hex()].into_iter().collect());
        }
    }
    let reported = findings
        .into_iter()
        .zip(per_finding)
        .filter(|(f, snaps)| !(f.only_if_needed && snaps.is_empty()))
        .map(|(f, snaps)| Assessed { object: f.object, problem: f.problem, snapshots: snaps.into_iter().collect() })
        .collect();
    (reported, affected.into_iter().collect())
}

/// The chunks that can be restored, from the intact copies of each (`None`: a whole copy, `Some(base)`: a
/// delta of `base`): those with a whole copy, then, repeatedly, those with a delta copy of a restorable base
/// (I16). A chain that never reaches a whole copy (a cycle) stays out.
pub fn restorable(copies: &HashMap<ObjectId, Vec<Option<ObjectId>>>) -> HashSet<ObjectId> {
    let mut out: HashSet<ObjectId> =
        copies.iter().filter(|(_, c)| c.iter().any(Option::is_none)).map(|(id, _)| *id).collect();
    let mut waiting: Vec<(&ObjectId, &Vec<Option<ObjectId>>)> =
        copies.iter().filter(|(id, _)| !out.contains(*id)).collect();
    loop {
        let before = out.len();
        waiting.retain(|(id, c)| {
            if c.iter().flatten().any(|b| out.contains(b)) {
                out.insert(**id);
                false
            } else {
                true
            }
        });
        if out.len() == before {
            return out;
        }
    }
}

/// Base -> the delta chunks that name it, from (delta, base) pairs.
pub fn dependents(pairs: impl Iterator<Item = (ObjectId, ObjectId)>) -> HashMap<ObjectId, Vec<ObjectId>> {
    let mut out: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    for (delta, base) in pairs {
        out.entry(base).or_default().push(delta);
    }
    out
}

/// Each finding also holds every chunk that depends on one of its chunks through delta bases and is not
/// restorable another way, so the snapshots that damage to a base affects are named with it.
pub fn spread(
    findings: Vec<Finding>,
    dependents: &HashMap<ObjectId, Vec<ObjectId>>,
    restorable: &HashSet<ObjectId>,
) -> Vec<Finding> {
    findings
        .into_iter()
        .map(|mut f| {
            let mut todo: Vec<ObjectId> = f.chunks.iter().copied().collect();
            while let Some(c) = todo.pop() {
                for d in dependents.get(&c).into_iter().flatten() {
                    if !restorable.contains(d) && f.chunks.insert(*d) {
                        todo.push(*d);
                    }
                }
            }
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 32])
    }

    #[test]
    fn each_pack_gets_the_check_its_listing_calls_for() {
        assert_eq!(plan_pack(100, None, false, false), PackCheck::Missing);
        assert_eq!(plan_pack(100, None, true, true), PackCheck::DeletedByGc);
        assert_eq!(plan_pack(100, Some(99), false, true), PackCheck::WrongSize { actual: 99 });
        assert_eq!(plan_pack(100, Some(99), true, false), PackCheck::WrongSize { actual: 99 });
        assert_eq!(plan_pack(100, Some(100), false, false), PackCheck::Structure);
        assert_eq!(plan_pack(100, Some(100), true, true), PackCheck::Data);
    }

    #[test]
    fn findings_name_exactly_the_snapshots_whose_chunks_they_hold() {
        let bad = Finding::new("packs/aa/x", "missing", [id(1), id(2)].into_iter().collect());
        let snaps = vec![(id(10), vec![id(1), id(3)]), (id(11), vec![id(3)]), (id(12), vec![id(2), id(2)])];
        let good: HashSet<ObjectId> = [id(3)].into_iter().collect();
        let (reported, affected) = assess(vec![bad], &snaps, &good, [], |s| format!("snapshots/{}", s.to_hex()));
        assert_eq!(reported.len(), 1);
        assert_eq!(reported[0].snapshots, vec![id(10).to_hex(), id(12).to_hex()]);
        assert_eq!(affected, vec![id(10).to_hex(), id(12).to_hex()]);
    }

    #[test]
    fn packs_gc_deleted_are_damage_only_when_still_needed() {
        let gone = |c: u8| Finding {
            only_if_needed: true,
            ..Finding::new("packs/bb/y", "deleted by gc, but still needed", [id(c)].into_iter().collect())
        };
        let snaps = vec![(id(10), vec![id(1)])];
        let good: HashSet<ObjectId> = [id(1)].into_iter().collect();
        let (reported, affected) = assess(vec![gone(5)], &snaps, &good, [], |_| String::new());
        assert!(reported.is_empty() && affected.is_empty(), "nothing needs it: {reported:?}");
        let (reported, _) = assess(vec![gone(1)], &snaps, &HashSet::new(), [], |_| String::new());
        assert_eq!(reported.len(), 1, "a snapshot needs it");
    }

    #[test]
    fn chunks_no_finding_explains_are_reported_on_the_snapshot() {
        let snaps = vec![(id(10), vec![id(1), id(2), id(9)])];
        let good: HashSet<ObjectId> = [id(1)].into_iter().collect();
        let (reported, affected) =
            assess(vec![], &snaps, &good, ["ab".repeat(32)], |s| format!("snapshots/{}", s.short()));
        assert_eq!(reported.len(), 1);
        assert_eq!(reported[0].object, format!("snapshots/{}", id(10).short()));
        assert_eq!(reported[0].problem, "2 chunks are in no intact indexed pack");
        assert_eq!(affected, vec![id(10).to_hex(), "ab".repeat(32)], "earlier ones kept, sorted");
    }

    #[test]
    fn a_damaged_base_spreads_to_every_chunk_that_depends_on_it_and_no_other() {
        // 1 whole; 2 = delta of 1; 3 = delta of 2; 4 = delta of 1 with a whole copy too; 5 = delta of 6
        // (6 has no copy); 7 and 8 are deltas of each other (a cycle).
        let mut copies: HashMap<ObjectId, Vec<Option<ObjectId>>> = HashMap::new();
        copies.insert(id(1), vec![None]);
        copies.insert(id(2), vec![Some(id(1))]);
        copies.insert(id(3), vec![Some(id(2))]);
        copies.insert(id(4), vec![Some(id(1)), None]);
        copies.insert(id(5), vec![Some(id(6))]);
        copies.insert(id(7), vec![Some(id(8))]);
        copies.insert(id(8), vec![Some(id(7))]);
        let ok = restorable(&copies);
        let want: HashSet<ObjectId> = [1, 2, 3, 4].into_iter().map(id).collect();
        assert_eq!(ok, want);
        // Chunk 1's pack is damaged: 2 and 3 go with it, 4 has its own whole copy.
        copies.remove(&id(1));
        let ok = restorable(&copies);
        assert_eq!(ok, [id(4)].into_iter().collect());
        let deps = dependents([(id(2), id(1)), (id(3), id(2)), (id(4), id(1)), (id(5), id(6))].into_iter());
        let f = Finding::new("packs/aa/x", "chunk 1: authentication failed", [id(1)].into_iter().collect());
        let spread = spread(vec![f], &deps, &ok);
        assert_eq!(spread[0].chunks, [1, 2, 3].into_iter().map(id).collect::<HashSet<_>>());
        // And the snapshots needing 3 only are named with that pack.
        let snaps = vec![(id(10), vec![id(3)]), (id(11), vec![id(4)])];
        let (reported, affected) = assess(spread, &snaps, &ok, [], |s| s.to_hex());
        assert_eq!(reported[0].snapshots, vec![id(10).to_hex()]);
        assert_eq!(affected, vec![id(10).to_hex()]);
    }
}
