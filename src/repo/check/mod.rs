//! `silo check`: structure (every snapshot's chunks indexed; every indexed pack present, of the indexed size,
//! with a trailer that matches the index; unindexed packs reported as orphans), optional data verification of
//! all or a sample of packs (decrypt, decompress, re-hash every chunk), and freshness. Reads only; never uses
//! the local cache, so damage hidden from a warm cache is still found (I3, I5).
//!
//! In phases (restic's checker as a model): load keys, snapshots and the index; plan each pack's check
//! (`plan::plan_pack`, pure); read the packs as planned; assess which findings are damage and which
//! snapshots they affect (`plan::assess`, pure); freshness.

pub mod plan;

use super::snapshots::SnapshotSpec;
use super::Repository;
use crate::backend::names;
use crate::{Error, Result};
use plan::{Finding, PackCheck};
use serde::Serialize;
use silo_format::index::IndexSegment;
use silo_format::keyfile::KeyFile;
use silo_format::manifest::SnapshotManifest;
use silo_format::pack::{self, PackEntry};
use silo_format::{ObjectId, Sealed};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug, PartialEq)]
pub enum DataCheck {
    None,
    All,
    /// A fraction of the packs, chosen at random.
    Percent(f64),
    /// Part `n` (1-based) of `m` deterministic slices of the packs, by id: `1/7` on Monday, `2/7` on Tuesday...
    Slice(u32, u32),
}

impl DataCheck {
    /// Parses `--read-data-subset` values: `5%` or `2/7`.
    pub fn parse_subset(text: &str) -> Option<Self> {
        if let Some(p) = text.strip_suffix('%') {
            let v: f64 = p.parse().ok()?;
            return (v > 0.0 && v <= 100.0).then_some(DataCheck::Percent(v / 100.0));
        }
        let (n, m) = text.split_once('/')?;
        let (n, m): (u32, u32) = (n.parse().ok()?, m.parse().ok()?);
        (n >= 1 && n <= m).then_some(DataCheck::Slice(n, m))
    }

    fn selects(&self, pack: &ObjectId) -> bool {
        match self {
            DataCheck::None => false,
            DataCheck::All => true,
            DataCheck::Percent(f) => rand::random::<f64>() < *f,
            DataCheck::Slice(n, m) => slice_of(pack, *m) == *n,
        }
    }
}

fn slice_of(pack: &ObjectId, m: u32) -> u32 {
    (u32::from_le_bytes([pack.0[0], pack.0[1], pack.0[2], pack.0[3]]) % m) + 1
}

#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub data: DataCheck,
    pub snapshot: Option<SnapshotSpec>,
    /// Seconds; stale when the newest snapshot (of `max_age_name`, if given) is older.
    pub max_age: Option<u64>,
    pub max_age_name: Option<String>,
    /// Bytes of pack data read and verified so far, for a progress display.
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub object: String,
    pub problem: String,
    /// Snapshots (full ids) whose data this problem makes unrestorable.
    pub snapshots: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: u64,
    pub index_segments: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub chunks_verified: u64,
    pub bytes_verified: u64,
    /// Damage: objects that are missing, unreadable or do not match.
    pub damaged: Vec<Problem>,
    /// Harmless leftovers (e.g. packs no index names, from an interrupted create): gc reclaims them.
    pub orphans: Vec<String>,
    pub affected_snapshots: Vec<String>,
    pub stale: Option<String>,
    /// Not damage, but worth fixing: key files other users can read (local repositories).
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn is_damaged(&self) -> bool {
        !self.damaged.is_empty()
    }
}

impl Repository {
    pub async fn check(&self, options: &CheckOptions) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let mut damaged: Vec<Finding> = Vec::new();

