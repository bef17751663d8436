//! gc's decisions as pure functions of facts (docs/design.md §5, I4 gc grace, I6 late writers): what happens
//! to each pack, given what the index says of it, when the backend last stamped it, the live writer sessions
//! and the safety settings. No I/O here: `gc::Repository::gc_plan` gathers the facts, `gc_execute` carries
//! the plan out under the lease. Modelled on restic's `decidePackAction` and rustic's `PackToDo`.

use serde::Serialize;
use silo_format::ObjectId;

const SECOND: i64 = 1_000_000;
/// Config times above this (a century) are treated as this, so no arithmetic on them overflows.
const MAX_CONFIG_SECONDS: u64 = 100 * 365 * 86_400;

/// How careful gc is with packs that may still be wanted (kopia's `SafetyParameters`). Times in µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Safety {
    /// A pack younger than this is never touched (a writer may be about to index or reference it).
    pub min_pack_age: i64,
    /// Time between marking a dead pack and deleting it (a late writer may still reference it: I4).
    pub grace_period: i64,
}

/// The named presets `--safety` chooses from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SafetyPreset {
    /// Safety age and grace period from the repository's config: safe while other clients write.
    #[default]
    Full,
    /// Reclaim at once: only safe when nothing else uses the repository.
    None,
}

impl Safety {
    /// Nothing waits: marked packs are deleted in the same run.
    pub const NONE: Safety = Safety { min_pack_age: 0, grace_period: 0 };

    /// The preset's parameters for a repository whose config says `safety_age` / `grace_period` seconds.
    pub fn preset(preset: SafetyPreset, safety_age: u64, grace_period: u64) -> Safety {
        let micros = |s: u64| s.min(MAX_CONFIG_SECONDS) as i64 * SECOND;
        match preset {
            SafetyPreset::Full => Safety { min_pack_age: micros(safety_age), grace_period: micros(grace_period) },
            SafetyPreset::None => Safety::NONE,
        }
    }
}

/// How many of a pack's chunks the snapshots reference, and how many bytes they do not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackUse {
    pub live_chunks: u64,
    pub dead_bytes: u64,
}

/// What gc knows of one listed pack when it decides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PackFacts {
    pub size: u64,
    /// The backend's stamp of the pack (µs).
    pub modified: i64,
    /// From the index; `None` when no index segment names the pack (an orphan: nothing references it).
    pub usage: Option<PackUse>,
    /// When a deletion mark was written for it, if one was.
    pub marked_at: Option<i64>,
    /// For a marked pack that snapshots reference again: whether some referenced chunk has no copy in a pack
    /// that stays. (Unused otherwise.)
    pub holds_only_copy: bool,
}

/// What the whole run knows when it decides: the backend's time, the start of the oldest live writer
/// session, and how careful to be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunFacts {
    pub now: i64,
    pub oldest_session_start: Option<i64>,
    pub safety: Safety,
    /// Repack a pack when at least this fraction of its bytes is dead.
    pub repack_threshold: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum PackAction {
    /// Live, or young and live: nothing to do.
    Keep,
    /// Dead but younger than the safety age or written during a live session: left alone this run.
    TooYoung,
    /// Dead and unmarked: write a deletion mark.
    Mark,
    /// Marked, still dead, grace period not over: deleted by a run after `reclaimable_at`.
    Pending { reclaimable_at: i64 },
    /// Marked a grace period ago and still dead: delete.
    Delete,
    /// Partly dead beyond the threshold: copy the live chunks into new packs, mark this one.
    Repack,
    /// Marked, but snapshots reference it again and it holds their only copy: copy those chunks out (the
    /// mark stays; the pack goes once the grace period is over and nothing needs it).
    Rescue,
}

impl PackAction {
    /// The pack leaves the repository as a result of this run (now or after the grace period).
    pub fn takes_away(&self) -> bool {
        matches!(self, PackAction::Mark | PackAction::Delete | PackAction::Repack | PackAction::Rescue)
    }
}

/// The decision for one pack (I4: nothing younger than the safety age, nothing written since a live writer
/// started, nothing deleted before it was marked a grace period ago and found dead again).
pub fn decide(pack: &PackFacts, run: &RunFacts) -> PackAction {
    let dead = pack.usage.is_none_or(|u| u.live_chunks == 0);
    let young = run.now - pack.modified < run.safety.min_pack_age
        || run.oldest_session_start.is_some_and(|start| pack.modified >= start - SECOND);
    if young {
        return if dead { PackAction::TooYoung } else { PackAction::Keep };
    }
    let after_grace = |marked: i64| {
        if run.now - marked >= run.safety.grace_period {
            PackAction::Delete
        } else {
            PackAction::Pending { reclaimable_at: marked + run.safety.grace_period }
        }
    };
    match (pack.marked_at, dead) {
        (Some(marked), true) => after_grace(marked),
        // Referenced again since it was marked: with another live copy of everything, dead after all.
        (Some(_), false) if pack.holds_only_copy => PackAction::Rescue,
        (Some(marked), false) => after_grace(marked),
        (None, true) => PackAction::Mark,
        (None, false) => match pack.usage {
            Some(u) if u.dead_bytes as f64 >= run.repack_threshold * pack.size as f64 => PackAction::Repack,
            _ => PackAction::Keep,
        },
    }
}

/// One pack's line in a plan.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PlannedPack {
    #[serde(serialize_with = "hex_id")]
    pub pack: ObjectId,
    pub size: u64,
    #[serde(flatten)]
    pub action: PackAction,
}

