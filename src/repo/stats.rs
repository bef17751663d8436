//! `silo stats`: logical bytes (sum of snapshot streams), stored bytes (pack files), and the ratios between.

use super::Repository;
use crate::backend::{names, ReadBackend};
use crate::Result;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct RepoStats {
    pub snapshots: u64,
    /// Sum of all snapshots' stream sizes: what restoring every snapshot would produce.
    pub logical_bytes: u64,
    /// Bytes of all pack files.
    pub stored_bytes: u64,
    pub packs: u64,
    pub index_segments: u64,
    /// Distinct chunks in the index.
    pub chunks: u64,
    /// Plaintext bytes of the distinct chunks.
    pub unique_bytes: u64,
    /// logical / unique: what deduplication saves.
    pub dedup_ratio: f64,
    /// unique / stored: what compression saves (net of encryption overhead).
    pub compression_ratio: f64,
    /// logical / stored.
    pub total_ratio: f64,
    /// Chunk copies stored as deltas of another chunk (format-spec/delta.md), their plaintext bytes and the
    /// bytes their envelopes take: what delta compression saves is `delta_raw_bytes / delta_stored_bytes`.
    pub delta_chunks: u64,
    pub delta_raw_bytes: u64,
    pub delta_stored_bytes: u64,
    /// The deepest delta chain (0: none).
    pub delta_max_depth: u8,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

pub async fn collect(repo: &Repository) -> Result<RepoStats> {
    let snapshots = repo.list_snapshots().await?;
    let logical_bytes = snapshots.iter().map(|s| s.manifest.total_size()).sum();
    let packs = repo.backend.list(names::PACKS).await?;
    let stored_bytes = packs.iter().map(|p| p.size).sum();
    let index_segments = repo.backend.list(names::INDEX).await?.len() as u64;
    repo.sync_cache().await?;
    let (mut chunks, mut unique_bytes, mut last) = (0u64, 0u64, None);
    let (mut delta_chunks, mut delta_raw_bytes, mut delta_stored_bytes, mut delta_max_depth) = (0, 0, 0, 0);
    repo.cache()?.for_each_location(|chunk, loc| {
        if let Some(d) = loc.delta {
            delta_chunks += 1;
            delta_raw_bytes += u64::from(loc.raw_len);
            delta_stored_bytes += u64::from(loc.stored_len);
            delta_max_depth = delta_max_depth.max(d.depth);
        }
        if last != Some(*chunk) {
            chunks += 1;
            unique_bytes += u64::from(loc.raw_len);
            last = Some(*chunk);
        }
    })?;
    Ok(RepoStats {
        snapshots: snapshots.len() as u64,
        logical_bytes,
        stored_bytes,
        packs: packs.len() as u64,
        index_segments,
        chunks,
        unique_bytes,
        dedup_ratio: ratio(logical_bytes, unique_bytes),
        compression_ratio: ratio(unique_bytes, stored_bytes),
        total_ratio: ratio(logical_bytes, stored_bytes),
        delta_chunks,
        delta_raw_bytes,
        delta_stored_bytes,
        delta_max_depth,
    })
}
