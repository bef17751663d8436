//! `repair index`: rebuilds index segments from pack trailers — packs carry their own trailer for exactly
//! this. Packs no readable segment covers are indexed anew; unreadable segments are replaced (deleted only
//! after the replacement is durable); packs the index names that are gone leave the index. Holds the gc
//! lease, so no gc compacts or deletes meanwhile.
//!
//! Upholds I24 (after `repair index` the index is exactly what the packs' trailers hold, less the copies
//! found damaged) and I20 (a copy found missing or damaged leaves the index, so no writer deduplicates
//! against it again: `drop_lost_from_index`, also used by `repair snapshots`).

use super::check::LostCopy;
use super::lease::HeldLease;
use super::Repository;
use crate::backend::{names, ReadBackend};
use crate::{Error, Result};
use serde::Serialize;
use silo_format::index::{IndexPack, IndexSegment};
use silo_format::{pack, ObjectId};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairReport {
    pub dry_run: bool,
    pub packs: u64,
    pub packs_indexed: u64,
    pub chunks_indexed: u64,
    pub segments_replaced: Vec<String>,
    /// Packs whose trailer cannot be read: their chunks stay unindexed (check reports the snapshots).
    pub unreadable_packs: Vec<String>,
    /// Packs the index named that are gone: their entries left the index (their chunks are stored again by
    /// the next backup that has them).
    pub packs_gone: Vec<String>,
}

/// What `repair index` will write and remove, read from the repository; executed by `repair_index_execute`.
pub struct RepairPlan {
    /// The report of the plan (what `--dry-run` prints).
    pub report: RepairReport,
    /// A new segment for every pack no readable segment covers.
    segment: IndexSegment,
    /// Segments that do not open: removed once the new segment is durable.
    damaged_segments: Vec<String>,
    /// Indexed packs that are gone.
    gone: Vec<LostCopy>,
}

impl Repository {
    /// The whole repair: the lease, the plan, its execution (with `dry_run`, only the plan's report).
    pub async fn repair_index(&self, dry_run: bool) -> Result<RepairReport> {
        if dry_run {
            return Ok(self.repair_index_plan().await?.report);
        }
        self.owner_store("repair index")?;
        let lease = self.acquire_lease(3600).await?;
        let result = match self.repair_index_plan().await {
            Ok(plan) => self.repair_index_execute(plan, &lease).await,
            Err(e) => Err(e),
        };
        self.release_lease(lease).await?;
        result
    }

