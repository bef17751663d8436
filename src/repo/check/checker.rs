//! One `silo check`, phase by phase over one state (restic's `internal/checker/checker.go` as the model:
//! LoadIndex, Packs, Structure, ReadData, each a method; findings collected, never printed): key files,
//! snapshots, the index, every indexed pack (structure, or data when selected), deltas decoded against their
//! bases, then the assessment — which findings are damage and which snapshots they affect (`plan`, pure),
//! packs no index names judged by their trailers (I25) — and the snapshots' dates and freshness.

use super::plan::{self, Finding, PackCheck};
use super::{
    add_copies, locate_bases, CheckOptions, CheckReport, DataCheck, DecodedBases, LostCopy, Opened, PendingDelta,
    Problem,
};
use crate::backend::{names, ReadBackend};
use crate::repo::Repository;
use crate::{Error, Result};
use silo_format::index::{IndexPack, IndexSegment};
use silo_format::keyfile::KeyFile;
use silo_format::manifest::SnapshotManifest;
use silo_format::pack::{self, DeltaRef, PackEntry};
use silo_format::{ObjectId, Sealed};
use std::collections::{HashMap, HashSet};

/// The index as check reads it: pack -> (size, entries, delta references).
type IndexedPacks = HashMap<ObjectId, (u64, Vec<PackEntry>, Vec<DeltaRef>)>;

