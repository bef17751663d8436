//! A writer's side of the gc protocol (docs/design.md "I4 gc grace", "I6 late writers"): a heartbeating
//! session object that tells gc which packs are in use, the pre-commit rescue of chunks whose packs gc marked
//! deleted while the session ran, and the pre-commit verification a session needs when gc may have judged it
//! dead (frozen, cut off, or its clock moved: repo/liveness.rs decides).
//!
//! Times in the session object are on the backend's clock: `started_at` is the backend's time of the first
//! write (never later), so a writer whose own clock runs fast or slow is still protected from its first pack
//! on. gc judges liveness by when the backend last saw the object rewritten, not by what the writer claims.

use super::liveness::{self, CommitCheck, SessionFacts, Tolerance};
use super::Repository;
use crate::backend::{names, AppendOnly, BackendError, ReadBackend, WriteBackend};
use crate::clock::Clock;
use crate::{Error, Result};
use silo_format::maintenance::{Session, MAINTENANCE_VERSION};
use silo_format::pack::PackWriter;
use silo_format::ObjectId;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HEARTBEAT: Duration = Duration::from_secs(60);
/// How far our start may lie after the backend's stamp of the first write without restating it: a second
/// covers stamps of whole seconds (S3) and the write's own duration, and gc protects packs from a second
/// before a session's start on (gc.rs).
const START_SLACK: i64 = 1_000_000;
/// How long gc keeps the deletion mark of a pack it deleted (gc.rs compaction); shared so the writer knows.
pub const TOMBSTONE_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// The largest clock disagreement gc accepts (gc.rs).
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// What the heartbeat task observed, on the boot clock.
#[derive(Clone, Copy)]
struct Beats {
    started: Duration,
    last_ok: Duration,
    longest_gap: Duration,
}

impl Beats {
    fn record(&mut self, at: Duration) {
        self.longest_gap = self.longest_gap.max(at.saturating_sub(self.last_ok));
        self.last_ok = at;
    }
}

pub struct SessionGuard {
    id: ObjectId,
    session: Session,
    /// Backend clock minus ours at the start, µs.
    offset: i64,
    beats: Arc<Mutex<Beats>>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// The owner's store, which removes the session object at the end; none for a writer key, whose
    /// handle cannot delete (I11): its session object is left for gc.
    remover: Option<Arc<dyn WriteBackend>>,
    /// Every write of the session object holds it; whoever removes the object closes it first, so no write
    /// in flight can put the object back after it was removed.
    gate: Gate,
    /// On Ctrl-C / SIGTERM the session object is removed (crate::interrupt).
    _on_interrupt: crate::interrupt::Registration,
}

/// Open (false) while the session object may be written; closed (true) once it is being removed.
type Gate = Arc<tokio::sync::Mutex<bool>>;

/// Closes the gate, after a write in flight has landed: nothing writes the session object from then on.
async fn close(gate: &Gate) {
    *gate.lock().await = true;
}

