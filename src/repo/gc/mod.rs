//! Garbage collection, lock-free with respect to writers (docs/design.md §5 "the gc protocol", I4 gc grace,
//! I6 late writers; format-spec/maintenance.md). A run is a plan, then its execution:
//!
//! - `gc_plan` gathers facts — snapshots listed *before* the index is read, every chunk they reference put
//!   in a mark set (a temporary RocksDB, so memory does not grow with the repository), live writer
//!   sessions, the index's usage and deletion marks per pack, the packs listed — and `plan::decide` (pure)
//!   gives each pack its `PackAction`;
//! - `gc_execute` carries the plan out under the lease: deletes first, then repacks and new marks in one
//!   index segment, then index compaction, then leftovers. The lease is checked right before every
//!   destructive step, so a gc paused past its lease deletes nothing.
//!
//! `--dry-run` prints the plan and executes nothing. Writers never deduplicate against marked packs and,
//! before committing, rescue any chunk whose pack was marked during their session (repo/session.rs).

use super::lease::HeldLease;
use super::Repository;
use crate::backend::{names, ReadBackend};
use crate::cache::ChunkSet;
use crate::{Error, Result};
use serde::Serialize;
use silo_format::envelope::random_nonce;
use silo_format::index::{DeletedPack, IndexPack, IndexSegment};
use silo_format::maintenance::{Sealed, Session};
use silo_format::pack::{self, PackWriter};
use silo_format::ObjectId;
use std::collections::{HashMap, HashSet};

pub mod plan;
pub use plan::{PackAction, PlannedPack, Safety, SafetyPreset};
use plan::{PackFacts, PackUse, RunFacts};

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

#[derive(Clone, Debug)]
pub struct GcOptions {
    pub dry_run: bool,
    pub safety: SafetyPreset,
    pub lease_seconds: u64,
    /// Repack a pack when at least this fraction of its bytes is dead.
    pub repack_threshold: f64,
    /// Bytes of packs examined, repacked or deleted so far, for a progress display.
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Run records (`runs/`) older than this many seconds are deleted.
    pub keep_runs: u64,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            safety: SafetyPreset::Full,
            lease_seconds: 3600,
            repack_threshold: 0.2,
            progress: Default::default(),
            keep_runs: super::runs::KEEP_RUNS_DAYS * 86_400,
        }
    }
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
    /// Packs due for deletion that the store refused to delete (Object Lock retention, no delete right):
    /// they stay marked and indexed, and a later gc tries again.
    pub packs_kept_by_store: u64,
    pub bytes_kept_by_store: u64,
    /// Run records older than the kept age that were (or, in a dry run, would be) deleted.
    pub run_records_deleted: u64,
    /// Packs no index names that hold chunks snapshots reference (a lost index segment), or whose trailer
    /// cannot be read: kept (I25); `silo repair index` indexes them again.
    pub unindexed_kept: Vec<String>,
    /// With --dry-run: every pack the run would act on, and how.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlannedPack>,
}

/// What a gc run will do, decided from the repository as it was read; executed by `gc_execute`.
pub struct GcPlan {
    /// The backend's time the plan was made at.
    pub now: i64,
    pub safety: Safety,
    pub snapshots: u64,
    /// Every listed pack (but those nothing happens to) with its action.
    pub packs: Vec<PlannedPack>,
    /// Packs the index names, marked deleted, and no longer listed: deleted by an earlier gc (maybe one
    /// killed before it compacted); their entries go at the next compaction.
    pub gone: HashSet<ObjectId>,
    /// Session objects of long-dead writers and silo's old temporary objects.
    pub leftovers: Vec<String>,
    /// Unindexed packs kept because they hold referenced chunks or cannot be read (I25).
    pub unindexed_kept: Vec<String>,
    marks: ChunkSet,
    existing: HashSet<ObjectId>,
    segments: usize,
    listed_packs: u64,
}

impl GcPlan {
    fn with(&self, wanted: impl Fn(&PackAction) -> bool) -> impl Iterator<Item = &PlannedPack> {
        self.packs.iter().filter(move |p| wanted(&p.action))
    }

