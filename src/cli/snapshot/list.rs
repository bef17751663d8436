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
}

#[derive(Serialize)]
#[serde(untagged)]
enum Listed {
    Readable {
        #[serde(flatten)]
        snapshot: SnapshotView,
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
        say!("{:<8}  {:<20}  {:<24}  {:<16}  {:>10}  tags", "id", "time", "name", "host", "size");
        let (mut readable, mut unreadable) = (0, 0);
        for item in &self.0 {
            match item {
                Listed::Readable { snapshot: s, damaged, suspect } => {
                    readable += 1;
                    let size = human_bytes(s.bytes);
                    let tags = s.tags.join(",");
                    say!("{:<8}  {:<20}  {:<24}  {:<16}  {size:>10}  {tags}", s.short_id, s.finished, s.name, s.host);
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
    let damaged = ctx.rt.block_on(repo.damage_marks())?;
    let suspects = silo::repo::forget::suspect_reasons(&scan.snapshots, silo::retention::SUSPECT_SHRINK_PERCENT);
    let items = scan
        .snapshots
        .iter()
        .map(|s| Listed::Readable {
            snapshot: SnapshotView::of(s),
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
