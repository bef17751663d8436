//! `repair index`: rebuilds index segments from pack trailers — packs carry their own trailer for exactly
//! this. Packs no readable segment covers are indexed anew; unreadable segments are replaced (deleted only
//! after the replacement is durable). Holds the gc lease, so no gc compacts or deletes meanwhile.

use super::Repository;
use crate::backend::names;
use crate::{Error, Result};
use serde::Serialize;
use silo_format::envelope::random_nonce;
use silo_format::index::{IndexPack, IndexSegment};
use silo_format::{pack, ObjectId, Sealed};
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

impl Repository {
    pub async fn repair_index(&self, dry_run: bool) -> Result<RepairReport> {
        if dry_run {
            return self.repair_index_under(None).await;
        }
        let lease = self.acquire_lease(crate::time::now_micros(), 3600).await?;
        let result = self.repair_index_under(Some(&lease)).await;
        if self.check_lease(&lease).await.is_ok() {
            self.backend.delete(names::LEASE).await?;
        }
        result
    }

    async fn repair_index_under(&self, lease: Option<&super::gc::HeldLease>) -> Result<RepairReport> {
        let dry_run = lease.is_none();
        let mut report = RepairReport { dry_run, ..Default::default() };
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
                Ok(entries) => {
                    report.packs_indexed += 1;
                    report.chunks_indexed += entries.len() as u64;
                    segment.packs.push(IndexPack { pack: pack_id, pack_size: info.size, entries });
                }
                Err(Error::Damaged { object, source }) => report.unreadable_packs.push(format!("{object}: {source}")),
                Err(Error::Inconsistent { object, reason }) => {
                    report.unreadable_packs.push(format!("{object}: {reason}"))
                }
                Err(e) => return Err(e),
            }
        }
        report.segments_replaced = damaged_segments.clone();
        if dry_run {
            return Ok(report);
        }
        if !segment.packs.is_empty() {
            let id = ObjectId::random();
            self.backend.put(&names::index(&id), segment.seal(&self.keys, self.repo_id, id, random_nonce())).await?;
        }
        if let Some(lease) = lease {
            self.check_lease(lease).await?;
            for name in &damaged_segments {
                self.backend.delete(name).await?;
            }
        }
        Ok(report)
    }

    /// A pack's entries from its own trailer (footer and trailer only, two ranged reads).
    pub async fn read_trailer(&self, pack_id: &ObjectId, size: u64) -> Result<Vec<silo_format::pack::PackEntry>> {
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
        Ok(pack::decode_trailer_body(&body, start).map_err(|e| Error::damaged(name.clone(), e))?.entries)
    }
}
