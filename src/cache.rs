//! The local index cache: a RocksDB database per repository mapping chunk id → locations, plus which index
//! segments it has absorbed and which packs gc marked deleted. It is only a cache: it is filled solely from
//! durable index segments, may be deleted at any time, and is rebuilt from `index/` when missing, corrupt,
//! or locked by another silo process (then a private temporary copy is built for this run).
//!
//! Keys: `c` chunk(32) pack(32) → offset u32 | stored_len u32 | raw_len u32 (LE), then, for a copy stored
//!       as a delta (format-spec/delta.md), base(32) | depth u8;
//!       `s` segment(32) → empty; `d` pack(32) → marked_at i64 (LE); `repo` → repository id;
//!       `q` chunk(32) pack(32) → empty: a copy `check` found damaged (I20), never deduplicated against on this
//!       machine; kept across rebuilds (not in `KINDS`) until `repair snapshots` drops it from the index.

use crate::{Error, Result};
use rocksdb::{Direction, IteratorMode, Options, ReadOptions, WriteBatch, DB};
use silo_format::codec::delta::DeltaHeader;
use silo_format::index::IndexSegment;
use silo_format::{ObjectId, RepoId};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Where one copy of a chunk lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: ObjectId,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    /// This copy is a delta of another chunk (its base and depth); `None`: a whole chunk.
    pub delta: Option<DeltaHeader>,
}

type KeyValue = (Box<[u8]>, Box<[u8]>);

/// The one place keys and values are encoded (the header above says the layout). gc's temporary mark set
/// (`ChunkSet`) uses the same chunk-key prefix.
mod key {
    use super::Location;
    use silo_format::codec::delta::DeltaHeader;
    use silo_format::ObjectId;

    pub const CHUNK: u8 = b'c';
    pub const SEGMENT: u8 = b's';
    pub const DELETED: u8 = b'd';
    pub const QUARANTINED: u8 = b'q';
    pub const REPO: &[u8] = b"repo";
    /// The per-kind prefixes `clear` removes.
    pub const KINDS: [u8; 3] = [CHUNK, DELETED, SEGMENT];

    /// `kind` followed by `id`.
    pub fn of(kind: u8, id: &ObjectId) -> [u8; 33] {
        let mut k = [0u8; 33];
        k[0] = kind;
        k[1..].copy_from_slice(&id.0);
        k
    }

    pub fn chunk_location(chunk: &ObjectId, pack: &ObjectId) -> [u8; 65] {
        let mut k = [0u8; 65];
        k[..33].copy_from_slice(&of(CHUNK, chunk));
        k[33..].copy_from_slice(&pack.0);
        k
    }

    pub fn location_value(l: &Location) -> Vec<u8> {
        let mut v = Vec::with_capacity(45);
        v.extend_from_slice(&l.offset.to_le_bytes());
        v.extend_from_slice(&l.stored_len.to_le_bytes());
        v.extend_from_slice(&l.raw_len.to_le_bytes());
        if let Some(d) = l.delta {
            v.extend_from_slice(&d.base.0);
            v.push(d.depth);
        }
        v
    }

    /// A chunk entry's (chunk, location), or `None` when it is malformed.
    pub fn decode_location(k: &[u8], v: &[u8]) -> Option<(ObjectId, Location)> {
        if k.len() != 65 || !(v.len() == 12 || v.len() == 45) || k[0] != CHUNK {
            return None;
        }
        let chunk = ObjectId(k[1..33].try_into().ok()?);
        let pack = ObjectId(k[33..65].try_into().ok()?);
        let u = |i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
        let delta = (v.len() == 45)
            .then(|| DeltaHeader { base: ObjectId(v[12..44].try_into().unwrap_or([0; 32])), depth: v[44] });
        Some((chunk, Location { pack, offset: u(0), stored_len: u(4), raw_len: u(8), delta }))
    }

    /// The id of a `kind` + id key, or `None` when it is malformed.
    pub fn decode_id(k: &[u8]) -> Option<ObjectId> {
        Some(ObjectId(k.get(1..)?.try_into().ok()?))
    }
}

/// A set of chunk ids on disk (a temporary RocksDB, removed on drop): gc's mark set, so memory does not grow
/// with the repository. Keys as the cache's chunk keys.
pub struct ChunkSet {
    db: DB,
    dir: tempfile::TempDir,
}

