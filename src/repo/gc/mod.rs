//! Garbage collection, lock-free with respect to writers (docs/design.md §5 "the gc protocol", I4, I6; format-spec/maintenance.md).
//!
//! One gc at a time holds `gc/lease`. A run: lists snapshots *before* loading the index and marks every chunk
//! they reference (the mark set lives in a temporary RocksDB, so memory does not grow with the repository);
//! then classifies every pack older than the safety age and not written during a live writer session:
//! - fully dead and not yet marked → marked deleted (in a new index segment);
//! - marked at least a grace period ago and still dead → deleted;
//! - marked but live again (a writer deduplicated against it meanwhile) → its live chunks are copied out;
//! - partly dead beyond the repack threshold → live chunks copied verbatim (still encrypted) into new packs,
//!   the old pack marked.
//!
//! Deleting requires the lease to be ours and unexpired, checked right before each batch, so a gc paused
//! past its lease deletes nothing. Writers never deduplicate against marked packs and, before committing,
//! rescue any chunk whose pack was marked during their session (repo/write.rs). `--safety none` uses a
//! safety age and grace period of zero: only safe when nothing else writes.

use super::Repository;
use crate::backend::names;
use crate::{Error, Result};
use rocksdb::{Options, DB};
use serde::Serialize;
use silo_format::envelope::random_nonce;
use silo_format::index::{DeletedPack, IndexPack, IndexSegment};
use silo_format::maintenance::{Lease, Sealed, Session, MAINTENANCE_VERSION};
use silo_format::pack::{self, PackWriter};
use silo_format::ObjectId;
use std::collections::{HashMap, HashSet};

const SECOND: i64 = 1_000_000;
/// Entries per compacted index segment (≈ 11 MiB encoded).
const COMPACT_ENTRIES: usize = 262_144;
/// Compact when there are more segments than this even if nothing was deleted.
const COMPACT_SEGMENTS: usize = 32;
/// Largest clock difference gc tolerates between this machine and the backend.
const MAX_SKEW: i64 = super::session::MAX_SKEW.as_secs() as i64 * SECOND;
/// How long the deletion mark of a deleted pack stays in the index: a writer that was frozen while gc
/// deleted a pack it had written or deduplicated against sees the mark and refuses to commit (I6).
const TOMBSTONE_RETENTION: i64 = super::session::TOMBSTONE_RETENTION.as_secs() as i64 * SECOND;
/// Leftovers gc removes once they are this old: temporary files of killed writes (`tmp/`) and session
/// objects of writers that died without ending them (also at least twice the liveness limit).
const LEFTOVER_AGE: i64 = 86_400 * SECOND;
/// Config times above this (a century) are treated as this, so no arithmetic on them overflows.
const MAX_CONFIG_SECONDS: u64 = 100 * 365 * 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Safety {
    Full,
    None,
}

#[derive(Clone, Debug)]
pub struct GcOptions {
    pub dry_run: bool,
    pub safety: Safety,
    pub lease_seconds: u64,
    /// Repack a pack when at least this fraction of its bytes is dead.
    pub repack_threshold: f64,
    /// Bytes of packs examined, repacked or deleted so far, for a progress display.
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub snapshots: u64,
    pub marked_chunks: u64,
    pub packs: u64,
    pub packs_marked: u64,
    pub bytes_marked: u64,
    pub packs_deleted: u64,
    pub bytes_deleted: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    /// Marked packs still inside their grace period.
    pub packs_pending: u64,
    pub bytes_pending: u64,
    /// When the pending bytes become reclaimable (RFC 3339), if any are pending.
    pub pending_reclaimable_at: Option<String>,
    /// Dead packs too young to touch yet.
    pub packs_too_young: u64,
    pub segments_compacted: u64,
    /// Session objects of long-dead writers and temporary files of killed writes that were removed.
    pub leftovers_removed: u64,
}

/// Chunk ids referenced by the snapshots gc listed; on disk.
struct MarkSet {
    db: DB,
    _dir: tempfile::TempDir,
}

