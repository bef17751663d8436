//! `silo run JOB... | --all`: each job of the jobs file as one unit — create, offsite copy, forget — with
//! every step's outcome recorded in the repository (or spooled when it is out of reach), successful or
//! failed. The steps and how outcomes combine are the library's (jobs/run.rs); this file carries them out.
//! The exit code is the worst outcome over all jobs (docs/operations.md "Exit codes").

use super::context::Invocation;
use super::exit::{exit_code, RunFailed};
use super::jobs_file;
use super::output::{emit, human_bytes, Report};
use anyhow::Result;
use serde::Serialize;
use silo::inputs::StreamSpec;
use silo::jobs::run::{carry_out, steps, summarize, Due, Outcome, Step};
use silo::jobs::status::{JobStatus, Limits, State};
use silo::jobs::{Job, JobsFile, RepoConfig};
use silo::notify::Ping;
use silo::repo::runs::Spool;
use silo::repo::write::CreateOptions;
use silo::repo::Repository;
use silo_format::maintenance::{RunKind, RunRecord};
use silo_format::ObjectId;
use std::process::Stdio;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs to run (names of [jobs.NAME] tables in the jobs file).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    jobs: Vec<String>,
    /// Run every job of the jobs file.
    #[arg(long)]
    all: bool,
    /// Print what each job would do and check what it needs (`silo doctor`'s checks: passwords, repositories,
    /// dump tools, database servers, notification targets); run nothing, change no repository. Exit 1 when
    /// a check fails.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: also send one test notification through each of the jobs' notification targets.
    #[arg(long, requires = "dry_run")]
    send_test: bool,
}

#[derive(Serialize)]
struct RunReport {
    dry_run: bool,
    jobs: Vec<JobReport>,
    /// A dry run's checks (`silo doctor`'s), one per line.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Vec<super::doctor::Check>>,
    exit_code: u8,
}

#[derive(Serialize)]
struct JobReport {
    job: String,
    ok: bool,
    exit_code: u8,
    snapshot: Option<String>,
    bytes_read: u64,
    bytes_added: u64,
    duration_seconds: f64,
    steps: Vec<StepView>,
    /// Where the run record went: `repository`, `spooled <path>`, or why it could not be kept.
    recorded: String,
}

#[derive(Serialize)]
struct StepView {
    /// The step's kind: `create`, `list`, `copy`, `forget`, `forget-offsite`, `check`, `drill`, or a
    /// notification `notify:TARGET:EVENT` / `ping:TARGET:WHAT`.
    step: String,
    /// `ok`, `failed`, `skipped` (`planned` in a dry run).
    outcome: String,
    /// What it did (ok), the error (failed), why it was skipped, or what it will do (dry run).
    detail: String,
    /// The error line of a failed step.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// A forget step's removed snapshots (empty when it removed none).
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<Vec<RemovedView>>,
}

/// A snapshot a forget step removed.
#[derive(Clone, Serialize)]
struct RemovedView {
    id: String,
    name: String,
    host: String,
    /// When it finished (RFC 3339, UTC).
    finished: String,
}

/// What an ok step did: a line for people, and for a forget the snapshots it removed.
#[derive(Default)]
struct Done {
    detail: String,
    removed: Option<Vec<RemovedView>>,
}

impl Done {
    fn said(detail: impl Into<String>) -> Done {
        Done { detail: detail.into(), removed: None }
    }
}

impl StepView {
    fn of(step: &str, outcome: &Outcome, done: Done) -> StepView {
        let (outcome, detail, error) = match outcome {
            Outcome::Ok => ("ok", done.detail, None),
            Outcome::Failed(e, _) => ("failed", e.clone(), Some(e.clone())),
            Outcome::Skipped(why) => ("skipped", why.clone(), None),
        };
        StepView { step: step.into(), outcome: outcome.into(), detail, error, removed: done.removed }
    }

    /// The step as one line on stderr, as it ends: `silo: shop: forget ok: removed 2 snapshots: ...`.
    fn say(&self, job: &str) {
        let outcome = if self.outcome == "failed" { "FAILED" } else { self.outcome.as_str() };
        match self.detail.as_str() {
            "" => note!("silo: {job}: {} {outcome}", self.step),
            detail => note!("silo: {job}: {} {outcome}: {detail}", self.step),
        }
    }
}

