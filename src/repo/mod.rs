//! A repository handle: backend + unlocked keys + config + (lazily) the index cache. `init` creates one,
//! `open` unlocks one; writing lives in `write`, reading in `read`, snapshot selection in `snapshots`.

pub mod check;
pub mod copy;
pub mod drill;
pub mod forget;
pub mod gc;
pub mod index;
pub mod read;
pub mod repair;
pub mod session;
pub mod snapshots;
pub mod stats;
pub mod write;

use crate::backend::{names, Backend};
use crate::cache::{self, IndexCache};
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
            compression_level: 1,
            gc_safety_age: 24 * 3600,
            gc_grace_period: 24 * 3600,
        }
    }
}

pub struct Repository {
    pub backend: Arc<dyn Backend>,
    pub repo_id: RepoId,
    pub keys: Arc<Keys>,
    pub config: RepoConfig,
    cache_dir: Option<PathBuf>,
    cache: OnceLock<Arc<IndexCache>>,
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
    pub async fn init(backend: Arc<dyn Backend>, password: &[u8], options: &InitOptions) -> Result<RepoId> {
        let cfg = RepoConfig {
            version: CONFIG_BODY_VERSION,
            chunker: options.chunker,
            pack_target_size: options.pack_target_size,
            compression_level: options.compression_level,
            gc_safety_age: options.gc_safety_age,
            gc_grace_period: options.gc_grace_period,
            created: crate::time::now_micros(),
        };
        cfg.validate().map_err(|e| Error::Invalid(format!("init: {e}")))?;
        if !backend.list("").await?.is_empty() {
            return Err(Error::AlreadyExists { location: backend.location() });
        }
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
            random_nonce(),
        )
        .map_err(|e| Error::Invalid(format!("init: {e}")))?;
        backend.put(&names::key(&key_id), kf.encode()).await?;
        let body = config::encode(&cfg, &keys, repo, random_nonce());
        if !backend.put_if_absent(names::CONFIG, body).await? {
            backend.delete(&names::key(&key_id)).await?;
            return Err(Error::AlreadyExists { location: backend.location() });
        }
        Ok(repo)
    }

    /// Unlocks a repository with `password`. Reads only; writes nothing to the repository.
    pub async fn open(backend: Arc<dyn Backend>, password: &[u8], cache_dir: Option<PathBuf>) -> Result<Self> {
        let raw = match backend.get(names::CONFIG).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::NotARepository { location: backend.location() }),
            Err(e) => return Err(e.into()),
        };
        let header = match config::parse_header(&raw) {
            Ok(h) => h,
            Err(FormatError::UnsupportedVersion { found, supported, .. }) => {
                return Err(Error::UnsupportedFormat { found, supported })
            }
            Err(e) => return Err(Error::damaged("config", e)),
        };
        let master = unlock(backend.as_ref(), header.repo, password).await?;
        let keys = Keys::derive(&master);
        let config = config::decode(&raw, &keys).map_err(|e| Error::damaged("config", e))?;
        Ok(Repository {
            backend,
            repo_id: header.repo,
            keys: Arc::new(keys),
            config,
            cache_dir,
            cache: OnceLock::new(),
        })
    }

    /// The index cache, opened on first use (listing snapshots does not need it).
    pub fn cache(&self) -> Result<Arc<IndexCache>> {
        if let Some(c) = self.cache.get() {
            return Ok(c.clone());
        }
        let dir = self.cache_dir.clone().unwrap_or_else(|| cache::default_dir(self.repo_id));
        let opened = Arc::new(IndexCache::open(&dir, self.repo_id)?);
        Ok(self.cache.get_or_init(|| opened).clone())
    }
}

impl Repository {
    /// Every object of sealed type `T` under `prefix`, with its id. Objects removed while listing are
    /// skipped; an object that does not open is damage, named.
    pub async fn load_all<T: silo_format::Sealed>(&self, prefix: &str) -> Result<Vec<(ObjectId, String, T)>> {
        let mut out = Vec::new();
        for info in self.backend.list(prefix).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            let bytes = match self.backend.get(&info.name).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let value =
                T::open(&self.keys, self.repo_id, id, &bytes).map_err(|e| Error::damaged(info.name.clone(), e))?;
            out.push((id, info.name, value));
        }
        Ok(out)
    }
}

async fn unlock(backend: &dyn Backend, repo: RepoId, password: &[u8]) -> Result<MasterSecret> {
    let listed = backend.list(names::KEYS).await?;
    if listed.is_empty() {
        return Err(Error::Inconsistent { object: "keys/".into(), reason: "no key files".into() });
    }
    let mut damaged = None;
    let mut intact = 0usize;
    for info in listed {
        let Some(id) = names::id_of(&info.name) else {
            continue;
        };
        let bytes = backend.get(&info.name).await?;
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
            Ok(master) => return Ok(master),
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
