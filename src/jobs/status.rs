//! `silo status`: the state of each job (or snapshot name) from facts the repository holds — snapshots,
//! run records, damage marks, drills — against the job's limits. Pure: `Facts::judge` turns what the
//! repository holds into facts, `judge` is a function of the facts and the time. Upholds I13's reading side: a
//! failing job is visible even while its old snapshots are fresh; damage is known by the run's exit code, never
//! by words in an error line.
//!
//! States, worst first (the exit code of `silo status` is the worst job's, docs/operations.md "Exit codes"):
//! damaged (a snapshot of the job is marked damaged), failing (its latest run failed), shrunk (its latest
//! snapshot is smaller than `min_size`, or smaller than the one before by `shrink_alert` percent or more),
//! stale (no snapshot within the freshness limit), never (no snapshot at all), ok.

use serde::Serialize;
use silo_format::maintenance::{RunKind, StepOutcome};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Damaged,
    Failing,
    Shrunk,
    Stale,
    Never,
    Ok,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Damaged => "damaged",
            State::Failing => "failing",
            State::Shrunk => "shrunk",
            State::Stale => "stale",
            State::Never => "never",
            State::Ok => "ok",
        }
    }
}

/// The exit code of `silo status` for a worst state (docs/operations.md "Exit codes"): 0 ok, 8 stale or
/// never, 10 failing or shrunk, 5 damaged.
pub fn exit_code(state: State) -> u8 {
    match state {
        State::Ok => 0,
        State::Never | State::Stale => 8,
        State::Failing | State::Shrunk => 10,
        State::Damaged => DAMAGE_EXIT_CODE,
    }
}

/// The limits a job sets (defaults without a jobs file: no freshness, no minimum, 50%).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub freshness_seconds: Option<u64>,
    pub min_size: Option<u64>,
    pub shrink_alert: u8,
}

/// One snapshot of the job, as status needs it.
#[derive(Clone, Debug)]
pub struct SnapshotFact {
    pub id: String,
    pub finished_us: i64,
    pub bytes: u64,
    pub damaged: bool,
    /// Per stream, its dump record (streams silo did not recognise are left out).
    pub dumps: Vec<(String, silo_format::manifest::DumpRecord)>,
}

/// One run (or create) of the job.
#[derive(Clone, Debug)]
pub struct RunFact {
    pub finished_us: i64,
    pub ok: bool,
    pub error: String,
    pub snapshot: Option<String>,
    pub bytes_added: u64,
}

/// The newest check that covered the job's snapshots (a `silo check`, or a job's check step).
#[derive(Clone, Debug)]
pub struct CheckFact {
    pub finished_us: i64,
    pub ok: bool,
    /// It found damage (not merely failed to run).
    pub damage: bool,
    pub error: String,
}

#[derive(Clone, Debug)]
pub struct DrillFact {
    pub finished_us: i64,
    pub ok: bool,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub state: State,
    /// Why the state is not ok, one line each.
    pub reasons: Vec<String>,
    /// Finish time (µs) of the newest snapshot, and its age in seconds.
    pub last_snapshot: Option<i64>,
    pub age_seconds: Option<u64>,
    pub freshness_seconds: Option<u64>,
    pub last_run: Option<i64>,
    pub last_run_ok: Option<bool>,
    pub last_success: Option<i64>,
    pub last_failure: Option<i64>,
    pub last_error: Option<String>,
    pub latest_bytes: Option<u64>,
    /// What the newest snapshot added to the repository (from its run record), when known.
    pub latest_added_bytes: Option<u64>,
    pub previous_bytes: Option<u64>,
    pub snapshots: usize,
    pub damaged_snapshots: usize,
    pub last_check: Option<i64>,
    pub last_check_ok: Option<bool>,
    pub last_check_error: Option<String>,
    pub last_drill: Option<i64>,
    pub last_drill_ok: Option<bool>,
    pub last_drill_seconds: Option<f64>,
}

