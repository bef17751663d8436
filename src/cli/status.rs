//! `silo status [JOB...] [--prometheus FILE]`: each job's state (jobs/status.rs) from what the repository
//! holds. With a jobs file, its jobs and their limits; without one, every snapshot name of `--repo`.
//! The exit code is the worst state's (docs/operations.md "Exit codes"): 0 ok, 8 stale or never, 10 failing or shrunk,
//! 5 damaged.

use super::context::Invocation;
use super::exit::{RunFailed, DAMAGED, FAILING, STALE};
use super::jobs_file;
use super::output::{emit, human_bytes, Report};
use anyhow::{Context, Result};
use serde::Serialize;
use silo::jobs::status::{judge, CheckFact, DrillFact, JobStatus, Limits, RunFact, SnapshotFact, State};
use silo::time::{format_micros, format_seconds};
use silo_format::maintenance::DrillRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these jobs (default: every job of the jobs file, or every snapshot name).
    jobs: Vec<String>,
    /// Also write the states as Prometheus metrics to FILE (node_exporter textfile collector; written
    /// atomically, mode 0644: it holds no secret).
    #[arg(long, value_name = "FILE")]
    prometheus: Option<PathBuf>,
    /// Send the jobs' notifications for what status finds (stale, failing, shrunk, damaged), minding each
    /// job's cooldown — run it from cron or a timer, so a job that stopped running at all is noticed.
    #[arg(long)]
    notify: bool,
}

#[derive(Serialize)]
struct StatusReport {
    state: State,
    exit_code: u8,
    jobs: Vec<JobStatus>,
    snapshots: usize,
    /// Bytes the repository's packs take.
    repository_bytes: u64,
    run_records: usize,
    damaged_run_records: usize,
    /// With --notify: what was sent (or held back by a cooldown, or failed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notifications: Vec<NotificationView>,
}

#[derive(Serialize)]
struct NotificationView {
    step: String,
    outcome: String,
    error: String,
}

impl Report for StatusReport {
    fn human(&self) -> Result<()> {
        for j in &self.jobs {
            let age = j.age_seconds.map_or("no snapshot".into(), |a| format!("newest {} ago", format_seconds(a)));
            let limit = j.freshness_seconds.map_or(String::new(), |f| format!(" (limit {})", format_seconds(f)));
            let size = j.latest_bytes.map_or(String::new(), |b| format!(", {}", human_bytes(b)));
            let added = j.latest_added_bytes.map_or(String::new(), |b| format!(", added {}", human_bytes(b)));
            say!("{:<20} {:<8} {age}{limit}{size}{added}", j.job, j.state.as_str());
            if let (Some(t), Some(e)) = (j.last_failure, &j.last_error) {
                say!("  last failure {}: {e}", format_micros(t));
            }
            if let (Some(t), Some(ok)) = (j.last_check, j.last_check_ok) {
                say!("  last check {}: {}", format_micros(t), if ok { "ok" } else { "FAILED" });
            }
            if let (Some(t), Some(ok), Some(s)) = (j.last_drill, j.last_drill_ok, j.last_drill_seconds) {
                say!("  last drill {}: {} in {s:.1} s", format_micros(t), if ok { "ok" } else { "FAILED" });
            }
            for r in &j.reasons {
                say!("  ! {r}");
            }
        }
        if self.damaged_run_records > 0 {
            say!("! {} run records did not open (see the log with -v)", self.damaged_run_records);
        }
        say!(
            "{}: {} jobs, {} snapshots, {} run records",
            self.state.as_str(),
            self.jobs.len(),
            self.snapshots,
            self.run_records
        );
        Ok(())
    }
}

