//! check's decisions as pure functions (restic's checker phases as a model): what to do with each indexed
//! pack given the listing, and — once packs are read — which findings are damage and which snapshots they
//! make unrestorable (I3 authenticated everything; I4: a pack gc deleted on purpose is not damage unless a
//! snapshot still needs it).

use silo_format::ObjectId;
use std::collections::{BTreeSet, HashSet};

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
}
