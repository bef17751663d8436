//! `silo run`: the steps of a job and how their outcomes combine. Pure; the CLI (cli/run.rs) carries the
//! steps out against the repositories.
//!
//! A job is create (all its streams in one snapshot) -> copy to the offsite repository -> forget by the
//! job's policy (here, then offsite). A failing step does not hide the others: a failed copy still forgets
//! locally; a failed create skips copy and forget (nothing new to copy, and forgetting after a failed
//! backup could only remove good ones). Every run is recorded, successful or failed (maintenance.md "runs").

use super::Job;
use silo_format::maintenance::{run_error_line, RunStep};

/// One step of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    Copy,
    Forget,
    ForgetOffsite,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Copy => "copy",
            Step::Forget => "forget",
            Step::ForgetOffsite => "forget-offsite",
        }
    }
}

/// The steps of `job`, in order.
pub fn steps(job: &Job) -> Vec<Step> {
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
    out
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
/// (README "Exit codes").
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
                Outcome::Ok => ("ok", String::new()),
                Outcome::Failed(e, _) => ("failed", run_error_line(e)),
                Outcome::Skipped(why) => ("skipped", run_error_line(why)),
            };
            RunStep { step: s.name().into(), outcome: outcome.into(), error }
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
            notify: vec![],
            cooldown: None,
        }
    }

    #[test]
    fn steps_follow_the_job() {
        assert_eq!(steps(&job(false, false)), [Step::Create]);
        assert_eq!(steps(&job(true, false)), [Step::Create, Step::Copy]);
        assert_eq!(steps(&job(true, true)), [Step::Create, Step::Copy, Step::Forget, Step::ForgetOffsite]);
        assert_eq!(steps(&job(false, true)), [Step::Create, Step::Forget]);
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