    /// The report of the plan as it stands, before anything is executed (what `--dry-run` prints).
    pub fn report(&self) -> GcReport {
        let count = |f: &dyn Fn(&PackAction) -> bool| -> (u64, u64) {
            self.with(f).fold((0, 0), |(n, b), p| (n + 1, b + p.size))
        };
        let (packs_marked, bytes_marked) = count(&|a| matches!(a, PackAction::Mark));
        let (packs_deleted, bytes_deleted) = count(&|a| matches!(a, PackAction::Delete));
        let (packs_pending, bytes_pending) = count(&|a| matches!(a, PackAction::Pending { .. }));
        let earliest = self
            .packs
            .iter()
            .filter_map(|p| match p.action {
                PackAction::Pending { reclaimable_at } => Some(reclaimable_at),
                _ => None,
            })
            .min();
        GcReport {
            dry_run: true,
            snapshots: self.snapshots,
            marked_chunks: self.marks.len(),
            packs: self.listed_packs,
            packs_marked,
            bytes_marked,
            packs_deleted,
            bytes_deleted,
            packs_repacked: count(&|a| matches!(a, PackAction::Repack | PackAction::Rescue)).0,
            packs_pending,
            bytes_pending,
            pending_reclaimable_at: earliest.map(crate::time::format_micros),
            packs_too_young: count(&|a| matches!(a, PackAction::TooYoung)).0,
            unindexed_kept: self.unindexed_kept.clone(),
            plan: self.packs.clone(),
            ..Default::default()
        }
    }
}

