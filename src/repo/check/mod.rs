//! `silo check`: structure (every snapshot's chunks indexed; every indexed pack present, of the indexed size,
//! with a trailer that matches the index; unindexed packs reported as orphans), optional data verification of
//! all or a sample of packs (decrypt, decompress, re-hash every chunk), and freshness. Reads only; never uses
//! the local cache, so damage hidden from a warm cache is still found (I3, I5).
//!
//! In phases (restic's checker as a model): load keys, snapshots and the index; plan each pack's check
//! (`plan::plan_pack`, pure); read the packs as planned; assess which findings are damage and which
//! snapshots they affect (`plan::assess`, pure); freshness.
//!
//! Delta chunks (I16, format-spec/delta.md): a chunk is restorable when it has an intact whole copy, or an
//! intact delta copy whose base is restorable (`plan::restorable`); damage to a base is reported with every
//! chunk that depends on it, so every snapshot it affects is named (`plan::spread`). Data verification
//! decodes each delta it reads against its base (read through the index, as a restore would).
//!
//! I20: every copy found missing or damaged is listed in `lost` (pack, and chunk unless the whole pack is
//! gone), for `repair snapshots` to drop from the index so the next create stores it again. A pack no index
//! names is read by its trailer: if it holds chunks a snapshot needs that no indexed pack holds, it is
//! damage to repair (`silo repair index`), never an orphan for gc to reclaim.

pub mod plan;

use super::snapshots::SnapshotSpec;
use super::Repository;
use crate::backend::names;
use crate::{Error, Result};
use plan::{Finding, PackCheck};
use serde::Serialize;
use silo_format::index::{IndexPack, IndexSegment};
use silo_format::keyfile::KeyFile;
use silo_format::manifest::SnapshotManifest;
use silo_format::pack::{self, DeltaRef, PackEntry};
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
    /// Whether chunk data was read (`--read-data`, `--read-data-subset`); without it, damage inside packs
    /// cannot have been found.
    pub data_read: bool,
    /// Copies found missing or damaged (I20): what `repair snapshots` drops from the index.
    #[serde(skip)]
    pub lost: Vec<LostCopy>,
    /// Backend requests the check took (a data check reads each pack whole, and bases it already read are
    /// not fetched again).
    pub requests: crate::backend::metered::RequestCounts,
}

/// A copy the index names that cannot be read: the whole pack (`chunk` None) or one chunk in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LostCopy {
    pub pack: ObjectId,
    pub chunk: Option<ObjectId>,
}

impl CheckReport {
    pub fn is_damaged(&self) -> bool {
        !self.damaged.is_empty()
    }
}

