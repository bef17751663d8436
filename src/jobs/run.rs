//! `silo run`: the steps of a job, the order and skips in which `carry_out` runs them, and how their
//! outcomes combine. No I/O: the CLI (cli/run.rs) is the `Executor` that carries each step out against the
//! repositories and says it.
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

/// What carrying out a job needs from the world: the CLI implements it against the repositories
/// (cli/run.rs), the tests with a script. `carry_out` owns the order and the skips; the executor only does
/// and says.
pub trait Executor {
    /// What a step produced, for the executor's own report.
    type Done: Default;
    /// Takes the job's lock (one run of a job at a time); the error line and exit code when it is held.
    fn lock(&mut self) -> Result<(), (String, u8)>;
    /// Which cadenced steps are due (judged from the run records).
    fn due(&mut self) -> Due;
    /// Whether `step` would run with a writer key (forgetting is the owner's, I11).
    fn writer_only(&mut self, step: Step) -> bool;
    /// Carries out `step`.
    fn run(&mut self, step: Step) -> Result<Self::Done, (String, u8)>;
    /// After a create: the databases an `"all"` listing returned that were not dumped, with why (I22).
    fn unlisted(&self) -> Vec<(String, String)>;
    /// A step has ended with `outcome` (said as it ends, kept for the report).
    fn ended(&mut self, step: Step, outcome: &Outcome, done: Self::Done);
}

/// Runs `job`'s steps through `exec` in order and returns each one's outcome: a held lock fails the run
/// before any step; a step whose prerequisite failed is skipped (`should_run`); forgetting with a writer
/// key is skipped, not failed; databases a listing returned but the create left out fail the run after the
/// others were committed.
pub fn carry_out<E: Executor>(job: &Job, exec: &mut E) -> Vec<(Step, Outcome)> {
    let mut list: Vec<(Step, Outcome)> = Vec::new();
    let push = |exec: &mut E, list: &mut Vec<(Step, Outcome)>, step: Step, outcome: Outcome, done: E::Done| {
        exec.ended(step, &outcome, done);
        list.push((step, outcome));
    };
    if let Err((busy, code)) = exec.lock() {
        push(exec, &mut list, Step::Create, Outcome::Failed(busy, code), E::Done::default());
        return list;
    }
    let due = exec.due();
    for step in steps(job, due) {
        if let Err(why) = should_run(step, &list) {
            push(exec, &mut list, step, Outcome::Skipped(why), E::Done::default());
            continue;
        }
        if matches!(step, Step::Forget | Step::ForgetOffsite) && exec.writer_only(step) {
            let why = "the repository was opened with a writer key, which may not forget (I11); the owner's \
                       `silo forget` or `silo prune` applies keep";
            push(exec, &mut list, step, Outcome::Skipped(why.into()), E::Done::default());
            continue;
        }
        match exec.run(step) {
            Ok(done) => push(exec, &mut list, step, Outcome::Ok, done),
            Err((e, code)) => push(exec, &mut list, step, Outcome::Failed(e, code), E::Done::default()),
        }
        let unlisted = if step == Step::Create { exec.unlisted() } else { Vec::new() };
        if !unlisted.is_empty() {
            let names: Vec<String> = unlisted.iter().map(|(db, why)| format!("{db:?} ({why})")).collect();
            let message = format!(
                "databases the server listed were not backed up: {}; rename them to back them up",
                names.join(", ")
            );
            push(exec, &mut list, Step::Listing, Outcome::Failed(message, LISTING_EXIT), E::Done::default());
        }
    }
    list
}

