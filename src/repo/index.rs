//! Keeping the index cache current: list `index/`, absorb segments the cache has not seen, and rebuild from
//! scratch when a segment the cache absorbed is gone (gc compacted it). After `sync_cache` a cache miss means
//! the chunk was not indexed when the listing was taken.

use super::Repository;
use crate::backend::names;
use crate::{Error, Result};
use futures::{StreamExt, TryStreamExt};
use silo_format::index::IndexSegment;
use silo_format::ObjectId;
use std::collections::HashSet;

const PARALLEL_FETCHES: usize = 8;

impl Repository {
    pub async fn sync_cache(&self) -> Result<()> {
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
            return Ok(());
        }
        tracing::debug!("absorbing {} index segments into the cache", missing.len());
        futures::stream::iter(missing)
            .map(|id| async move { Ok::<_, Error>((id, self.load_segment(&id).await?)) })
            .buffer_unordered(PARALLEL_FETCHES)
            .try_for_each(|(id, seg)| {
                let cache = cache.clone();
                async move { cache.absorb(&id, &seg) }
            })
            .await
    }

    pub async fn load_segment(&self, id: &ObjectId) -> Result<IndexSegment> {
        let name = names::index(id);
        let bytes = self.backend.get(&name).await?;
        IndexSegment::open(&self.keys, self.repo_id, *id, &bytes).map_err(|e| Error::damaged(name, e))
    }
}
