//! `silo snapshot create|list|show|restore`.

pub mod create;
mod list;
mod restore;
mod show;

use super::context::Invocation;
use anyhow::Result;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Store standard input (or the output of the command after `--`) as a new snapshot.
    Create(create::Args),
    /// List snapshots, oldest first.
    List(list::Args),
    /// Show one snapshot: times, command, streams, sizes, hashes.
    Show(show::Args),
    /// Write a snapshot's stream to stdout (or --output), verifying every byte.
    Restore(restore::Args),
}

pub fn run(ctx: &Invocation, c: &Command) -> Result<()> {
    match c {
        Command::Create(a) => create::run(ctx, a),
        Command::List(a) => list::run(ctx, a),
        Command::Show(a) => show::run(ctx, a),
        Command::Restore(a) => restore::run(ctx, a),
    }
}