/// The exit code of a listing whose databases were not all backed up: a command failed (docs/operations.md).
const LISTING_EXIT: u8 = 7;

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
        use silo_format::maintenance::{RunKind, RunRecord, RunStep};
        const D: i64 = 86_400_000_000;
        let mut j = job(false, false);
        j.check = Some(crate::jobs::CheckCadence { subset: None, every: None });
        j.drill = Some(crate::jobs::DrillCadence { command: "true".into(), stream: None, every: Some(86_400) });
        let record = |day: i64, step: &str, outcome: &str| RunRecord {
            steps: vec![RunStep { step: step.into(), outcome: outcome.into(), error: String::new() }],
            ..RunRecord::new(RunKind::Run, "shop", "h", day * D, day * D)
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

    /// A scripted world: which steps fail, whether the lock is held, a writer key, unlisted databases.
    #[derive(Default)]
    struct Script {
        busy: bool,
        writer: bool,
        fail: Vec<Step>,
        unlisted: Vec<(String, String)>,
        ran: Vec<Step>,
        said: Vec<Step>,
    }

    impl Executor for Script {
        type Done = ();
        fn lock(&mut self) -> Result<(), (String, u8)> {
            if self.busy {
                Err(("job shop is running (pid 1)".into(), 6))
            } else {
                Ok(())
            }
        }
        fn due(&mut self) -> Due {
            Due { check: true, drill: true }
        }
        fn writer_only(&mut self, _: Step) -> bool {
            self.writer
        }
        fn run(&mut self, step: Step) -> Result<(), (String, u8)> {
            self.ran.push(step);
            if self.fail.contains(&step) {
                Err((format!("{} went wrong", step.name()), 1))
            } else {
                Ok(())
            }
        }
        fn unlisted(&self) -> Vec<(String, String)> {
            self.unlisted.clone()
        }
        fn ended(&mut self, step: Step, _: &Outcome, _: ()) {
            self.said.push(step);
        }
    }

    fn outcomes_of(list: &[(Step, Outcome)]) -> Vec<(Step, &'static str)> {
        list.iter()
            .map(|(s, o)| {
                (
                    *s,
                    match o {
                        Outcome::Ok => "ok",
                        Outcome::Failed(..) => "failed",
                        Outcome::Skipped(_) => "skipped",
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_held_lock_fails_the_run_before_any_step() {
        let mut world = Script { busy: true, ..Default::default() };
        let list = carry_out(&job(true, true), &mut world);
        assert_eq!(outcomes_of(&list), [(Step::Create, "failed")]);
        assert!(world.ran.is_empty());
        assert_eq!(summarize(&list).1, 6);
    }

    #[test]
    fn a_failed_create_skips_copy_and_forget_but_every_step_is_said() {
        let mut world = Script { fail: vec![Step::Create], ..Default::default() };
        let list = carry_out(&job(true, true), &mut world);
        assert_eq!(
            outcomes_of(&list),
            [
                (Step::Create, "failed"),
                (Step::Copy, "skipped"),
                (Step::Forget, "skipped"),
                (Step::ForgetOffsite, "skipped")
            ]
        );
        assert_eq!(world.ran, [Step::Create]);
        assert_eq!(world.said, [Step::Create, Step::Copy, Step::Forget, Step::ForgetOffsite]);
    }

    #[test]
    fn a_failed_copy_still_forgets_locally() {
        let mut world = Script { fail: vec![Step::Copy], ..Default::default() };
        let list = carry_out(&job(true, true), &mut world);
        assert_eq!(
            outcomes_of(&list),
            [(Step::Create, "ok"), (Step::Copy, "failed"), (Step::Forget, "ok"), (Step::ForgetOffsite, "ok")]
        );
    }

    #[test]
    fn a_writer_key_skips_forgetting_and_does_not_fail_the_run() {
        let mut world = Script { writer: true, ..Default::default() };
        let list = carry_out(&job(false, true), &mut world);
        assert_eq!(outcomes_of(&list), [(Step::Create, "ok"), (Step::Forget, "skipped")]);
        assert_eq!(world.ran, [Step::Create]);
        assert_eq!(summarize(&list).1, 0);
    }

    #[test]
    fn databases_left_out_of_a_listing_fail_the_run_after_the_others_are_committed() {
        let unlisted = vec![("bad\nname".to_string(), "a control character".to_string())];
        let mut world = Script { unlisted, ..Default::default() };
        let list = carry_out(&job(false, true), &mut world);
        assert_eq!(outcomes_of(&list), [(Step::Create, "ok"), (Step::Listing, "failed"), (Step::Forget, "ok")]);
        let (_, code, error) = summarize(&list);
        assert_eq!(code, 7);
        assert!(error.contains("were not backed up"), "{error}");
    }
}