/// The status of job `job` at `now_us`. `snapshots` and `runs` oldest first.
pub fn judge(
    job: &str,
    limits: Limits,
    snapshots: &[SnapshotFact],
    runs: &[RunFact],
    check: Option<&CheckFact>,
    drill: Option<&DrillFact>,
    now_us: i64,
) -> JobStatus {
    let latest = snapshots.last();
    let previous = snapshots.len().checked_sub(2).and_then(|i| snapshots.get(i));
    let last_run = runs.last();
    let age = latest.map(|s| u64::try_from((now_us - s.finished_us).max(0) / 1_000_000).unwrap_or(0));
    let latest_added =
        latest.and_then(|s| runs.iter().rev().find(|r| r.snapshot.as_deref() == Some(&s.id)).map(|r| r.bytes_added));
    let mut found: Vec<(State, String)> = Vec::new();
    let damaged = snapshots.iter().filter(|s| s.damaged).count();
    if damaged > 0 {
        found.push((State::Damaged, format!("{damaged} snapshots are marked damaged (silo snapshot list)")));
    }
    if let Some(c) = check.filter(|c| c.damage) {
        found.push((State::Damaged, format!("the last check found damage: {}", c.error)));
    }
    if let Some(r) = last_run.filter(|r| !r.ok) {
        let failures = runs.iter().rev().take_while(|r| !r.ok).count();
        found.push((State::Failing, format!("the last {failures} runs failed; latest: {}", r.error)));
    }
    if let Some(s) = latest {
        if let Some(min) = limits.min_size.filter(|m| s.bytes < *m) {
            found.push((State::Shrunk, format!("the newest snapshot is {} bytes, below min_size {min}", s.bytes)));
        }
        if let Some(p) = previous.filter(|p| p.bytes > 0 && s.bytes < p.bytes) {
            let drop = (p.bytes - s.bytes) as f64 * 100.0 / p.bytes as f64;
            if drop >= f64::from(limits.shrink_alert) {
                found.push((
                    State::Shrunk,
                    format!(
                        "the newest snapshot is {drop:.0}% smaller than the one before ({} -> {} bytes)",
                        p.bytes, s.bytes
                    ),
                ));
            }
        }
        // Tables gone or shrunk since the snapshot before (dumps::sanity), stream by stream.
        if let Some(p) = previous {
            for (stream, now) in &s.dumps {
                if let Some((_, before)) = p.dumps.iter().find(|(name, _)| name == stream) {
                    for f in crate::dumps::sanity::compare(stream, before, now, limits.shrink_alert) {
                        found.push((State::Shrunk, f.line));
                    }
                }
            }
        }
        if let Some(problem) = s.dumps.iter().find_map(|(stream, d)| d.invalid.as_ref().map(|p| (stream, p))) {
            found.push((
                State::Failing,
                format!(
                    "the newest snapshot's stream {} was committed although it failed validation: {}",
                    problem.0, problem.1
                ),
            ));
        }
    }
    match (age, limits.freshness_seconds) {
        (Some(a), Some(limit)) if a > limit => found.push((
            State::Stale,
            format!(
                "the newest snapshot is {} old, the limit is {}",
                crate::time::format_seconds(a),
                crate::time::format_seconds(limit)
            ),
        )),
        (None, _) => found.push((State::Never, "no snapshot yet".into())),
        _ => {}
    }
    found.sort_by_key(|(s, _)| *s);
    JobStatus {
        job: job.to_string(),
        state: found.first().map_or(State::Ok, |(s, _)| *s),
        reasons: found.into_iter().map(|(_, r)| r).collect(),
        last_snapshot: latest.map(|s| s.finished_us),
        age_seconds: age,
        freshness_seconds: limits.freshness_seconds,
        last_run: last_run.map(|r| r.finished_us),
        last_run_ok: last_run.map(|r| r.ok),
        last_success: runs.iter().rev().find(|r| r.ok).map(|r| r.finished_us),
        last_failure: runs.iter().rev().find(|r| !r.ok).map(|r| r.finished_us),
        last_error: runs.iter().rev().find(|r| !r.ok).map(|r| r.error.clone()),
        latest_bytes: latest.map(|s| s.bytes),
        latest_added_bytes: latest_added,
        previous_bytes: previous.map(|s| s.bytes),
        snapshots: snapshots.len(),
        damaged_snapshots: damaged,
        last_check: check.map(|c| c.finished_us),
        last_check_ok: check.map(|c| c.ok),
        last_check_error: check.filter(|c| !c.ok).map(|c| c.error.clone()),
        last_drill: drill.map(|d| d.finished_us),
        last_drill_ok: drill.map(|d| d.ok),
        last_drill_seconds: drill.map(|d| d.seconds),
    }
}

/// The exit code of damage found (docs/operations.md "Exit codes"), as run records carry it (I13).
pub const DAMAGE_EXIT_CODE: u8 = 5;

/// What the repository holds that a job's state depends on.
/// Run records, drills and damage marks become facts here, so `silo status` and `silo run` judge alike.
pub struct Facts<'a> {
    pub snapshots: &'a [crate::repo::snapshots::Snapshot],
    pub marks: &'a std::collections::HashMap<silo_format::ObjectId, silo_format::maintenance::DamageMark>,
    pub history: &'a [(silo_format::ObjectId, silo_format::maintenance::RunRecord)],
    pub drills: &'a [(silo_format::ObjectId, String, silo_format::maintenance::DrillRecord)],
    pub now_us: i64,
}

