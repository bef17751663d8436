//! `repair index`: rebuilds index segments from pack trailers — packs carry their own trailer for exactly
//! this. Packs no readable segment covers are indexed anew; unreadable segments are replaced (deleted only
//! after the replacement is durable). Holds the gc lease, so no gc compacts or deletes meanwhile.

use super::lease::HeldLease;
use super::Repository;
use crate::backend::names;
use crate::{Error, Result};
use serde::Serialize;
use silo_format::index::{IndexPack, IndexSegment};
use silo_format::{pack, ObjectId};
use std::collections::HashSet;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairReport {
    pub dry_run: bool,
    pub packs: u64,
    pub packs_indexed: u64,
    pub chunks_indexed: u64,
    pub segments_replaced: Vec<String>,
    /// Packs whose trailer cannot be read: their chunks stay unindexed (check reports the snapshots).
    pub unreadable_packs: Vec<String>,
}

/// What `repair index` will write and remove, read from the repository; executed by `repair_index_execute`.
pub struct RepairPlan {
    /// The report of the plan (what `--dry-run` prints).
    pub report: RepairReport,
    /// A new segment for every pack no readable segment covers.
    segment: IndexSegment,
    /// Segments that do not open: removed once the new segment is durable.
    damaged_segments: Vec<String>,
}

impl Repository {
    /// The whole repair: the lease, the plan, its execution (with `dry_run`, only the plan's report).
    pub async fn repair_index(&self, dry_run: bool) -> Result<RepairReport> {
        if dry_run {
            return Ok(self.repair_index_plan().await?.report);
        }
        self.require_owner("repair index")?;
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
        for info in self.backend.list(names::PACKS).await? {
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
        Ok(RepairPlan { report, segment, damaged_segments })
    }

    /// Writes the plan's segment, then (the lease still held) removes the damaged segments it replaces.
    pub async fn repair_index_execute(&self, plan: RepairPlan, lease: &HeldLease) -> Result<RepairReport> {
        if !plan.segment.packs.is_empty() {
            self.save(ObjectId::random(), &plan.segment).await?;
        }
        self.check_lease(lease).await?;
        for name in &plan.damaged_segments {
            self.backend.delete(name).await?;
        }
        Ok(RepairReport { dry_run: false, ..plan.report })
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
