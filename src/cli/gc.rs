//! `silo gc` and `silo prune`: reclaim the space of data no snapshot references. gc plans (repo/gc/plan.rs,
//! pure decisions) and then executes under the lease; `--dry-run` prints the plan.

use super::context::Invocation;
use super::forget::Forgotten;
use super::output::{emit, human_bytes, Report};
use super::progress::Progress;
use anyhow::Result;
use serde::Serialize;
use silo::repo::gc::{GcOptions, GcReport, PackAction, SafetyPreset};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Report what would be reclaimed, pack by pack; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// `full`: safety age and grace period from the config (safe with concurrent writers). `none`: reclaim at
    /// once — only safe when nothing else uses the repository.
    #[arg(long, value_enum, default_value_t = SafetyPreset::Full)]
    safety: SafetyPreset,
    /// Seconds the gc lease is valid; gc stops before deleting anything once it has passed.
    #[arg(long, default_value_t = 3600)]
    lease_seconds: u64,
    /// Repack packs with at least this fraction of dead bytes.
    #[arg(long, default_value_t = 0.2)]
    repack_threshold: f64,
    /// Delete run records (`silo status` history) older than this.
    #[arg(long, default_value = "90d")]
    keep_runs: String,
}

impl Args {
    fn options(&self) -> Result<GcOptions> {
        Ok(GcOptions {
            dry_run: self.dry_run,
            safety: self.safety,
            lease_seconds: self.lease_seconds,
            repack_threshold: self.repack_threshold,
            progress: Default::default(),
            keep_runs: super::context::duration_arg("--keep-runs", &self.keep_runs)?,
        })
    }
}

impl Report for GcReport {
    fn human(&self) -> Result<()> {
        let r = self;
        let verb = if r.dry_run { "would be" } else { "were" };
        for p in &r.plan {
            let what = match p.action {
                PackAction::Keep => continue,
                PackAction::TooYoung => "too young to touch".to_string(),
                PackAction::Mark => "would be marked deleted".to_string(),
                PackAction::Pending { reclaimable_at } => {
                    format!("marked; reclaimable after {}", silo::time::format_micros(reclaimable_at))
                }
                PackAction::Delete => "would be deleted".to_string(),
                PackAction::Repack => "would be repacked (live chunks copied out) and marked".to_string(),
                PackAction::Rescue => "marked but needed again: live chunks would be copied out".to_string(),
            };
            say!("pack {} ({}): {what}", p.pack.short(), human_bytes(p.size));
        }
        say!("snapshots {}, packs {}, live chunks {}", r.snapshots, r.packs, r.marked_chunks);
        say!("reclaimed now: {} packs {verb} deleted ({})", r.packs_deleted, human_bytes(r.bytes_deleted));
        say!(
            "marked: {} packs ({}), {} packs {verb} repacked",
            r.packs_marked,
            human_bytes(r.bytes_marked),
            r.packs_repacked
        );
        if r.packs_pending > 0 {
            say!(
                "pending: {} packs ({}) reclaimable by a gc run after {}",
                r.packs_pending,
                human_bytes(r.bytes_pending),
                r.pending_reclaimable_at.as_deref().unwrap_or("?")
            );
        }
        if r.packs_kept_by_store > 0 {
            say!(
                "{} packs ({}) the store refused to delete (Object Lock retention or no delete permission): \
                 still marked; a later gc tries again",
                r.packs_kept_by_store,
                human_bytes(r.bytes_kept_by_store)
            );
        }
        if r.run_records_deleted > 0 {
            say!("{} run records older than --keep-runs {verb} deleted", r.run_records_deleted);
        }
        if r.packs_too_young > 0 {
            say!("{} unreferenced packs are younger than the safety age and were left alone", r.packs_too_young);
        }
        for p in &r.unindexed_kept {
            say!("kept {p}; no index names it: run `silo repair index`");
        }
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    ctx.record(|d| d.skip = a.dry_run);
    let options = a.options()?;
    let repo = ctx.open()?;
    let shown = Progress::start("examined", options.progress.clone(), None);
    let report = ctx.rt.block_on(repo.gc(&options));
    drop(shown);
    emit(&report?, ctx.json())
}

/// `prune`: forget by the stored policies, then gc.
#[derive(Serialize)]
struct Pruned {
    forgotten: Vec<String>,
    gc: GcReport,
    #[serde(skip)]
    plan: Forgotten,
}

impl Report for Pruned {
    fn human(&self) -> Result<()> {
        self.plan.human()?;
        self.gc.human()
    }
}

pub fn prune(ctx: &Invocation, a: &Args) -> Result<()> {
    ctx.record(|d| d.skip = a.dry_run);
    let repo = ctx.open()?;
    let plan = ctx.rt.block_on(repo.plan_forget(&Default::default(), None))?;
    if !a.dry_run {
        ctx.rt.block_on(repo.forget(&plan))?;
    }
    let gc = ctx.rt.block_on(repo.gc(&a.options()?))?;
    let plan = Forgotten::of(&plan, gc.dry_run);
    emit(&Pruned { forgotten: plan.removed(), gc, plan }, ctx.json())
}
