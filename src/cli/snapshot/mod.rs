//! `silo snapshot create|list|show|restore`.

pub mod create;
mod list;
mod restore;
mod show;

use super::context::Invocation;
use anyhow::Result;

const DAY_US: i64 = 86_400_000_000;

/// `--before DAY` and `--after DAY` (YYYY-MM-DD, today, yesterday; UTC), as `snapshot list` and `snapshot
/// restore` read them: a snapshot is in the window when it finished before the end of `before`'s day and
/// on or after the start of `after`'s. `now`: the repository's time (µs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    before: Option<i64>,
    after: Option<i64>,
}

impl Window {
    pub fn parse(before: Option<&str>, after: Option<&str>, now: i64) -> Result<Window, silo::Error> {
        let day = |flag: &str, text: Option<&str>| {
            text.map(|t| {
                silo::time::end_of_day(t, now).ok_or_else(|| silo::Error::Input {
                    what: format!("{flag} {t:?}"),
                    message: "expected YYYY-MM-DD, today or yesterday (UTC days)".into(),
                })
            })
            .transpose()
        };
        Ok(Window { before: day("--before", before)?, after: day("--after", after)?.map(|end| end - DAY_US) })
    }

    /// Whether a snapshot that finished at `finished` (µs) is in the window.
    pub fn holds(&self, finished: i64) -> bool {
        self.before.is_none_or(|b| finished < b) && self.after.is_none_or(|a| finished >= a)
    }
}

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
