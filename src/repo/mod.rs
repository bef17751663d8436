//! A repository handle: backend + unlocked keys + config + (lazily) the index cache. `init` creates one,
//! `open` unlocks one; writing lives in `write`, reading in `read`, snapshot selection in `snapshots`.

pub mod bases;
pub mod chains;
pub mod check;
pub mod copy;
pub mod drill;
pub mod fallback;
pub mod forget;
pub mod gc;
pub mod index;
pub mod keys;
pub mod lease;
pub mod liveness;
pub mod previous;
pub mod read;
pub mod repair;
pub mod resemble;
pub mod runs;
pub mod session;
pub mod snapshots;
pub mod stats;
pub mod write;

use crate::backend::{names, AppendOnly, ReadBackend, WriteBackend};
use crate::cache::{self, IndexCache};
use crate::clock::{Clock, SystemClock};
use crate::{Error, Result};
use silo_format::chunker::ChunkerParams;
use silo_format::config::{self, RepoConfig, CONFIG_BODY_VERSION};
use silo_format::envelope::random_nonce;
use silo_format::keyfile::{KdfParams, KeyFile};
use silo_format::{FormatError, Keys, MasterSecret, ObjectId, RepoId};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Choices fixed at `init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub chunker: ChunkerParams,
    pub pack_target_size: u32,
    pub compression_level: i32,
    pub gc_safety_age: u64,
    pub gc_grace_period: u64,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            chunker: ChunkerParams::DEFAULT,
            pack_target_size: 8 << 20,
            compression_level: 3,
            gc_safety_age: 24 * 3600,
            gc_grace_period: 24 * 3600,
        }
    }
}

/// The longest gc safety age or grace period `init` accepts.
pub const MAX_GC_SECONDS: u64 = 10 * 365 * 86_400;

/// How old the leftovers of a killed `init` must be before another `init` removes them.
const INIT_LEFTOVER_AGE: i64 = 60_000_000;

/// Makes room for `init` where an earlier `init` was killed: with no `config`, the only objects there may be
/// key files (`keys/`, which decode as silo key files) and silo's temporary files (`tmp/<8 hex>.tmp`, probes);
/// those are removed.
/// Anything else means the location holds something that is not ours, and nothing is touched.
async fn clear_interrupted_init(backend: &dyn WriteBackend) -> Result<()> {
    let listed = backend.list("").await?;
    let ours = |name: &str| name.starts_with(names::KEYS) || names::is_silo_temporary(name);
    if listed.iter().any(|o| !ours(&o.name)) {
        return Err(Error::AlreadyExists { location: backend.location() });
    }
    // A key file this young may belong to an init running right now (it writes `config` a moment later).
    let now = crate::time::now_micros();
    if listed.iter().any(|o| now - o.modified < INIT_LEFTOVER_AGE) {
        return Err(Error::Input {
            what: backend.location(),
            message:
                "another `silo init` is writing here (or one was killed less than a minute ago); try again in a minute"
                    .into(),
        });
    }
    for o in &listed {
        if o.name.starts_with(names::KEYS) {
            let bytes = backend.get(&o.name).await?;
            if KeyFile::decode(&bytes).is_err() {
                return Err(Error::AlreadyExists { location: backend.location() });
            }
        }
    }
    for o in listed {
        tracing::info!("removing {} left by an interrupted init", o.name);
        match backend.delete(&o.name).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A handle on an open repository; clones share everything (keys, cache, clock).
#[derive(Clone)]
pub struct Repository {
    /// Reads, and adds objects under fresh names: what every handle may do.
    pub backend: AppendOnly,
    /// Replacing and deleting: present only on a handle opened with an owner key, so code running for a
    /// writer key has no way to reach a delete (I11). Reached through `owner_store`.
    pub(crate) store: Option<Arc<dyn WriteBackend>>,
    pub repo_id: RepoId,
    pub keys: Arc<Keys>,
    pub config: RepoConfig,
    /// The master secret (zeroized on drop), for wrapping new key files (repo/keys.rs).
    master: Arc<MasterSecret>,
    /// The key file that opened this handle.
    key_id: ObjectId,
    /// BLAKE3 of that key file's bytes as they opened: a later removal counts it as a key that opens only
    /// while its file is still exactly these bytes (I17).
    key_digest: [u8; 32],
    cache_dir: Option<PathBuf>,
    cache: OnceLock<Arc<IndexCache>>,
    /// Every time this handle reads or writes comes from here (crate::clock): the machine's clock in the
    /// binary, a moved one in tests.
    clock: Arc<dyn Clock>,
}

/// The user running silo, for key files: $USER, else $LOGNAME, else the numeric uid.
pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        // SAFETY: getuid(2) cannot fail.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }))
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Repository {
    /// Creates a repository: the key file first, then `config` with create-if-absent, so two racing inits
    /// cannot both succeed and a crash leaves no half-made repository that `open` would accept.
    pub async fn init(backend: Arc<dyn WriteBackend>, password: &[u8], options: &InitOptions) -> Result<RepoId> {
        let cfg = RepoConfig {
            version: CONFIG_BODY_VERSION,
            chunker: options.chunker,
            pack_target_size: options.pack_target_size,
            compression_level: options.compression_level,
            gc_safety_age: options.gc_safety_age,
            gc_grace_period: options.gc_grace_period,
            created: crate::time::now_micros(),
            chunker_rule: silo_format::chunker::RULE_SKIP_RUNS,
        };
        cfg.validate().map_err(|e| Error::Invalid(format!("init: {e}")))?;
        for (what, value) in
            [("--gc-safety-age", options.gc_safety_age), ("--gc-grace-period", options.gc_grace_period)]
        {
            if value > MAX_GC_SECONDS {
                return Err(Error::Input {
                    what: format!("{what} {value}"),
                    message: format!("at most {MAX_GC_SECONDS} seconds (10 years)"),
                });
            }
        }
        clear_interrupted_init(backend.as_ref()).await?;
        let repo = RepoId::random();
        let master = MasterSecret::random();
        let keys = Keys::derive(&master);
        let key_id = ObjectId::random();
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&ObjectId::random().0[..16]);
        let kf = KeyFile::wrap(
            &master,
            password,
            repo,
            key_id,
            options.kdf,
            salt,
            crate::time::now_micros(),
            hostname(),
            username(),
            silo_format::keyfile::ROLE_OWNER,
            random_nonce(),
        )
        .map_err(|e| Error::Invalid(format!("init: {e}")))?;
        backend.put(&names::key(&key_id), kf.encode()).await?;
        let body = config::encode(&cfg, &keys, repo, random_nonce());
        let key_name = names::key(&key_id);
        let key_bytes = kf.encode();
        if !backend.put_if_absent(names::CONFIG, body).await? {
            match backend.delete(&key_name).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            return Err(Error::AlreadyExists { location: backend.location() });
        }
        // A racing init that took our key file for a killed init's leftover may have removed it: restore it.
        if matches!(backend.get(&key_name).await, Err(ref e) if e.is_not_found()) {
            backend.put(&key_name, key_bytes).await?;
        }
        Ok(repo)
    }

    /// Unlocks a repository with `password`. Reads only; writes nothing to the repository.
    pub async fn open(backend: Arc<dyn WriteBackend>, password: &[u8], cache_dir: Option<PathBuf>) -> Result<Self> {
        Self::open_inner(backend, password, cache_dir, false).await
    }

    /// Like `open`, and opens the index cache meanwhile, on a thread of its own, while the password's key
    /// derivation runs: opening it (RocksDB replays and rewrites its log, with fsyncs) is mostly waiting,
    /// and a restore needs it before its first read. Only the repository id of `config`'s plain header
    /// names the cache before the key has authenticated it, so only a cache silo made before (its marker is
    /// there) is opened early, and it is never trusted early: a wrong password still fails the open and
    /// creates no cache.
    pub async fn open_with_cache(
        backend: Arc<dyn WriteBackend>,
        password: &[u8],
        cache_dir: Option<PathBuf>,
    ) -> Result<Self> {
        Self::open_inner(backend, password, cache_dir, true).await
    }

    async fn open_inner(
        backend: Arc<dyn WriteBackend>,
        password: &[u8],
        cache_dir: Option<PathBuf>,
        warm_cache: bool,
    ) -> Result<Self> {
        let raw = match backend.get(names::CONFIG).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::NotARepository { location: backend.location() }),
            Err(e) => return Err(e.into()),
        };
        let header = match config::parse_header(&raw) {
            Ok(h) => h,
            Err(FormatError::BadMagic { .. }) => return Err(Error::ForeignRepository { location: backend.location() }),
            Err(FormatError::Truncated { .. }) if !config::CONFIG_MAGIC.starts_with(&raw[..raw.len().min(8)]) => {
                return Err(Error::ForeignRepository { location: backend.location() })
            }
            Err(FormatError::UnsupportedVersion { found, supported, .. }) => {
                return Err(Error::UnsupportedFormat { found, supported })
            }
            Err(e) => return Err(Error::damaged("config", e)),
        };
        let warming = warm_cache.then(|| CacheOpening::start(cache_dir.clone(), header.repo));
        let Unlocked { master, key_id, role, digest: key_digest } =
            unlock(backend.as_ref(), header.repo, password, None).await?;
        let keys = Keys::derive(&master);
        let config = config::decode(&raw, &keys).map_err(|e| Error::damaged("config", e))?;
        let cache = OnceLock::new();
        // A cache that failed to open is opened again on first use, which reports why.
        if let Some(Ok(opened)) = warming.and_then(CacheOpening::finish) {
            let _ = cache.set(Arc::new(opened));
        }
        let writer_only = role == silo_format::keyfile::ROLE_WRITER;
        Ok(Repository {
            backend: AppendOnly::new(backend.clone()),
            store: (!writer_only).then_some(backend),
            repo_id: header.repo,
            keys: Arc::new(keys),
            master: Arc::new(master),
            key_id,
            key_digest,
            config,
            cache_dir,
            cache,
            clock: Arc::new(SystemClock),
        })
    }

    /// Whether this handle was opened with a writer key (append-only: it holds no `WriteBackend`).
    pub fn is_writer_only(&self) -> bool {
        self.store.is_none()
    }

    /// The store with its deleting and replacing half, for `action` (a command that deletes or rewrites);
    /// refused on a handle opened with a writer key, which holds none (I11).
    pub fn owner_store(&self, action: &str) -> Result<Arc<dyn WriteBackend>> {
        self.store.clone().ok_or_else(|| Error::WriterKey { action: action.to_string() })
    }

    /// The same handle reading time from `clock` (tests: hours of gc times in milliseconds, skewed writers).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by this handle's clock (µs since the epoch).
    pub fn now(&self) -> i64 {
        self.clock.now_micros()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The index cache, opened on first use (listing snapshots does not need it).
    pub fn cache(&self) -> Result<Arc<IndexCache>> {
        if let Some(c) = self.cache.get() {
            return Ok(c.clone());
        }
        let opened = Arc::new(open_cache(self.cache_dir.as_deref(), self.repo_id)?);
        Ok(self.cache.get_or_init(|| opened).clone())
    }
}

/// The index cache of repository `repo` below `cache_dir` (or silo's default place), or a private one.
fn open_cache(cache_dir: Option<&std::path::Path>, repo: RepoId) -> Result<IndexCache> {
    match cache::dir_for(cache_dir, repo) {
        Some(dir) => IndexCache::open(&dir, repo),
        None => IndexCache::open_private(repo),
    }
}

/// The index cache being opened on a thread of its own (`Repository::open_with_cache`). The thread is
/// always joined, on every path: a thread left running with RocksDB open when the process exits crashes
/// it.
struct CacheOpening(Option<std::thread::JoinHandle<Result<IndexCache>>>);

impl CacheOpening {
    /// Starts opening the cache of `repo` if silo made one there before; otherwise (and when no thread is
    /// to be had) it is opened on first use, after the password was checked.
    fn start(cache_dir: Option<PathBuf>, repo: RepoId) -> Self {
        let exists = cache::dir_for(cache_dir.as_deref(), repo).is_some_and(|d| d.join(cache::MARKER).is_file());
        let spawned = exists.then(|| {
            std::thread::Builder::new()
                .name("silo-cache-open".into())
                .spawn(move || open_cache(cache_dir.as_deref(), repo))
        });
        CacheOpening(spawned.and_then(|s| s.ok()))
    }

    /// The opened cache (or why not); `None` if the thread could not be started or panicked.
    fn finish(mut self) -> Option<Result<IndexCache>> {
        self.0.take().and_then(|t| t.join().ok())
    }
}

impl Drop for CacheOpening {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

/// Seals `value` as object `id` of its kind and stores it under the kind's name (names.rs): `save` for
/// code that runs without a `Repository` at hand (upload and heartbeat tasks).
pub(crate) async fn save_to<T: names::Named>(
    backend: &AppendOnly,
    keys: &Keys,
    repo: RepoId,
    id: ObjectId,
    value: &T,
) -> Result<()> {
    Ok(backend.create(&T::name(&id), value.seal(keys, repo, id, random_nonce())).await?)
}

impl Repository {
    /// Seals `value` as object `id` of its kind and stores it under the kind's name (names.rs).
    pub async fn save<T: names::Named>(&self, id: ObjectId, value: &T) -> Result<()> {
        save_to(&self.backend, &self.keys, self.repo_id, id, value).await
    }

    /// Like `save`, but only if no object of that name exists; false (nothing written) if one does.
    pub async fn save_if_absent<T: names::Named>(&self, id: ObjectId, value: &T) -> Result<bool> {
        let sealed = value.seal(&self.keys, self.repo_id, id, random_nonce());
        Ok(self.backend.create_if_absent(&T::name(&id), sealed).await?)
    }

    /// Object `id` of kind `T`, opened (`load_sealed`: refetched once before it is called damage).
    pub async fn load<T: names::Named>(&self, id: ObjectId) -> Result<T> {
        self.load_sealed::<T>(&T::name(&id), id).await
    }

    /// The sealed object `name` (id `id`), opened. One that fails to open is fetched once more before it
    /// is called damaged: a byte flipped in transit is not damage in the repository.
    pub async fn load_sealed<T: silo_format::Sealed>(&self, name: &str, id: ObjectId) -> Result<T> {
        let bytes = self.backend.get(name).await?;
        match T::open(&self.keys, self.repo_id, id, &bytes) {
            Ok(v) => Ok(v),
            Err(first) => {
                tracing::info!("{name}: {first}; fetching it again");
                let bytes = self.backend.get(name).await?;
                T::open(&self.keys, self.repo_id, id, &bytes).map_err(|e| Error::damaged(name, e))
            }
        }
    }

    /// Every object of kind `T`, with its id and name. Objects removed while listing are
    /// skipped; an object that does not open is damage, named.
    pub async fn load_all<T: names::Named>(&self) -> Result<Vec<(ObjectId, String, T)>> {
        let mut out = Vec::new();
        for info in self.backend.list(T::PREFIX).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            let value = match self.load_sealed::<T>(&info.name, id).await {
                Ok(v) => v,
                Err(Error::Backend(e)) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            out.push((id, info.name, value));
        }
        Ok(out)
    }
}

/// What a password opened: the master secret, the key file's id, its role and the BLAKE3 of its bytes.
pub(crate) struct Unlocked {
    pub master: MasterSecret,
    pub key_id: ObjectId,
    pub role: u8,
    pub digest: [u8; 32],
}

/// The key file `password` opens (other than `except`, when given).
pub(crate) async fn unlock(
    backend: &dyn ReadBackend,
    repo: RepoId,
    password: &[u8],
    except: Option<ObjectId>,
) -> Result<Unlocked> {
    let listed = backend.list(names::KEYS).await?;
    if listed.is_empty() {
        return Err(Error::Inconsistent { object: names::KEYS.into(), reason: "no key files".into() });
    }
    let mut damaged = None;
    let mut intact = 0usize;
    for info in listed {
        let Some(id) = names::id_of(&info.name) else {
            continue;
        };
        if except == Some(id) {
            continue;
        }
        let bytes = match backend.get(&info.name).await {
            Ok(bytes) => bytes,
            // Removed since the listing (a concurrent `key passwd` or `key remove`): no longer a key.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let kf = match KeyFile::decode(&bytes) {
            Ok(kf) if kf.repo == repo => kf,
            Ok(_) => {
                damaged = Some(Error::Inconsistent {
                    object: info.name.clone(),
                    reason: "belongs to another repository".into(),
                });
                continue;
            }
            Err(e) => {
                tracing::warn!("key file {}: {e}", info.name);
                damaged = Some(Error::damaged(info.name.clone(), e));
                continue;
            }
        };
        intact += 1;
        match kf.unwrap(password, id) {
            Ok(master) => {
                return Ok(Unlocked { master, key_id: id, role: kf.role, digest: *blake3::hash(&bytes).as_bytes() })
            }
            Err(FormatError::Authentication) => continue,
            Err(e) => damaged = Some(Error::damaged(info.name.clone(), e)),
        }
    }
    // Only when no intact key file exists is damage the answer; otherwise the password was wrong.
    match damaged {
        Some(e) if intact == 0 => Err(e),
        _ => Err(Error::WrongPassword),
    }
}