/// Removes the session object (call once the gate is closed); already gone is fine.
async fn remove(backend: &dyn WriteBackend, id: &ObjectId) -> Result<(), BackendError> {
    match backend.delete(&names::session(id)).await {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

fn lock(beats: &Mutex<Beats>) -> std::sync::MutexGuard<'_, Beats> {
    beats.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `session` under `name` and returns the backend's time of that write (µs) and ours at its middle.
/// Once the gate is closed (the session is being ended or was interrupted) nothing is written.
async fn write_session(
    gate: &Gate,
    backend: &AppendOnly,
    clock: &dyn Clock,
    keys: &silo_format::Keys,
    repo: silo_format::RepoId,
    id: ObjectId,
    session: &Session,
) -> Result<(Option<i64>, i64)> {
    let name = names::session(&id);
    let closed = gate.lock().await;
    if *closed {
        return Err(Error::Interrupted { what: "the snapshot".into() });
    }
    let before = clock.now_micros();
    super::save_to(backend, keys, repo, id, session).await?;
    drop(closed);
    let ours = before + (clock.now_micros() - before) / 2;
    let theirs = backend.list(&name).await?.into_iter().find(|o| o.name == name).map(|o| o.modified);
    Ok((theirs, ours))
}

impl SessionGuard {
    /// Stops the heartbeat and removes the session object (a leftover one only delays gc; never harmful).
    /// A writer-key handle deletes nothing: its session object stays until gc removes it as a leftover.
    pub async fn end(self) {
        // Closed first, so a heartbeat write in flight lands before the task is stopped: aborting it mid-write
        // would leave the write running on the blocking pool, free to put the object back after the delete.
        close(&self.gate).await;
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        let Some(store) = self.remover.as_deref() else { return };
        if let Err(e) = remove(store, &self.id).await {
            tracing::warn!("could not remove session object {}: {e}", self.id.short());
        }
    }

    /// One heartbeat now, and what the session observed up to it.
    async fn facts(&self, repo: &Repository) -> Result<SessionFacts> {
        let now = liveness::boot_clock();
        let beats = *lock(&self.beats);
        let longest_gap = beats.longest_gap.max(now.saturating_sub(beats.last_ok));
        let beat = Session { heartbeat_at: repo.now() + self.offset, ..self.session.clone() };
        let clock = repo.clock();
        let (theirs, ours) =
            write_session(&self.gate, &repo.backend, clock.as_ref(), &repo.keys, repo.repo_id, self.id, &beat).await?;
        lock(&self.beats).record(liveness::boot_clock());
        let drift = theirs.map_or(0, |t| ((t - ours) - self.offset).unsigned_abs());
        Ok(SessionFacts {
            longest_gap,
            clock_drift: Duration::from_micros(drift),
            age: now.saturating_sub(beats.started),
        })
    }
}

impl Repository {
    pub async fn start_session(&self) -> Result<SessionGuard> {
        let id = ObjectId::random();
        // Registered before the object exists, so an interrupt at any point after it is written removes it.
        let remover = self.store.clone();
        let gate: Gate = Arc::default();
        let on_interrupt = {
            let (remover, handle, gate) = (remover.clone(), tokio::runtime::Handle::current(), gate.clone());
            crate::interrupt::on_interrupt(move || {
                // Closed even for a writer key (which leaves its object to gc): nothing is rewritten after.
                handle.block_on(async {
                    close(&gate).await;
                    if let Some(store) = remover {
                        let _ = remove(store.as_ref(), &id).await;
                    }
                })
            })
        };
        let ours = self.now();
        let clock = self.clock();
        let mut session = Session {
            version: MAINTENANCE_VERSION,
            host: super::hostname(),
            pid: std::process::id(),
            started_at: ours,
            heartbeat_at: ours,
        };
        let (theirs, ours) =
            write_session(&gate, &self.backend, clock.as_ref(), &self.keys, self.repo_id, id, &session).await?;
        let offset = theirs.map_or(0, |t| t - ours);
        if offset.unsigned_abs() > MAX_SKEW.as_micros() as u64 {
            tracing::warn!(
                "this machine's clock differs from the repository's by {} s; the session uses the repository's",
                offset / 1_000_000
            );
        }
        // Our clock runs ahead of the backend's: restate the start on the backend's clock before any pack is
        // written.
        if let Some(t) = theirs.filter(|t| session.started_at > *t + START_SLACK) {
            session.started_at = t;
            session.heartbeat_at = t;
            write_session(&gate, &self.backend, clock.as_ref(), &self.keys, self.repo_id, id, &session).await?;
        }
        let started = liveness::boot_clock();
        let beats = Arc::new(Mutex::new(Beats { started, last_ok: started, longest_gap: Duration::ZERO }));
        let (backend, keys, repo, shared, template, beat_gate) =
            (self.backend.clone(), self.keys.clone(), self.repo_id, beats.clone(), session.clone(), gate.clone());
        let clock = self.clock();
        let heartbeat = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(HEARTBEAT);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let beat = Session { heartbeat_at: clock.now_micros() + offset, ..template.clone() };
                let closed = beat_gate.lock().await;
                if *closed {
                    return;
                }
                match super::save_to(&backend, &keys, repo, id, &beat).await {
                    Ok(()) => lock(&shared).record(liveness::boot_clock()),
                    Err(e) => tracing::warn!("session heartbeat failed: {e}"),
                }
                drop(closed);
            }
        });
        Ok(SessionGuard { id, session, offset, beats, heartbeat, remover, gate, _on_interrupt: on_interrupt })
    }

    /// The last step before a manifest naming `chunks` is committed: a heartbeat, then, if gc may have judged
    /// this session dead meanwhile, a check that every chunk has a live location in a pack that exists now.
    pub async fn verify_before_commit<'a>(
        &self,
        session: &SessionGuard,
        chunks: impl Iterator<Item = &'a ObjectId>,
    ) -> Result<()> {
        let tolerance = Tolerance {
            alive_within: liveness::alive_within(self.config.gc_safety_age),
            tombstone_retention: TOMBSTONE_RETENTION,
            max_skew: MAX_SKEW,
        };
        let facts = session.facts(self).await?;
        let CommitCheck::VerifyFirst(reason) = liveness::commit_check(&facts, &tolerance) else {
            return Ok(());
        };
        tracing::info!("{reason}; verifying every chunk against the repository before committing");
        self.sync_cache().await?;
        let packs: HashSet<ObjectId> =
            self.backend.list(names::PACKS).await?.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let cache = self.cache()?;
        let mut seen = HashSet::new();
        // The bases the chunks depend on must be stored too (I16).
        let all = super::chains::closure(&cache, chunks)?;
        for id in &all {
            if !seen.insert(*id) {
                continue;
            }
            if !cache.live_location(id)?.is_some_and(|l| packs.contains(&l.pack)) {
                return Err(Error::SessionExpired {
                    reason: format!("{reason}, and chunk {} is no longer stored", id.short()),
                });
            }
        }
        Ok(())
    }

    /// Before a manifest naming `chunks` is committed: any chunk with no location in an unmarked pack (gc
    /// marked its pack during this session) is copied, still sealed, into a new pack, indexed, and so kept
    /// alive. If gc already deleted the pack, the snapshot cannot be committed. Returns the packs written.
    pub async fn rescue_marked_chunks<'a>(&self, chunks: impl Iterator<Item = &'a ObjectId>) -> Result<u64> {
        self.sync_cache().await?;
        let cache = self.cache()?;
        // No pack marked deleted: every chunk this run used is in a live pack (it was when it was used, and
        // gc marks a pack before deleting it; a pack deleted in spite of this session means the session
        // expired, which `verify_before_commit` detects and answers by checking every chunk).
        if !cache.any_marked_deleted()? {
            return Ok(0);
        }
        let mut rescue: BTreeMap<ObjectId, crate::cache::Location> = BTreeMap::new();
        // One lookup per chunk; the bases of delta copies join the walk and are kept alive the same way (I16).
        // Only bases are remembered as seen (a chunk the snapshot names twice is looked up twice): the walk
        // holds no set of the whole snapshot's chunks.
        let mut marked: std::collections::HashMap<ObjectId, bool> = std::collections::HashMap::new();
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut todo: Vec<ObjectId> = Vec::new();
        let mut chunks = chunks.copied();
        while let Some(id) = todo.pop().or_else(|| chunks.next()) {
            let locations = cache.locations(&id)?;
            todo.extend(locations.iter().filter_map(|l| l.delta.map(|d| d.base)).filter(|b| seen.insert(*b)));
            let mut live = false;
            for l in &locations {
                let dead = match marked.get(&l.pack) {
                    Some(d) => *d,
                    None => *marked.entry(l.pack).or_insert(cache.is_marked_deleted(&l.pack)?),
                };
                if !dead {
                    live = true;
                    break;
                }
            }
            if live {
                continue;
            }
            let loc = locations.first().copied().ok_or_else(|| Error::SessionExpired {
                reason: format!("gc removed chunk {} while this run used it", id.short()),
            })?;
            rescue.insert(id, loc);
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
                    return Err(Error::SessionExpired {
                        reason: format!(
                            "gc deleted pack {} (holding chunk {}) while this run used it",
                            loc.pack.short(),
                            id.short()
                        ),
                    })
                }
                Err(e) => return Err(e.into()),
            };
            // Authenticated (a delta's content is checked with its base when read).
            silo_format::pack::open_chunk_parts(&self.keys, self.repo_id, *id, &sealed, loc.raw_len)
                .map_err(|e| Error::damaged(format!("pack {} chunk {}", loc.pack.short(), id.short()), e))?;
            writer.push_with(*id, &sealed, loc.raw_len, loc.delta);
        }
        let pack = self.store_pack(writer).await?;
        let mut segment = silo_format::index::IndexSegment::new();
        segment.packs.push(pack);
        let seg_id = ObjectId::random();
        self.save(seg_id, &segment).await?;
        cache.absorb(&seg_id, &segment)?;
        Ok(1)
    }
}