        // A group-readable repository (init --group-readable: config is 0640) lets its group read key files.
        let allowed = self.backend.local_mode(names::CONFIG).map_or(0, |m| m & 0o040);
        for info in self.backend.list(names::KEYS).await? {
            if let Some(mode) = self.backend.local_mode(&info.name).filter(|m| m & 0o044 & !allowed != 0) {
                report.warnings.push(format!(
                    "{}/{} is readable by other users (mode {mode:04o}): its wrapped key is open to offline \
                     password guessing; run `chmod 600` on it",
                    self.backend.location(),
                    info.name
                ));
            }
            if let Err(e) = self
                .backend
                .get(&info.name)
                .await
                .map_err(Error::from)
                .and_then(|b| KeyFile::decode(&b).map_err(|e| Error::damaged(info.name.clone(), e)))
            {
                damaged.push(Finding::new(info.name.clone(), e.to_string(), HashSet::new()));
            }
        }

        // Snapshots: all, or the one asked for.
        let mut snapshots: Vec<(ObjectId, SnapshotManifest)> = Vec::new();
        match &options.snapshot {
            Some(spec) => {
                let s = self.resolve(spec).await?;
                snapshots.push((s.id, s.manifest));
            }
            None => {
                for info in self.backend.list(names::SNAPSHOTS).await? {
                    let Some(id) = names::id_of(&info.name) else { continue };
                    match self.backend.get(&info.name).await {
                        Ok(b) => match SnapshotManifest::open(&self.keys, self.repo_id, id, &b) {
                            Ok(m) => snapshots.push((id, m)),
                            Err(e) => {
                                report.affected_snapshots.push(id.to_hex());
                                damaged.push(Finding::new(info.name.clone(), e.to_string(), HashSet::new()));
                            }
                        },
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        report.snapshots = snapshots.len() as u64;

        // Index: pack -> entries, chunk -> indexed.
        let mut packs: HashMap<ObjectId, (u64, Vec<PackEntry>)> = HashMap::new();
        let mut marked: HashSet<ObjectId> = HashSet::new();
        for info in self.backend.list(names::INDEX).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            report.index_segments += 1;
            let seg = match self.backend.get(&info.name).await {
                Ok(b) => IndexSegment::open(&self.keys, self.repo_id, id, &b),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            match seg {
                Ok(seg) => {
                    for p in seg.packs {
                        packs.entry(p.pack).or_insert((p.pack_size, p.entries));
                    }
                    marked.extend(seg.deleted.iter().map(|d| d.pack));
                }
                Err(e) => damaged.push(Finding::new(info.name.clone(), e.to_string(), HashSet::new())),
            }
        }

        // Packs: present, right size, trailer matches; data if selected.
        let listed: HashMap<ObjectId, u64> = self
            .backend
            .list(names::PACKS)
            .await?
            .iter()
            .filter_map(|o| names::id_of(&o.name).map(|id| (id, o.size)))
            .collect();
        report.packs = listed.len() as u64;
        let mut good_chunks: HashSet<ObjectId> = HashSet::new();
        for (pack_id, (size, entries)) in &packs {
            let name = names::pack(pack_id);
            let all: HashSet<ObjectId> = entries.iter().map(|e| e.chunk).collect();
            let check = plan::plan_pack(
                *size,
                listed.get(pack_id).copied(),
                marked.contains(pack_id),
                options.data.selects(pack_id),
            );
            match check {
                PackCheck::Missing => {
                    damaged.push(Finding::new(name, "missing", all));
                    continue;
                }
                // gc marked it and deleted it on purpose (a later gc drops its entries): damage only if a
                // snapshot still needs a chunk that is nowhere else.
                PackCheck::DeletedByGc => {
                    let f = Finding::new(name, "deleted by gc, but still needed", all);
                    damaged.push(Finding { only_if_needed: true, ..f });
                    continue;
                }
                PackCheck::WrongSize { actual } => {
                    damaged.push(Finding::new(name, format!("{actual} bytes where the index says {size}"), all));
                    continue;
                }
                PackCheck::Structure | PackCheck::Data => {}
            }
            let read_data = check == PackCheck::Data;
            // With data: the whole pack (header, chunks, trailer). Without: its header and trailer only.
            let (bytes, trailer_entries) = if read_data {
                let bytes = self.backend.get(&name).await?;
                match pack::open_pack(&self.keys, self.repo_id, *pack_id, &bytes) {
                    Ok(t) => (bytes, t.entries),
                    Err(e) => {
                        damaged.push(Finding::new(name, e.to_string(), all));
                        continue;
                    }
                }
            } else {
                let header = self.backend.get_range(&name, 0, pack::HEADER_LEN.min(*size as usize) as u64).await?;
                let read = match pack::check_header(&header) {
                    Ok(()) => self.read_trailer(pack_id, *size).await,
                    Err(e) => Err(Error::damaged(name.clone(), e)),
                };
                match read {
                    Ok(entries) => (Vec::new(), entries),
                    Err(e @ (Error::Damaged { .. } | Error::Inconsistent { .. })) => {
                        damaged.push(Finding::new(name, e.to_string(), all));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            if trailer_entries != *entries {
                damaged.push(Finding::new(name, "trailer does not match the index", all));
                continue;
            }
            if read_data {
                report.packs_read += 1;
                options.progress.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let mut bad = HashSet::new();
                let mut first_error = None;
                for e in entries {
                    let sealed = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
                    match pack::open_chunk(&self.keys, self.repo_id, e.chunk, sealed, e.raw_len) {
                        Ok(_) => {
                            report.chunks_verified += 1;
                            report.bytes_verified += u64::from(e.raw_len);
                        }
                        Err(err) => {
                            first_error.get_or_insert(format!(
                                "chunk {} at offset {}: {err}",
                                e.chunk.short(),
                                e.offset
                            ));
                            bad.insert(e.chunk);
                        }
                    }
                }
                if let Some(problem) = first_error {
                    good_chunks.extend(all.difference(&bad));
                    damaged.push(Finding::new(name, problem, bad));
                    continue;
                }
            }
            good_chunks.extend(all);
        }
        for (id, _) in listed.iter().filter(|(id, _)| !packs.contains_key(id)) {
            report.orphans.push(names::pack(id));
        }

        // Which snapshots can no longer be restored, and why.
        let needs: Vec<(ObjectId, Vec<ObjectId>)> = snapshots
            .iter()
            .map(|(id, m)| (*id, m.streams.iter().flat_map(|s| s.chunks.iter().copied()).collect()))
            .collect();
        let already = std::mem::take(&mut report.affected_snapshots);
        let (assessed, affected) = plan::assess(damaged, &needs, &good_chunks, already, names::snapshot);
        report.damaged = assessed
            .into_iter()
            .map(|a| Problem { object: a.object, problem: a.problem, snapshots: a.snapshots })
            .collect();
        report.affected_snapshots = affected;

        let future_from = self.now().saturating_add(crate::retention::FUTURE_TOLERANCE_MICROS);
        for (id, m) in snapshots.iter().filter(|(_, m)| m.finished > future_from) {
            report.warnings.push(format!(
                "{} ({} on {}) is dated {}, in the future: retention ignores it; if no clock of yours made \
                 it, remove it with `silo forget {}`",
                names::snapshot(id),
                m.name,
                m.host,
                crate::time::format_micros(m.finished),
                id.short()
            ));
        }

        if let Some(max_age) = options.max_age {
            let newest = snapshots
                .iter()
                .filter(|(_, m)| options.max_age_name.as_ref().is_none_or(|n| &m.name == n))
                // A future-dated snapshot proves nothing about freshness (it may be planted).
                .filter(|(_, m)| m.finished <= future_from)
                .map(|(_, m)| m.finished)
                .max();
            let limit = self.now() - max_age as i64 * 1_000_000;
            let what = options.max_age_name.as_deref().unwrap_or("any name");
            report.stale = match newest {
                None => Some(format!("no snapshot of {what}")),
                Some(t) if t < limit => {
                    Some(format!("newest snapshot of {what} is from {}", crate::time::format_micros(t)))
                }
                Some(_) => None,
            };
        }
        Ok(report)
    }
}