impl Report for RunReport {
    fn human(&self) -> Result<()> {
        for j in &self.jobs {
            if self.dry_run {
                say!("job {}:", j.job);
                for s in &j.steps {
                    say!("  {:<15} {}", s.step, s.detail);
                }
                continue;
            }
            let verdict = if j.ok { "ok" } else { "FAILED" };
            let snap = j.snapshot.as_deref().map_or(String::new(), |s| format!(", snapshot {}", &s[..12]));
            say!(
                "{}: {verdict}{snap}, {} read, {} added, {:.1} s",
                j.job,
                human_bytes(j.bytes_read),
                human_bytes(j.bytes_added),
                j.duration_seconds
            );
            for s in j.steps.iter().filter(|s| s.outcome != "ok") {
                say!("  {} {}: {}", s.step, s.outcome, s.detail);
            }
            if j.recorded != "repository" {
                say!("  run record: {}", j.recorded);
            }
        }
        if let Some(checks) = &self.checks {
            super::doctor::say_checks(checks)?;
        }
        Ok(())
    }
}

/// A step's error: its one line and the exit code it maps to.
type StepError = (String, u8);

fn failed(e: anyhow::Error) -> StepError {
    (format!("{e:#}"), exit_code(&e))
}

/// The repositories of a run, each opened once (on first use) for all jobs.
struct Repos<'a> {
    ctx: &'a Invocation,
    file: &'a JobsFile,
    main: Option<Result<Repository, StepError>>,
    offsite: Option<Result<Repository, StepError>>,
}

impl Repos<'_> {
    fn main(&mut self) -> Result<&Repository, StepError> {
        let (ctx, cfg) = (self.ctx, &self.file.repository);
        let opened = self.main.get_or_insert_with(|| {
            let repo = jobs_file::open(ctx, "repository", cfg).map_err(failed)?;
            // Records a run earlier could not store go in first, so history stays in order of runs.
            if let Some(spool) = spool_of(ctx, cfg) {
                match ctx.rt.block_on(spool.flush(&repo)) {
                    Ok(0) => {}
                    Ok(n) => note!("silo: uploaded {n} run records spooled while the repository was out of reach"),
                    Err(e) => note!("silo: warning: spooled run records stay spooled: {e}"),
                }
            }
            Ok(repo)
        });
        opened.as_ref().map_err(Clone::clone)
    }

    fn offsite(&mut self) -> Result<&Repository, StepError> {
        let (ctx, file) = (self.ctx, self.file);
        let opened = self.offsite.get_or_insert_with(|| {
            let cfg = file.offsite.as_ref().ok_or(("no [offsite] repository".to_string(), super::exit::USAGE))?;
            jobs_file::open(ctx, "offsite", cfg).map_err(|e| {
                let (message, code) = failed(e);
                (format!("offsite {}: {message}", cfg.location), code)
            })
        });
        opened.as_ref().map_err(Clone::clone)
    }
}

fn spool_of(ctx: &Invocation, cfg: &RepoConfig) -> Option<Spool> {
    Spool::for_location(cfg.cache_dir.as_deref().or(ctx.cli.cache_dir.as_deref()), &cfg.location)
}

/// A job's streams, ready to run.
struct Streams {
    specs: Vec<StreamSpec>,
    /// Names of the streams whose entry says `validate = false`.
    unvalidated: Vec<String>,
    /// Listed databases not dumped (I22), each with why.
    skipped: Vec<(String, String)>,
}

