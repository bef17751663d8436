//! Every create, copy, forget, gc, check and drill leaves a run record (maintenance.md "runs"), successful
//! or failed, in the first repository it opened; a command that could not reach it spools the record
//! locally for the next run to upload (repo/runs.rs). Dry runs are not runs and leave none. `silo run`
//! records its jobs itself (run.rs). Upholds I13: recording never changes the command's outcome.

use super::context::Invocation;
use super::exit::{exit_code, UNREACHABLE};
use super::{snapshot, Command};
use silo::repo::runs::{store_or_spool, Kept, Spool};
use silo_format::maintenance::{run_error_line, RunKind, RunRecord};

/// The record kind of a command, if it leaves one.
pub fn kind_of(command: &Command) -> Option<RunKind> {
    match command {
        Command::Snapshot(snapshot::Command::Create(_)) => Some(RunKind::Create),
        Command::Copy(_) => Some(RunKind::Copy),
        Command::Forget(_) => Some(RunKind::Forget),
        Command::Gc(_) | Command::Prune(_) => Some(RunKind::Gc),
        Command::Check(_) => Some(RunKind::Check),
        Command::Drill(_) => Some(RunKind::Drill),
        _ => None,
    }
}

/// Records the command's outcome. Never changes it: a record that cannot be kept is a warning.
pub fn command(ctx: &Invocation, kind: RunKind, started: i64, result: &anyhow::Result<()>) {
    let details = ctx.details.lock().map(|d| d.clone()).unwrap_or_else(|p| p.into_inner().clone());
    if details.skip {
        return;
    }
    let (exit_code, error) = match result {
        Ok(()) => (0, String::new()),
        Err(e) => (exit_code(e), run_error_line(&format!("{e:#}"))),
    };
    let finished = silo::time::now_micros().max(started);
    let record = RunRecord {
        bytes_read: details.bytes_read,
        bytes_added: details.bytes_added,
        snapshot: details.snapshot,
        ..RunRecord::new(kind.clone(), details.job, silo::repo::hostname(), started, finished).outcome(exit_code, error)
    };
    let opened = ctx.opened.lock().map(|o| o.clone()).unwrap_or_else(|p| p.into_inner().clone());
    let spool = || ctx.cli.repo.as_deref().and_then(|l| Spool::for_location(ctx.cli.cache_dir.as_deref(), l));
    match opened {
        Some(repo) => {
            // Records spooled while the repository was out of reach go in first.
            if let Some(spool) = spool() {
                if let Err(e) = ctx.rt.block_on(spool.flush(&repo)) {
                    note!("silo: warning: spooled run records stay spooled: {e}");
                }
            }
            // The repository was reached: a record it refuses is reported, not spooled.
            if let Kept::Lost { why, .. } = ctx.rt.block_on(store_or_spool(Ok(&repo), None, &record)) {
                note!("silo: warning: the run record of this {kind} was not stored: {why}");
            }
        }
        // The repository was out of reach: keep the record for the next run that reaches it.
        None if exit_code == UNREACHABLE => {
            let Some(spool) = spool() else { return };
            let out_of_reach = Err(String::new());
            if let Kept::Lost { spool_error: Some(e), .. } =
                ctx.rt.block_on(store_or_spool(out_of_reach, Some(&spool), &record))
            {
                note!("silo: warning: the run record of this {kind} was not spooled: {e}");
            }
        }
        // Failed before reaching the repository (usage, password): nothing happened to record.
        None => {}
    }
}