impl MarkSet {
    fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("silo-gc-marks-")
            .tempdir()
            .map_err(|e| Error::io("creating gc's temporary mark set", e))?;
        let mut o = Options::default();
        o.create_if_missing(true);
        o.set_write_buffer_size(16 << 20);
        let db = DB::open(&o, dir.path())
            .map_err(|e| Error::Cache { path: dir.path().display().to_string(), reason: e.to_string() })?;
        Ok(MarkSet { db, _dir: dir })
    }

    fn insert(&self, id: &ObjectId) -> Result<()> {
        self.db.put(id.0, []).map_err(|e| Error::Cache { path: "gc mark set".into(), reason: e.to_string() })
    }

    fn contains(&self, id: &ObjectId) -> Result<bool> {
        Ok(self
            .db
            .get_pinned(id.0)
            .map_err(|e| Error::Cache { path: "gc mark set".into(), reason: e.to_string() })?
            .is_some())
    }
}

#[derive(Clone, Copy, Default)]
struct PackUse {
    live_chunks: u64,
    dead_bytes: u64,
}

pub(crate) struct HeldLease {
    holder: ObjectId,
    expires_at: i64,
}

impl Repository {
    pub async fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        // Ages are judged on the backend's clock, the one that stamps packs and session heartbeats; ours
        // only has to agree with it well enough for the lease.
        let mut now = crate::time::now_micros();
        if let Some(server) = self.backend.server_time().await? {
            let ours = now - crate::time::test_offset_micros();
            if (server - ours).abs() > MAX_SKEW {
                return Err(Error::ClockSkew { seconds: (server - ours) / SECOND });
            }
            now = server + crate::time::test_offset_micros();
        }
        if options.dry_run {
            return self.gc_run(options, now, None).await;
        }
        let lease = self.acquire_lease(now, options.lease_seconds).await?;
        let _on_interrupt = self.release_on_interrupt(&lease);
        let result = self.gc_run(options, now, Some(&lease)).await;
        // Release only a lease that is still ours; a lost one belongs to whoever broke it.
        if self.check_lease(&lease).await.is_ok() {
            self.backend.delete(names::LEASE).await?;
        }
        result
    }

    pub(crate) async fn acquire_lease(&self, now: i64, seconds: u64) -> Result<HeldLease> {
        let holder = ObjectId::random();
        let lease = Lease {
            version: MAINTENANCE_VERSION,
            holder,
            host: super::hostname(),
            pid: std::process::id(),
            acquired_at: now,
            expires_at: now + seconds as i64 * SECOND,
        };
        for _ in 0..2 {
            let sealed = lease.seal(&self.keys, self.repo_id, ObjectId::ZERO, random_nonce());
            if self.backend.put_if_absent(names::LEASE, sealed).await? {
                return Ok(HeldLease { holder, expires_at: lease.expires_at });
            }
            let current = self.read_lease().await?;
            match current {
                Some(other) if other.expires_at > crate::time::now_micros() => {
                    return Err(Error::GcBusy {
                        host: other.host,
                        pid: other.pid,
                        until: crate::time::format_micros(other.expires_at),
                    });
                }
                // Expired: its holder is dead or paused past it, and will delete nothing more.
                Some(_) => match self.backend.delete(names::LEASE).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                },
                None => {}
            }
        }
        Err(Error::GcBusy { host: "another client".into(), pid: 0, until: "now (it was just taken)".into() })
    }

    /// On Ctrl-C / SIGTERM: remove the lease if it is still ours, so the next gc need not wait for it.
    fn release_on_interrupt(&self, held: &HeldLease) -> crate::interrupt::Registration {
        let (backend, keys, repo, holder) = (self.backend.clone(), self.keys.clone(), self.repo_id, held.holder);
        let handle = tokio::runtime::Handle::current();
        crate::interrupt::on_interrupt(move || {
            handle.block_on(async {
                let Ok(bytes) = backend.get(names::LEASE).await else { return };
                if Lease::open(&keys, repo, ObjectId::ZERO, &bytes).is_ok_and(|l| l.holder == holder) {
                    let _ = backend.delete(names::LEASE).await;
                }
            })
        })
    }

    async fn read_lease(&self) -> Result<Option<Lease>> {
        match self.backend.get(names::LEASE).await {
            Ok(bytes) => Ok(Some(
                Lease::open(&self.keys, self.repo_id, ObjectId::ZERO, &bytes)
                    .map_err(|e| Error::damaged(names::LEASE, e))?,
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Ok only while the lease is ours and unexpired (by a margin covering the next deletion batch).
    pub(crate) async fn check_lease(&self, held: &HeldLease) -> Result<()> {
        let lost = || Error::LeaseLost { until: crate::time::format_micros(held.expires_at) };
        if crate::time::now_micros() + 5 * SECOND >= held.expires_at {
            return Err(lost());
        }
        match self.read_lease().await? {
            Some(l) if l.holder == held.holder => Ok(()),
            _ => Err(lost()),
        }
    }

    /// Before a destructive step: the lease must still hold. A test hook can pause the process exactly here.
    async fn before_delete(&self, lease: Option<&HeldLease>) -> Result<()> {
        if std::env::var("SILO_TEST_PAUSE_AT").as_deref() == Ok("gc-before-delete") {
            // SAFETY: raise() on our own process; SIGSTOP suspends until a SIGCONT arrives.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
        match lease {
            Some(l) => self.check_lease(l).await,
            None => Ok(()),
        }
    }

    /// Every snapshot, failing on any that cannot be read: gc must never treat the chunks of an unreadable
    /// snapshot as dead.
    async fn list_snapshots_strict(&self) -> Result<Vec<super::snapshots::Snapshot>> {
        let mut out = Vec::new();
        for info in self.backend.list(names::SNAPSHOTS).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            match self.load_snapshot(id).await {
                Ok(s) => out.push(s),
                Err(Error::Backend(e)) if e.is_not_found() => {} // forgotten meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The earliest start of a writer session that is still alive, and the session objects dead long enough
    /// to remove. Alive means the backend saw the object rewritten within `alive_within` (the writer's own
    /// `heartbeat_at` is not trusted: its clock may be off); `started_at` is on the backend's clock.
    async fn sessions(&self, now: i64) -> Result<(Option<i64>, Vec<String>)> {
        let mut oldest: Option<i64> = None;
        let mut stale = Vec::new();
        let alive_within = super::liveness::alive_within(self.config.gc_safety_age.min(MAX_CONFIG_SECONDS));
        let alive_within = alive_within.as_secs() as i64 * SECOND;
        for info in self.backend.list(names::SESSIONS).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            if now - info.modified > alive_within {
                if now - info.modified > LEFTOVER_AGE.max(2 * alive_within) {
                    stale.push(info.name);
                }
                continue;
            }
            let bytes = match self.backend.get(&info.name).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let s = Session::open(&self.keys, self.repo_id, id, &bytes).map_err(|e| Error::damaged(info.name, e))?;
            let start = s.started_at.min(info.modified);
            oldest = Some(oldest.map_or(start, |o| o.min(start)));
        }
        Ok((oldest, stale))
    }

    async fn gc_run(&self, options: &GcOptions, now: i64, lease: Option<&HeldLease>) -> Result<GcReport> {
        let seconds = |s: u64| s.min(MAX_CONFIG_SECONDS) as i64 * SECOND;
        let (safety_age, grace) = match options.safety {
            Safety::Full => (seconds(self.config.gc_safety_age), seconds(self.config.gc_grace_period)),
            Safety::None => (0, 0),
        };
        let mut report = GcReport { dry_run: options.dry_run, ..Default::default() };

        // 1. Mark, from the snapshots as listed now — before the index is read.
        let marks = MarkSet::new()?;
        for s in self.list_snapshots_strict().await? {
            report.snapshots += 1;
            for st in &s.manifest.streams {
                for c in &st.chunks {
                    marks.insert(c)?;
                }
            }
        }
        let (protect_from, stale_sessions) = self.sessions(now).await?;

        self.sync_cache().await?;
        // 2. Read the index: per pack, how much is live; and which packs are marked deleted.
        let segment_ids: Vec<ObjectId> =
            self.backend.list(names::INDEX).await?.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let mut usage: HashMap<ObjectId, PackUse> = HashMap::new();
        let mut marked_at: HashMap<ObjectId, i64> = HashMap::new();
        for id in &segment_ids {
            let seg = self.load_segment(id).await?;
            for p in &seg.packs {
                if usage.contains_key(&p.pack) {
                    continue;
                }
                let mut u = PackUse::default();
                for e in &p.entries {
                    if marks.contains(&e.chunk)? {
                        u.live_chunks += 1;
                    } else {
                        u.dead_bytes += u64::from(e.stored_len);
                    }
                }
                usage.insert(p.pack, u);
            }
            for d in &seg.deleted {
                let t = marked_at.entry(d.pack).or_insert(d.marked_at);
                *t = (*t).min(d.marked_at);
            }
        }
        report.marked_chunks = marks_count(&marks);

        // 3. Classify every pack that exists.
        let (mut to_mark, mut to_delete, mut to_repack) = (Vec::new(), Vec::new(), Vec::new());
        let mut sizes: HashMap<ObjectId, u64> = HashMap::new();
        let mut earliest_pending: Option<i64> = None;
        // Listed after the index was read: a pack an index segment names was durable before the segment, so
        // a marked pack missing here was deleted (by an earlier gc, maybe one killed before it compacted).
        let listed = self.backend.list(names::PACKS).await?;
        let existing: HashSet<ObjectId> = listed.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let gone: HashSet<ObjectId> =
            marked_at.keys().filter(|p| !existing.contains(p) && usage.contains_key(p)).copied().collect();
        for info in listed {
            let Some(id) = names::id_of(&info.name) else { continue };
            report.packs += 1;
            options.progress.fetch_add(info.size, std::sync::atomic::Ordering::Relaxed);
            sizes.insert(id, info.size);
            let u = usage.get(&id).copied();
            let dead = u.is_none_or(|u| u.live_chunks == 0);
            let young = now - info.modified < safety_age || protect_from.is_some_and(|p| info.modified >= p - SECOND);
            if young {
                if dead {
                    report.packs_too_young += 1;
                }
                continue;
            }
            match (marked_at.get(&id), dead) {
                (Some(&t), true) if now - t >= grace => to_delete.push(id),
                (Some(&t), true) => {
                    report.packs_pending += 1;
                    report.bytes_pending += info.size;
                    earliest_pending = Some(earliest_pending.map_or(t + grace, |e: i64| e.min(t + grace)));
                }
                // Referenced again since it was marked: rescue the chunks that have no live copy elsewhere
                // (a writer may have stored them anew); with none left, it is dead after all.
                (Some(&t), false) => {
                    if self.rescue_candidates(&id, info.size, &marks).await?.is_empty() {
                        if now - t >= grace {
                            to_delete.push(id);
                        } else {
                            report.packs_pending += 1;
                            report.bytes_pending += info.size;
                        }
                    } else {
                        to_repack.push(id);
                    }
                }
                (None, true) => to_mark.push(id),
                (None, false) => {
                    if u.is_some_and(|u| u.dead_bytes as f64 >= options.repack_threshold * info.size as f64) {
                        to_repack.push(id);
                    }
                }
            }
        }
        report.pending_reclaimable_at = earliest_pending.map(crate::time::format_micros);
        if options.dry_run {
            report.packs_marked = to_mark.len() as u64;
            report.bytes_marked = to_mark.iter().map(|p| sizes[p]).sum();
            report.packs_deleted = to_delete.len() as u64;
            report.bytes_deleted = to_delete.iter().map(|p| sizes[p]).sum();
            report.packs_repacked = to_repack.len() as u64;
            return Ok(report);
        }

        // 4. Delete what was marked a grace period ago, under the lease — first, so a gc on a full disk
        //    frees space before it needs any to write new marks.
        self.delete_packs(&to_delete, lease, &sizes, &mut report).await?;

        // 5. Copy live chunks out of packs to repack; mark what is now dead.
        let mut segment = IndexSegment::new();
        // A live chunk may have copies in several packs this run takes away (a writer's rescue, an earlier
        // repack): each is copied out once, and a copy only counts if its pack stays.
        let leaving: HashSet<ObjectId> = to_repack.iter().chain(&to_mark).chain(&to_delete).copied().collect();
        let mut copied: HashSet<ObjectId> = HashSet::new();
        for id in &to_repack {
            segment.packs.extend(self.repack(id, &marks, &leaving, &mut copied).await?);
        }
        report.packs_repacked = to_repack.len() as u64;
        report.packs_written = segment.packs.len() as u64;
        for id in to_mark.iter().chain(to_repack.iter().filter(|p| !marked_at.contains_key(p))) {
            segment.deleted.push(DeletedPack { pack: *id, marked_at: now });
            report.packs_marked += 1;
            report.bytes_marked += sizes[id];
        }
        if !segment.packs.is_empty() || !segment.deleted.is_empty() {
            let seg_id = ObjectId::random();
            self.backend
                .put(&names::index(&seg_id), segment.seal(&self.keys, self.repo_id, seg_id, random_nonce()))
                .await?;
        }
        let mut deleted: HashSet<ObjectId> = to_delete.into_iter().chain(gone).collect();
        if grace == 0 {
            // --safety none: what was just marked is deleted in the same run.
            let now_due: Vec<ObjectId> = segment.deleted.iter().map(|d| d.pack).collect();
            self.delete_packs(&now_due, lease, &sizes, &mut report).await?;
            deleted.extend(now_due);
            report.packs_pending = 0;
            report.bytes_pending = 0;
            report.pending_reclaimable_at = None;
        } else if !segment.deleted.is_empty() {
            let at = crate::time::format_micros(now + grace);
            report.packs_pending += segment.deleted.len() as u64;
            report.bytes_pending += report.bytes_marked;
            report.pending_reclaimable_at.get_or_insert(at);
        }

        // 6. Compact the index when packs went away (their entries must go too, their marks stay) or
        //    segments piled up.
        if !deleted.is_empty() || segment_ids.len() > COMPACT_SEGMENTS {
            report.segments_compacted = self.compact_index(&deleted, &existing, now, lease).await?;
        }

        // 7. Leftovers: session objects of writers long dead, temporary files of killed writes.
        let mut leftovers = stale_sessions;
        for info in self.backend.list(names::TMP).await? {
            if names::is_silo_temporary(&info.name) && now - info.modified > LEFTOVER_AGE {
                leftovers.push(info.name);
            }
        }
        if !leftovers.is_empty() {
            self.before_delete(lease).await?;
            for name in &leftovers {
                match self.backend.delete(name).await {
                    Ok(()) | Err(crate::backend::BackendError::NotFound { .. }) => report.leftovers_removed += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(report)
    }

    async fn delete_packs(
        &self,
        packs: &[ObjectId],
        lease: Option<&HeldLease>,
        sizes: &HashMap<ObjectId, u64>,
        report: &mut GcReport,
    ) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        self.before_delete(lease).await?;
        for id in packs {
            match self.backend.delete(&names::pack(id)).await {
                Ok(()) | Err(crate::backend::BackendError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            report.packs_deleted += 1;
            report.bytes_deleted += sizes.get(id).copied().unwrap_or(0);
        }
        Ok(())
    }

    /// Copies the live chunks of `pack` (still encrypted: a chunk envelope is bound to its chunk id, not to
    /// its pack) into new packs, and returns their index entries.
    async fn repack(
        &self,
        pack_id: &ObjectId,
        marks: &MarkSet,
        leaving: &HashSet<ObjectId>,
        copied: &mut HashSet<ObjectId>,
    ) -> Result<Vec<IndexPack>> {
        let name = names::pack(pack_id);
        let bytes = self.backend.get(&name).await?;
        let trailer =
            pack::open_pack(&self.keys, self.repo_id, *pack_id, &bytes).map_err(|e| Error::damaged(name.clone(), e))?;
        let target = self.config.pack_target_size as usize;
        let mut out = Vec::new();
        let mut writer = PackWriter::with_capacity(target + (1 << 20));
        let cache = self.cache()?;
        for e in trailer.entries.iter() {
            if !marks.contains(&e.chunk)?
                || copied.contains(&e.chunk)
                || has_copy_elsewhere(&cache, &e.chunk, pack_id, leaving)?
            {
                continue;
            }
            copied.insert(e.chunk);
            let sealed = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            writer.push(e.chunk, sealed, e.raw_len);
            if writer.len() >= target {
                let full = std::mem::replace(&mut writer, PackWriter::with_capacity(target + (1 << 20)));
                out.push(self.store_pack(full).await?);
            }
        }
        if !writer.is_empty() {
            out.push(self.store_pack(writer).await?);
        }
        Ok(out)
    }

    /// The referenced chunks of `pack_id` that have no copy in another, unmarked pack.
    async fn rescue_candidates(&self, pack_id: &ObjectId, size: u64, marks: &MarkSet) -> Result<Vec<ObjectId>> {
        let entries = self.read_trailer(pack_id, size).await?;
        let cache = self.cache()?;
        let mut out = Vec::new();
        for e in &entries {
            if marks.contains(&e.chunk)? && !has_copy_elsewhere(&cache, &e.chunk, pack_id, &HashSet::new())? {
                out.push(e.chunk);
            }
        }
        Ok(out)
    }

    pub(crate) async fn store_pack(&self, writer: PackWriter) -> Result<IndexPack> {
        let id = ObjectId::random();
        let (bytes, entries) = writer.finish(&self.keys, self.repo_id, id, random_nonce());
        let size = bytes.len() as u64;
        self.backend.put(&names::pack(&id), bytes).await?;
        Ok(IndexPack { pack: id, pack_size: size, entries })
    }

    /// Rewrites every current segment into a few large ones without the entries of `deleted` packs; the last
    /// output names every input in `supersedes`, and inputs are deleted only after it is durable. The
    /// deletion marks of deleted packs are kept for `TOMBSTONE_RETENTION` (I6): a writer frozen while its
    /// pack was deleted may still index that pack, and the mark is what makes it refuse to commit.
    async fn compact_index(
        &self,
        deleted: &HashSet<ObjectId>,
        existing: &HashSet<ObjectId>,
        now: i64,
        lease: Option<&HeldLease>,
    ) -> Result<u64> {
        let inputs: Vec<ObjectId> =
            self.backend.list(names::INDEX).await?.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut marks: HashMap<ObjectId, i64> = HashMap::new();
        let mut current = IndexSegment::new();
        let mut entries = 0usize;
        let mut outputs = Vec::new();
        for id in &inputs {
            let seg = self.load_segment(id).await?;
            for p in seg.packs {
                if deleted.contains(&p.pack) || !seen.insert(p.pack) {
                    continue;
                }
                entries += p.entries.len();
                current.packs.push(p);
            }
            for d in seg.deleted {
                let gone = deleted.contains(&d.pack) || !existing.contains(&d.pack);
                if !(gone && now - d.marked_at > TOMBSTONE_RETENTION) {
                    let t = marks.entry(d.pack).or_insert(d.marked_at);
                    *t = (*t).min(d.marked_at);
                }
            }
            if entries >= COMPACT_ENTRIES {
                let full = std::mem::replace(&mut current, IndexSegment::new());
                entries = 0;
                let out = ObjectId::random();
                self.backend.put(&names::index(&out), full.seal(&self.keys, self.repo_id, out, random_nonce())).await?;
                outputs.push(out);
            }
        }
        current.deleted = marks.into_iter().map(|(pack, marked_at)| DeletedPack { pack, marked_at }).collect();
        current.supersedes = inputs.clone();
        let out = ObjectId::random();
        self.backend.put(&names::index(&out), current.seal(&self.keys, self.repo_id, out, random_nonce())).await?;
        outputs.push(out);
        // Read the outputs back: every pack of the inputs (but the deleted) must be there before any input goes.
        let mut covered: HashSet<ObjectId> = HashSet::new();
        for id in &outputs {
            covered.extend(self.load_segment(id).await?.packs.iter().map(|p| p.pack));
        }
        if let Some(missing) = seen.iter().find(|p| !covered.contains(p)) {
            return Err(Error::Inconsistent {
                object: "index compaction".into(),
                reason: format!("output does not cover pack {}; inputs kept", missing.short()),
            });
        }
        self.before_delete(lease).await?;
        for id in &inputs {
            match self.backend.delete(&names::index(id)).await {
                Ok(()) | Err(crate::backend::BackendError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(inputs.len() as u64)
    }
}

/// Whether `chunk` has a copy in a pack other than `pack` that gc has not marked and is not taking away in
/// this run (`leaving`).
fn has_copy_elsewhere(
    cache: &crate::cache::IndexCache,
    chunk: &ObjectId,
    pack: &ObjectId,
    leaving: &HashSet<ObjectId>,
) -> Result<bool> {
    for l in cache.locations(chunk)? {
        if l.pack != *pack && !leaving.contains(&l.pack) && !cache.is_marked_deleted(&l.pack)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn marks_count(marks: &MarkSet) -> u64 {
    marks.db.iterator(rocksdb::IteratorMode::Start).count() as u64
}