/// The job's streams: presets expanded, `"all"` listed from the server now.
fn streams_of(name: &str, job: &Job) -> Result<Streams> {
    let mut out: Vec<StreamSpec> = Vec::new();
    let mut unvalidated = Vec::new();
    let mut skipped = Vec::new();
    for entry in &job.streams {
        let preset = entry.preset().map_err(|m| silo::Error::Input { what: format!("job {name}"), message: m })?;
        let databases = match preset.list_command() {
            Some(argv) => {
                let listed = silo::inputs::process::command_with(&argv[0], &preset.child_env(&job.env))
                    .args(&argv[1..])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| silo::Error::io(format!("starting {} to list the databases", argv[0]), e))?;
                if !listed.status.success() {
                    let stderr = String::from_utf8_lossy(&listed.stderr);
                    return Err(silo::Error::CommandFailed {
                        command: argv.join(" "),
                        status: silo::inputs::process::describe_status(&listed.status),
                        outcome: "could not list the databases; nothing was committed",
                        stderr_tail: stderr.lines().last().map_or(String::new(), |l| format!(": {l}")),
                    }
                    .into());
                }
                let listing = preset.dumpable(entry.name.as_deref(), &String::from_utf8_lossy(&listed.stdout));
                skipped.extend(listing.skipped);
                listing.databases
            }
            None => Vec::new(),
        };
        for spec in preset.specs(entry.name.as_deref(), &databases, &job.env) {
            silo::repo::snapshots::validate_name("stream name", &spec.name)?;
            if out.iter().any(|s| s.name == spec.name) {
                return Err(silo::Error::Input {
                    what: format!("job {name}"),
                    message: format!("two streams are named {:?}; set name = \"...\" on one", spec.name),
                }
                .into());
            }
            if entry.validate == Some(false) {
                unvalidated.push(spec.name.clone());
            }
            out.push(spec);
        }
    }
    Ok(Streams { specs: out, unvalidated, skipped })
}

struct Created {
    snapshot: silo_format::ObjectId,
    bytes_read: u64,
    bytes_added: u64,
    /// Listed databases not dumped, with why (I22).
    skipped: Vec<(String, String)>,
}

fn create(ctx: &Invocation, repo: &Repository, name: &str, job: &Job) -> Result<Created> {
    let Streams { specs: streams, unvalidated, skipped } = streams_of(name, job)?;
    for (db, why) in &skipped {
        note!("silo: warning: job {name}: database {db:?} the server listed is not backed up: its name {why}");
    }
    let options = CreateOptions {
        name: name.to_string(),
        host: silo::repo::hostname(),
        tags: job.tags.clone(),
        streams,
        progress: Default::default(),
        warn: |text| note!("silo: warning: {text}"),
        times: None,
        allow_empty: false,
        min_size: job.min_size,
        validation: silo::repo::write::Validation { off: unvalidated, ..Default::default() },
        deltas: true,
    };
    // On a terminal, the job and its phase with how far it is, like `snapshot create`'s line.
    let counter = options.progress.clone();
    let label = name.to_string();
    let shown = super::progress::Progress::start_with(move |elapsed| {
        let read = counter.load(std::sync::atomic::Ordering::Relaxed);
        Some(format!("{label}: create: {}", super::progress::line("read", read, None, elapsed)))
    });
    let report = repo.create_snapshot(ctx.rt.handle(), &options);
    drop(shown);
    let report = report?;
    // Tables gone or shrunk: said here, and alerted as a size drop by the status judgement after the run.
    for line in crate::cli::snapshot::create::content_warnings(ctx, repo, name, &report, job.shrink_alert) {
        note!("silo: warning: {line}");
    }
    Ok(Created { snapshot: report.id, bytes_read: report.bytes, bytes_added: report.new_bytes_stored, skipped })
}

fn copy(ctx: &Invocation, source: &Repository, target: &Repository, to: &str, id: ObjectId) -> Result<Done> {
    let snap = ctx.rt.block_on(source.load_snapshot(id))?;
    let existing = ctx.rt.block_on(target.list_snapshots())?;
    Ok(match target.copy_from(ctx.rt.handle(), source, &snap, &existing, Default::default())? {
        silo::repo::copy::CopyOutcome::Present(_) => Done::said(format!("snapshot {} is already in {to}", id.short())),
        silo::repo::copy::CopyOutcome::Copied { report, .. } => Done::said(format!(
            "snapshot {} to {to} as {}, {} added",
            id.short(),
            report.id.short(),
            human_bytes(report.new_bytes_stored)
        )),
    })
}

