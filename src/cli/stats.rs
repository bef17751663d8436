//! `silo stats`: logical and stored sizes, dedup and compression.

use super::context::Invocation;
use super::output::{emit, human_bytes, Report};
use anyhow::Result;
use silo::repo::stats::RepoStats;

impl Report for RepoStats {
    fn human(&self) -> Result<()> {
        let s = self;
        say!("snapshots          {}", s.snapshots);
        say!("logical bytes      {} ({})", human_bytes(s.logical_bytes), s.logical_bytes);
        say!("unique bytes       {} ({})", human_bytes(s.unique_bytes), s.unique_bytes);
        say!("stored bytes       {} ({})", human_bytes(s.stored_bytes), s.stored_bytes);
        say!("dedup ratio        {:.2}x", s.dedup_ratio);
        say!("compression ratio  {:.2}x", s.compression_ratio);
        say!("total ratio        {:.2}x", s.total_ratio);
        say!("chunks             {}", s.chunks);
        if s.delta_chunks > 0 {
            say!(
                "delta chunks       {} ({} stored in {}, {:.1}x; chains up to {})",
                s.delta_chunks,
                human_bytes(s.delta_raw_bytes),
                human_bytes(s.delta_stored_bytes),
                s.delta_raw_bytes as f64 / s.delta_stored_bytes.max(1) as f64,
                s.delta_max_depth
            );
        }
        say!("packs              {}", s.packs);
        say!("index segments     {}", s.index_segments);
        Ok(())
    }
}

pub fn run(ctx: &Invocation) -> Result<()> {
    let repo = ctx.open()?;
    let stats = ctx.rt.block_on(silo::repo::stats::collect(&repo))?;
    emit(&stats, ctx.json())
}
