//! `silo snapshot list`: readable snapshots oldest first, then the manifests that cannot be read (their name
//! is unknown: listed whatever `--name` says, so damage is never hidden).

use crate::cli::context::Invocation;
use crate::cli::output::{emit, human_bytes, Report, SnapshotView};
use anyhow::Result;
use serde::Serialize;
use silo::time::format_micros;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only snapshots of this name.
    #[arg(long)]
    name: Option<String>,
    /// Only snapshots from this host.
    #[arg(long)]
    host: Option<String>,
    /// Only snapshots with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only snapshots finished before the end of this UTC day (YYYY-MM-DD, today, yesterday).
    #[arg(long, value_name = "DAY")]
    before: Option<String>,
    /// Only snapshots finished on or after the start of this UTC day (YYYY-MM-DD, today, yesterday).
    #[arg(long, value_name = "DAY")]
    after: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Listed {
    Readable {
        #[serde(flatten)]
        snapshot: SnapshotView,
        /// Seconds since it finished.
        age_seconds: i64,
        damaged: bool,
        /// Why retention sets it aside (I19: empty, stored invalid, or much smaller than the one before),
        /// or null.
        suspect: Option<String>,
    },
    Unreadable {
        id: String,
        short_id: String,
        stored: String,
        damaged: bool,
        unreadable: String,
    },
}

#[derive(Serialize)]
#[serde(transparent)]
struct Listing(Vec<Listed>);

impl Report for Listing {
    fn human(&self) -> Result<()> {
        say!("{:<8}  {:<20}  {:>6}  {:<24}  {:<16}  {:>10}  tags", "id", "time", "age", "name", "host", "size");
        let (mut readable, mut unreadable) = (0, 0);
        for item in &self.0 {
            match item {
                Listed::Readable { snapshot: s, age_seconds, damaged, suspect } => {
                    readable += 1;
                    let size = human_bytes(s.bytes);
                    let tags = s.tags.join(",");
                    let age = short_age(*age_seconds);
                    say!(
                        "{:<8}  {:<20}  {age:>6}  {:<24}  {:<16}  {size:>10}  {tags}",
                        s.short_id,
                        s.finished,
                        s.name,
                        s.host
                    );
                    if s.streams.len() > 1 {
                        let list: Vec<String> =
                            s.streams.iter().map(|st| format!("{} ({})", st.name, human_bytes(st.bytes))).collect();
                        say!("          streams: {}", list.join(", "));
                    }
                    if *damaged {
                        say!("          ^ damaged: see `silo snapshot show {}`", s.short_id);
                    }
                    if let Some(why) = suspect {
                        say!("          ^ suspect ({why}): retention never counts it in place of a real backup");
                    }
                }
                Listed::Unreadable { short_id, stored, unreadable: reason, .. } => {
                    unreadable += 1;
                    say!("{short_id:<8}  {stored:<20}  UNREADABLE manifest: {reason}");
                }
            }
        }
        if unreadable == 0 {
            say!("{readable} snapshots");
        } else {
            say!("{readable} snapshots, {unreadable} unreadable (run `silo check`)");
        }
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let repo = ctx.open()?;
    let mut scan = ctx.rt.block_on(repo.scan_snapshots())?;
    if let Some(n) = &a.name {
        scan.snapshots.retain(|s| &s.manifest.name == n);
    }
    let window = super::Window::parse(a.before.as_deref(), a.after.as_deref(), repo.now())?;
    scan.snapshots.retain(|s| {
        let m = &s.manifest;
        a.host.as_ref().is_none_or(|h| &m.host == h)
            && a.tag.as_ref().is_none_or(|t| m.tags.contains(t))
            && window.holds(m.finished)
    });
    let now = repo.now();
    let damaged = ctx.rt.block_on(repo.damage_marks())?;
    let suspects = silo::repo::forget::suspect_reasons(&scan.snapshots, silo::retention::SUSPECT_SHRINK_PERCENT);
    let items = scan
        .snapshots
        .iter()
        .map(|s| Listed::Readable {
            snapshot: SnapshotView::of(s),
            age_seconds: (now - s.manifest.finished) / 1_000_000,
            damaged: damaged.contains_key(&s.id),
            suspect: suspects.get(&s.id).cloned(),
        })
        .chain(scan.unreadable.iter().map(|u| Listed::Unreadable {
            id: u.id.to_hex(),
            short_id: u.id.short(),
            stored: format_micros(u.stored_at),
            damaged: true,
            unreadable: u.reason.clone(),
        }))
        .collect();
    emit(&Listing(items), ctx.json())
}

/// An age as a person reads it at a glance: `45s`, `12min`, `5h`, `3d`.
fn short_age(seconds: i64) -> String {
    match seconds {
        s if s < 0 => "future".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}min", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