/// Forgets by the job's policy; says which snapshots it removed (id and time) and how many it kept.
fn forget(ctx: &Invocation, repo: &Repository, name: &str, job: &Job) -> Result<Done> {
    let Some(policy) = job.keep.as_ref().map(|k| k.policy()) else { return Ok(Done::said("no keep policy")) };
    let filter = silo::repo::forget::Filter { name: Some(name.to_string()), host: None, tag: None };
    // I19 with the job's own threshold: a snapshot shrunk by its shrink_alert is suspect (100: only empty or
    // invalid ones are).
    let plan = ctx.rt.block_on(repo.plan_forget_with(&filter, Some(&policy), job.shrink_alert))?;
    ctx.rt.block_on(repo.forget(&plan))?;
    let decisions = plan.iter().flat_map(|g| &g.decisions);
    let removed: Vec<RemovedView> = decisions
        .clone()
        .filter(|d| !d.keep)
        .map(|d| RemovedView {
            id: d.item.id.to_hex(),
            name: d.item.manifest.name.clone(),
            host: d.item.manifest.host.clone(),
            finished: silo::time::format_micros(d.item.manifest.finished),
        })
        .collect();
    let kept = decisions.filter(|d| d.keep).count();
    let listed: Vec<String> = removed.iter().map(|r| format!("{} ({})", &r.id[..8], r.finished)).collect();
    let detail = match listed.len() {
        0 => format!("removed none, kept {kept} ({policy})"),
        n => format!("removed {n}: {}; kept {kept} ({policy})", listed.join(", ")),
    };
    Ok(Done { detail, removed: Some(removed) })
}

/// Verifies the repository (all data, or the job's subset). Damage is a failed step (exit 5).
fn check(ctx: &Invocation, repo: &Repository, job: &Job) -> Result<Done> {
    let data = job.check.as_ref().and_then(|c| c.subset.clone()).unwrap_or(silo::repo::check::DataCheck::All);
    let options = silo::repo::check::CheckOptions {
        data,
        snapshot: None,
        max_age: None,
        max_age_name: None,
        progress: Default::default(),
    };
    let report = ctx.rt.block_on(repo.check(&options))?;
    if report.is_damaged() {
        return Err(silo::Error::CheckDamaged {
            objects: report.damaged.len(),
            snapshots: report.affected_snapshots.len(),
        }
        .into());
    }
    let read = if report.data_read {
        format!(", {} of data verified", human_bytes(report.bytes_verified))
    } else {
        String::new()
    };
    Ok(Done::said(format!("no damage in {} snapshots, {} packs{read}", report.snapshots, report.packs)))
}

/// Restores the job's newest snapshot into its drill command, timed and recorded (`drills/`).
fn drill(ctx: &Invocation, repo: &Repository, name: &str, job: &Job) -> Result<Done> {
    let Some(d) = &job.drill else { return Ok(Done::default()) };
    let spec = silo::repo::snapshots::SnapshotSpec::parse(&format!("{name}:latest"))?;
    let snap = ctx.rt.block_on(repo.resolve(&spec))?;
    let stream = snap.stream(&d.stream)?;
    let argv = vec!["sh".to_string(), "-c".to_string(), d.command.clone()];
    let (drilled, failed) = repo.drill(ctx.rt.handle(), &snap, stream, &argv)?;
    let seconds = (drilled.finished - drilled.started) as f64 / 1e6;
    failed.map_or(
        Ok(Done::said(format!(
            "restored {} of snapshot {} into `{}` in {seconds:.1} s",
            human_bytes(drilled.bytes),
            snap.id.short(),
            d.command
        ))),
        |e| Err(e.into()),
    )
}