fn exit_code_of(state: State) -> u8 {
    match state {
        State::Ok => 0,
        State::Never | State::Stale => STALE,
        State::Failing | State::Shrunk => FAILING,
        State::Damaged => DAMAGED,
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    // The jobs are judged whenever a jobs file is found, whichever repository the rule picks (an exported
    // SILO_REPO once made status forget every freshness limit).
    let loaded = jobs_file::find(ctx)?;
    let limits: BTreeMap<String, Limits> = loaded
        .iter()
        .flat_map(|l| l.file.jobs.iter())
        .map(|(n, j)| {
            (n.clone(), Limits { freshness: j.freshness, min_size: j.min_size, shrink_alert: j.shrink_alert })
        })
        .collect();
    let repo = match &loaded {
        Some(l) if ctx.cli.repo.is_none() => jobs_file::open(ctx, "repository", &l.file.repository)?,
        _ => ctx.open()?,
    };
    let snapshots = ctx.rt.block_on(repo.list_snapshot_heads())?; // headers: sizes, times, dump records
    let marks = ctx.rt.block_on(repo.damage_marks())?;
    let history = ctx.rt.block_on(repo.run_history())?;
    let drills = ctx.rt.block_on(repo.load_all::<DrillRecord>())?;
    let now = repo.now();
    let repository_bytes: u64 =
        ctx.rt.block_on(repo.backend.list(silo::backend::names::PACKS))?.iter().map(|o| o.size).sum();

    let mut names: BTreeSet<String> = limits.keys().cloned().collect();
    if limits.is_empty() {
        names.extend(snapshots.iter().map(|s| s.manifest.name.clone()));
        names.extend(history.records.iter().filter(|(_, r)| is_job_run(r.kind.as_str())).map(|(_, r)| r.job.clone()));
    }
    if !a.jobs.is_empty() {
        if let Some(unknown) = a.jobs.iter().find(|j| !names.contains(*j)) {
            return Err(silo::Error::Input {
                what: format!("job {unknown:?}"),
                message: format!("not known here; known: {}", names.iter().cloned().collect::<Vec<_>>().join(", ")),
            }
            .into());
        }
        names.retain(|n| a.jobs.contains(n));
    }
    let facts = Facts { snapshots: &snapshots, marks: &marks, history: &history.records, drills: &drills, now };
    let jobs: Vec<JobStatus> = names
        .iter()
        .map(|name| {
            let limit =
                limits.get(name).copied().unwrap_or(Limits { freshness: None, min_size: None, shrink_alert: 50 });
            facts.judge(name, limit)
        })
        .collect();
    let state = jobs.iter().map(|j| j.state).min().unwrap_or(State::Ok);
    let exit_code = exit_code_of(state);
    if let Some(path) = &a.prometheus {
        write_metrics(path, &silo::jobs::metrics::text(&jobs, repository_bytes, now))?;
    }
    let mut notifications = Vec::new();
    if a.notify {
        let Some(l) = &loaded else {
            return Err(silo::Error::Input {
                what: "--notify".into(),
                message: "needs a jobs file (its [notify.NAME] targets); pass --config".into(),
            }
            .into());
        };
        let records: Vec<silo_format::maintenance::RunRecord> =
            history.records.iter().map(|(_, r)| r.clone()).collect();
        // I21: a sendmail silo starts gets the allow-listed base, never silo's environment.
        for name in l.file.secret_variables() {
            silo::inputs::process::add_secret_variable(&name);
        }
        silo::inputs::process::confine_children(silo::inputs::process::ChildEnv::base());
        for status in &jobs {
            let Some(job) = l.file.jobs.get(&status.job).filter(|j| !j.notify.is_empty()) else { continue };
            let sent = notify_state(ctx, &repo, &l.file, job, status, &records)?;
            notifications.extend(sent.into_iter().map(|s| NotificationView {
                step: s.step,
                outcome: s.outcome,
                error: s.error,
            }));
        }
    }
    let report = StatusReport {
        state,
        exit_code,
        snapshots: snapshots.len(),
        repository_bytes,
        notifications,
        run_records: history.records.len(),
        damaged_run_records: history.damaged,
        jobs,
    };
    let problems: Vec<String> = report
        .jobs
        .iter()
        .filter(|j| j.state != State::Ok)
        .map(|j| format!("{} {}", j.job, j.state.as_str()))
        .collect();
    emit(&report, ctx.json())?;
    if exit_code != 0 {
        return Err(RunFailed {
            code: exit_code,
            message: format!("status {}: {}", state.as_str(), problems.join(", ")),
        }
        .into());
    }
    Ok(())
}

/// What the repository holds that a job's state depends on.
pub struct Facts<'a> {
    pub snapshots: &'a [silo::repo::snapshots::Snapshot],
    pub marks: &'a std::collections::HashMap<silo_format::ObjectId, silo_format::maintenance::DamageMark>,
    pub history: &'a [(silo_format::ObjectId, silo_format::maintenance::RunRecord)],
    pub drills: &'a [(silo_format::ObjectId, String, DrillRecord)],
    pub now: i64,
}