fn hex_id<S: serde::Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600 * SECOND;
    const NOW: i64 = 1_000_000 * HOUR;

    fn run() -> RunFacts {
        RunFacts {
            now: NOW,
            oldest_session_start: None,
            safety: Safety { min_pack_age: 24 * HOUR, grace_period: 24 * HOUR },
            repack_threshold: 0.2,
        }
    }

    fn pack(age_hours: i64, live: u64, dead_bytes: u64, marked_hours_ago: Option<i64>) -> PackFacts {
        PackFacts {
            size: 1000,
            modified: NOW - age_hours * HOUR,
            usage: Some(PackUse { live_chunks: live, dead_bytes }),
            marked_at: marked_hours_ago.map(|h| NOW - h * HOUR),
            holds_only_copy: false,
        }
    }

    #[test]
    fn live_packs_are_kept_young_or_old() {
        assert_eq!(decide(&pack(48, 5, 0, None), &run()), PackAction::Keep);
        assert_eq!(decide(&pack(1, 5, 0, None), &run()), PackAction::Keep);
        assert_eq!(decide(&pack(48, 5, 100, None), &run()), PackAction::Keep, "below the repack threshold");
    }

    #[test]
    fn dead_packs_younger_than_the_safety_age_are_left_alone() {
        assert_eq!(decide(&pack(23, 0, 1000, None), &run()), PackAction::TooYoung);
        let orphan = PackFacts { usage: None, ..pack(23, 0, 0, None) };
        assert_eq!(decide(&orphan, &run()), PackAction::TooYoung);
        assert_eq!(decide(&pack(24, 0, 1000, None), &run()), PackAction::Mark, "exactly the safety age is old");
    }

    #[test]
    fn packs_written_since_a_live_session_started_are_left_alone() {
        let r = RunFacts { oldest_session_start: Some(NOW - 30 * HOUR), ..run() };
        assert_eq!(decide(&pack(29, 0, 1000, None), &r), PackAction::TooYoung);
        // A second of slack for stamps of whole seconds.
        let at_start = PackFacts { modified: NOW - 30 * HOUR - SECOND, ..pack(0, 0, 1000, None) };
        assert_eq!(decide(&at_start, &r), PackAction::TooYoung);
        let before = PackFacts { modified: NOW - 30 * HOUR - 2 * SECOND, ..pack(0, 0, 1000, None) };
        assert_eq!(decide(&before, &r), PackAction::Mark);
    }

    #[test]
    fn dead_packs_are_marked_then_deleted_after_the_grace_period() {
        assert_eq!(decide(&pack(48, 0, 1000, None), &run()), PackAction::Mark);
        let orphan = PackFacts { usage: None, ..pack(48, 0, 0, None) };
        assert_eq!(decide(&orphan, &run()), PackAction::Mark);
        assert_eq!(decide(&pack(48, 0, 1000, Some(23)), &run()), PackAction::Pending { reclaimable_at: NOW + HOUR });
        assert_eq!(decide(&pack(48, 0, 1000, Some(24)), &run()), PackAction::Delete);
    }

    #[test]
    fn marked_packs_referenced_again_are_rescued_only_when_they_hold_the_only_copy() {
        let only = PackFacts { holds_only_copy: true, ..pack(48, 3, 0, Some(30)) };
        assert_eq!(decide(&only, &run()), PackAction::Rescue);
        assert_eq!(decide(&pack(48, 3, 0, Some(30)), &run()), PackAction::Delete, "copies elsewhere: dead after all");
        assert_eq!(decide(&pack(48, 3, 0, Some(2)), &run()), PackAction::Pending { reclaimable_at: NOW + 22 * HOUR });
    }

    #[test]
    fn partly_dead_packs_are_repacked_at_the_threshold() {
        assert_eq!(decide(&pack(48, 5, 199, None), &run()), PackAction::Keep);
        assert_eq!(decide(&pack(48, 5, 200, None), &run()), PackAction::Repack);
        let never = RunFacts { repack_threshold: 1.1, ..run() };
        assert_eq!(decide(&pack(48, 5, 999, None), &never), PackAction::Keep);
    }

    #[test]
    fn safety_none_reclaims_at_once_and_presets_read_the_config() {
        let r = RunFacts { safety: Safety::preset(SafetyPreset::None, 86_400, 86_400), ..run() };
        assert_eq!(decide(&pack(0, 0, 1000, None), &r), PackAction::Mark);
        assert_eq!(decide(&pack(0, 0, 1000, Some(0)), &r), PackAction::Delete);
        let full = Safety::preset(SafetyPreset::Full, 60, 120);
        assert_eq!(full, Safety { min_pack_age: 60 * SECOND, grace_period: 120 * SECOND });
        let huge = Safety::preset(SafetyPreset::Full, u64::MAX, u64::MAX);
        assert!(huge.min_pack_age > 0 && huge.grace_period > 0, "no overflow: {huge:?}");
    }

    #[test]
    fn only_taking_actions_take_packs_away() {
        let taking = [PackAction::Mark, PackAction::Delete, PackAction::Repack, PackAction::Rescue];
        for a in taking {
            assert!(a.takes_away(), "{a:?}");
        }
        for a in [PackAction::Keep, PackAction::TooYoung, PackAction::Pending { reclaimable_at: 0 }] {
            assert!(!a.takes_away(), "{a:?}");
        }
    }
}