/// One run of a job at a time on this machine (cron lines and timers overlap when a run takes longer than
/// its period): an flock on `<cache base>/locks/<location hash>-<job>.lock`, held until the returned file is
/// dropped (or the process ends). `Ok(None)` when no cache base is known.
fn lock_job(ctx: &Invocation, cfg: &RepoConfig, job: &str) -> Result<Option<std::fs::File>, String> {
    use std::os::fd::AsRawFd;
    let Some(base) = silo::cache::base_dir(cfg.cache_dir.as_deref().or(ctx.cli.cache_dir.as_deref())) else {
        return Ok(None);
    };
    let dir = base.join("locks");
    let key = blake3::hash(cfg.location.as_bytes()).to_hex();
    let path = dir.join(format!("{}-{job}.lock", &key.as_str()[..16]));
    let file = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path))
        .map_err(|e| format!("job lock {}: {e}", path.display()))?;
    // SAFETY: flock(2) on a descriptor this function owns; released when the file is closed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "job {job} is still running on this machine (lock {}): this run was skipped; a run taking longer \
             than its schedule's period wants a longer period",
            path.display()
        ));
    }
    Ok(Some(file))
}

/// What every command of the job may see (I21): the base, the job's `env`, and what its presets' tools read
/// (a drill of a PostgreSQL dump runs psql). Each stream's tool gets only its own (presets.rs).
fn job_env(job: &Job) -> silo::inputs::process::ChildEnv {
    job.streams
        .iter()
        .filter_map(|e| e.preset().ok())
        .fold(silo::inputs::process::ChildEnv::base().with_names(&job.env), |env, p| env.union(&p.child_env(&[])))
}

fn run_job(ctx: &Invocation, repos: &mut Repos, name: &str, job: &Job) -> JobReport {
    silo::inputs::process::confine_children(job_env(job));
    let started = silo::time::now_micros();
    let clock = std::time::Instant::now();
    let mut notified = super::notify::ping(ctx, repos.file, job, Ping::Start, "");
    let mut world = World { ctx, repos, name, job, created: None, views: Vec::new(), _lock: None };
    let list = carry_out(job, &mut world);
    let World { repos, created, views, _lock, .. } = world;
    let outcomes = Outcomes { list, views };
    let failed_step = |s: Step| outcomes.list.iter().any(|(x, o)| *x == s && matches!(o, Outcome::Failed(..)));
    let (drill_failed, damage_found) = (failed_step(Step::Drill), failed_step(Step::Check));
    let (steps, exit_code, error) = summarize(&outcomes.list);
    let finished = silo::time::now_micros().max(started);
    let mut record = RunRecord {
        bytes_read: created.as_ref().map_or(0, |c| c.bytes_read),
        bytes_added: created.as_ref().map_or(0, |c| c.bytes_added),
        snapshot: created.as_ref().map(|c| c.snapshot),
        steps,
        ..RunRecord::new(RunKind::Run, name, silo::repo::hostname(), started, finished).outcome(exit_code, error)
    };
    let (events, reasons, history) = raised(ctx, repos, name, job, &record, drill_failed, damage_found);
    notified.extend(super::notify::events(ctx, repos.file, job, &record, &events, &reasons, &history));
    let end = if record.ok { Ping::Success } else { Ping::Fail };
    notified.extend(super::notify::ping(ctx, repos.file, job, end, &record.error));
    let mut views = outcomes.views;
    for n in &notified {
        let view = StepView::of(&n.step, &notified_outcome(n), Done::default());
        view.say(name);
        views.push(view);
    }
    record.steps.extend(notified);
    let recorded = store_record(ctx, repos, &record);
    JobReport {
        job: name.to_string(),
        ok: record.ok,
        exit_code,
        snapshot: record.snapshot.map(|s| s.to_hex()),
        bytes_read: record.bytes_read,
        bytes_added: record.bytes_added,
        duration_seconds: clock.elapsed().as_secs_f64(),
        steps: views,
        recorded,
    }
}

/// A job's step outcomes (for the record) and their views (for the report).
struct Outcomes {
    list: Vec<(Step, Outcome)>,
    views: Vec<StepView>,
}

/// The job's world for `carry_out` (jobs/run.rs): the repositories, what the create made, the views said
/// on stderr as each step ends, and the job's lock, held while the job runs.
struct World<'a, 'r> {
    ctx: &'a Invocation,
    repos: &'a mut Repos<'r>,
    name: &'a str,
    job: &'a Job,
    created: Option<Created>,
    views: Vec<StepView>,
    _lock: Option<std::fs::File>,
}