impl ChunkSet {
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("silo-gc-marks-")
            .tempdir()
            .map_err(|e| Error::io("creating gc's temporary mark set", e))?;
        let mut o = options();
        o.set_write_buffer_size(16 << 20);
        let db = DB::open(&o, dir.path())
            .map_err(|e| Error::Cache { path: dir.path().display().to_string(), reason: e.to_string() })?;
        Ok(ChunkSet { db, dir })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Cache { path: self.dir.path().display().to_string(), reason: e.to_string() }
    }

    pub fn insert(&self, id: &ObjectId) -> Result<()> {
        self.db.put(key::of(key::CHUNK, id), []).map_err(|e| self.err(e))
    }

    pub fn contains(&self, id: &ObjectId) -> Result<bool> {
        Ok(self.db.get_pinned(key::of(key::CHUNK, id)).map_err(|e| self.err(e))?.is_some())
    }

    pub fn len(&self) -> u64 {
        self.db.iterator(IteratorMode::Start).count() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct IndexCache {
    db: DB,
    path: PathBuf,
    /// Set when the shared cache was locked and this run uses a private copy (removed on drop).
    _private: Option<tempfile::TempDir>,
    /// A writer's view of which packs exist (I20): the listing it took after syncing, plus the packs it
    /// indexed since. `None`: not limited (every other user of the cache).
    present: std::sync::Mutex<Option<HashSet<ObjectId>>>,
    /// Packs the index names that `usable_location` found absent from `present`, or holding a copy found
    /// damaged: the writer marks them deleted, so readers prefer the copies it stores again.
    absent_seen: std::sync::Mutex<HashSet<ObjectId>>,
}

fn options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    // Bounded memory: small memtables; the cache is rebuilt from the repository anyway.
    o.set_write_buffer_size(8 << 20);
    o.set_max_write_buffer_number(2);
    o.set_max_open_files(256);
    // A small block cache: RocksDB's default (32 MiB) filled up when a create with delta chunks looked up
    // every chunk of the previous snapshot of a 10 GiB stream (peak RSS 145 MiB against 80 MiB at 2 GiB).
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&rocksdb::Cache::new_lru_cache(4 << 20));
    o.set_block_based_table_factory(&table);
    o
}