impl Facts<'_> {
    pub fn judge(&self, name: &str, limit: Limits) -> JobStatus {
        let mut snaps: Vec<SnapshotFact> = self
            .snapshots
            .iter()
            .filter(|s| s.manifest.name == name)
            .map(|s| SnapshotFact {
                id: s.id.to_hex(),
                finished_us: s.manifest.finished,
                bytes: s.manifest.total_size(),
                damaged: self.marks.contains_key(&s.id),
                dumps: s
                    .manifest
                    .streams
                    .iter()
                    .filter_map(|st| st.dump.clone().map(|d| (st.name.clone(), d)))
                    .collect(),
            })
            .collect();
        snaps.sort_by_key(|s| s.finished_us);
        let runs: Vec<RunFact> = self
            .history
            .iter()
            .filter(|(_, r)| is_job_run(&r.kind) && r.job == name)
            .map(|(_, r)| RunFact {
                finished_us: r.finished,
                ok: r.ok,
                error: r.error.clone(),
                snapshot: r.snapshot.map(|s| s.to_hex()),
                bytes_added: r.bytes_added,
            })
            .collect();
        // The job's snapshots, including those retention removed since (a drill of one still counts).
        let ours: BTreeSet<_> = self
            .snapshots
            .iter()
            .filter(|s| s.manifest.name == name)
            .map(|s| s.id)
            .chain(self.history.iter().filter(|(_, r)| r.job == name).filter_map(|(_, r)| r.snapshot))
            .collect();
        let drill = self
            .drills
            .iter()
            .map(|(_, _, d)| d)
            .filter(|d| ours.contains(&d.snapshot))
            .max_by_key(|d| d.finished)
            .map(|d| DrillFact { finished_us: d.finished, ok: d.ok, seconds: (d.finished - d.started) as f64 / 1e6 });
        // The newest check covering the job: a `silo check` (the whole repository) or the job's own step.
        let check = self
            .history
            .iter()
            .filter_map(|(_, r)| {
                if r.kind == RunKind::Check {
                    return Some(CheckFact {
                        finished_us: r.finished,
                        ok: r.ok,
                        damage: r.exit_code == DAMAGE_EXIT_CODE,
                        error: r.error.clone(),
                    });
                }
                // A run's worst step sets its exit code, and damage is the worst: a check step that failed in a
                // run whose code is damage's found damage.
                let step =
                    r.steps.iter().find(|s| s.step == "check" && s.outcome != StepOutcome::Skipped && r.job == name)?;
                let ok = step.outcome == StepOutcome::Ok;
                Some(CheckFact {
                    finished_us: r.finished,
                    ok,
                    damage: !ok && r.exit_code == DAMAGE_EXIT_CODE,
                    error: step.error.clone(),
                })
            })
            .max_by_key(|c| c.finished_us);
        judge(name, limit, &snaps, &runs, check.as_ref(), drill.as_ref(), self.now_us)
    }
}