impl Facts<'_> {
    pub fn judge(&self, name: &str, limit: Limits) -> JobStatus {
        let mut snaps: Vec<SnapshotFact> = self
            .snapshots
            .iter()
            .filter(|s| s.manifest.name == name)
            .map(|s| SnapshotFact {
                id: s.id.to_hex(),
                finished: s.manifest.finished,
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
        snaps.sort_by_key(|s| s.finished);
        let runs: Vec<RunFact> = self
            .history
            .iter()
            .filter(|(_, r)| is_job_run(&r.kind) && r.job == name)
            .map(|(_, r)| RunFact {
                finished: r.finished,
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
            .map(|d| DrillFact { finished: d.finished, ok: d.ok, seconds: (d.finished - d.started) as f64 / 1e6 });
        // The newest check covering the job: a `silo check` (the whole repository) or the job's own step.
        let check = self
            .history
            .iter()
            .filter_map(|(_, r)| {
                if r.kind == "check" {
                    return Some(CheckFact {
                        finished: r.finished,
                        ok: r.ok,
                        damage: r.exit_code == DAMAGED,
                        error: r.error.clone(),
                    });
                }
                let step = r.steps.iter().find(|s| s.step == "check" && s.outcome != "skipped" && r.job == name)?;
                let ok = step.outcome == "ok";
                Some(CheckFact {
                    finished: r.finished,
                    ok,
                    damage: !ok && step.error.contains("damaged objects"),
                    error: step.error.clone(),
                })
            })
            .max_by_key(|c| c.finished);
        judge(name, limit, &snaps, &runs, check.as_ref(), drill.as_ref(), self.now)
    }
}

/// The notifications of a job's state (cooldowns judged from `history`), recorded as a `status` run record.
fn notify_state(
    ctx: &Invocation,
    repo: &silo::repo::Repository,
    file: &silo::jobs::JobsFile,
    job: &silo::jobs::Job,
    status: &JobStatus,
    history: &[silo_format::maintenance::RunRecord],
) -> Result<Vec<silo_format::maintenance::RunStep>> {
    use silo::jobs::notify::Event;
    let events: Vec<Event> = match status.state {
        State::Damaged => vec![Event::Damage],
        State::Failing => vec![Event::Failed],
        State::Shrunk => vec![Event::SizeDrop],
        State::Stale | State::Never => vec![Event::Stale],
        State::Ok => vec![],
    };
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let now = silo::time::now_micros();
    let mut record = silo_format::maintenance::RunRecord {
        version: silo_format::maintenance::MAINTENANCE_VERSION,
        kind: "status".into(),
        job: status.job.clone(),
        host: silo::repo::hostname(),
        started: now,
        finished: now,
        bytes_read: 0,
        bytes_added: 0,
        snapshot: None,
        ok: true,
        exit_code: 0,
        error: String::new(),
        steps: Vec::new(),
    };
    record.steps = super::notify::events(ctx, file, job, &record, &events, &status.reasons, history);
    if record.steps.iter().any(|s| s.outcome != "skipped") {
        ctx.rt.block_on(repo.record_run(&record))?;
    }
    Ok(record.steps)
}

/// Records that are runs of a job: `silo run`, or a plain create of that snapshot name.
fn is_job_run(kind: &str) -> bool {
    kind == "run" || kind == "create"
}

/// Writes the metrics file atomically (a temporary file beside it, renamed over it), readable by the
/// collector's user.
fn write_metrics(path: &std::path::Path, text: &str) -> Result<()> {
    // Only a metrics file silo wrote is replaced: a mistyped path must not destroy someone's file.
    if let Ok(existing) = std::fs::read(path) {
        if !existing.is_empty() && !existing.starts_with(b"# HELP silo_") {
            return Err(silo::Error::Input {
                what: format!("--prometheus {}", path.display()),
                message: "exists and is not a metrics file silo wrote; nothing was replaced: name a new file".into(),
            }
            .into());
        }
    }
    super::files::replace_atomically(path, text.as_bytes(), 0o644)
        .with_context(|| format!("writing metrics file {}", path.display()))?;
    Ok(())
}
