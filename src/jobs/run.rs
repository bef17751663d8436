//! `silo run`: the steps of a job and how their outcomes combine. Pure; the CLI (cli/run.rs) carries the
//! steps out against the repositories.
//!
//! A job is create (all its streams in one snapshot) -> copy to the offsite repository -> forget by the
//! job's policy (here, then offsite) -> check and drill when their cadence is due. A failing step does not hide the others: a failed copy still forgets
//! locally; a failed create skips copy and forget (nothing new to copy, and forgetting after a failed
//! backup could only remove good ones). Every run is recorded, successful or failed (maintenance.md "runs").

use super::Job;
use silo_format::maintenance::{run_error_line, RunStep, StepOutcome};

/// One step of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    /// Databases an `"all"` listing returned that were not dumped (I22); failed when there are any, after
    /// the others were committed.
    Listing,
    Copy,
    Forget,
    ForgetOffsite,
    Check,
    Drill,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Listing => "list",
            Step::Copy => "copy",
            Step::Forget => "forget",
            Step::ForgetOffsite => "forget-offsite",
            Step::Check => "check",
            Step::Drill => "drill",
        }
    }
}

/// The steps of `job`, in order. `due`: whether the check and the drill are due now (their cadences,
/// judged from the run records).
pub fn steps(job: &Job, due: Due) -> Vec<Step> {
    let mut out = vec![Step::Create];
    if job.offsite {
        out.push(Step::Copy);
    }
    if job.keep.is_some() {
        out.push(Step::Forget);
        if job.offsite {
            out.push(Step::ForgetOffsite);
        }
    }
    if job.check.is_some() && due.check {
        out.push(Step::Check);
    }
    if job.drill.is_some() && due.drill {
        out.push(Step::Drill);
    }
    out
}

/// Which cadenced steps are due.
#[derive(Clone, Copy, Debug, Default)]
pub struct Due {
    pub check: bool,
    pub drill: bool,
}

impl Due {
    /// Due when the job's last run that carried the step (ok or failed) is `every` old, or there is none.
    pub fn judge(job: &Job, history: &[&silo_format::maintenance::RunRecord], now: i64) -> Due {
        let last = |step: &str| {
            history
                .iter()
                .filter(|r| r.steps.iter().any(|s| s.step == step && s.outcome != StepOutcome::Skipped))
                .map(|r| r.finished)
                .max()
        };
        let every = |e: Option<u64>| e.unwrap_or(super::DEFAULT_EVERY);
        Due {
            check: job.check.as_ref().is_some_and(|c| super::cadence_due(last("check"), now, every(c.every))),
            drill: job.drill.as_ref().is_some_and(|d| super::cadence_due(last("drill"), now, every(d.every))),
        }
    }
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// With the error line and the exit code it maps to.
    Failed(String, u8),
    /// With why.
    Skipped(String),
}

/// Whether `step` runs, given the outcomes so far: copy needs the new snapshot; forgetting needs a
/// successful create (after a failed backup it could only push good snapshots out).
pub fn should_run(step: Step, so_far: &[(Step, Outcome)]) -> Result<(), String> {
    let created = so_far.iter().any(|(s, o)| *s == Step::Create && *o == Outcome::Ok);
    match step {
        Step::Create => Ok(()),
        Step::Copy if !created => Err("no new snapshot (create failed)".into()),
        Step::Forget | Step::ForgetOffsite if !created => {
            Err("create failed: forgetting now could only remove good snapshots".into())
        }
        _ => Ok(()),
    }
}

/// Exit codes from most to least severe: the worst outcome of a run (or of several jobs) is its exit code
/// (docs/operations.md "Exit codes").
pub const SEVERITY: [u8; 9] = [5, 4, 7, 3, 6, 1, 2, 9, 8];

/// The exit code of the worst of `codes` (0 when all are 0).
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes
        .into_iter()
        .filter(|c| *c != 0)
        .min_by_key(|c| SEVERITY.iter().position(|s| s == c).unwrap_or(SEVERITY.len()))
        .unwrap_or(0)
}