pub(super) struct Checker<'a> {
    repo: &'a Repository,
    options: &'a CheckOptions,
    report: CheckReport,
    /// Findings so far; assessed at the end.
    damaged: Vec<Finding>,
    snapshots: Vec<(ObjectId, SnapshotManifest)>,
    packs: IndexedPacks,
    /// Packs a segment marks deleted.
    marked: HashSet<ObjectId>,
    /// Packs that exist, with their sizes.
    listed: HashMap<ObjectId, u64>,
    /// Intact copies: chunk -> for each copy, its base (None: whole).
    copies: HashMap<ObjectId, Vec<Option<ObjectId>>>,
    /// Delta chunks read and authenticated, to decode against their bases.
    pending: Vec<PendingDelta>,
    /// The chunks some delta names as its base, and the plaintexts of those read (bounded; reading each base
    /// again by a ranged GET cost a check on S3 tens of thousands of requests).
    base_ids: HashSet<ObjectId>,
    decoded: DecodedBases,
    /// Chunks with an intact copy (whole, or a delta of such a chunk), once deltas are decoded.
    good: HashSet<ObjectId>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(repo: &'a Repository, options: &'a CheckOptions) -> Self {
        Checker {
            repo,
            options,
            report: CheckReport { data_read: options.data != DataCheck::None, ..Default::default() },
            damaged: Vec::new(),
            snapshots: Vec::new(),
            packs: HashMap::new(),
            marked: HashSet::new(),
            listed: HashMap::new(),
            copies: HashMap::new(),
            pending: Vec::new(),
            base_ids: HashSet::new(),
            decoded: DecodedBases::default(),
            good: HashSet::new(),
        }
    }

    pub(super) fn into_report(self) -> CheckReport {
        self.report
    }

    /// Key files: each decodes; one other users can read is a warning (a group-readable repository,
    /// `init --group-readable`, lets its group read them).
    pub(super) async fn load_keys(&mut self) -> Result<()> {
        let backend = &self.repo.backend;
        let allowed = backend.local_mode(names::CONFIG).map_or(0, |m| m & 0o040);
        for info in backend.list(names::KEYS).await? {
            if let Some(mode) = backend.local_mode(&info.name).filter(|m| m & 0o044 & !allowed != 0) {
                self.report.warnings.push(format!(
                    "{}/{} is readable by other users (mode {mode:04o}): its wrapped key is open to offline \
                     password guessing; run `chmod 600` on it",
                    backend.location(),
                    info.name
                ));
            }
            if let Err(e) = backend
                .get(&info.name)
                .await
                .map_err(Error::from)
                .and_then(|b| KeyFile::decode(&b).map_err(|e| Error::damaged(info.name.clone(), e)))
            {
                self.damaged.push(Finding::new(info.name.clone(), e.to_string(), HashSet::new()));
            }
        }
        Ok(())
    }

    /// Snapshots: all, or the one asked for. One that does not open is damage and affects itself.
    pub(super) async fn load_snapshots(&mut self) -> Result<()> {
        let repo = self.repo;
        if let Some(spec) = &self.options.snapshot {
            let s = repo.resolve(spec).await?;
            self.snapshots.push((s.id, s.manifest));
        } else {
            for info in repo.backend.list(names::SNAPSHOTS).await? {
                let Some(id) = names::id_of(&info.name) else { continue };
                match repo.backend.get(&info.name).await {
                    Ok(b) => match SnapshotManifest::open(&repo.keys, repo.repo_id, id, &b) {
                        Ok(m) => self.snapshots.push((id, m)),
                        Err(e) => {
                            self.report.affected_snapshots.push(id.to_hex());
                            self.damaged.push(Finding::new(info.name.clone(), e.to_string(), HashSet::new()));
                        }
                    },
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.report.snapshots = self.snapshots.len() as u64;
        Ok(())
    }

    /// Every index segment (never the cache: damage a warm cache hides is still found), then the packs that
    /// exist.
    pub(super) async fn load_index(&mut self) -> Result<()> {
        let repo = self.repo;
        for info in repo.backend.list(names::INDEX).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            self.report.index_segments += 1;
            let seg = match repo.backend.get(&info.name).await {
                Ok(b) => IndexSegment::open(&repo.keys, repo.repo_id, id, &b),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            match seg {
                Ok(seg) => {
                    for p in seg.packs {
                        self.packs.entry(p.pack).or_insert((p.pack_size, p.entries, p.deltas));
                    }
                    self.marked.extend(seg.deleted.iter().map(|d| d.pack));
                }
                Err(e) => self.damaged.push(Finding::new(info.name.clone(), e.to_string(), HashSet::new())),
            }
        }
        self.listed = repo
            .backend
            .list(names::PACKS)
            .await?
            .iter()
            .filter_map(|o| names::id_of(&o.name).map(|id| (id, o.size)))
            .collect();
        self.report.packs = self.listed.len() as u64;
        self.base_ids = self.packs.values().flat_map(|(_, _, d)| d.iter().map(|r| r.base)).collect();
        Ok(())
    }

    /// Every indexed pack: present, of the indexed size, with a trailer that agrees with the index; its
    /// chunks read and authenticated when the data check selects it.
    pub(super) async fn check_packs(&mut self) -> Result<()> {
        let ids: Vec<ObjectId> = self.packs.keys().copied().collect();
        for pack_id in ids {
            let (size, entries, deltas) = self.packs[&pack_id].clone();
            let name = names::pack(&pack_id);
            let all: HashSet<ObjectId> = entries.iter().map(|e| e.chunk).collect();
            let selected = self.options.data.selects(&pack_id);
            let check =
                plan::plan_pack(size, self.listed.get(&pack_id).copied(), self.marked.contains(&pack_id), selected);
            match check {
                PackCheck::Missing => {
                    self.damaged.push(Finding::new(name, "missing", all));
                    self.report.lost.push(LostCopy { pack: pack_id, chunk: None });
                    continue;
                }
                // gc marked it and deleted it on purpose (a later gc drops its entries): damage only if a
                // snapshot still needs a chunk that is nowhere else.
                PackCheck::DeletedByGc => {
                    let f = Finding::new(name, "deleted by gc, but still needed", all);
                    self.damaged.push(Finding { only_if_needed: true, ..f });
                    continue;
                }
                // Without data: every chunk counts as lost. With data, the chunks are read by their index
                // entries (a pack cut short at its end loses its trailer, not its chunks).
                PackCheck::WrongSize { actual } if !selected => {
                    let problem = format!(
                        "{actual} bytes where the index says {size} (its chunks were not read: `silo check \
                         --read-data` tells which are lost; `silo repair packs` rewrites the readable ones)"
                    );
                    self.damaged.push(Finding::new(name, problem, all));
                    continue;
                }
                PackCheck::WrongSize { .. } | PackCheck::Structure | PackCheck::Data => {}
            }
            let indexed = IndexPack { pack: pack_id, pack_size: size, entries, deltas };
            let Some((bytes, trailer)) = self.read_pack(&indexed, check).await? else { continue };
            // The index may leave out entries of copies found damaged (I20); nothing else may differ.
            if !indexed.agrees_with(&trailer.entries, &trailer.deltas) {
                self.damaged.push(Finding::new(name, "trailer does not match the index", all));
                continue;
            }
            match bytes {
                Some(bytes) => {
                    self.verify_pack_data(&indexed, &bytes);
                    if indexed.entries.iter().any(|e| self.base_ids.contains(&e.chunk)) {
                        self.decoded.keep_pack(pack_id, std::sync::Arc::new(bytes));
                    }
                }
                None => {
                    let base_of: HashMap<u32, &DeltaRef> = indexed.deltas.iter().map(|d| (d.entry, d)).collect();
                    add_copies(&mut self.copies, &indexed.entries, &base_of, |_| true);
                }
            }
        }
        Ok(())
    }

    /// The pack's bytes (when its data is read) and trailer. A data read whose size or trailer is wrong
    /// goes on with the index's entries (the finding is recorded); `None`: the pack is a finding as a whole.
    async fn read_pack(
        &mut self,
        p: &IndexPack,
        check: PackCheck,
    ) -> Result<Option<(Option<Vec<u8>>, pack::PackTrailer)>> {
        let repo = self.repo;
        let name = names::pack(&p.pack);
        if matches!(check, PackCheck::Data | PackCheck::WrongSize { .. }) {
            let bytes = repo.backend.get(&name).await?;
            let opened = match check {
                PackCheck::WrongSize { actual } => Err(format!("{actual} bytes where the index says {}", p.pack_size)),
                _ => pack::open_pack(&repo.keys, repo.repo_id, p.pack, &bytes).map_err(|e| e.to_string()),
            };
            let trailer = match opened {
                Ok(t) => t,
                // Its chunks are verified by their index entries; only those that fail are lost.
                Err(problem) => {
                    self.damaged.push(Finding::new(
                        name,
                        format!(
                            "{problem}; its chunks are read by their index entries: run `silo repair packs` to \
                             rewrite the readable ones"
                        ),
                        HashSet::new(),
                    ));
                    pack::PackTrailer { version: 0, entries: p.entries.clone(), deltas: p.deltas.clone() }
                }
            };
            return Ok(Some((Some(bytes), trailer)));
        }
        let header = repo.backend.get_range(&name, 0, pack::HEADER_LEN.min(p.pack_size as usize) as u64).await?;
        let read = match pack::check_header(&header) {
            Ok(()) => repo.read_trailer(&p.pack, p.pack_size).await,
            Err(e) => Err(Error::damaged(name.clone(), e)),
        };
        match read {
            Ok(t) => Ok(Some((None, t))),
            Err(e @ (Error::Damaged { .. } | Error::Inconsistent { .. })) => {
                self.damaged.push(Finding::new(name, e.to_string(), p.entries.iter().map(|e| e.chunk).collect()));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Decrypts, decompresses and re-hashes every whole chunk of the pack; delta chunks are authenticated
    /// here and decoded later against their bases (`verify_deltas`).
    fn verify_pack_data(&mut self, p: &IndexPack, bytes: &[u8]) {
        let repo = self.repo;
        let base_of: HashMap<u32, &DeltaRef> = p.deltas.iter().map(|d| (d.entry, d)).collect();
        self.report.packs_read += 1;
        self.options.progress.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut bad = HashSet::new();
        let mut first_error = None;
        for (i, e) in p.entries.iter().enumerate() {
            let indexed = base_of.get(&(i as u32)).map(|d| (d.base, d.depth));
            let opened = match bytes.get(e.offset as usize..(e.offset as usize + e.stored_len as usize)) {
                None => Err("past the end of the pack".to_string()),
                Some(sealed) => open_as_indexed(repo, e, sealed, indexed).map_err(|e| e.to_string()),
            };
            match opened {
                Ok(Opened::Whole(plain)) => {
                    self.report.chunks_verified += 1;
                    self.report.bytes_verified += u64::from(e.raw_len);
                    // A base of some delta: kept (bounded), so deltas decode without reading it again.
                    if self.base_ids.contains(&e.chunk) {
                        self.decoded.keep(e.chunk, plain);
                    }
                }
                // Verified once its base is known to be intact (`verify_deltas`).
                Ok(Opened::Delta(base, depth, payload)) => {
                    self.pending.push(PendingDelta { pack: p.pack, entry: *e, base, depth, payload })
                }
                Err(err) => {
                    first_error.get_or_insert(format!("chunk {} at offset {}: {err}", e.chunk.short(), e.offset));
                    bad.insert(e.chunk);
                }
            }
        }
        add_copies(&mut self.copies, &p.entries, &base_of, |c| !bad.contains(c));
        if let Some(problem) = first_error {
            self.report.lost.extend(bad.iter().map(|c| LostCopy { pack: p.pack, chunk: Some(*c) }));
            self.damaged.push(Finding::new(names::pack(&p.pack), problem, bad));
        }
    }

    /// Deltas read in the data phase, decoded against their bases (when those are restorable at all; a base
    /// that is not is already a finding, spread to its dependents by `assess`). Shallow deltas first: a
    /// decoded delta that is itself a base is kept for those above it.
    pub(super) async fn verify_deltas(&mut self) {
        let restorable = plan::restorable(&self.copies);
        let mut pending = std::mem::take(&mut self.pending);
        let located = locate_bases(&self.packs, pending.iter().map(|d| d.base));
        pending.sort_by_key(|d| d.depth);
        for d in pending {
            if !restorable.contains(&d.base) {
                continue;
            }
            match self.repo.verify_delta(&d, &located, &mut self.decoded, &self.base_ids).await {
                Ok(()) => {
                    self.report.chunks_verified += 1;
                    self.report.bytes_verified += u64::from(d.entry.raw_len);
                }
                Err(problem) => {
                    if let Some(c) = self.copies.get_mut(&d.entry.chunk) {
                        if let Some(i) = c.iter().position(|b| *b == Some(d.base)) {
                            c.remove(i);
                        }
                    }
                    let problem = format!("chunk {} at offset {}: {problem}", d.entry.chunk.short(), d.entry.offset);
                    self.report.lost.push(LostCopy { pack: d.pack, chunk: Some(d.entry.chunk) });
                    self.damaged.push(Finding::new(names::pack(&d.pack), problem, [d.entry.chunk].into()));
                }
            }
        }
    }

    /// Which findings are damage and which snapshots they affect: damage to a base spreads to its
    /// dependents (I16); a pack no index names is read by its trailer (I25).
    pub(super) async fn assess(&mut self) -> Result<()> {
        self.good = plan::restorable(&self.copies);
        let dependents = plan::dependents(self.packs.values().flat_map(|(_, entries, deltas)| {
            deltas.iter().filter_map(|d| entries.get(d.entry as usize).map(|e| (e.chunk, d.base)))
        }));
        let mut damaged = plan::spread(std::mem::take(&mut self.damaged), &dependents, &self.good);
        let needs: Vec<(ObjectId, Vec<ObjectId>)> = self
            .snapshots
            .iter()
            .map(|(id, m)| (*id, m.streams.iter().flat_map(|s| s.chunks.iter().copied()).collect()))
            .collect();
        let wanted: HashSet<ObjectId> =
            needs.iter().flat_map(|(_, c)| c.iter()).filter(|c| !self.good.contains(c)).copied().collect();
        damaged.extend(self.unindexed_packs(&wanted).await?);
        let already = std::mem::take(&mut self.report.affected_snapshots);
        let (assessed, affected) = plan::assess(damaged, &needs, &self.good, already, names::snapshot);
        self.report.damaged = assessed
            .into_iter()
            .map(|a| Problem { object: a.object, problem: a.problem, snapshots: a.snapshots })
            .collect();
        self.report.affected_snapshots = affected;
        Ok(())
    }

    /// Packs no index names: orphans of an interrupted create (reported, gc reclaims them), or live packs
    /// whose segment was lost — those that hold a chunk in `wanted` are findings (`silo repair index`).
    async fn unindexed_packs(&mut self, wanted: &HashSet<ObjectId>) -> Result<Vec<Finding>> {
        let mut findings = Vec::new();
        for (id, size) in self.listed.iter().filter(|(id, _)| !self.packs.contains_key(id)) {
            let held: HashSet<ObjectId> = match self.repo.read_trailer(id, *size).await {
                Ok(t) => t.entries.iter().map(|e| e.chunk).filter(|c| wanted.contains(c)).collect(),
                // What it holds cannot be known: never an orphan to reclaim (gc keeps it too).
                Err(e @ (Error::Damaged { .. } | Error::Inconsistent { .. })) => {
                    let problem = if wanted.is_empty() {
                        format!("no index names it and its trailer cannot be read ({e}); no snapshot misses a chunk, so it holds nothing needed: remove it by hand once you are sure")
                    } else {
                        format!("no index names it and its trailer cannot be read ({e}): it may hold some of the {} chunks snapshots miss, which cannot be located; gc keeps it", wanted.len())
                    };
                    findings.push(Finding::new(names::pack(id), problem, HashSet::new()));
                    continue;
                }
                Err(Error::Backend(e)) if e.is_not_found() => HashSet::new(),
                Err(e) => return Err(e),
            };
            if held.is_empty() {
                self.report.orphans.push(names::pack(id));
            } else {
                let problem = format!(
                    "unindexed, holds {} chunks snapshots need: run `silo repair index` (gc keeps it)",
                    held.len()
                );
                findings.push(Finding::new(names::pack(id), problem, held));
            }
        }
        Ok(findings)
    }

    /// Snapshots dated in the future (retention ignores them) and, with `--max-age`, freshness.
    pub(super) fn dates_and_freshness(&mut self) {
        let now = self.repo.now();
        let future_from = now.saturating_add(crate::retention::FUTURE_TOLERANCE_MICROS);
        for (id, m) in self.snapshots.iter().filter(|(_, m)| m.finished > future_from) {
            self.report.warnings.push(format!(
                "{} ({} on {}) is dated {}, in the future: retention ignores it; if no clock of yours made \
                 it, remove it with `silo forget {}`",
                names::snapshot(id),
                m.name,
                m.host,
                crate::time::format_micros(m.finished),
                id.short()
            ));
        }
        let Some(max_age) = self.options.max_age else { return };
        let name = self.options.max_age_name.as_ref();
        let newest = self
            .snapshots
            .iter()
            .filter(|(_, m)| name.is_none_or(|n| &m.name == n))
            // A future-dated snapshot proves nothing about freshness (it may be planted).
            .filter(|(_, m)| m.finished <= future_from)
            .map(|(_, m)| m.finished)
            .max();
        let limit = now - max_age as i64 * 1_000_000;
        let what = name.map_or("any name", |n| n.as_str());
        self.report.stale = match newest {
            None => Some(format!("no snapshot of {what}")),
            Some(t) if t < limit => {
                Some(format!("newest snapshot of {what} is from {}", crate::time::format_micros(t)))
            }
            Some(_) => None,
        };
    }
}

/// Opens a chunk's envelope and checks it is what the index says: whole, or a delta of the indexed base.
fn open_as_indexed(
    repo: &Repository,
    e: &PackEntry,
    sealed: &[u8],
    indexed: Option<(ObjectId, u8)>,
) -> std::result::Result<Opened, silo_format::FormatError> {
    match pack::open_chunk_parts(&repo.keys, repo.repo_id, e.chunk, sealed, e.raw_len)? {
        pack::ChunkParts::Whole(plain) if indexed.is_none() => Ok(Opened::Whole(plain)),
        pack::ChunkParts::Delta { header, payload } if indexed == Some((header.base, header.depth)) => {
            Ok(Opened::Delta(header.base, header.depth, payload))
        }
        _ => Err(silo_format::FormatError::malformed(
            "chunk",
            "its envelope and the index disagree on whether it is a delta, or of which base",
        )),
    }
}