impl Repository {
    pub async fn check(&self, options: &CheckOptions) -> Result<CheckReport> {
        let before = self.backend.requests();
        let mut report = CheckReport { data_read: options.data != DataCheck::None, ..Default::default() };
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
        let mut packs: HashMap<ObjectId, (u64, Vec<PackEntry>, Vec<DeltaRef>)> = HashMap::new();
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
                        packs.entry(p.pack).or_insert((p.pack_size, p.entries, p.deltas));
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
        // Intact copies: chunk -> for each copy, its base (None: whole).
        let mut copies: HashMap<ObjectId, Vec<Option<ObjectId>>> = HashMap::new();
        let mut pending: Vec<PendingDelta> = Vec::new();
        // The chunks some delta names as its base, and the plaintexts of those read (bounded; 34.7: reading
        // each base again by a ranged GET cost a check on S3 tens of thousands of requests).
        let base_ids: HashSet<ObjectId> = packs.values().flat_map(|(_, _, d)| d.iter().map(|r| r.base)).collect();
        let mut decoded = DecodedBases::default();
        for (pack_id, (size, entries, deltas)) in &packs {
            let name = names::pack(pack_id);
            let all: HashSet<ObjectId> = entries.iter().map(|e| e.chunk).collect();
            let selected = options.data.selects(pack_id);
            let check = plan::plan_pack(*size, listed.get(pack_id).copied(), marked.contains(pack_id), selected);
            match check {
                PackCheck::Missing => {
                    damaged.push(Finding::new(name, "missing", all));
                    report.lost.push(LostCopy { pack: *pack_id, chunk: None });
                    continue;
                }
                // gc marked it and deleted it on purpose (a later gc drops its entries): damage only if a
                // snapshot still needs a chunk that is nowhere else.
                PackCheck::DeletedByGc => {
                    let f = Finding::new(name, "deleted by gc, but still needed", all);
                    damaged.push(Finding { only_if_needed: true, ..f });
                    continue;
                }
                // Without data: every chunk counts as lost. With data, the chunks are read by their index
                // entries below (a pack cut short at its end loses its trailer, not its chunks).
                PackCheck::WrongSize { actual } if !selected => {
                    damaged.push(Finding::new(name, format!("{actual} bytes where the index says {size}"), all));
                    continue;
                }
                PackCheck::WrongSize { .. } | PackCheck::Structure | PackCheck::Data => {}
            }
            let read_data = matches!(check, PackCheck::Data | PackCheck::WrongSize { .. });
            // With data: the whole pack (header, chunks, trailer). Without: its header and trailer only.
            let (bytes, trailer) = if read_data {
                let bytes = self.backend.get(&name).await?;
                let opened = match check {
                    PackCheck::WrongSize { actual } => Err(format!("{actual} bytes where the index says {size}")),
                    _ => pack::open_pack(&self.keys, self.repo_id, *pack_id, &bytes).map_err(|e| e.to_string()),
                };
                match opened {
                    Ok(t) => (bytes, t),
                    // Its chunks are verified by their index entries; only those that fail are lost.
                    Err(problem) => {
                        damaged.push(Finding::new(
                            name.clone(),
                            format!(
                                "{problem}; its chunks are read by their index entries: run `silo repair packs` to \
                                 rewrite the readable ones"
                            ),
                            HashSet::new(),
                        ));
                        let whole = pack::PackTrailer { version: 0, entries: entries.clone(), deltas: deltas.clone() };
                        (bytes, whole)
                    }
                }
            } else {
                let header = self.backend.get_range(&name, 0, pack::HEADER_LEN.min(*size as usize) as u64).await?;
                let read = match pack::check_header(&header) {
                    Ok(()) => self.read_trailer(pack_id, *size).await,
                    Err(e) => Err(Error::damaged(name.clone(), e)),
                };
                match read {
                    Ok(t) => (Vec::new(), t),
                    Err(e @ (Error::Damaged { .. } | Error::Inconsistent { .. })) => {
                        damaged.push(Finding::new(name, e.to_string(), all));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            // The index may leave out entries of copies found damaged (I20); nothing else may differ.
            let indexed =
                IndexPack { pack: *pack_id, pack_size: *size, entries: entries.clone(), deltas: deltas.clone() };
            if !indexed.agrees_with(&trailer.entries, &trailer.deltas) {
                damaged.push(Finding::new(name, "trailer does not match the index", all));
                continue;
            }
            let base_of: HashMap<u32, &DeltaRef> = deltas.iter().map(|d| (d.entry, d)).collect();
            if read_data {
                report.packs_read += 1;
                options.progress.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let mut bad = HashSet::new();
                let mut first_error = None;
                for (i, e) in entries.iter().enumerate() {
                    let Some(sealed) = bytes.get(e.offset as usize..(e.offset as usize + e.stored_len as usize)) else {
                        first_error.get_or_insert(format!(
                            "chunk {} at offset {}: past the end of the pack",
                            e.chunk.short(),
                            e.offset
                        ));
                        bad.insert(e.chunk);
                        continue;
                    };
                    let indexed = base_of.get(&(i as u32)).map(|d| (d.base, d.depth));
                    let opened = pack::open_chunk_parts(&self.keys, self.repo_id, e.chunk, sealed, e.raw_len).and_then(
                        |parts| match parts {
                            pack::ChunkParts::Whole(plain) if indexed.is_none() => Ok(Opened::Whole(plain)),
                            pack::ChunkParts::Delta { header, payload }
                                if indexed == Some((header.base, header.depth)) =>
                            {
                                Ok(Opened::Delta(header.base, header.depth, payload))
                            }
                            _ => Err(silo_format::FormatError::malformed(
                                "chunk",
                                "its envelope and the index disagree on whether it is a delta, or of which base",
                            )),
                        },
                    );
                    match opened {
                        Ok(Opened::Whole(plain)) => {
                            report.chunks_verified += 1;
                            report.bytes_verified += u64::from(e.raw_len);
                            // A base of some delta: kept (bounded), so deltas decode without reading it again.
                            if base_ids.contains(&e.chunk) {
                                decoded.keep(e.chunk, plain);
                            }
                        }
                        // Verified once its base is known to be intact (below).
                        Ok(Opened::Delta(base, depth, payload)) => {
                            pending.push(PendingDelta { pack: *pack_id, entry: *e, base, depth, payload })
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
                    report.lost.extend(bad.iter().map(|c| LostCopy { pack: *pack_id, chunk: Some(*c) }));
                    add_copies(&mut copies, entries, &base_of, |c| !bad.contains(c));
                    damaged.push(Finding::new(name, problem, bad));
                    continue;
                }
            }
            add_copies(&mut copies, entries, &base_of, |_| true);
        }
        // Deltas read above: decoded against their bases (when those are restorable at all; a base that is
        // not is already a finding, spread to its dependents below).
        let mut restorable = plan::restorable(&copies);
        let located = locate_bases(&packs, pending.iter().map(|d| d.base));
        // Shallow deltas first: a decoded delta that is itself a base is kept for those above it.
        pending.sort_by_key(|d| d.depth);
        for d in pending {
            let name = names::pack(&d.pack);
            if !restorable.contains(&d.base) {
                continue;
            }
            match self.verify_delta(&d, &located, &mut decoded, &base_ids).await {
                Ok(()) => {
                    report.chunks_verified += 1;
                    report.bytes_verified += u64::from(d.entry.raw_len);
                }
                Err(problem) => {
                    if let Some(c) = copies.get_mut(&d.entry.chunk) {
                        if let Some(i) = c.iter().position(|b| *b == Some(d.base)) {
                            c.remove(i);
                        }
                    }
                    let problem = format!("chunk {} at offset {}: {problem}", d.entry.chunk.short(), d.entry.offset);
                    report.lost.push(LostCopy { pack: d.pack, chunk: Some(d.entry.chunk) });
                    damaged.push(Finding::new(name, problem, [d.entry.chunk].into_iter().collect()));
                }
            }
        }
        restorable = plan::restorable(&copies);
        let dependents = plan::dependents(packs.values().flat_map(|(_, entries, deltas)| {
            deltas.iter().filter_map(|d| entries.get(d.entry as usize).map(|e| (e.chunk, d.base)))
        }));
        let mut damaged = plan::spread(damaged, &dependents, &restorable);
        let good_chunks = restorable;

        // Which snapshots can no longer be restored, and why.
        let needs: Vec<(ObjectId, Vec<ObjectId>)> = snapshots
            .iter()
            .map(|(id, m)| (*id, m.streams.iter().flat_map(|s| s.chunks.iter().copied()).collect()))
            .collect();
        // Packs no index names: orphans of an interrupted create, or live packs whose segment was lost.
        let wanted: HashSet<ObjectId> =
            needs.iter().flat_map(|(_, c)| c.iter()).filter(|c| !good_chunks.contains(c)).copied().collect();
        for (id, size) in listed.iter().filter(|(id, _)| !packs.contains_key(id)) {
            let held: HashSet<ObjectId> = match self.read_trailer(id, *size).await {
                Ok(t) => t.entries.iter().map(|e| e.chunk).filter(|c| wanted.contains(c)).collect(),
                Err(Error::Damaged { .. } | Error::Inconsistent { .. }) => HashSet::new(),
                Err(Error::Backend(e)) if e.is_not_found() => HashSet::new(),
                Err(e) => return Err(e),
            };
            if held.is_empty() {
                report.orphans.push(names::pack(id));
            } else {
                let problem = format!(
                    "unindexed, holds {} chunks snapshots need: run `silo repair index` (gc keeps it)",
                    held.len()
                );
                damaged.push(Finding::new(names::pack(id), problem, held));
            }
        }
        let already = std::mem::take(&mut report.affected_snapshots);
        let damaged: Vec<Finding> = damaged;
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
        report.requests = self.backend.requests().since(&before);
        Ok(report)
    }
}

/// A delta chunk whose envelope check read and authenticated, to decode against its base.
struct PendingDelta {
    pack: ObjectId,
    entry: PackEntry,
    base: ObjectId,
    depth: u8,
    payload: Vec<u8>,
}

/// A chunk read in the data phase: whole (its plaintext), or a delta to decode later.
enum Opened {
    Whole(Vec<u8>),
    Delta(ObjectId, u8, Vec<u8>),
}

/// Decoded plaintexts of bases during one check, bounded: cleared when it would pass `DECODED_BOUND`.
#[derive(Default)]
struct DecodedBases {
    plain: HashMap<ObjectId, std::sync::Arc<Vec<u8>>>,
    bytes: usize,
}

const DECODED_BOUND: usize = 64 << 20;

impl DecodedBases {
    /// Keeps `plain` as `chunk`'s while the bound allows (read in the data phase: never evicts).
    fn keep(&mut self, chunk: ObjectId, plain: Vec<u8>) {
        if self.bytes + plain.len() <= DECODED_BOUND && !self.plain.contains_key(&chunk) {
            self.bytes += plain.len();
            self.plain.insert(chunk, std::sync::Arc::new(plain));
        }
    }
}

fn add_copies(
    copies: &mut HashMap<ObjectId, Vec<Option<ObjectId>>>,
    entries: &[PackEntry],
    base_of: &HashMap<u32, &DeltaRef>,
    intact: impl Fn(&ObjectId) -> bool,
) {
    for (i, e) in entries.iter().enumerate() {
        if intact(&e.chunk) {
            copies.entry(e.chunk).or_default().push(base_of.get(&(i as u32)).map(|d| d.base));
        }
    }
}

/// Where each copy of a chunk lies: pack, entry, and its delta reference if it is one.
type Copies = HashMap<ObjectId, Vec<(ObjectId, PackEntry, Option<DeltaRef>)>>;

/// The copies of `bases` and of every chunk below them in their chains, whole copies first.
fn locate_bases(
    packs: &HashMap<ObjectId, (u64, Vec<PackEntry>, Vec<DeltaRef>)>,
    bases: impl Iterator<Item = ObjectId>,
) -> Copies {
    let mut todo: Vec<ObjectId> = bases.collect();
    if todo.is_empty() {
        return HashMap::new();
    }
    let mut base_of: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    for (_, entries, deltas) in packs.values() {
        for d in deltas {
            if let Some(e) = entries.get(d.entry as usize) {
                base_of.entry(e.chunk).or_default().push(d.base);
            }
        }
    }
    let mut needed: HashSet<ObjectId> = HashSet::new();
    while let Some(c) = todo.pop() {
        if needed.insert(c) {
            todo.extend(base_of.get(&c).into_iter().flatten().copied());
        }
    }
    let mut out: Copies = HashMap::new();
    for (pack, (_, entries, deltas)) in packs {
        let refs: HashMap<u32, &DeltaRef> = deltas.iter().map(|d| (d.entry, d)).collect();
        for (i, e) in entries.iter().enumerate() {
            if needed.contains(&e.chunk) {
                out.entry(e.chunk).or_default().push((*pack, *e, refs.get(&(i as u32)).map(|d| **d)));
            }
        }
    }
    for copies in out.values_mut() {
        copies.sort_by_key(|(_, _, d)| d.map_or(0, |d| d.depth));
    }
    out
}

impl Repository {
    /// Decodes a delta read by check against its base; the problem, if it does not give its chunk.
    async fn verify_delta(
        &self,
        d: &PendingDelta,
        located: &Copies,
        decoded: &mut DecodedBases,
        base_ids: &HashSet<ObjectId>,
    ) -> std::result::Result<(), String> {
        let base = Box::pin(self.plain_for_check(d.base, located, decoded, 0)).await?;
        let plain = pack::finish_delta(&self.keys, d.entry.chunk, &d.payload, &base, d.entry.raw_len)
            .map_err(|e| format!("does not decode against its base {}: {e}", d.base.short()))?;
        if base_ids.contains(&d.entry.chunk) {
            decoded.keep(d.entry.chunk, plain);
        }
        Ok(())
    }

    /// The plaintext of `chunk` from the first copy that decodes (whole copies first), decoding its chain.
    async fn plain_for_check(
        &self,
        chunk: ObjectId,
        located: &Copies,
        decoded: &mut DecodedBases,
        depth: u8,
    ) -> std::result::Result<std::sync::Arc<Vec<u8>>, String> {
        if let Some(p) = decoded.plain.get(&chunk) {
            return Ok(p.clone());
        }
        if depth > silo_format::codec::delta::MAX_DEPTH {
            return Err(format!("its chain is longer than {}", silo_format::codec::delta::MAX_DEPTH));
        }
        let mut problem = format!("base {} is in no indexed pack", chunk.short());
        for (pack_id, e, delta) in located.get(&chunk).into_iter().flatten() {
            match self.copy_for_check(chunk, *pack_id, e, delta, located, decoded, depth).await {
                Ok(plain) => {
                    let plain = std::sync::Arc::new(plain);
                    if decoded.bytes + plain.len() > DECODED_BOUND {
                        decoded.plain.clear();
                        decoded.bytes = 0;
                    }
                    decoded.bytes += plain.len();
                    decoded.plain.insert(chunk, plain.clone());
                    return Ok(plain);
                }
                Err(p) => problem = p,
            }
        }
        Err(problem)
    }

    /// One copy of `chunk`, read and decoded (its base first when it is a delta).
    #[allow(clippy::too_many_arguments)]
    async fn copy_for_check(
        &self,
        chunk: ObjectId,
        pack_id: ObjectId,
        e: &PackEntry,
        delta: &Option<DeltaRef>,
        located: &Copies,
        decoded: &mut DecodedBases,
        depth: u8,
    ) -> std::result::Result<Vec<u8>, String> {
        let name = names::pack(&pack_id);
        let failed = |err: &dyn std::fmt::Display| format!("base {} in {name}: {err}", chunk.short());
        let sealed = self
            .backend
            .get_range(&name, u64::from(e.offset), u64::from(e.stored_len))
            .await
            .map_err(|err| failed(&err))?;
        let parts =
            pack::open_chunk_parts(&self.keys, self.repo_id, chunk, &sealed, e.raw_len).map_err(|err| failed(&err))?;
        match (parts, delta) {
            (pack::ChunkParts::Whole(p), None) => Ok(p),
            (pack::ChunkParts::Delta { header, payload }, Some(d)) if header.base == d.base => {
                let base = Box::pin(self.plain_for_check(d.base, located, decoded, depth + 1)).await?;
                pack::finish_delta(&self.keys, chunk, &payload, &base, e.raw_len).map_err(|err| failed(&err))
            }
            _ => Err(failed(&"its envelope and the index disagree")),
        }
    }
}
