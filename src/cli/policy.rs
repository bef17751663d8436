//! `silo policy set|show`: a snapshot name's stored retention policy (what `forget` without flags and
//! `prune` apply).

use super::context::Invocation;
use super::forget::KeepArgs;
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;
use silo::format::maintenance::StoredPolicy;
use silo::repo::snapshots::validate_name;
use silo::time::format_micros;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Store the policy `forget` (without flags) and `prune` apply to NAME; no flags clears it.
    Set {
        /// The snapshot name the policy applies to.
        name: String,
        #[command(flatten)]
        keep: KeepArgs,
    },
    /// Show the stored policies.
    Show,
}

#[derive(Serialize)]
#[serde(transparent)]
struct Policies(Vec<PolicyView>);

#[derive(Serialize)]
struct PolicyView {
    name: String,
    set_at: String,
    keep_last: Option<u32>,
    keep_hourly: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    keep_within_seconds: Option<u64>,
    #[serde(skip)]
    text: String,
}

impl PolicyView {
    fn of(s: &StoredPolicy) -> Self {
        let q = &s.policy;
        PolicyView {
            name: s.name.clone(),
            set_at: format_micros(s.set_at),
            keep_last: q.last,
            keep_hourly: q.hourly,
            keep_daily: q.daily,
            keep_weekly: q.weekly,
            keep_monthly: q.monthly,
            keep_yearly: q.yearly,
            keep_within_seconds: q.within,
            text: q.to_string(),
        }
    }
}

impl Report for Policies {
    fn human(&self) -> Result<()> {
        for p in &self.0 {
            say!("{}: {} (set {})", p.name, p.text, p.set_at);
        }
        say!("{} policies", self.0.len());
        Ok(())
    }
}

pub fn run(ctx: &Invocation, c: &Command) -> Result<()> {
    let repo = ctx.open()?;
    if let Command::Set { name, keep } = c {
        validate_name("snapshot name", name)?;
        ctx.rt.block_on(repo.set_policy(name, keep.policy()?))?;
    }
    let stored = ctx.rt.block_on(repo.policies())?;
    emit(&Policies(stored.values().map(PolicyView::of).collect()), ctx.json())
}
