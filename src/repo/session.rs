//! A writer's side of the gc protocol: a heartbeating session object that tells gc which packs are in use,
//! and the pre-commit rescue of chunks whose packs gc marked deleted while the session ran.

use super::Repository;
use crate::backend::{names, Backend, BackendError};
use crate::{Error, Result};
use silo_format::envelope::random_nonce;
use silo_format::maintenance::{Sealed, Session, MAINTENANCE_VERSION};
use silo_format::pack::PackWriter;
use silo_format::ObjectId;
use std::collections::BTreeMap;
use std::time::Duration;

const HEARTBEAT: Duration = Duration::from_secs(60);

pub struct SessionGuard {
    id: ObjectId,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl SessionGuard {
    /// Stops the heartbeat and removes the session object (a leftover one only delays gc; never harmful).
    pub async fn end(self, backend: &dyn Backend) {
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        if let Err(e) = backend.delete(&names::session(&self.id)).await {
            tracing::warn!("could not remove session object {}: {e}", self.id.short());
        }
    }
}

impl Repository {
    pub async fn start_session(&self, started_at: i64) -> Result<SessionGuard> {
        let id = ObjectId::random();
        let name = names::session(&id);
        let session = Session {
            version: MAINTENANCE_VERSION,
            host: super::hostname(),
            pid: std::process::id(),
            started_at,
            heartbeat_at: started_at,
        };
        self.backend.put(&name, session.seal(&self.keys, self.repo_id, id, random_nonce())).await?;
        let (backend, keys, repo) = (self.backend.clone(), self.keys.clone(), self.repo_id);
        let heartbeat = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(HEARTBEAT);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let beat = Session { heartbeat_at: crate::time::now_micros(), ..session.clone() };
                if let Err(e) = backend.put(&name, beat.seal(&keys, repo, id, random_nonce())).await {
                    tracing::warn!("session heartbeat failed: {e}");
                }
            }
        });
        Ok(SessionGuard { id, heartbeat })
    }

    /// Before a manifest naming `chunks` is committed: any chunk with no location in an unmarked pack (gc
    /// marked its pack during this session) is copied, still sealed, into a new pack, indexed, and so kept
    /// alive. If gc already deleted the pack, the snapshot cannot be committed. Returns the packs written.
    pub async fn rescue_marked_chunks<'a>(&self, chunks: impl Iterator<Item = &'a ObjectId>) -> Result<u64> {
        self.sync_cache().await?;
        let cache = self.cache()?;
        let mut rescue: BTreeMap<ObjectId, crate::cache::Location> = BTreeMap::new();
        for id in chunks {
            if rescue.contains_key(id) || cache.live_location(id)?.is_some() {
                continue;
            }
            let loc = cache.any_location(id)?.ok_or_else(|| Error::Inconsistent {
                object: format!("chunk {}", id.short()),
                reason: "gc removed data this snapshot deduplicated against during the run; nothing was committed, run create again".into(),
            })?;
            rescue.insert(*id, loc);
        }
        if rescue.is_empty() {
            return Ok(0);
        }
        tracing::info!("{} chunks were marked deleted by a concurrent gc; copying them to new packs", rescue.len());
        let mut writer = PackWriter::new();
        for (id, loc) in &rescue {
            let name = names::pack(&loc.pack);
            let sealed = match self.backend.get_range(&name, u64::from(loc.offset), u64::from(loc.stored_len)).await {
                Ok(b) => b,
                Err(BackendError::NotFound { .. }) => {
                    return Err(Error::Inconsistent {
                        object: format!("chunk {}", id.short()),
                        reason: "gc deleted its pack during this run (longer than the grace period); nothing was committed, run create again".into(),
                    })
                }
                Err(e) => return Err(e.into()),
            };
            silo_format::pack::open_chunk(&self.keys, self.repo_id, *id, &sealed, loc.raw_len)
                .map_err(|e| Error::damaged(format!("pack {} chunk {}", loc.pack.short(), id.short()), e))?;
            writer.push(*id, &sealed, loc.raw_len);
        }
        let pack = self.store_pack(writer).await?;
        let mut segment = silo_format::index::IndexSegment::new();
        segment.packs.push(pack);
        let seg_id = ObjectId::random();
        self.backend
            .put(&names::index(&seg_id), segment.seal(&self.keys, self.repo_id, seg_id, random_nonce()))
            .await?;
        cache.absorb(&seg_id, &segment)?;
        Ok(1)
    }
}
