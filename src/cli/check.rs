//! `silo check`: structure, optionally data (all or a sample), optionally freshness. Exit 5 on damage, 8 when
//! stale.

use super::context::{duration_arg, Invocation};
use super::output::{emit, human_bytes, Report};
use super::progress::Progress;
use anyhow::Result;
use silo::repo::check::{CheckOptions, CheckReport, DataCheck};
use silo::repo::snapshots::SnapshotSpec;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Decrypt, decompress and re-hash every chunk of every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Verify the data of a sample of packs: `5%` (random) or `N/M` (slice N of M, by pack id).
    #[arg(long)]
    read_data_subset: Option<String>,
    /// Check only this snapshot's data path.
    #[arg(long)]
    snapshot: Option<String>,
    /// Exit 8 when the newest snapshot (of --name) is older than this (e.g. 26h).
    #[arg(long)]
    max_age: Option<String>,
    /// With --max-age: the snapshot name to watch.
    #[arg(long, requires = "max_age")]
    name: Option<String>,
}

impl Report for CheckReport {
    fn human(&self) -> Result<()> {
        let r = self;
        say!(
            "{} snapshots, {} index segments, {} packs ({} read, {} chunks / {} verified)",
            r.snapshots,
            r.index_segments,
            r.packs,
            r.packs_read,
            r.chunks_verified,
            human_bytes(r.bytes_verified)
        );
        for p in &r.damaged {
            let affects = if p.snapshots.is_empty() {
                String::new()
            } else {
                format!(" (affects {})", p.snapshots.iter().map(|s| &s[..8]).collect::<Vec<_>>().join(", "))
            };
            say!("damaged: {}: {}{affects}", p.object, p.problem);
        }
        for o in &r.orphans {
            say!("orphan: {o} (no index names it and no snapshot needs what it holds; gc reclaims it)");
        }
        if let Some(s) = &r.stale {
            say!("stale: {s}");
        }
        for w in &r.warnings {
            say!("warning: {w}");
        }
        if !r.is_damaged() && r.stale.is_none() {
            if r.data_read {
                say!("no errors found");
            } else {
                say!("no errors found in the structure; no chunk data was read (--read-data or --read-data-subset reads it)");
            }
        }
        if r.is_damaged() {
            say!(
                "to repair: `silo repair index` (packs without index entries), then `silo repair snapshots{}` (marks                  what is lost and drops it from the index, so the next backup stores it again)",
                if r.data_read { " --read-data" } else { "" }
            );
        }
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let data = match (&a.read_data_subset, a.read_data) {
        (Some(t), _) => DataCheck::parse_subset(t).ok_or_else(|| silo::Error::Input {
            what: format!("--read-data-subset {t:?}"),
            message: "expected a percentage like 5% or a slice like 2/7".into(),
        })?,
        (None, true) => DataCheck::All,
        (None, false) => DataCheck::None,
    };
    let max_age = a.max_age.as_deref().map(|t| duration_arg("--max-age", t)).transpose()?;
    let snapshot = a.snapshot.as_deref().map(SnapshotSpec::parse).transpose()?;
    let repo = ctx.open()?;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let shown = (data != DataCheck::None).then(|| Progress::start("verified", progress.clone(), None));
    let options = CheckOptions { data, snapshot, max_age, max_age_name: a.name.clone(), progress };
    let report = ctx.rt.block_on(repo.check(&options));
    drop(shown);
    let report = report?;
    emit(&report, ctx.json())?;
    if report.is_damaged() {
        return Err(silo::Error::CheckDamaged {
            objects: report.damaged.len(),
            snapshots: report.affected_snapshots.len(),
        }
        .into());
    }
    if let Some(what) = report.stale {
        return Err(silo::Error::Stale { what }.into());
    }
    Ok(())
}
