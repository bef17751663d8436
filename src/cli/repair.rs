//! `silo repair index|snapshots`: rebuild what can be rebuilt; `--dry-run` reports and changes nothing.

use super::context::Invocation;
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;
use silo::repo::repair::RepairReport;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Rebuild index segments from the packs' own trailers (unindexed packs, damaged segments).
    Index {
        /// Report what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Mark snapshots whose data is gone (they are never deleted; `forget` them if you wish).
    Snapshots {
        /// Also verify every chunk's data, not only the structure.
        #[arg(long)]
        read_data: bool,
        /// Report what would be marked; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

impl Report for RepairReport {
    fn human(&self) -> Result<()> {
        let r = self;
        let verb = if r.dry_run { "would index" } else { "indexed" };
        say!(
            "{} packs scanned; {verb} {} packs ({} chunks) from their trailers",
            r.packs,
            r.packs_indexed,
            r.chunks_indexed
        );
        for s in &r.segments_replaced {
            say!("damaged segment {s} {}", if r.dry_run { "would be replaced" } else { "replaced" });
        }
        for p in &r.unreadable_packs {
            say!("unreadable pack: {p}");
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Marked {
    dry_run: bool,
    marked: Vec<MarkView>,
}

#[derive(Serialize)]
struct MarkView {
    snapshot: String,
    #[serde(skip)]
    short_id: String,
    reason: String,
}

impl Report for Marked {
    fn human(&self) -> Result<()> {
        for m in &self.marked {
            say!("{} {}: {}", if self.dry_run { "would mark" } else { "marked" }, m.short_id, m.reason);
        }
        let would = if self.dry_run { "would be " } else { "" };
        say!("{} snapshots {would}marked damaged (none deleted)", self.marked.len());
        Ok(())
    }
}

pub fn run(ctx: &Invocation, c: &Command) -> Result<()> {
    let repo = ctx.open()?;
    match c {
        Command::Index { dry_run } => emit(&ctx.rt.block_on(repo.repair_index(*dry_run))?, ctx.json()),
        Command::Snapshots { read_data, dry_run } => {
            let marks = ctx.rt.block_on(repo.repair_snapshots(*read_data, *dry_run))?;
            let marked = marks
                .iter()
                .map(|m| MarkView {
                    snapshot: m.snapshot.to_hex(),
                    short_id: m.snapshot.short(),
                    reason: m.reason.clone(),
                })
                .collect();
            emit(&Marked { dry_run: *dry_run, marked }, ctx.json())
        }
    }
}