/// The marker that makes a directory silo's to rebuild: the Cache Directory Tagging standard's file (so
/// backup tools skip it), with silo's line. silo deletes or rebuilds nothing in a directory without it.
pub const MARKER: &str = "CACHEDIR.TAG";
const MARKER_TEXT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file marks a silo index cache (https://bford.info/cachedir/).\n\
# silo may delete and rebuild this directory; it holds nothing that is not in the repository.\n";

impl IndexCache {
    /// Opens (or creates) the cache at `path` (a per-repository directory) for repository `repo`. A corrupt
    /// cache, or one of another repository, is rebuilt — only in a directory with silo's marker. A cache
    /// that is locked by another process, unwritable, or a directory silo did not create is left alone and
    /// replaced, for this run, by a private one in a temporary directory.
    pub fn open(path: &Path, repo: RepoId) -> Result<Self> {
        match Self::open_shared(path, repo) {
            Ok(cache) => Ok(cache),
            Err(reason) => {
                tracing::info!(
                    "index cache {}: {reason}; using a private temporary cache for this run",
                    path.display()
                );
                Self::open_private(repo)
            }
        }
    }

    pub fn open_private(repo: RepoId) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("silo-cache-")
            .tempdir()
            .map_err(|e| Error::Cache { path: "temporary directory".into(), reason: e.to_string() })?;
        let db = DB::open(&options(), dir.path())
            .map_err(|e| Error::Cache { path: dir.path().display().to_string(), reason: e.to_string() })?;
        let p = dir.path().to_path_buf();
        Self::adopt(db, p, repo, Some(dir))
    }

    /// The shared cache, or why it cannot be used.
    fn open_shared(path: &Path, repo: RepoId) -> std::result::Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(|e| e.to_string())?;
        let marker = path.join(MARKER);
        if !marker.is_file() {
            let mut entries = std::fs::read_dir(path).map_err(|e| e.to_string())?;
            // An empty directory becomes ours; so does a cache an older silo made (a RocksDB, no marker).
            let ours = entries.next().is_none() || path.join("CURRENT").is_file() && path.join("IDENTITY").is_file();
            if !ours {
                return Err(
                    "the directory holds files silo did not create (no CACHEDIR.TAG); silo leaves them alone".into()
                );
            }
            std::fs::write(&marker, MARKER_TEXT).map_err(|e| e.to_string())?;
        }
        match DB::open(&options(), path) {
            Ok(db) => Self::adopt(db, path.to_path_buf(), repo, None).map_err(|e| e.to_string()),
            // RocksDB's own words for a held LOCK file (another process / this one); not any "lock", which a
            // path such as /srv/blocks would also contain.
            Err(e) if ["While lock file", "lock hold by current process"].iter().any(|w| e.to_string().contains(w)) => {
                Err("in use by another silo process".into())
            }
            Err(e) => {
                tracing::warn!("index cache {} is unreadable ({e}); rebuilding it", path.display());
                // The marker says this directory is silo's: its contents may go.
                let _ = DB::destroy(&options(), path);
                let entries = std::fs::read_dir(path).map_err(|e| e.to_string())?;
                for entry in entries.flatten() {
                    if entry.file_name() != MARKER {
                        let p = entry.path();
                        let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                    }
                }
                let db = DB::open(&options(), path).map_err(|e| e.to_string())?;
                Self::adopt(db, path.to_path_buf(), repo, None).map_err(|e| e.to_string())
            }
        }
    }

    fn adopt(db: DB, path: PathBuf, repo: RepoId, private: Option<tempfile::TempDir>) -> Result<Self> {
        let cache = IndexCache {
            db,
            path,
            _private: private,
            present: std::sync::Mutex::new(None),
            absent_seen: std::sync::Mutex::new(HashSet::new()),
        };
        match cache.db.get(key::REPO).map_err(|e| cache.err(e))? {
            Some(v) if v == repo.0 => {}
            Some(_) => {
                tracing::warn!("index cache {} belongs to another repository; clearing it", cache.path.display());
                cache.clear()?;
                cache.db.put(key::REPO, repo.0).map_err(|e| cache.err(e))?;
            }
            None => cache.db.put(key::REPO, repo.0).map_err(|e| cache.err(e))?,
        }
        Ok(cache)
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Cache { path: self.path.display().to_string(), reason: e.to_string() }
    }

    fn keys_with_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Result<KeyValue>> + '_ {
        let mut ro = ReadOptions::default();
        if let Some(upper) = prefix_upper_bound(prefix) {
            ro.set_iterate_upper_bound(upper);
        }
        let owned = prefix.to_vec();
        self.db
            .iterator_opt(IteratorMode::From(prefix, Direction::Forward), ro)
            .take_while(move |r| r.as_ref().map(|(k, _)| k.starts_with(&owned)).unwrap_or(true))
            .map(|r| r.map_err(|e| Error::Cache { path: String::new(), reason: e.to_string() }))
    }

    /// Every known location of `chunk`.
    pub fn locations(&self, chunk: &ObjectId) -> Result<Vec<Location>> {
        let mut out = Vec::new();
        for item in self.keys_with_prefix(&key::of(key::CHUNK, chunk)) {
            let (k, v) = item?;
            let (_, location) = key::decode_location(&k, &v).ok_or_else(|| self.err("malformed chunk entry"))?;
            out.push(location);
        }
        Ok(out)
    }

    /// A location of `chunk` in a pack gc has not marked deleted: what a writer may deduplicate against.
    pub fn live_location(&self, chunk: &ObjectId) -> Result<Option<Location>> {
        for loc in self.locations(chunk)? {
            if !self.is_marked_deleted(&loc.pack)? {
                return Ok(Some(loc));
            }
        }
        Ok(None)
    }

    /// Copies found damaged (chunk, pack): never deduplicated against on this machine (I20).
    pub fn quarantine(&self, copies: impl IntoIterator<Item = (ObjectId, ObjectId)>) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (chunk, pack) in copies {
            let mut k = key::chunk_location(&chunk, &pack);
            k[0] = key::QUARANTINED;
            batch.put(k, []);
        }
        self.db.write(batch).map_err(|e| self.err(e))
    }

    fn is_quarantined(&self, chunk: &ObjectId, pack: &ObjectId) -> Result<bool> {
        let mut k = key::chunk_location(chunk, pack);
        k[0] = key::QUARANTINED;
        Ok(self.db.get_pinned(k).map_err(|e| self.err(e))?.is_some())
    }

    /// From now on `usable_location` counts only packs in `listed` (and those added by `add_present`).
    pub fn limit_to_present(&self, listed: HashSet<ObjectId>) {
        *self.present.lock().unwrap_or_else(|p| p.into_inner()) = Some(listed);
    }

    /// Whether `pack` was listed (or made durable by this process since); true when no listing was taken.
    pub fn is_present(&self, pack: &ObjectId) -> bool {
        self.present.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(|set| set.contains(pack))
    }

    /// Packs this process made durable and indexed since the listing.
    pub fn add_present(&self, packs: impl IntoIterator<Item = ObjectId>) {
        if let Some(set) = self.present.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            set.extend(packs);
        }
    }

    /// The packs `usable_location` passed over because they are gone or hold a damaged copy (taken: each is
    /// reported once).
    pub fn take_absent_seen(&self) -> Vec<ObjectId> {
        self.absent_seen.lock().unwrap_or_else(|p| p.into_inner()).drain().collect()
    }

    /// What a writer may deduplicate against (I20): a location in a pack gc has not marked deleted and that
    /// exists (when `limit_to_present` was called). A chunk whose only copies are in packs that are gone is
    /// stored again.
    pub fn usable_location(&self, chunk: &ObjectId) -> Result<Option<Location>> {
        let present = self.present.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for loc in self.locations(chunk)? {
            if self.is_marked_deleted(&loc.pack)? {
                continue;
            }
            // A copy found damaged: stored again, and its pack marked so that readers everywhere prefer the
            // new copy (gc then rescues the pack's other chunks and removes it).
            if self.is_quarantined(chunk, &loc.pack)? {
                self.absent_seen.lock().unwrap_or_else(|p| p.into_inner()).insert(loc.pack);
                continue;
            }
            match present.as_ref() {
                None => return Ok(Some(loc)),
                Some(set) if self.stored_in(&loc, set, 0)? => return Ok(Some(loc)),
                Some(_) => {}
            }
        }
        Ok(None)
    }

    /// Whether the copy at `loc` and, for a delta, some copy of each base down its chain are in `present`
    /// packs (I16: a delta is only as good as its base). Packs found absent are remembered.
    fn stored_in(&self, loc: &Location, present: &HashSet<ObjectId>, depth: usize) -> Result<bool> {
        if !present.contains(&loc.pack) {
            self.absent_seen.lock().unwrap_or_else(|p| p.into_inner()).insert(loc.pack);
            return Ok(false);
        }
        let Some(delta) = loc.delta else { return Ok(true) };
        // Chains are at most 32 deep (format-spec/delta.md); anything deeper is not trusted.
        if depth > 32 {
            return Ok(false);
        }
        for base in self.locations(&delta.base)? {
            if !self.is_quarantined(&delta.base, &base.pack)? && self.stored_in(&base, present, depth + 1)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Any location, preferring live packs (a reader that walks delta chains uses `repo::chains::pick`,
    /// which also prefers the shallowest copy and memoises pack marks).
    pub fn any_location(&self, chunk: &ObjectId) -> Result<Option<Location>> {
        let all = self.locations(chunk)?;
        for loc in &all {
            if !self.is_marked_deleted(&loc.pack)? {
                return Ok(Some(*loc));
            }
        }
        Ok(all.first().copied())
    }

    pub fn is_marked_deleted(&self, pack: &ObjectId) -> Result<bool> {
        Ok(self.db.get_pinned(key::of(key::DELETED, pack)).map_err(|e| self.err(e))?.is_some())
    }

    /// Whether gc has marked any pack deleted that is still indexed (between gc's two phases).
    pub fn any_marked_deleted(&self) -> Result<bool> {
        Ok(self.keys_with_prefix(&[key::DELETED]).next().transpose()?.is_some())
    }

    pub fn absorbed_segments(&self) -> Result<HashSet<ObjectId>> {
        let mut out = HashSet::new();
        for item in self.keys_with_prefix(&[key::SEGMENT]) {
            let (k, _) = item?;
            out.insert(key::decode_id(&k).ok_or_else(|| self.err("malformed segment entry"))?);
        }
        Ok(out)
    }

    /// Records every entry of one durable index segment, atomically with the mark that it was absorbed.
    pub fn absorb(&self, segment_id: &ObjectId, segment: &IndexSegment) -> Result<()> {
        let mut batch = WriteBatch::default();
        for p in &segment.packs {
            let mut deltas = p.deltas.iter().peekable();
            for (i, e) in p.entries.iter().enumerate() {
                let delta =
                    deltas.next_if(|d| d.entry as usize == i).map(|d| DeltaHeader { base: d.base, depth: d.depth });
                let location =
                    Location { pack: p.pack, offset: e.offset, stored_len: e.stored_len, raw_len: e.raw_len, delta };
                batch.put(key::chunk_location(&e.chunk, &p.pack), key::location_value(&location));
            }
        }
        for d in &segment.deleted {
            batch.put(key::of(key::DELETED, &d.pack), d.marked_at.to_le_bytes());
        }
        batch.put(key::of(key::SEGMENT, segment_id), []);
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// Forgets everything but the repository id.
    pub fn clear(&self) -> Result<()> {
        let mut batch = WriteBatch::default();
        for kind in key::KINDS {
            batch.delete_range([kind], [kind + 1]);
        }
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// Calls `f` for every (chunk, location) entry, in chunk-id order.
    pub fn for_each_location(&self, mut f: impl FnMut(&ObjectId, &Location)) -> Result<()> {
        for item in self.keys_with_prefix(&[key::CHUNK]) {
            let (k, v) = item?;
            let (chunk, location) = key::decode_location(&k, &v).ok_or_else(|| self.err("malformed chunk entry"))?;
            f(&chunk, &location);
        }
        Ok(())
    }
}

/// The smallest key greater than every key starting with `prefix` (increment with carry), or None when the
/// prefix is all 0xff and no such key exists.
fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < 0xff {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

/// The cache directory of a repository: below `base` (`--cache-dir`) if given, else `$SILO_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/silo`, else `~/.cache/silo`, always in a subdirectory named by the repository id — so a
/// directory the user names is never itself the database. `None` when no base is known (then a private
/// temporary cache is used).
pub fn dir_for(base: Option<&Path>, repo: RepoId) -> Option<PathBuf> {
    Some(base_dir(base)?.join(repo.to_hex()))
}

/// The base below which silo keeps its local state (caches, the run spool): `base` if given, else
/// `$SILO_CACHE_DIR`, `$XDG_CACHE_HOME/silo`, `~/.cache/silo`.
pub fn base_dir(base: Option<&Path>) -> Option<PathBuf> {
    base.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SILO_CACHE_DIR").map(PathBuf::from))
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|p| PathBuf::from(p).join("silo")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/silo")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_format::index::IndexPack;
    use silo_format::pack::PackEntry;

    #[test]
    fn a_held_cache_is_in_use_and_a_broken_one_is_rebuilt_even_under_a_path_saying_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks-lock");
        let held = IndexCache::open_shared(&path, RepoId([1; 16])).unwrap();
        let again = IndexCache::open_shared(&path, RepoId([1; 16])).err().unwrap();
        assert_eq!(again, "in use by another silo process");
        drop(held);
        // A cache RocksDB cannot read (its CURRENT names a manifest that is not there) is silo's to rebuild.
        std::fs::write(path.join("CURRENT"), "MANIFEST-999999\n").unwrap();
        let rebuilt = IndexCache::open_shared(&path, RepoId([1; 16]));
        assert!(rebuilt.is_ok(), "{:?}", rebuilt.err());
    }

    #[test]
    fn upper_bound_carries() {
        assert_eq!(prefix_upper_bound(b"c\x01"), Some(b"c\x02".to_vec()));
        assert_eq!(prefix_upper_bound(b"c\xff"), Some(b"d".to_vec()));
        assert_eq!(prefix_upper_bound(b"\xff\xff"), None);
    }

    #[test]
    fn finds_chunks_whose_ids_end_in_ff_and_prefers_live_packs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = IndexCache::open(dir.path(), RepoId([1; 16])).unwrap();
        let mut seg = IndexSegment::new();
        let ids = [ObjectId([0xff; 32]), ObjectId([0; 32]), ObjectId([0x7f; 32])];
        for (i, pack) in [ObjectId([1; 32]), ObjectId([2; 32])].into_iter().enumerate() {
            let entries = ids
                .iter()
                .enumerate()
                .map(|(j, id)| PackEntry {
                    chunk: *id,
                    offset: 12 + 100 * j as u32,
                    stored_len: 100,
                    raw_len: 70 + i as u32,
                })
                .collect();
            seg.packs.push(IndexPack { pack, pack_size: 1000, entries, deltas: vec![] });
        }
        seg.deleted.push(silo_format::index::DeletedPack { pack: ObjectId([1; 32]), marked_at: 5 });
        cache.absorb(&ObjectId([9; 32]), &seg).unwrap();
        for id in &ids {
            assert_eq!(cache.locations(id).unwrap().len(), 2, "{id:?}");
            assert_eq!(cache.live_location(id).unwrap().unwrap().pack, ObjectId([2; 32]));
        }
        assert!(cache.locations(&ObjectId([0xfe; 32])).unwrap().is_empty());
        assert_eq!(cache.absorbed_segments().unwrap().len(), 1);
        cache.clear().unwrap();
        assert!(cache.locations(&ids[0]).unwrap().is_empty());
        assert!(cache.absorbed_segments().unwrap().is_empty());
    }
}
