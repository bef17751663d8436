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

mod checker;
pub mod plan;

use super::snapshots::SnapshotSpec;
use super::Repository;
use crate::backend::{names, ReadBackend};
use crate::Result;
use serde::Serialize;
use silo_format::pack::{self, DeltaRef, PackEntry};
use silo_format::ObjectId;
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

impl std::fmt::Display for DataCheck {
    /// As `--read-data-subset` takes it: `5%`, `2/7`; `all data`, `no data`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataCheck::None => f.write_str("no data"),
            DataCheck::All => f.write_str("all data"),
            DataCheck::Percent(p) => write!(f, "{}%", p * 100.0),
            DataCheck::Slice(n, m) => write!(f, "{n}/{m}"),
        }
    }
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
    /// The whole check, phase by phase (checker.rs); reads only.
    pub async fn check(&self, options: &CheckOptions) -> Result<CheckReport> {
        let before = self.backend.requests();
        let mut c = checker::Checker::new(self, options);
        c.load_keys().await?;
        c.load_snapshots().await?;
        c.load_index().await?;
        c.check_packs().await?;
        c.verify_deltas().await;
        c.assess().await?;
        c.dates_and_freshness();
        let mut report = c.into_report();
        report.requests = self.backend.requests().since(&before);
        // I20: copies found damaged are never deduplicated against on this machine, even before `repair
        // snapshots` drops them from the index (a cache that cannot be opened only loses that head start).
        let damaged: Vec<(ObjectId, ObjectId)> =
            report.lost.iter().filter_map(|l| l.chunk.map(|c| (c, l.pack))).collect();
        if !damaged.is_empty() {
            if let Err(e) = self.cache().and_then(|cache| cache.quarantine(damaged)) {
                tracing::warn!("could not note the damaged copies in the local cache: {e}");
            }
        }
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
    /// Whole packs read in the data phase that hold a base, as stored (compressed: far smaller than the
    /// plaintexts), so a base is sliced out of memory instead of fetched again by a ranged GET.
    packs: HashMap<ObjectId, std::sync::Arc<Vec<u8>>>,
    pack_bytes: usize,
}

const DECODED_BOUND: usize = 64 << 20;
/// The stored bytes of packs kept for their bases.
const PACKS_BOUND: usize = 96 << 20;

impl DecodedBases {
    /// Keeps a pack's stored bytes (it holds a base) while the bound allows.
    fn keep_pack(&mut self, pack: ObjectId, bytes: std::sync::Arc<Vec<u8>>) {
        if self.pack_bytes + bytes.len() <= PACKS_BOUND && !self.packs.contains_key(&pack) {
            self.pack_bytes += bytes.len();
            self.packs.insert(pack, bytes);
        }
    }

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
        let range = e.offset as usize..e.offset as usize + e.stored_len as usize;
        let sealed = match decoded.packs.get(&pack_id).and_then(|p| p.get(range)) {
            Some(kept) => kept.to_vec(),
            None => self
                .backend
                .get_range(&name, u64::from(e.offset), u64::from(e.stored_len))
                .await
                .map_err(|err| failed(&err))?,
        };
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
