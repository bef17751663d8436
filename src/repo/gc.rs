//! Garbage collection, lock-free with respect to writers (DESIGN.md §5, format-spec/maintenance.md).
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
const MAX_SKEW: i64 = 300 * SECOND;

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
        let now = crate::time::now_micros();
        if let Some(server) = self.backend.server_time().await? {
            let ours = now - crate::time::test_offset_micros();
            if (server - ours).abs() > MAX_SKEW {
                return Err(Error::ClockSkew { seconds: (server - ours) / SECOND });
            }
        }
        if options.dry_run {
            return self.gc_run(options, now, None).await;
        }
        let lease = self.acquire_lease(now, options.lease_seconds).await?;
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

    /// The earliest start of a writer session that is still alive (heartbeat within the safety age).
    async fn oldest_live_session(&self, now: i64, safety_age: i64) -> Result<Option<i64>> {
        let mut oldest: Option<i64> = None;
        // A session heartbeats every 60 s; one silent for 10 minutes (or the safety age, if longer) is dead.
        let alive_within = safety_age.max(600 * SECOND);
        for (_, _, s) in self.load_all::<Session>(names::SESSIONS).await? {
            if now - s.heartbeat_at <= alive_within {
                oldest = Some(oldest.map_or(s.started_at, |o| o.min(s.started_at)));
            }
        }
        Ok(oldest)
    }

    async fn gc_run(&self, options: &GcOptions, now: i64, lease: Option<&HeldLease>) -> Result<GcReport> {
        let (safety_age, grace) = match options.safety {
            Safety::Full => (self.config.gc_safety_age as i64 * SECOND, self.config.gc_grace_period as i64 * SECOND),
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
        let protect_from = self.oldest_live_session(now, safety_age).await?;

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
        for info in self.backend.list(names::PACKS).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            report.packs += 1;
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

        // 4. Copy live chunks out of packs to repack; mark what is now dead.
        let mut segment = IndexSegment::new();
        for id in &to_repack {
            segment.packs.extend(self.repack(id, &marks).await?);
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
        if grace == 0 {
            // --safety none: what was just marked is deleted in the same run.
            to_delete.extend(segment.deleted.iter().map(|d| d.pack));
            report.packs_pending = 0;
            report.bytes_pending = 0;
            report.pending_reclaimable_at = None;
        } else if !segment.deleted.is_empty() {
            let at = crate::time::format_micros(now + grace);
            report.packs_pending += segment.deleted.len() as u64;
            report.bytes_pending += report.bytes_marked;
            report.pending_reclaimable_at.get_or_insert(at);
        }

        // 5. Delete, under the lease.
        if !to_delete.is_empty() {
            self.before_delete(lease).await?;
            for id in &to_delete {
                match self.backend.delete(&names::pack(id)).await {
                    Ok(()) | Err(crate::backend::BackendError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                report.packs_deleted += 1;
                report.bytes_deleted += sizes[id];
            }
        }

        // 6. Compact the index when packs went away (their entries must go too) or segments piled up.
        let deleted: HashSet<ObjectId> = to_delete.into_iter().collect();
        if !deleted.is_empty() || segment_ids.len() > COMPACT_SEGMENTS {
            report.segments_compacted = self.compact_index(&deleted, lease).await?;
        }
        Ok(report)
    }

    /// Copies the live chunks of `pack` (still encrypted: a chunk envelope is bound to its chunk id, not to
    /// its pack) into new packs, and returns their index entries.
    async fn repack(&self, pack_id: &ObjectId, marks: &MarkSet) -> Result<Vec<IndexPack>> {
        let name = names::pack(pack_id);
        let bytes = self.backend.get(&name).await?;
        let trailer =
            pack::open_pack(&self.keys, self.repo_id, *pack_id, &bytes).map_err(|e| Error::damaged(name.clone(), e))?;
        let target = self.config.pack_target_size as usize;
        let mut out = Vec::new();
        let mut writer = PackWriter::with_capacity(target + (1 << 20));
        let cache = self.cache()?;
        for e in trailer.entries.iter() {
            if !marks.contains(&e.chunk)? || has_copy_elsewhere(&cache, &e.chunk, pack_id)? {
                continue;
            }
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
            if marks.contains(&e.chunk)? && !has_copy_elsewhere(&cache, &e.chunk, pack_id)? {
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
    /// output names every input in `supersedes`, and inputs are deleted only after it is durable.
    async fn compact_index(&self, deleted: &HashSet<ObjectId>, lease: Option<&HeldLease>) -> Result<u64> {
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
                if !deleted.contains(&d.pack) {
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

fn has_copy_elsewhere(cache: &crate::cache::IndexCache, chunk: &ObjectId, pack: &ObjectId) -> Result<bool> {
    Ok(cache.live_location(chunk)?.is_some_and(|l| l.pack != *pack))
}

fn marks_count(marks: &MarkSet) -> u64 {
    marks.db.iterator(rocksdb::IteratorMode::Start).count() as u64
}
