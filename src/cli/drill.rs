//! `silo drill SNAP -- COMMAND`: restore into a command, timed and recorded in the repository.

use super::context::Invocation;
use super::output::{emit, human_bytes, DrillView, Report};
use anyhow::Result;
use silo::repo::snapshots::SnapshotSpec;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ID, ID prefix, NAME:latest or NAME:latest~N, optionally followed by :STREAM.
    snapshot: String,
    /// The command that consumes the restored stream on its standard input.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

impl Report for DrillView {
    /// The drill's line goes to stderr: the answer for people is the exit status.
    fn human(&self) -> Result<()> {
        note!(
            "drill {}: restored {} into `{}` in {:.2} s (recorded)",
            if self.ok { "ok" } else { "FAILED" },
            human_bytes(self.bytes),
            self.command.join(" "),
            self.duration_seconds
        );
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let repo = ctx.open()?;
    let spec = SnapshotSpec::parse(&a.snapshot)?;
    let snap = ctx.rt.block_on(repo.resolve(&spec))?;
    ctx.record(|d| (d.job, d.snapshot) = (snap.manifest.name.clone(), Some(snap.id)));
    let stream = snap.stream(&spec.stream)?;
    let (record, failed) = repo.drill(ctx.rt.handle(), &snap, stream, &a.command)?;
    emit(&DrillView::of(&record), ctx.json())?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
