//! `silo copy`: snapshots into another repository (other keys), uploading only chunks it lacks. Which
//! snapshots is the library's choice (`Repository::select_for_copy`); each is reported on stderr as it
//! goes, the summary is the answer.

use super::context::Invocation;
use super::output::{emit, human_bytes, Report};
use super::password;
use super::progress::Progress;
use anyhow::{Context, Result};
use serde::Serialize;
use silo::repo::copy::CopyOutcome;
use silo::repo::snapshots::{Snapshot, SnapshotSpec};
use silo::time::format_micros;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source repository (default: --repo / SILO_REPO).
    #[arg(long)]
    from: Option<String>,
    /// Target repository.
    #[arg(long)]
    to: String,
    /// Password file of the source (default: --password-file / SILO_FROM_PASSWORD[_FILE] / SILO_PASSWORD[_FILE]).
    #[arg(long, env = "SILO_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// Password file of the target (default: SILO_TO_PASSWORD, else the source's password).
    #[arg(long, env = "SILO_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    /// Only snapshots of this name.
    #[arg(long)]
    name: Option<String>,
    /// Snapshots to copy (ID, ID prefix, NAME:latest[~N]); default: every snapshot (of --name).
    snapshots: Vec<String>,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Copied(Vec<CopiedView>);

#[derive(Serialize)]
struct CopiedView {
    source: String,
    name: String,
    copied: bool,
    target: String,
    #[serde(flatten)]
    details: Option<CopyDetails>,
}

#[derive(Serialize)]
struct CopyDetails {
    bytes: u64,
    chunks: u64,
    new_chunks: u64,
    new_bytes_stored: u64,
    source_requests: u64,
    target_requests: u64,
}

impl CopiedView {
    fn of(snap: &Snapshot, outcome: &CopyOutcome) -> Self {
        let (source, name) = (snap.id.to_hex(), snap.manifest.name.clone());
        match outcome {
            CopyOutcome::Present(id) => CopiedView { source, name, copied: false, target: id.to_hex(), details: None },
            CopyOutcome::Copied { report, source_requests } => CopiedView {
                source,
                name,
                copied: true,
                target: report.id.to_hex(),
                details: Some(CopyDetails {
                    bytes: report.bytes,
                    chunks: report.chunks,
                    new_chunks: report.new_chunks,
                    new_bytes_stored: report.new_bytes_stored,
                    source_requests: *source_requests,
                    target_requests: report.requests.total(),
                }),
            },
        }
    }
}

impl Report for Copied {
    fn human(&self) -> Result<()> {
        let copied = self.0.iter().filter(|c| c.copied).count();
        say!("{copied} snapshots copied, {} already present", self.0.len() - copied);
        Ok(())
    }
}

/// One line per copied snapshot as it happens (stderr; the summary is the answer).
fn progress_line(snap: &Snapshot, outcome: &CopyOutcome) {
    let m = &snap.manifest;
    let (id, name, finished) = (snap.id.short(), &m.name, format_micros(m.finished));
    match outcome {
        CopyOutcome::Present(target) => note!("{id} {name} {finished}: already in the target as {}", target.short()),
        CopyOutcome::Copied { report, .. } => note!(
            "{id} {name} {finished}: copied as {}, {} read, {} new chunks of {}, {} uploaded",
            report.id.short(),
            human_bytes(report.bytes),
            report.new_chunks,
            report.chunks,
            human_bytes(report.new_bytes_stored)
        ),
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    ctx.record(|d| d.job = a.name.clone().unwrap_or_default());
    let from = a.from.as_deref().or(ctx.cli.repo.as_deref()).context("no source: pass --from or --repo")?;
    let from_password = match (&a.from_password_file, password::env_bytes("SILO_FROM_PASSWORD")) {
        (Some(f), _) => password::read_file(f)?,
        (None, Some(p)) => p,
        (None, None) => ctx.password(false)?,
    };
    let to_password = match (&a.to_password_file, password::env_bytes("SILO_TO_PASSWORD")) {
        (Some(f), _) => password::read_file(f)?,
        (None, Some(p)) => p,
        (None, None) => from_password.clone(),
    };
    let source = ctx.open_at(from, &from_password).with_context(|| format!("source {from}"))?;
    let target = ctx.open_at(&a.to, &to_password).with_context(|| format!("target {}", a.to))?;
    if source.repo_id == target.repo_id {
        return Err(silo::Error::Input {
            what: format!("--to {}", a.to),
            message: "is the same repository as --from: copy to another repository".into(),
        }
        .into());
    }
    let specs = a.snapshots.iter().map(|s| SnapshotSpec::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let chosen = ctx.rt.block_on(source.select_for_copy(&specs, a.name.as_deref()))?;
    let mut existing = ctx.rt.block_on(target.list_snapshots())?;
    let mut results = Vec::with_capacity(chosen.len());
    let mut damaged = Vec::new();
    for snap in &chosen {
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let shown = Progress::start("copied", counter.clone(), Some(snap.manifest.total_size()));
        let outcome = target.copy_from(ctx.rt.handle(), &source, snap, &existing, counter);
        drop(shown);
        // A damaged snapshot is reported and passed over: every intact one is still copied. Anything else
        // (the target unreachable, an interrupt) stops the copy.
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                let e = anyhow::Error::from(e);
                if super::exit::exit_code(&e) != super::exit::DAMAGED {
                    return Err(e);
                }
                note!("{} {}: not copied: {e:#}", snap.id.short(), snap.manifest.name);
                damaged.push(format!("{} ({e:#})", snap.id.short()));
                continue;
            }
        };
        if let CopyOutcome::Copied { report, .. } = &outcome {
            existing.push(ctx.rt.block_on(target.load_snapshot(report.id))?);
        }
        if !ctx.json() {
            progress_line(snap, &outcome);
        }
        results.push(CopiedView::of(snap, &outcome));
    }
    emit(&Copied(results), ctx.json())?;
    if damaged.is_empty() {
        return Ok(());
    }
    Err(super::exit::RunFailed {
        code: super::exit::DAMAGED,
        message: format!(
            "{} damaged snapshot(s) not copied (every intact one was): {}; see `silo check --read-data` on the source",
            damaged.len(),
            damaged.join("; ")
        ),
    }
    .into())
}
