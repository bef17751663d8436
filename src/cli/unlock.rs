//! `silo unlock`: removes the gc lease (`gc/lease`) that a killed gc, `repair index` or key removal left
//! (repo/lease.rs). A lease whose holder runs on this host is removed only when its process is gone; one
//! from another host only with `--force`, since silo cannot see that host's processes (restic's `unlock`).

use super::context::Invocation;
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also remove a lease held on another host (make sure that gc is not running there).
    #[arg(long)]
    force: bool,
}

#[derive(Serialize)]
struct Unlocked {
    /// The holder of the lease removed (`host pid`), or null when there was none.
    removed: Option<String>,
}

impl Report for Unlocked {
    fn human(&self) -> Result<()> {
        match &self.removed {
            Some(holder) => say!("removed the gc lease held by {holder}"),
            None => say!("no gc lease was held"),
        }
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let repo = ctx.open()?;
    let removed = ctx.rt.block_on(repo.unlock(a.force))?;
    emit(&Unlocked { removed: removed.map(|l| format!("{} pid {}", l.host, l.pid)) }, ctx.json())
}
