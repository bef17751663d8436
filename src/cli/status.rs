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
use silo::jobs::status::{JobStatus, State};
use silo::time::{format_micros, format_seconds};
use silo_format::maintenance::{RunKind, RunRecord, StepOutcome};
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
    let limits = jobs_file::limits(&loaded);
    let repo = match &loaded {
        Some(l) if ctx.cli.repo.is_none() => jobs_file::open(ctx, "repository", &l.file.repository)?,
        _ => ctx.open()?,
    };
    let gathered = ctx.rt.block_on(silo::jobs::facts::gather(&repo))?;
    let now = gathered.now_us;
    let repository_bytes = gathered.pack_bytes;
    let mut names = gathered.names(&limits);
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
    let jobs = gathered.statuses(&names, &limits);
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
        let records: Vec<RunRecord> = gathered.history.iter().map(|(_, r)| r.clone()).collect();
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
                outcome: s.outcome.to_string(),
                error: s.error,
            }));
        }
    }
    let report = StatusReport {
        state,
        exit_code,
        snapshots: gathered.snapshots.len(),
        repository_bytes,
        notifications,
        run_records: gathered.history.len(),
        damaged_run_records: gathered.damaged_records,
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

/// The notifications of a job's state (cooldowns judged from `history`), recorded as a `status` run record.
fn notify_state(
    ctx: &Invocation,
    repo: &silo::repo::Repository,
    file: &silo::jobs::JobsFile,
    job: &silo::jobs::Job,
    status: &JobStatus,
    history: &[RunRecord],
) -> Result<Vec<silo_format::maintenance::RunStep>> {
    use silo::notify::Event;
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
    let mut record = RunRecord::new(RunKind::Status, status.job.clone(), silo::repo::hostname(), now, now);
    record.steps = super::notify::events(ctx, file, job, &record, &events, &status.reasons, history);
    if record.steps.iter().any(|s| s.outcome != StepOutcome::Skipped) {
        ctx.rt.block_on(repo.record_run(&record))?;
    }
    Ok(record.steps)
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

#[cfg(test)]
mod tests {
    use silo::jobs::status::{exit_code, State};

    #[test]
    fn the_dashboard_s_exit_codes_are_status_s() {
        for s in [State::Ok, State::Never, State::Stale, State::Shrunk, State::Failing, State::Damaged] {
            assert_eq!(exit_code(s), super::exit_code_of(s), "{s:?}");
        }
    }
}