/// The record's steps, the run's exit code and its error line (the first failed step's).
pub fn summarize(outcomes: &[(Step, Outcome)]) -> (Vec<RunStep>, u8, String) {
    let steps = outcomes
        .iter()
        .map(|(s, o)| {
            let (outcome, error) = match o {
                Outcome::Ok => (StepOutcome::Ok, String::new()),
                Outcome::Failed(e, _) => (StepOutcome::Failed, run_error_line(e)),
                Outcome::Skipped(why) => (StepOutcome::Skipped, run_error_line(why)),
            };
            RunStep { step: s.name().into(), outcome, error }
        })
        .collect();
    let code = worst(outcomes.iter().map(|(_, o)| if let Outcome::Failed(_, c) = o { *c } else { 0 }));
    let error = outcomes
        .iter()
        .find_map(|(s, o)| match o {
            Outcome::Failed(e, _) => Some(run_error_line(&format!("{}: {e}", s.name()))),
            _ => None,
        })
        .unwrap_or_default();
    (steps, code, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{Job, Keep};

    fn job(offsite: bool, keep: bool) -> Job {
        Job {
            streams: vec![],
            keep: keep.then(|| Keep { daily: Some(7), ..Default::default() }),
            offsite,
            freshness: None,
            min_size: None,
            shrink_alert: 50,
            tags: vec![],
            schedule: None,
            check: None,
            drill: None,
            notify: vec![],
            cooldown: None,
            env: vec![],
        }
    }

    #[test]
    fn steps_follow_the_job() {
        let none = Due::default();
        assert_eq!(steps(&job(false, false), none), [Step::Create]);
        assert_eq!(steps(&job(true, false), none), [Step::Create, Step::Copy]);
        assert_eq!(steps(&job(true, true), none), [Step::Create, Step::Copy, Step::Forget, Step::ForgetOffsite]);
        assert_eq!(steps(&job(false, true), none), [Step::Create, Step::Forget]);
        let mut cadenced = job(false, false);
        cadenced.check = Some(crate::jobs::CheckCadence { subset: None, every: None });
        cadenced.drill = Some(crate::jobs::DrillCadence { command: "true".into(), stream: None, every: None });
        let both = Due { check: true, drill: true };
        assert_eq!(steps(&cadenced, both), [Step::Create, Step::Check, Step::Drill]);
        assert_eq!(steps(&cadenced, Due { check: false, drill: true }), [Step::Create, Step::Drill]);
    }

    #[test]
    fn cadences_are_judged_from_the_records() {
        use silo_format::maintenance::{RunRecord, RunStep};
        const D: i64 = 86_400_000_000;
        let mut j = job(false, false);
        j.check = Some(crate::jobs::CheckCadence { subset: None, every: None });
        j.drill = Some(crate::jobs::DrillCadence { command: "true".into(), stream: None, every: Some(86_400) });
        let record = |day: i64, step: &str, outcome: &str| RunRecord {
            version: 1,
            kind: "run".into(),
            job: "shop".into(),
            host: "h".into(),
            started: day * D,
            finished: day * D,
            bytes_read: 0,
            bytes_added: 0,
            snapshot: None,
            ok: true,
            exit_code: 0,
            error: String::new(),
            steps: vec![RunStep { step: step.into(), outcome: outcome.into(), error: String::new() }],
        };
        let (checked, drilled, skipped) =
            (record(5, "check", "failed"), record(9, "drill", "ok"), record(9, "check", "skipped"));
        let due = Due::judge(&j, &[&checked, &drilled, &skipped], 10 * D);
        assert!(!due.check, "checked (even if it failed) 5 days ago; every 7 days");
        assert!(due.drill, "drilled a day ago; every day");
        assert!(Due::judge(&j, &[], 10 * D).check);
    }

    #[test]
    fn a_failed_copy_still_forgets_but_a_failed_create_does_not() {
        let copy_failed = [(Step::Create, Outcome::Ok), (Step::Copy, Outcome::Failed("unreachable".into(), 3))];
        assert!(should_run(Step::Forget, &copy_failed).is_ok());
        assert!(should_run(Step::ForgetOffsite, &copy_failed).is_ok());
        let create_failed = [(Step::Create, Outcome::Failed("pg_dump exited with status 1".into(), 7))];
        assert!(should_run(Step::Copy, &create_failed).is_err());
        assert!(should_run(Step::Forget, &create_failed).unwrap_err().contains("good snapshots"));
    }

    #[test]
    fn the_worst_outcome_is_the_exit_code() {
        assert_eq!(worst([0, 0]), 0);
        assert_eq!(worst([3, 7]), 7, "a failed dump outranks an unreachable offsite");
        assert_eq!(worst([1, 5, 7]), 5, "damage outranks everything");
        assert_eq!(worst([8, 1]), 1);
        let (steps, code, error) = summarize(&[
            (Step::Create, Outcome::Ok),
            (Step::Copy, Outcome::Failed("offsite\nunreachable".into(), 3)),
            (Step::Forget, Outcome::Ok),
        ]);
        assert_eq!(code, 3);
        assert_eq!(error, "copy: offsite unreachable");
        assert_eq!(steps.iter().map(|s| s.outcome.as_str()).collect::<Vec<_>>(), ["ok", "failed", "ok"]);
        assert_eq!(summarize(&[(Step::Create, Outcome::Ok)]).1, 0);
    }
}