/// Records that are runs of a job: `silo run`, or a plain create of that snapshot name.
pub fn is_job_run(kind: &RunKind) -> bool {
    matches!(kind, RunKind::Run | RunKind::Create)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    fn snap(id: &str, hours_ago: i64, bytes: u64) -> SnapshotFact {
        SnapshotFact { id: id.into(), finished_us: 100 * H - hours_ago * H, bytes, damaged: false, dumps: vec![] }
    }

    fn run(hours_ago: i64, ok: bool, snapshot: Option<&str>) -> RunFact {
        RunFact {
            finished_us: 100 * H - hours_ago * H,
            ok,
            error: if ok { String::new() } else { "create: pg_dump exited with status 1".into() },
            snapshot: snapshot.map(String::from),
            bytes_added: 42,
        }
    }

    const LIMITS: Limits = Limits { freshness_seconds: Some(26 * 3600), min_size: Some(1000), shrink_alert: 50 };

    #[test]
    fn a_fresh_successful_job_is_ok() {
        let s = judge(
            "shop",
            LIMITS,
            &[snap("a", 30, 5000), snap("b", 2, 5100)],
            &[run(2, true, Some("b"))],
            None,
            None,
            100 * H,
        );
        assert_eq!((s.state, s.age_seconds, s.latest_added_bytes), (State::Ok, Some(7200), Some(42)));
        assert!(s.reasons.is_empty());
    }

    #[test]
    fn stale_after_the_freshness_limit_and_never_without_snapshots() {
        let s = judge("shop", LIMITS, &[snap("a", 27, 5000)], &[], None, None, 100 * H);
        assert_eq!(s.state, State::Stale);
        assert!(s.reasons[0].contains("limit"), "{:?}", s.reasons);
        let fresh = judge("shop", LIMITS, &[snap("a", 25, 5000)], &[], None, None, 100 * H);
        assert_eq!(fresh.state, State::Ok);
        assert_eq!(judge("shop", LIMITS, &[], &[], None, None, 100 * H).state, State::Never);
        let no_limit = Limits { freshness_seconds: None, ..LIMITS };
        assert_eq!(judge("shop", no_limit, &[snap("a", 1000, 5000)], &[], None, None, 100 * H).state, State::Ok);
    }

    #[test]
    fn a_table_that_shrank_or_vanished_is_flagged_and_an_accepted_invalid_dump_fails() {
        use silo_format::manifest::{DumpRecord, TableStat};
        let rec = |rows: &[(&str, u64)], invalid: Option<&str>| DumpRecord {
            format: 1,
            tool_version: String::new(),
            invalid: invalid.map(String::from),
            entries: 0,
            tables: rows.iter().map(|(n, r)| TableStat { name: n.to_string(), rows: Some(*r), bytes: 1 }).collect(),
        };
        let mut a = snap("a", 2, 5000);
        a.dumps = vec![("data".into(), rec(&[("public.orders", 1000), ("public.users", 500)], None))];
        let mut b = snap("b", 1, 5000);
        b.dumps = vec![("data".into(), rec(&[("public.orders", 100)], None))];
        let s = judge("shop", LIMITS, &[a.clone(), b], &[], None, None, 100 * H);
        assert_eq!(s.state, State::Shrunk);
        assert_eq!(s.reasons.len(), 2, "{:?}", s.reasons);
        assert!(s.reasons[0].contains("public.orders") && s.reasons[1].contains("public.users of stream data is gone"));
        let mut c = snap("c", 0, 5000);
        c.dumps = vec![("data".into(), rec(&[("public.orders", 1000), ("public.users", 500)], Some("cut short")))];
        let s = judge("shop", LIMITS, &[a, c], &[], None, None, 100 * H);
        assert_eq!(s.state, State::Failing);
        assert!(s.reasons[0].contains("failed validation: cut short"), "{:?}", s.reasons);
    }

    #[test]
    fn failing_until_a_run_succeeds_again() {
        let runs = [run(3, true, Some("a")), run(2, false, None), run(1, false, None)];
        let s = judge("shop", LIMITS, &[snap("a", 3, 5000)], &runs, None, None, 100 * H);
        assert_eq!(s.state, State::Failing);
        assert!(s.reasons[0].contains("last 2 runs failed") && s.reasons[0].contains("pg_dump"), "{:?}", s.reasons);
        assert_eq!(s.last_error.as_deref(), Some("create: pg_dump exited with status 1"));
        let recovered = [runs[0].clone(), runs[1].clone(), run(0, true, Some("b"))];
        let s = judge("shop", LIMITS, &[snap("a", 3, 5000), snap("b", 0, 5000)], &recovered, None, None, 100 * H);
        assert_eq!(s.state, State::Ok);
        assert!(s.last_failure.is_some());
    }

    #[test]
    fn a_shrinking_dump_is_flagged() {
        let s = judge("shop", LIMITS, &[snap("a", 25, 10_000), snap("b", 1, 4_000)], &[], None, None, 100 * H);
        assert_eq!(s.state, State::Shrunk);
        assert!(s.reasons[0].contains("60% smaller"), "{:?}", s.reasons);
        let small = judge("shop", LIMITS, &[snap("a", 1, 999)], &[], None, None, 100 * H);
        assert_eq!(small.state, State::Shrunk);
        let fine = judge("shop", LIMITS, &[snap("a", 25, 10_000), snap("b", 1, 5_001)], &[], None, None, 100 * H);
        assert_eq!(fine.state, State::Ok);
    }

    #[test]
    fn a_check_that_found_damage_makes_the_job_damaged() {
        let failed = CheckFact { finished_us: 99 * H, ok: false, damage: false, error: "unreachable".into() };
        let s = judge("shop", LIMITS, &[snap("a", 1, 5000)], &[], Some(&failed), None, 100 * H);
        assert_eq!((s.state, s.last_check_ok), (State::Ok, Some(false)), "a check that could not run is not damage");
        let damaged = CheckFact { damage: true, error: "check found 1 damaged objects".into(), ..failed };
        let s = judge("shop", LIMITS, &[snap("a", 1, 5000)], &[], Some(&damaged), None, 100 * H);
        assert_eq!(s.state, State::Damaged);
        assert!(s.reasons[0].contains("1 damaged objects"));
    }

    #[test]
    fn the_worst_state_wins_and_every_reason_is_kept() {
        let mut snaps = vec![snap("a", 50, 10_000), snap("b", 40, 100)];
        snaps[0].damaged = true;
        let s = judge("shop", LIMITS, &snaps, &[run(40, false, None)], None, None, 100 * H);
        assert_eq!(s.state, State::Damaged);
        assert_eq!(s.reasons.len(), 5, "damaged, failing, shrunk (min and drop) and stale: {:?}", s.reasons);
    }
}
