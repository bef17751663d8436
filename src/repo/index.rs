//! Keeping the index cache current: list `index/`, absorb segments the cache has not seen, and rebuild from
//! scratch when a segment the cache absorbed is gone (gc compacted it). After `sync_cache` a cache miss means
//! the chunk was not indexed when the listing was taken.

use super::Repository;
use crate::backend::{names, ReadBackend};
use crate::{Error, Result};
use futures::{StreamExt, TryStreamExt};
use silo_format::index::IndexSegment;
use silo_format::ObjectId;
use std::collections::HashSet;

const PARALLEL_FETCHES: usize = 8;

/// Passes before giving up when gc keeps compacting segments away between listing and fetching them.
const SYNC_PASSES: u32 = 20;

impl Repository {
    /// Brings the cache up to date with `index/`. A segment that vanishes between listing and fetching was
    /// superseded by gc's compaction, whose output is durable before any input is deleted: it is skipped and
    /// `index/` listed again, until a pass sees no segment vanish.
    pub async fn sync_cache(&self) -> Result<()> {
        for pass in 1..=SYNC_PASSES {
            if self.sync_cache_pass().await? == 0 {
                return Ok(());
            }
            tracing::debug!("index segments were compacted away while syncing the cache; listing again");
            tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(pass))).await;
        }
        Err(Error::Inconsistent {
            object: names::INDEX.into(),
            reason: "segments kept disappearing while the cache was synced (is a gc running?); try again".into(),
        })
    }

    /// One pass; returns how many listed segments had vanished by the time they were fetched.
    async fn sync_cache_pass(&self) -> Result<usize> {
        let cache = self.cache()?;
        let listed: HashSet<ObjectId> =
            self.backend.list(names::INDEX).await?.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let mut absorbed = cache.absorbed_segments()?;
        if absorbed.iter().any(|id| !listed.contains(id)) {
            tracing::info!("index segments were removed since the cache was built; rebuilding it");
            cache.clear()?;
            absorbed.clear();
        }
        let missing: Vec<ObjectId> = listed.into_iter().filter(|id| !absorbed.contains(id)).collect();
        if missing.is_empty() {
            return Ok(0);
        }
        tracing::debug!("absorbing {} index segments into the cache", missing.len());
        let vanished = std::sync::atomic::AtomicUsize::new(0);
        futures::stream::iter(missing)
            .map(|id| async move {
                match self.load_segment(&id).await {
                    Ok(seg) => Ok(Some((id, seg))),
                    Err(Error::Backend(e)) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(PARALLEL_FETCHES)
            .try_for_each(|loaded| {
                let cache = cache.clone();
                let vanished = &vanished;
                async move {
                    match loaded {
                        Some((id, seg)) => cache.absorb(&id, &seg),
                        None => {
                            vanished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            Ok(())
                        }
                    }
                }
            })
            .await?;
        Ok(vanished.into_inner())
    }

    pub async fn load_segment(&self, id: &ObjectId) -> Result<IndexSegment> {
        self.load::<IndexSegment>(*id).await
    }
}