impl silo::jobs::run::Executor for World<'_, '_> {
    type Done = Done;

    fn lock(&mut self) -> Result<(), (String, u8)> {
        let lock = lock_job(self.ctx, &self.repos.file.repository, self.name).map_err(|e| (e, super::exit::BUSY))?;
        self._lock = lock;
        Ok(())
    }

    fn due(&mut self) -> Due {
        due(self.ctx, self.repos, self.name, self.job)
    }

    fn writer_only(&mut self, step: Step) -> bool {
        match step {
            Step::ForgetOffsite => self.repos.offsite().is_ok_and(|r| r.is_writer_only()),
            _ => self.repos.main().is_ok_and(|r| r.is_writer_only()),
        }
    }

    fn run(&mut self, step: Step) -> Result<Done, (String, u8)> {
        run_step(self.ctx, self.repos, self.name, self.job, step, &mut self.created)
    }

    fn unlisted(&self) -> Vec<(String, String)> {
        self.created.as_ref().map(|c| c.skipped.clone()).unwrap_or_default()
    }

    fn ended(&mut self, step: Step, outcome: &Outcome, done: Done) {
        let view = StepView::of(step.name(), outcome, done);
        view.say(self.name);
        self.views.push(view);
    }
}

/// A recorded notification step as an outcome (its exit code is never the run's).
fn notified_outcome(s: &silo_format::maintenance::RunStep) -> Outcome {
    use silo_format::maintenance::StepOutcome;
    match s.outcome {
        StepOutcome::Ok => Outcome::Ok,
        StepOutcome::Failed => Outcome::Failed(s.error.clone(), 0),
        _ => Outcome::Skipped(s.error.clone()),
    }
}

/// Check and drill run when their cadence is due, judged from the job's earlier records.
fn due(ctx: &Invocation, repos: &mut Repos, name: &str, job: &Job) -> Due {
    match (&job.check, &job.drill, repos.main()) {
        (None, None, _) | (_, _, Err(_)) => Due::default(),
        (_, _, Ok(repo)) => match ctx.rt.block_on(repo.run_history()) {
            Ok(h) => {
                let ours: Vec<&RunRecord> =
                    h.records.iter().map(|(_, r)| r).filter(|r| r.kind == RunKind::Run && r.job == name).collect();
                Due::judge(job, &ours, repo.now())
            }
            Err(e) => {
                note!("silo: warning: job {name}: cannot read the run history, so check and drill wait: {e}");
                Due::default()
            }
        },
    }
}

/// Carries out one step of a job; a create leaves what it made in `created` (copy uses it).
fn run_step(
    ctx: &Invocation,
    repos: &mut Repos,
    name: &str,
    job: &Job,
    step: Step,
    created: &mut Option<Created>,
) -> Result<Done, StepError> {
    match step {
        Step::Create => repos.main().and_then(|repo| {
            let c = create(ctx, repo, name, job).map_err(failed)?;
            let detail = format!(
                "snapshot {}, {} read, {} added",
                c.snapshot.short(),
                human_bytes(c.bytes_read),
                human_bytes(c.bytes_added)
            );
            *created = Some(c);
            Ok(Done::said(detail))
        }),
        Step::Listing => Ok(Done::default()),
        Step::Copy => match created.as_ref() {
            Some(c) => repos.offsite().map(|_| ()).and_then(|()| {
                let (Some(Ok(source)), Some(Ok(target)), Some(to)) = (&repos.main, &repos.offsite, &repos.file.offsite)
                else {
                    return Err(("a repository is not open".into(), super::exit::FAILURE));
                };
                copy(ctx, source, target, &to.location, c.snapshot).map_err(failed)
            }),
            None => Err(("no snapshot to copy".into(), super::exit::FAILURE)),
        },
        Step::Forget => repos.main().and_then(|repo| forget(ctx, repo, name, job).map_err(failed)),
        Step::ForgetOffsite => repos.offsite().and_then(|repo| forget(ctx, repo, name, job).map_err(failed)),
        Step::Check => repos.main().and_then(|repo| check(ctx, repo, job).map_err(failed)),
        Step::Drill => repos.main().and_then(|repo| drill(ctx, repo, name, job).map_err(failed)),
    }
}