    /// Reads every segment and every pack no readable segment covers. Changes nothing.
    pub async fn repair_index_plan(&self) -> Result<RepairPlan> {
        let mut report = RepairReport { dry_run: true, ..Default::default() };
        let mut covered: HashSet<ObjectId> = HashSet::new();
        let mut damaged_segments = Vec::new();
        for info in self.backend.list(names::INDEX).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            match self.load_segment(&id).await {
                Ok(seg) => covered.extend(seg.packs.iter().map(|p| p.pack)),
                Err(Error::Damaged { .. }) => damaged_segments.push(info.name.clone()),
                Err(e) => return Err(e),
            }
        }
        let mut segment = IndexSegment::new();
        // Listed after the segments were read: a pack a segment names was durable before the segment was
        // written, so one missing from this listing is gone.
        let listed = self.backend.list(names::PACKS).await?;
        let existing: HashSet<ObjectId> = listed.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let mut gone: Vec<ObjectId> = covered.iter().filter(|p| !existing.contains(p)).copied().collect();
        gone.sort_unstable();
        report.packs_gone = gone.iter().map(names::pack).collect();
        for info in listed {
            let Some(pack_id) = names::id_of(&info.name) else { continue };
            report.packs += 1;
            if covered.contains(&pack_id) {
                continue;
            }
            match self.read_trailer(&pack_id, info.size).await {
                Ok(t) => {
                    report.packs_indexed += 1;
                    report.chunks_indexed += t.entries.len() as u64;
                    // The trailer's delta references come along, so gc keeps following bases (I16).
                    segment.packs.push(IndexPack {
                        pack: pack_id,
                        pack_size: info.size,
                        entries: t.entries,
                        deltas: t.deltas,
                    });
                }
                Err(Error::Damaged { object, source }) => report.unreadable_packs.push(format!("{object}: {source}")),
                Err(Error::Inconsistent { object, reason }) => {
                    report.unreadable_packs.push(format!("{object}: {reason}"))
                }
                Err(e) => return Err(e),
            }
        }
        report.segments_replaced = damaged_segments.clone();
        let gone = gone.into_iter().map(|pack| LostCopy { pack, chunk: None }).collect();
        Ok(RepairPlan { report, segment, damaged_segments, gone })
    }

    /// Writes the plan's segment, then (the lease still held) removes the damaged segments it replaces.
    pub async fn repair_index_execute(&self, plan: RepairPlan, lease: &HeldLease) -> Result<RepairReport> {
        if !plan.segment.packs.is_empty() {
            self.save(ObjectId::random(), &plan.segment).await?;
        }
        self.check_lease(lease).await?;
        for name in &plan.damaged_segments {
            lease.store().delete(name).await?;
        }
        self.drop_lost_from_index(&plan.gone, lease).await?;
        Ok(RepairReport { dry_run: false, ..plan.report })
    }

    /// I20: rewrites every segment that names a `lost` copy into one new segment without it (a pack lost
    /// whole leaves the index; a damaged chunk leaves its pack's entry list), keeping the segments' deletion
    /// marks and naming them in `supersedes`; they are deleted once it is durable and the lease still holds.
    /// Returns how many segments were rewritten.
    pub async fn drop_lost_from_index(&self, lost: &[LostCopy], lease: &HeldLease) -> Result<usize> {
        if lost.is_empty() {
            return Ok(0);
        }
        let whole: HashSet<ObjectId> = lost.iter().filter(|l| l.chunk.is_none()).map(|l| l.pack).collect();
        let mut chunks: HashMap<ObjectId, HashSet<ObjectId>> = HashMap::new();
        for l in lost {
            if let Some(c) = l.chunk {
                chunks.entry(l.pack).or_default().insert(c);
            }
        }
        let mut rewritten = IndexSegment::new();
        let mut inputs = Vec::new();
        let mut seen: HashSet<ObjectId> = HashSet::new();
        for info in self.backend.list(names::INDEX).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            let seg = match self.load_segment(&id).await {
                Ok(seg) => seg,
                // Unreadable segments are `repair index`'s to replace.
                Err(Error::Damaged { .. }) => continue,
                Err(Error::Backend(e)) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            if !seg.packs.iter().any(|p| whole.contains(&p.pack) || chunks.contains_key(&p.pack)) {
                continue;
            }
            inputs.push(id);
            for p in seg.packs {
                if whole.contains(&p.pack) || !seen.insert(p.pack) {
                    continue;
                }
                match chunks.get(&p.pack) {
                    Some(drop) => rewritten.packs.extend(p.without(drop)),
                    None => rewritten.packs.push(p),
                }
            }
            rewritten.deleted.extend(seg.deleted);
        }
        if inputs.is_empty() {
            return Ok(0);
        }
        rewritten.supersedes = inputs.clone();
        self.save(ObjectId::random(), &rewritten).await?;
        self.check_lease(lease).await?;
        for id in &inputs {
            match lease.store().delete(&names::index(id)).await {
                Ok(()) | Err(crate::backend::BackendError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(inputs.len())
    }

    /// A pack's trailer: entries and delta references (footer and trailer only, two ranged reads).
    pub async fn read_trailer(&self, pack_id: &ObjectId, size: u64) -> Result<silo_format::pack::PackTrailer> {
        let name = names::pack(pack_id);
        let too_small = || Error::Inconsistent { object: name.clone(), reason: "too short to be a pack".into() };
        if size < (pack::HEADER_LEN + pack::FOOTER_LEN) as u64 {
            return Err(too_small());
        }
        let footer = self.backend.get_range(&name, size - pack::FOOTER_LEN as u64, pack::FOOTER_LEN as u64).await?;
        let len = u64::from(pack::parse_footer(&footer).map_err(|e| Error::damaged(name.clone(), e))?);
        let start = (size - pack::FOOTER_LEN as u64)
            .checked_sub(len)
            .filter(|s| *s >= pack::HEADER_LEN as u64)
            .ok_or_else(too_small)?;
        let sealed = self.backend.get_range(&name, start, len).await?;
        let body = pack::open_trailer(&self.keys, self.repo_id, *pack_id, &sealed)
            .map_err(|e| Error::damaged(name.clone(), e))?;
        pack::decode_trailer_body(&body, start).map_err(|e| Error::damaged(name.clone(), e))
    }
}

/// What `repair packs` found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairPacksReport {
    pub dry_run: bool,
    /// Packs whose size or trailer no longer matches the index (named, with the problem).
    pub damaged_packs: Vec<String>,
    /// Chunks read back by their index entries and written into new packs.
    pub chunks_rewritten: u64,
    /// Chunks that failed authentication: lost with the pack (the next backup of the same data stores them).
    pub chunks_lost: u64,
    pub packs_written: u64,
    /// Packs no index names whose trailer cannot be read: their chunks cannot be located, so nothing
    /// rewrites them (gc keeps them).
    pub unrepairable: Vec<String>,
}

impl Repository {
    /// `repair packs` (restic's name): a pack whose size or trailer no longer matches the index (cut short,
    /// its trailer damaged) keeps its chunks readable by their index entries; its readable chunks are
    /// copied, still sealed and authenticated, into new packs and indexed, and the damaged pack leaves the
    /// index with a deletion mark, so gc removes it after the grace period (I20, I24). Holds the lease.
    pub async fn repair_packs(&self, dry_run: bool) -> Result<RepairPacksReport> {
        let mut report = RepairPacksReport { dry_run, ..Default::default() };
        let mut indexed: HashMap<ObjectId, IndexPack> = HashMap::new();
        for info in self.backend.list(names::INDEX).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            match self.load_segment(&id).await {
                Ok(seg) => {
                    for p in seg.packs {
                        indexed.entry(p.pack).or_insert(p);
                    }
                }
                Err(Error::Damaged { .. }) => continue,
                Err(Error::Backend(e)) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        let mut damaged: Vec<(ObjectId, String)> = Vec::new();
        for info in self.backend.list(names::PACKS).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            let Some(p) = indexed.get(&id) else {
                match self.read_trailer(&id, info.size).await {
                    Ok(_) => {}
                    Err(Error::Damaged { source, .. }) => report.unrepairable.push(format!("{}: {source}", info.name)),
                    Err(Error::Inconsistent { reason, .. }) => {
                        report.unrepairable.push(format!("{}: {reason}", info.name))
                    }
                    Err(Error::Backend(e)) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
                continue;
            };
            let problem = if info.size != p.pack_size {
                Some(format!("{} bytes where the index says {}", info.size, p.pack_size))
            } else {
                match self.read_trailer(&id, info.size).await {
                    Ok(t) if p.agrees_with(&t.entries, &t.deltas) => None,
                    Ok(_) => Some("trailer does not match the index".to_string()),
                    Err(Error::Damaged { source, .. }) => Some(source.to_string()),
                    Err(Error::Inconsistent { reason, .. }) => Some(reason),
                    Err(e) => return Err(e),
                }
            };
            if let Some(problem) = problem {
                report.damaged_packs.push(format!("{}: {problem}", info.name));
                damaged.push((id, problem));
            }
        }
        if dry_run || damaged.is_empty() {
            return Ok(report);
        }
        let lease = self.acquire_lease(3600).await?;
        let result = self.rewrite_damaged_packs(&damaged, &indexed, &lease, &mut report).await;
        self.release_lease(lease).await?;
        result.map(|()| report)
    }

    async fn rewrite_damaged_packs(
        &self,
        damaged: &[(ObjectId, String)],
        indexed: &HashMap<ObjectId, IndexPack>,
        lease: &HeldLease,
        report: &mut RepairPacksReport,
    ) -> Result<()> {
        let target = self.config.pack_target_size as usize;
        let mut segment = IndexSegment::new();
        let mut writer = pack::PackWriter::with_capacity(target + (1 << 20));
        for (id, _) in damaged {
            let Some(p) = indexed.get(id) else { continue };
            let bytes = self.backend.get(&names::pack(id)).await?;
            let delta_of: HashMap<u32, &pack::DeltaRef> = p.deltas.iter().map(|d| (d.entry, d)).collect();
            for (i, e) in p.entries.iter().enumerate() {
                let sealed = bytes.get(e.offset as usize..e.offset as usize + e.stored_len as usize);
                let ok =
                    sealed.filter(|s| pack::open_chunk_parts(&self.keys, self.repo_id, e.chunk, s, e.raw_len).is_ok());
                let Some(sealed) = ok else {
                    tracing::warn!(
                        "{}: chunk {} cannot be read; it is lost with the pack",
                        names::pack(id),
                        e.chunk.short()
                    );
                    report.chunks_lost += 1;
                    continue;
                };
                let delta = delta_of
                    .get(&(i as u32))
                    .map(|d| silo_format::codec::delta::DeltaHeader { base: d.base, depth: d.depth });
                writer.push_with(e.chunk, sealed, e.raw_len, delta);
                report.chunks_rewritten += 1;
                if writer.is_full(target) {
                    let full = std::mem::replace(&mut writer, pack::PackWriter::with_capacity(target + (1 << 20)));
                    segment.packs.push(self.store_pack(full).await?);
                }
            }
        }
        if !writer.is_empty() {
            segment.packs.push(self.store_pack(writer).await?);
        }
        report.packs_written = segment.packs.len() as u64;
        // The new packs are durable; one segment indexes them and marks the damaged packs (gc deletes them
        // after the grace period), then the damaged packs leave the segments that named them.
        let now = self.now();
        segment.deleted =
            damaged.iter().map(|(pack, _)| silo_format::index::DeletedPack { pack: *pack, marked_at: now }).collect();
        self.check_lease(lease).await?;
        self.save(ObjectId::random(), &segment).await?;
        let lost: Vec<LostCopy> = damaged.iter().map(|(pack, _)| LostCopy { pack: *pack, chunk: None }).collect();
        self.drop_lost_from_index(&lost, lease).await?;
        Ok(())
    }
}
