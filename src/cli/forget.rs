//! `silo forget`: removes snapshots by retention policy (flags, or each name's stored policy) or by id.
//! The plan (repo/forget.rs, retention.rs: pure) is printed; with `--dry-run` nothing else happens.

use super::context::{duration_arg, Invocation};
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;
use silo::repo::forget::ForgetGroup;
use silo::repo::snapshots::SnapshotSpec;
use silo::time::format_micros;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct KeepArgs {
    /// Keep the N newest snapshots.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(long)]
    keep_hourly: Option<u32>,
    /// ... of each of the N newest days (UTC).
    #[arg(long)]
    keep_daily: Option<u32>,
    /// ... of each of the N newest ISO weeks.
    #[arg(long)]
    keep_weekly: Option<u32>,
    /// ... of each of the N newest months.
    #[arg(long)]
    keep_monthly: Option<u32>,
    /// ... of each of the N newest years.
    #[arg(long)]
    keep_yearly: Option<u32>,
    /// Keep every snapshot within this long of the newest one, e.g. 7d, 36h, 1y6mo.
    #[arg(long)]
    keep_within: Option<String>,
}

impl KeepArgs {
    pub fn policy(&self) -> Result<silo::retention::Policy> {
        let within = self.keep_within.as_deref().map(|t| duration_arg("--keep-within", t)).transpose()?;
        Ok(silo::retention::Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Forget exactly these snapshots (ID, ID prefix, NAME:latest[~N]) instead of applying a policy.
    #[arg(conflicts_with_all = ["name", "host", "tag", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"])]
    snapshots: Vec<String>,
    /// Only snapshots of this name.
    #[arg(long)]
    name: Option<String>,
    /// Only snapshots from this host.
    #[arg(long)]
    host: Option<String>,
    /// Only snapshots with this tag.
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    keep: KeepArgs,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// A snapshot this many percent smaller than the plausible one before it is suspect: kept, and not
    /// counted by the rules (empty and invalid ones always are). 100 turns the size rule off, e.g. once
    /// after a database was meant to shrink.
    #[arg(long, value_name = "PERCENT", default_value_t = silo::retention::SUSPECT_SHRINK_PERCENT,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    suspect_shrink: u8,
}

/// A forget plan, as decided and (unless a dry run) carried out.
#[derive(Serialize)]
pub struct Forgotten {
    pub dry_run: bool,
    pub groups: Vec<GroupView>,
}

#[derive(Serialize)]
pub struct GroupView {
    name: String,
    host: String,
    policy: Option<String>,
    snapshots: Vec<DecisionView>,
}

#[derive(Serialize)]
struct DecisionView {
    id: String,
    #[serde(skip)]
    short_id: String,
    time: String,
    keep: bool,
    reasons: Vec<String>,
}

impl Forgotten {
    pub fn of(plan: &[ForgetGroup], dry_run: bool) -> Self {
        let groups = plan
            .iter()
            .map(|g| GroupView {
                name: g.name.clone(),
                host: g.host.clone(),
                policy: g.policy.as_ref().map(|p| p.to_string()),
                snapshots: g
                    .decisions
                    .iter()
                    .map(|d| DecisionView {
                        id: d.item.id.to_hex(),
                        short_id: d.item.id.short(),
                        time: format_micros(d.time),
                        keep: d.keep,
                        reasons: d.reasons.iter().map(|r| r.to_string()).collect(),
                    })
                    .collect(),
            })
            .collect();
        Forgotten { dry_run, groups }
    }

    /// Full ids of the snapshots removed (or, in a dry run, to be removed).
    pub fn removed(&self) -> Vec<String> {
        self.groups.iter().flat_map(|g| &g.snapshots).filter(|d| !d.keep).map(|d| d.id.clone()).collect()
    }
}

impl Report for Forgotten {
    fn human(&self) -> Result<()> {
        for g in &self.groups {
            say!("{} on {}:", g.name, g.host);
            for d in &g.snapshots {
                let verdict = match (d.keep, self.dry_run) {
                    (true, _) => "keep  ",
                    (false, true) => "would remove",
                    (false, false) => "remove",
                };
                say!("  {verdict}  {}  {}  {}", d.short_id, d.time, d.reasons.join(","));
            }
        }
        let removed = self.removed().len();
        say!("{} snapshots {}", removed, if self.dry_run { "would be removed" } else { "removed" });
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    ctx.record(|d| (d.skip, d.job) = (a.dry_run, a.name.clone().unwrap_or_default()));
    let specs = a.snapshots.iter().map(|s| SnapshotSpec::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let policy = a.keep.policy()?;
    let repo = ctx.open()?;
    let plan = if specs.is_empty() {
        let filter = silo::repo::forget::Filter { name: a.name.clone(), host: a.host.clone(), tag: a.tag.clone() };
        use silo::retention::Evaluate;
        ctx.rt.block_on(repo.plan_forget_with(&filter, (!policy.is_empty()).then_some(&policy), a.suspect_shrink))?
    } else {
        ctx.rt.block_on(repo.plan_forget_ids(&specs))?
    };
    if !a.dry_run {
        ctx.rt.block_on(repo.forget(&plan))?;
    }
    emit(&Forgotten::of(&plan, a.dry_run), ctx.json())
}