/// Notifications: what the run raised and what the job's state is now, minding cooldowns recorded in earlier
/// runs. None of it changes the outcome (I13). A job without targets needs none of it (listing snapshots and
/// records costs round trips). Returns the events, the state's reasons and the earlier records.
fn raised(
    ctx: &Invocation,
    repos: &mut Repos,
    name: &str,
    job: &Job,
    record: &RunRecord,
    drill_failed: bool,
    damage_found: bool,
) -> (Vec<silo::notify::Event>, Vec<String>, Vec<RunRecord>) {
    let fallback = || silo::notify::events(record.ok, None, State::Ok, drill_failed, damage_found);
    match repos.main() {
        _ if job.notify.is_empty() => (Vec::new(), Vec::new(), Vec::new()),
        Ok(repo) => match judged(ctx, repo, name, job, record) {
            Ok((status, history)) => {
                let previous = history.iter().rev().find(|r| r.kind == RunKind::Run && r.job == name).map(|r| r.ok);
                let events = silo::notify::events(record.ok, previous, status.state, drill_failed, damage_found);
                (events, status.reasons, history)
            }
            Err(e) => {
                note!("silo: warning: job {name}: cannot judge its state for notifications: {e:#}");
                (fallback(), Vec::new(), Vec::new())
            }
        },
        Err(_) => (fallback(), Vec::new(), Vec::new()),
    }
}

/// The job's state as `silo status` would judge it now, and the repository's run records.
/// The job's state with `this` run counted (its record is stored after the notifications), and the earlier
/// records (for cooldowns and the previous outcome).
fn judged(
    ctx: &Invocation,
    repo: &Repository,
    name: &str,
    job: &Job,
    this: &RunRecord,
) -> Result<(JobStatus, Vec<RunRecord>)> {
    let snapshots = ctx.rt.block_on(repo.list_snapshot_heads())?; // headers: sizes, times, dump records
    let marks = ctx.rt.block_on(repo.damage_marks())?;
    let history = ctx.rt.block_on(repo.run_history())?;
    let mut with_this = history.records.clone();
    with_this.push((silo_format::ObjectId::ZERO, this.clone()));
    let facts = silo::jobs::status::Facts {
        snapshots: &snapshots,
        marks: &marks,
        history: &with_this,
        drills: &[],
        now_us: repo.now(),
    };
    let limits = Limits { freshness_seconds: job.freshness, min_size: job.min_size, shrink_alert: job.shrink_alert };
    let status = facts.judge(name, limits);
    Ok((status, history.records.into_iter().map(|(_, r)| r).collect()))
}

/// Stores the record in the repository, else in the local spool. Says where it went.
fn store_record(ctx: &Invocation, repos: &mut Repos, record: &RunRecord) -> String {
    use silo::repo::runs::{store_or_spool, Kept};
    let spool = spool_of(ctx, &repos.file.repository);
    let repo = repos.main().map_err(|(e, _)| e);
    match ctx.rt.block_on(store_or_spool(repo, spool.as_ref(), record)) {
        Kept::Stored => "repository".into(),
        Kept::Spooled { path, why } => format!("spooled {} (the repository was out of reach: {why})", path.display()),
        Kept::Lost { why, spool_error: Some(e) } => {
            format!("lost: the repository was out of reach ({why}) and the spool failed: {e}")
        }
        Kept::Lost { why, spool_error: None } => {
            format!("lost: the repository was out of reach ({why}) and no cache directory is known")
        }
    }
}

