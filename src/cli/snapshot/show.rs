//! `silo snapshot show`: one snapshot with its streams, damage mark and drills.

use crate::cli::context::Invocation;
use crate::cli::output::{command_text, emit, human_bytes, DrillView, Report, SnapshotView};
use anyhow::Result;
use serde::Serialize;
use silo::repo::snapshots::SnapshotSpec;
use silo::time::format_micros;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ID, ID prefix, NAME:latest or NAME:latest~N.
    snapshot: String,
}

#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    snapshot: SnapshotView,
    damaged: Option<DamageView>,
    drills: Vec<DrillView>,
}

#[derive(Serialize)]
struct DamageView {
    found_at: String,
    reason: String,
}

impl Report for Shown {
    fn human(&self) -> Result<()> {
        let s = &self.snapshot;
        say!("snapshot {}", s.id);
        say!("  name      {}", s.name);
        say!("  host      {}", s.host);
        say!("  tags      {}", s.tags.join(", "));
        say!("  started   {}", s.started);
        say!("  finished  {}", s.finished);
        say!("  size      {} ({} bytes)", human_bytes(s.bytes), s.bytes);
        for st in &s.streams {
            say!("  stream {}", st.name);
            say!("    bytes    {}", st.bytes);
            say!("    chunks   {}", st.chunks);
            say!("    blake3   {}", st.blake3);
            match &st.command {
                Some(c) => say!(
                    "    command  {} (exit status {})",
                    command_text(c),
                    st.exit_status.map_or("?".into(), |c| c.to_string())
                ),
                None => say!("    command  (standard input)"),
            }
            if let Some(d) = &st.dump {
                let version = if d.tool_version.is_empty() { String::new() } else { format!(" {}", d.tool_version) };
                match &d.problem {
                    None => say!("    dump     {}{version}, whole", d.format),
                    Some(p) => {
                        say!("    dump     {}{version}, INVALID (committed with --accept-invalid): {p}", d.format)
                    }
                }
                if d.entries > 0 {
                    say!("    entries  {}", d.entries);
                }
                for t in &d.tables {
                    let rows = t.rows.map_or("rows not counted".to_string(), |r| format!("{r} rows"));
                    say!("    table    {}  {rows}, {}", t.name, human_bytes(t.bytes));
                }
            }
        }
        if let Some(d) = &self.damaged {
            say!("  DAMAGED (found {}): {}", d.found_at, d.reason);
        }
        for d in &self.drills {
            say!(
                "  drill {}  {}  {:.1} s  {}  `{}`",
                d.started,
                if d.ok { "ok    " } else { "FAILED" },
                d.duration_seconds,
                human_bytes(d.bytes),
                d.command.join(" ")
            );
        }
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let repo = ctx.open()?;
    let spec = SnapshotSpec::parse(&a.snapshot)?;
    let snap = ctx.rt.block_on(repo.resolve(&spec))?;
    let damage = ctx.rt.block_on(repo.damage_marks())?.remove(&snap.id);
    let drills = ctx.rt.block_on(repo.drills(&snap.id))?;
    let shown = Shown {
        snapshot: SnapshotView::of(&snap),
        damaged: damage.map(|d| DamageView { found_at: format_micros(d.found_at), reason: d.reason }),
        drills: drills.iter().map(DrillView::of).collect(),
    };
    emit(&shown, ctx.json())
}
