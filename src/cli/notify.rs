//! Carrying out a job's notifications after `silo run` (silo::notify decides and sends): the
//! events of the run, each target that wants them, the cooldown judged from the run records. A send that
//! fails is recorded as a failed `notify:TARGET:EVENT` step and changes nothing else (I13).

use super::context::Invocation;
use super::password;
use silo::jobs::{Job, JobsFile};
use silo::notify::{self as n, Event, Notice, Ping, SecretRef, Target};
use silo_format::maintenance::{run_error_line, RunKind, RunRecord, RunStep, StepOutcome};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// The (job, `notify:TARGET:EVENT`) notifications this process sent: one per invocation, whatever the
/// cooldown can see. The cooldown is judged from the repository's run records, so while the repository is
/// out of reach it sees none, and `silo run shop shop` (or a job failing fast on a repository already found
/// unreachable) alerted "failed" twice in the same second.
static SENT: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());

/// Whether (job, step) was sent already in this process.
fn sent_before(job: &str, step: &str) -> bool {
    SENT.lock().unwrap_or_else(|p| p.into_inner()).contains(&(job.to_string(), step.to_string()))
}

fn mark_sent(job: &str, step: &str) {
    SENT.lock().unwrap_or_else(|p| p.into_inner()).insert((job.to_string(), step.to_string()));
}

/// A secret the jobs file points to: an owner-only file's first line, or an environment variable (kept
/// from every command silo starts).
fn secret(r: &SecretRef) -> Result<Vec<u8>, String> {
    match (&r.file, &r.env) {
        (Some(f), _) => password::read_file(f).map_err(|e| format!("{e:#}")),
        (None, Some(name)) => {
            silo::inputs::process::add_secret_variable(name);
            password::env_bytes(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("environment variable {name} is not set"))
        }
        (None, None) => Err("no secret given".into()),
    }
}

fn send(ctx: &Invocation, target: &Target, notice: &Notice) -> Result<(), String> {
    ctx.rt.block_on(target.send(notice, &secret, &rfc2822_now()))
}

fn rfc2822_now() -> String {
    let secs = silo::time::now_micros() / 1_000_000;
    let (y, m, d) = silo::time::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let dow = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{dow}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// healthchecks-style pings of the job's targets (start, success, fail); never held back by a cooldown.
pub fn ping(ctx: &Invocation, file: &JobsFile, job: &Job, what: Ping, body: &str) -> Vec<RunStep> {
    let mut steps = Vec::new();
    for name in &job.notify {
        let Some(h) = file.notify.get(name).and_then(|t| t.healthchecks.as_ref()) else { continue };
        let label = match what {
            Ping::Start => "start",
            Ping::Success => "success",
            Ping::Fail => "fail",
        };
        let result = ctx.rt.block_on(n::healthchecks::ping(h, what, body));
        steps.push(step(&format!("ping:{name}:{label}"), result));
    }
    steps
}

fn step(name: &str, result: Result<(), String>) -> RunStep {
    match result {
        Ok(()) => RunStep { step: name.into(), outcome: StepOutcome::Ok, error: String::new() },
        Err(e) => {
            note!("silo: warning: {name}: {e} (the run's outcome is unchanged)");
            RunStep { step: name.into(), outcome: StepOutcome::Failed, error: run_error_line(&e) }
        }
    }
}

/// Sends the notifications of `events` for the finished run `record` to the job's targets, minding each
/// (job, event) cooldown against `history` (the job's earlier records). Returns the steps to record.
pub fn events(
    ctx: &Invocation,
    file: &JobsFile,
    job: &Job,
    record: &RunRecord,
    events: &[Event],
    reasons: &[String],
    history: &[RunRecord],
) -> Vec<RunStep> {
    let cooldown = job.cooldown.unwrap_or(silo::jobs::DEFAULT_COOLDOWN);
    let mut steps = Vec::new();
    for &event in events {
        let message = match event {
            Event::Failed if !record.error.is_empty() => {
                format!("{} on {}: the run failed: {}", record.job, record.host, record.error)
            }
            Event::Recovered => format!("{} on {}: the run succeeded again after failing", record.job, record.host),
            _ => format!("{} on {}: {}", record.job, record.host, reasons.join("; ")),
        };
        let notice = Notice {
            version: 1,
            event,
            job: record.job.clone(),
            host: record.host.clone(),
            time: silo::time::format_micros(record.finished),
            // The job's state as this event reports it (a stale job is not ok, whatever the last run did).
            ok: event == Event::Recovered || (record.ok && event.exit_code(record.exit_code) == 0),
            exit_code: event.exit_code(record.exit_code),
            error: record.error.clone(),
            snapshot: record.snapshot.map(|s| s.to_hex()),
            bytes_read: record.bytes_read,
            bytes_added: record.bytes_added,
            message,
        };
        for name in &job.notify {
            let Some(target) = file.notify.get(name) else { continue };
            if target.healthchecks.is_some() || !target.wants(event) {
                continue;
            }
            let step_name = n::step_name(name, event);
            let last_sent = history
                .iter()
                .filter(|r| {
                    r.job == record.job && r.steps.iter().any(|s| s.step == step_name && s.outcome == StepOutcome::Ok)
                })
                .map(|r| r.finished)
                .max();
            let last_success = history
                .iter()
                .filter(|r| r.job == record.job && r.kind == RunKind::Run && r.ok)
                .map(|r| r.finished)
                .max();
            if sent_before(&record.job, &step_name) {
                steps.push(RunStep {
                    step: step_name,
                    outcome: StepOutcome::Skipped,
                    error: "sent already by this invocation".into(),
                });
                continue;
            }
            if !n::due(event, last_sent, last_success, record.finished, cooldown) {
                let until = last_sent.unwrap_or_default() + i64::try_from(cooldown).unwrap_or(0) * 1_000_000;
                steps.push(RunStep {
                    step: step_name,
                    outcome: StepOutcome::Skipped,
                    error: format!("cooldown until {}", silo::time::format_micros(until)),
                });
                continue;
            }
            let sent = step(&step_name, send(ctx, target, &notice));
            if sent.outcome == StepOutcome::Ok {
                mark_sent(&record.job, &step_name);
            }
            steps.push(sent);
        }
    }
    steps
}

/// Sends a test notification through `target` for `jobs` (`silo doctor --send-test`): a notice of event
/// `test` that says it is one; to a healthchecks-style target a `/log` ping, which changes no check's state.
pub fn send_test(ctx: &Invocation, target: &Target, jobs: &[String]) -> Result<(), String> {
    let host = silo::repo::hostname();
    let notice = n::test_notice(jobs, &host, &silo::time::format_micros(silo::time::now_micros()));
    match &target.healthchecks {
        Some(h) => ctx.rt.block_on(n::healthchecks::log(h, &notice.message)),
        None => send(ctx, target, &notice),
    }
}