fn plan(name: &str, job: &Job, file: &JobsFile) -> JobReport {
    let detail = |step: Step| match step {
        Step::Create => job
            .streams
            .iter()
            .filter_map(|e| e.preset().ok().map(|p| (e, p)))
            .flat_map(|(e, p)| {
                if p.lists_databases() {
                    vec![format!("{}: one stream per database the server lists", p.kind())]
                } else {
                    p.specs(e.name.as_deref(), &[], &job.env)
                        .into_iter()
                        .map(|s| match s.source {
                            silo::inputs::Source::Command(argv) | silo::inputs::Source::Tool { argv, .. } => {
                                format!("{} = {}", s.name, argv.join(" "))
                            }
                            _ => s.name,
                        })
                        .collect()
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        Step::Listing => String::new(),
        Step::Copy => format!("to {}", file.offsite.as_ref().map_or("?", |o| o.location.as_str())),
        Step::Forget | Step::ForgetOffsite => job.keep.as_ref().map(|k| k.policy()).unwrap_or_default().to_string(),
        Step::Check => format!(
            "read {} when due (every {})",
            job.check.as_ref().and_then(|c| c.subset.as_ref()).map_or("all data".to_string(), |d| d.to_string()),
            silo::time::format_seconds(job.check.as_ref().and_then(|c| c.every).unwrap_or(silo::jobs::DEFAULT_EVERY))
        ),
        Step::Drill => format!(
            "restore the newest snapshot into `{}` when due (every {})",
            job.drill.as_ref().map_or("", |d| d.command.as_str()),
            silo::time::format_seconds(job.drill.as_ref().and_then(|d| d.every).unwrap_or(silo::jobs::DEFAULT_EVERY))
        ),
    };
    JobReport {
        job: name.to_string(),
        ok: true,
        exit_code: 0,
        snapshot: None,
        bytes_read: 0,
        bytes_added: 0,
        duration_seconds: 0.0,
        steps: steps(job, Due { check: true, drill: true })
            .into_iter()
            .map(|s| StepView {
                step: s.name().into(),
                outcome: "planned".into(),
                detail: detail(s),
                error: None,
                removed: None,
            })
            .collect(),
        recorded: "dry run: nothing recorded".into(),
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let loaded = jobs_file::load(ctx)?;
    let selected = loaded
        .file
        .select(&a.jobs, a.all)
        .map_err(|m| silo::Error::Input { what: format!("jobs file {}", loaded.path.display()), message: m })?;
    if a.dry_run {
        let jobs = selected.iter().map(|(n, j)| plan(n, j, &loaded.file)).collect();
        let names: Vec<String> = selected.iter().map(|(n, _)| n.to_string()).collect();
        let checks = super::doctor::checks(ctx, &loaded.file, &names, a.send_test)?;
        let result = super::doctor::failed(&checks);
        let exit_code = if result.is_ok() { 0 } else { super::exit::FAILURE };
        emit(&RunReport { dry_run: true, jobs, checks: Some(checks), exit_code }, ctx.json())?;
        return result;
    }
    // A run is what the jobs file says: its repositories. Said when --repo / SILO_REPO names another, so
    // that `silo status` (which follows --repo / SILO_REPO) and `silo run` never disagree in silence.
    if let Some(other) = ctx.cli.repo.as_deref().filter(|r| *r != loaded.file.repository.location) {
        note!(
            "silo: note: --repo/SILO_REPO ({other}) is not the jobs file's repository ({}); silo run uses the \
             jobs file's",
            loaded.file.repository.location
        );
    }
    // Every secret the file names is kept from every command, whatever the order repositories open in.
    for name in loaded.file.secret_variables() {
        silo::inputs::process::add_secret_variable(&name);
    }
    let mut repos = Repos { ctx, file: &loaded.file, main: None, offsite: None };
    let jobs: Vec<JobReport> = selected.iter().map(|(n, j)| run_job(ctx, &mut repos, n, j)).collect();
    let code = silo::jobs::run::worst(jobs.iter().map(|j| j.exit_code));
    let failed: Vec<String> = jobs.iter().filter(|j| !j.ok).map(|j| j.job.clone()).collect();
    let total = jobs.len();
    emit(&RunReport { dry_run: false, jobs, checks: None, exit_code: code }, ctx.json())?;
    if code != 0 {
        return Err(RunFailed {
            code,
            message: format!("{} of {total} jobs failed: {}", failed.len(), failed.join(", ")),
        }
        .into());
    }
    Ok(())
}
