//! `silo repair index|snapshots`: rebuild what can be rebuilt; `--dry-run` reports and changes nothing.

use super::context::Invocation;
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;
use silo::repo::repair::{RepairPacksReport, RepairReport};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Rebuild index segments from the packs' own trailers (unindexed packs, damaged segments).
    Index {
        /// Report what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rewrite the readable chunks of packs whose trailer or size no longer matches the index (cut short, a
    /// damaged trailer) into new packs; the damaged packs leave the index and gc removes them.
    Packs {
        /// Report the damaged packs; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Mark snapshots whose data is gone (never deleted; `forget` them if you wish), and drop the copies
    /// found missing or damaged from the index so the next backup stores them again.
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
        for p in &r.packs_gone {
            let verb = if r.dry_run { "would leave" } else { "left" };
            say!("pack {p} is gone: its entries {verb} the index (the next backup stores its chunks again)");
        }
        Ok(())
    }
}

impl Report for RepairPacksReport {
    fn human(&self) -> Result<()> {
        for p in &self.damaged_packs {
            say!("damaged pack {p}");
        }
        for p in &self.unrepairable {
            say!("cannot repair {p}: no index names it and its trailer is unreadable, so its chunks cannot be located");
        }
        if self.dry_run {
            say!("{} damaged packs would be rewritten", self.damaged_packs.len());
        } else {
            say!(
                "{} damaged packs: {} chunks rewritten into {} new packs, {} lost",
                self.damaged_packs.len(),
                self.chunks_rewritten,
                self.packs_written,
                self.chunks_lost
            );
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Marked {
    dry_run: bool,
    marked: Vec<MarkView>,
    /// Chunk copies (or whole packs) found missing or damaged, dropped from the index (would be, dry run).
    copies_dropped: usize,
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
        if self.copies_dropped > 0 {
            say!(
                "{} lost copies {would}dropped from the index: the next backup of the same data stores them again",
                self.copies_dropped
            );
        }
        Ok(())
    }
}

pub fn run(ctx: &Invocation, c: &Command) -> Result<()> {
    let repo = ctx.open()?;
    match c {
        Command::Index { dry_run } => emit(&ctx.rt.block_on(repo.repair_index(*dry_run))?, ctx.json()),
        Command::Packs { dry_run } => emit(&ctx.rt.block_on(repo.repair_packs(*dry_run))?, ctx.json()),
        Command::Snapshots { read_data, dry_run } => {
            let (marks, copies_dropped) = ctx.rt.block_on(repo.repair_snapshots(*read_data, *dry_run))?;
            let marked = marks
                .iter()
                .map(|m| MarkView {
                    snapshot: m.snapshot.to_hex(),
                    short_id: m.snapshot.short(),
                    reason: m.reason.clone(),
                })
                .collect();
            emit(&Marked { dry_run: *dry_run, marked, copies_dropped }, ctx.json())
        }
    }
}