impl Repository {
    /// A whole run: the lease, the plan, its execution (or, with `dry_run`, the plan's report).
    pub async fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        if options.dry_run {
            let mut report = self.gc_plan(options).await?.report();
            report.run_records_deleted = self.prune_runs(options.keep_runs, true).await? as u64;
            return Ok(report);
        }
        self.owner_store("gc")?;
        let lease = self.acquire_lease(options.lease_seconds).await?;
        let result = match self.gc_plan(options).await {
            Ok(plan) => self.gc_execute(plan, &lease).await,
            Err(e) => Err(e),
        };
        self.release_lease(lease).await?;
        let mut report = result?;
        // History stays bounded (maintenance.md "runs"); records are not data, the lease does not cover them.
        report.run_records_deleted = self.prune_runs(options.keep_runs, false).await? as u64;
        Ok(report)
    }

    /// The backend's time, refusing to run when this machine's clock is too far from it: ages are judged on
    /// the clock that stamps packs and session heartbeats; ours only has to agree well enough for the lease.
    async fn backend_now(&self) -> Result<i64> {
        let ours = self.now();
        // A store's clock probe is written and then deleted: a writer handle, which deletes nothing, has
        // none (its gc can only be a dry run, a report).
        let Ok(store) = self.owner_store("the clock probe") else { return Ok(ours) };
        match store.server_time().await? {
            Some(server) if (server - ours).abs() > MAX_SKEW => {
                Err(Error::ClockSkew { seconds: (server - ours) / SECOND })
            }
            Some(server) => Ok(server),
            None => Ok(ours),
        }
    }

    /// Reads the repository and decides, pack by pack, what a run does. Changes nothing.
    pub async fn gc_plan(&self, options: &GcOptions) -> Result<GcPlan> {
        let now = self.backend_now().await?;
        let safety = Safety::preset(options.safety, self.config.gc_safety_age, self.config.gc_grace_period);

        // 1. Mark, from the snapshots as listed now — before the index is read.
        let marks = ChunkSet::new()?;
        let mut snapshots = 0;
        for s in self.list_snapshots_strict().await? {
            snapshots += 1;
            for c in s.manifest.streams.iter().flat_map(|st| &st.chunks) {
                marks.insert(c)?;
            }
        }
        let (oldest_session_start, mut leftovers) = self.sessions(now).await?;

        self.sync_cache().await?;
        // 1b. Mark along delta references (I16): a base is live while a live chunk has a copy that needs it.
        mark_bases(&*self.cache()?, &marks)?;
        // 2. Read the index: per pack, how much is live; and which packs are marked deleted.
        let segment_ids: Vec<ObjectId> =
            self.backend.list(names::INDEX).await?.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let (usage, marked_at) = self.index_usage(&segment_ids, &marks).await?;

        // 3. Decide for every pack that exists. Listed after the index was read: a pack an index segment
        //    names was durable before the segment, so a marked pack missing here was deleted.
        let listed = self.backend.list(names::PACKS).await?;
        let existing: HashSet<ObjectId> = listed.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let gone = marked_at.keys().filter(|p| !existing.contains(p) && usage.contains_key(p)).copied().collect();
        let run = RunFacts { now, oldest_session_start, safety, repack_threshold: options.repack_threshold };
        let mut packs = Vec::new();
        let mut listed_packs = 0;
        let mut unindexed_kept = Vec::new();
        for info in listed {
            let Some(id) = names::id_of(&info.name) else { continue };
            listed_packs += 1;
            options.progress.fetch_add(info.size, std::sync::atomic::Ordering::Relaxed);
            let mut facts = PackFacts {
                size: info.size,
                modified: info.modified,
                usage: usage.get(&id).copied(),
                marked_at: marked_at.get(&id).copied(),
                holds_only_copy: false,
            };
            if facts.usage.is_none() && facts.marked_at.is_none() {
                if let Some((u, why)) = self.unindexed_use(&id, info.size, &marks).await? {
                    tracing::warn!("{}: no index names it, but {why}: kept; run `silo repair index`", info.name);
                    unindexed_kept.push(format!("{}: {why}", info.name));
                    facts.usage = Some(u);
                }
            }
            if facts.marked_at.is_some() && facts.usage.is_some_and(|u| u.live_chunks > 0) {
                facts.holds_only_copy = match self.rescue_candidates(&id, info.size, &marks).await {
                    Ok(only) => !only.is_empty(),
                    // Its trailer cannot be read: assume it holds an only copy (it is then left as it is).
                    Err(Error::Damaged { .. } | Error::Inconsistent { .. }) => true,
                    Err(e) => return Err(e),
                };
            }
            let action = plan::decide(&facts, &run);
            if action != PackAction::Keep {
                packs.push(PlannedPack { pack: id, size: info.size, action });
            }
        }
        leftovers.extend(self.old_temporaries(now).await);
        Ok(GcPlan {
            now,
            safety,
            snapshots,
            packs,
            gone,
            leftovers,
            unindexed_kept,
            marks,
            existing,
            segments: segment_ids.len(),
            listed_packs,
        })
    }

    /// Per indexed pack: how many live chunks it holds and how many bytes are dead; and when each pack was
    /// marked deleted (the earliest mark).
    async fn index_usage(
        &self,
        segment_ids: &[ObjectId],
        marks: &ChunkSet,
    ) -> Result<(HashMap<ObjectId, PackUse>, HashMap<ObjectId, i64>)> {
        let mut usage: HashMap<ObjectId, PackUse> = HashMap::new();
        let mut marked_at: HashMap<ObjectId, i64> = HashMap::new();
        for id in segment_ids {
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
        Ok((usage, marked_at))
    }

    /// I25: a pack no index names is judged by its own trailer, whatever the index says: one holding a
    /// referenced chunk (its segment was lost) or one that cannot be read is kept. Returns the use to plan
    /// with and why, or None when it holds nothing referenced.
    async fn unindexed_use(&self, id: &ObjectId, size: u64, marks: &ChunkSet) -> Result<Option<(PackUse, String)>> {
        let live = match self.read_trailer(id, size).await {
            Ok(t) => {
                let mut n = 0;
                for e in &t.entries {
                    n += u64::from(marks.contains(&e.chunk)?);
                }
                n
            }
            Err(Error::Damaged { .. } | Error::Inconsistent { .. }) => {
                return Ok(Some((PackUse { live_chunks: 1, dead_bytes: 0 }, "its trailer cannot be read".into())))
            }
            // Gone since the listing (or not where its name puts it): nothing to keep.
            Err(Error::Backend(e)) if e.is_not_found() => 0,
            Err(e) => return Err(e),
        };
        Ok((live > 0).then(|| {
            (PackUse { live_chunks: live, dead_bytes: 0 }, format!("holds {live} chunks snapshots reference"))
        }))
    }

    /// Old temporary objects, only tidied up: a `tmp/` that cannot be listed (a read-only or odd repository
    /// gc may still plan on) leaves them for a later run.
    async fn old_temporaries(&self, now: i64) -> Vec<String> {
        match self.backend.list(names::TMP).await {
            Ok(listed) => listed
                .into_iter()
                .filter(|o| names::is_silo_temporary(&o.name) && now - o.modified > LEFTOVER_AGE)
                .map(|o| o.name)
                .collect(),
            Err(e) => {
                tracing::info!("not looking for leftovers in {}: {e}", names::TMP);
                Vec::new()
            }
        }
    }

    /// Carries out `plan` under `lease` (checked before every destructive step).
    pub async fn gc_execute(&self, plan: GcPlan, lease: &HeldLease) -> Result<GcReport> {
        let mut report = GcReport { dry_run: false, ..plan.report() };
        report.plan.clear();
        (report.packs_marked, report.bytes_marked, report.packs_deleted, report.bytes_deleted) = (0, 0, 0, 0);
        let sizes: HashMap<ObjectId, u64> = plan.packs.iter().map(|p| (p.pack, p.size)).collect();
        let ids = |wanted: fn(&PackAction) -> bool| -> Vec<ObjectId> { plan.with(wanted).map(|p| p.pack).collect() };
        let to_delete = ids(|a| matches!(a, PackAction::Delete));
        let to_repack = ids(|a| matches!(a, PackAction::Repack | PackAction::Rescue));
        let mut to_mark = ids(|a| matches!(a, PackAction::Mark | PackAction::Repack));

        // Delete what was marked a grace period ago — first, so a gc on a full disk frees space before it
        // needs any to write new marks.
        let deleted_now = self.delete_packs(&to_delete, lease, &sizes, &mut report).await?;

        // Copy live chunks out of packs to repack or rescue; mark what is now dead. A live chunk may have
        // copies in several packs this run takes away (a writer's rescue, an earlier repack): each is copied
        // out once, and a copy only counts if its pack stays.
        let mut segment = IndexSegment::new();
        let leaving: HashSet<ObjectId> = plan.with(PackAction::takes_away).map(|p| p.pack).collect();
        let mut copied: HashSet<ObjectId> = HashSet::new();
        let mut unreadable: HashSet<ObjectId> = HashSet::new();
        for id in &to_repack {
            match self.repack(id, &plan.marks, &leaving, &mut copied).await {
                Ok(packs) => segment.packs.extend(packs),
                // A pack whose trailer cannot be read is left as it is (its chunks are still read by their
                // index entries) and never marked: `silo repair packs` rewrites it. gc goes on with the rest.
                Err(Error::Damaged { object, source }) => {
                    tracing::warn!("{object}: {source}; not repacked (run `silo repair packs`)");
                    report.unindexed_kept.push(format!("{object}: not repacked, {source}; run `silo repair packs`"));
                    unreadable.insert(*id);
                }
                Err(e) => return Err(e),
            }
        }
        report.packs_written = segment.packs.len() as u64;
        to_mark.retain(|id| !unreadable.contains(id));
        for id in &to_mark {
            segment.deleted.push(DeletedPack { pack: *id, marked_at: plan.now });
            report.packs_marked += 1;
            report.bytes_marked += sizes[id];
        }
        if !segment.packs.is_empty() || !segment.deleted.is_empty() {
            let seg_id = ObjectId::random();
            self.save(seg_id, &segment).await?;
        }
        let mut deleted: HashSet<ObjectId> = deleted_now.into_iter().chain(plan.gone.iter().copied()).collect();
        if plan.safety.grace_period == 0 {
            // --safety none: what was just marked is deleted in the same run.
            deleted.extend(self.delete_packs(&to_mark, lease, &sizes, &mut report).await?);
            report.packs_pending = 0;
            report.bytes_pending = 0;
            report.pending_reclaimable_at = None;
        } else if !segment.deleted.is_empty() {
            let at = crate::time::format_micros(plan.now + plan.safety.grace_period);
            report.packs_pending += segment.deleted.len() as u64;
            report.bytes_pending += report.bytes_marked;
            report.pending_reclaimable_at.get_or_insert(at);
        }

        // Compact the index when packs went away (their entries must go too, their marks stay) or segments
        // piled up.
        if !deleted.is_empty() || plan.segments > COMPACT_SEGMENTS {
            report.segments_compacted = self.compact_index(&deleted, &plan.existing, plan.now, lease).await?;
        }

        // Leftovers: session objects of writers long dead, temporary files of killed writes.
        if !plan.leftovers.is_empty() {
            self.check_lease(lease).await?;
            for name in &plan.leftovers {
                match lease.store().delete(name).await {
                    Ok(()) | Err(crate::backend::BackendError::NotFound { .. }) => report.leftovers_removed += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(report)
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

    async fn delete_packs(
        &self,
        packs: &[ObjectId],
        lease: &HeldLease,
        sizes: &HashMap<ObjectId, u64>,
        report: &mut GcReport,
    ) -> Result<Vec<ObjectId>> {
        if packs.is_empty() {
            return Ok(Vec::new());
        }
        self.check_lease(lease).await?;
        let mut deleted = Vec::with_capacity(packs.len());
        for id in packs {
            let size = sizes.get(id).copied().unwrap_or(0);
            match lease.store().delete(&names::pack(id)).await {
                Ok(()) | Err(crate::backend::BackendError::NotFound { .. }) => {}
                // The store refuses: an Object Lock retention, or credentials without delete rights. The pack
                // stays marked (and indexed); a later gc tries again once the retention has passed.
                Err(crate::backend::BackendError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    tracing::warn!(
                        "{}: the store refused to delete it (Object Lock retention or no delete permission); it \
                         stays marked, and a later gc tries again",
                        names::pack(id)
                    );
                    report.packs_kept_by_store += 1;
                    report.bytes_kept_by_store += size;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            report.packs_deleted += 1;
            report.bytes_deleted += size;
            deleted.push(*id);
        }
        Ok(deleted)
    }

    /// Copies the live chunks of `pack` (still encrypted: a chunk envelope is bound to its chunk id, not to
    /// its pack) into new packs, and returns their index entries.
    async fn repack(
        &self,
        pack_id: &ObjectId,
        marks: &ChunkSet,
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
        let mut deltas = trailer.deltas.iter().peekable();
        for (i, e) in trailer.entries.iter().enumerate() {
            let delta = deltas
                .next_if(|d| d.entry as usize == i)
                .map(|d| silo_format::codec::delta::DeltaHeader { base: d.base, depth: d.depth });
            if !marks.contains(&e.chunk)?
                || copied.contains(&e.chunk)
                || has_copy_elsewhere(&cache, &e.chunk, pack_id, leaving)?
            {
                continue;
            }
            let sealed = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            // I20: a copy that fails authentication is damage, never copied into a new pack (where writers
            // would deduplicate against it again).
            if let Err(err) = pack::open_chunk_parts(&self.keys, self.repo_id, e.chunk, sealed, e.raw_len) {
                tracing::warn!("{name}: chunk {} is damaged ({err}); not copied", e.chunk.short());
                continue;
            }
            copied.insert(e.chunk);
            // A delta's envelope is copied as it is; its reference goes along into the new trailer.
            writer.push_with(e.chunk, sealed, e.raw_len, delta);
            if writer.is_full(target) {
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
    async fn rescue_candidates(&self, pack_id: &ObjectId, size: u64, marks: &ChunkSet) -> Result<Vec<ObjectId>> {
        let entries = self.read_trailer(pack_id, size).await?.entries;
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
        let (bytes, trailer) = writer.finish(&self.keys, self.repo_id, id, random_nonce());
        let size = bytes.len() as u64;
        self.backend.create(&names::pack(&id), bytes).await?;
        Ok(IndexPack { pack: id, pack_size: size, entries: trailer.entries, deltas: trailer.deltas })
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
        lease: &HeldLease,
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
                self.save(out, &full).await?;
                outputs.push(out);
            }
        }
        current.deleted = marks.into_iter().map(|(pack, marked_at)| DeletedPack { pack, marked_at }).collect();
        current.supersedes = inputs.clone();
        let out = ObjectId::random();
        self.save(out, &current).await?;
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
        self.check_lease(lease).await?;
        for id in &inputs {
            match lease.store().delete(&names::index(id)).await {
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

/// Adds to `marks` every base a marked chunk's copy is a delta of, transitively (I16). Passes over the
/// index's delta copies until one adds nothing; chains are at most `MAX_DEPTH` long, so that many passes (plus
/// one) reach the fixpoint whatever order the copies come in. Memory stays that of the mark set.
fn mark_bases(cache: &crate::cache::IndexCache, marks: &ChunkSet) -> Result<()> {
    for _ in 0..=silo_format::codec::delta::MAX_DEPTH {
        let mut added = 0u64;
        let mut failed = None;
        cache.for_each_location(|chunk, loc| {
            let Some(d) = loc.delta else { return };
            if failed.is_some() {
                return;
            }
            let step = || -> Result<bool> {
                if marks.contains(chunk)? && !marks.contains(&d.base)? {
                    marks.insert(&d.base)?;
                    return Ok(true);
                }
                Ok(false)
            };
            match step() {
                Ok(true) => added += 1,
                Ok(false) => {}
                Err(e) => failed = Some(e),
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if added == 0 {
            return Ok(());
        }
    }
    Err(Error::Inconsistent {
        object: "index".into(),
        reason: "delta references form chains longer than the format allows (or a cycle); gc stops without \
                 deleting anything: run `silo check`"
            .into(),
    })
}
