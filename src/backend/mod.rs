//! Storage backends: a flat namespace of immutable objects (`config`, `keys/…`, `packs/xx/…`, `index/…`,
//! `snapshots/…`). An object is written once under its final name and later maybe deleted; never modified.
//! The trait is shaped for object stores: whole-object puts, ranged reads, listing by prefix, create-if-absent.

pub mod local;
pub mod memory;
pub mod metered;
pub mod retry;
pub mod s3;

use async_trait::async_trait;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("object {name} not found")]
    NotFound { name: String },
    #[error("{}: {source}", subject(name))]
    Io { name: String, source: std::io::Error },
    #[error("object {name}: wanted {wanted} bytes at offset {offset}, object ends earlier")]
    ShortRead { name: String, offset: u64, wanted: u64 },
    #[error("object {name}: gave up after {attempts} failed attempts in {seconds} s (last: {last}); the store is unreachable or failing — nothing committed was harmed, run the command again later")]
    GaveUp { name: String, attempts: u32, seconds: u64, last: String },
    #[error("repository location {location:?}: {reason}")]
    Location { location: String, reason: String },
}

/// What an I/O error is about: an object, a listing of a prefix, or the repository itself.
fn subject(name: &str) -> String {
    if name.is_empty() {
        "the repository".to_string()
    } else if name.ends_with('/') {
        format!("listing {name}")
    } else {
        format!("object {name}")
    }
}

impl BackendError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }

    /// A fault that may pass (a 5xx answer, a timeout, a connection refused or cut): worth retrying.
    /// Not-found, permission and malformed-request answers are final.
    pub fn is_transient(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            BackendError::Io { source, .. } => matches!(
                source.kind(),
                K::Other
                    | K::TimedOut
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::ConnectionRefused
                    | K::NotConnected
                    | K::BrokenPipe
                    | K::UnexpectedEof
                    | K::Interrupted
                    | K::WouldBlock
            ),
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
    /// Last modification, µs since the epoch, by the backend's clock.
    pub modified: i64,
}

/// One range of `get_ranges`: `len` bytes of object `name` at `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    pub name: String,
    pub offset: u64,
    pub len: u64,
}

/// Reading a store: every handle on a repository has this half.
#[async_trait]
pub trait ReadBackend: Send + Sync + 'static {
    /// Where the repository lives, for messages.
    fn location(&self) -> String;
    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError>;
    /// Exactly `len` bytes at `offset`, or an error.
    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError>;
    /// Several ranges (of one object or of several), each answered as `get_range` would, in order. The
    /// default asks for them all at once; a backend whose every call has a fixed cost of its own (a local
    /// directory: a hop to a blocking thread and back) reads them in one call. A restore reads its chunks and
    /// their bases a group of ranges at a time (repo/read.rs).
    async fn get_ranges(&self, ranges: &[RangeRequest]) -> Vec<Result<Vec<u8>, BackendError>> {
        futures::future::join_all(ranges.iter().map(|r| self.get_range(&r.name, r.offset, r.len))).await
    }
    /// Every object whose name starts with `prefix` (a directory such as `index/`), in no particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError>;
    /// The permission bits of object `name` where the backend has them (a local directory); `None` on an
    /// object store, whose access is the bucket policy's.
    fn local_mode(&self, _name: &str) -> Option<u32> {
        None
    }
    /// Requests made so far through this handle (object stores charge per request); zero if not metered.
    fn requests(&self) -> metered::RequestCounts {
        metered::RequestCounts::default()
    }
}

/// Writing a store: replacing and deleting objects. Every store implements it; a repository hands it out
/// only to a handle opened with an owner key (`Repository::owner_store`, I11). Everyone else writes
/// through [`AppendOnly`].
#[async_trait]
pub trait WriteBackend: ReadBackend {
    /// Stores `data` under `name` atomically and durably (a reader sees all of it or nothing), replacing
    /// what was there.
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError>;
    /// Like `put`, but only if `name` does not exist yet; returns false (and writes nothing) if it does.
    async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError>;
    async fn delete(&self, name: &str) -> Result<(), BackendError>;
    /// The backend's own clock (µs since the epoch), for gc's skew check; `None` if it has none to offer.
    /// Here, not in the reading half: a store tells its time by writing a probe object and deleting it.
    async fn server_time(&self) -> Result<Option<i64>, BackendError> {
        Ok(None)
    }
}

/// A store seen through a handle that adds objects and never removes or replaces one: reads, `create`
/// of an object under a name no one has used (a random id: packs, index segments, snapshots, sessions,
/// run records, drills) and `create_if_absent`. It has no delete and no overwrite: a repository opened
/// with a writer key holds only this (I11, enforced by the types, not by checks at each call).
///
/// Adding through it compiles:
/// ```no_run
/// # async fn add(repo: &silo::repo::Repository) -> Result<(), silo::backend::BackendError> {
/// use silo::backend::ReadBackend;
/// let _listed = repo.backend.list("snapshots/").await?;
/// repo.backend.create("runs/0123", vec![1, 2, 3]).await
/// # }
/// ```
/// Deleting or replacing through it does not:
/// ```compile_fail
/// # async fn remove(repo: &silo::repo::Repository) -> Result<(), silo::backend::BackendError> {
/// use silo::backend::{ReadBackend, WriteBackend};
/// repo.backend.delete("snapshots/0123").await
/// # }
/// ```
/// ```compile_fail
/// # async fn replace(repo: &silo::repo::Repository) -> Result<(), silo::backend::BackendError> {
/// use silo::backend::{ReadBackend, WriteBackend};
/// repo.backend.put("snapshots/0123", Vec::new()).await
/// # }
/// ```
#[derive(Clone)]
pub struct AppendOnly(std::sync::Arc<dyn WriteBackend>);

impl AppendOnly {
    pub fn new(store: std::sync::Arc<dyn WriteBackend>) -> Self {
        AppendOnly(store)
    }

    /// Stores a new object under `name`, a name made fresh for it (a random id of its kind, names.rs).
    /// A retried upload may store the same bytes twice under the same name; nothing else is replaced.
    pub async fn create(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        self.0.put(name, data).await
    }

    /// Stores `data` under `name` only if no object has that name; false (nothing written) if one does.
    pub async fn create_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError> {
        self.0.put_if_absent(name, data).await
    }

    /// The reading half alone, for tasks that only read (restore's fetches).
    pub fn reader(&self) -> std::sync::Arc<dyn ReadBackend> {
        self.0.clone()
    }
}

#[async_trait]
impl ReadBackend for AppendOnly {
    fn location(&self) -> String {
        self.0.location()
    }
    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        self.0.get(name).await
    }
    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        self.0.get_range(name, offset, len).await
    }
    async fn get_ranges(&self, ranges: &[RangeRequest]) -> Vec<Result<Vec<u8>, BackendError>> {
        self.0.get_ranges(ranges).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.0.list(prefix).await
    }
    fn local_mode(&self, name: &str) -> Option<u32> {
        self.0.local_mode(name)
    }
    fn requests(&self) -> metered::RequestCounts {
        self.0.requests()
    }
}

/// The backend for a repository location: `s3:http[s]://…` (retried, retry.rs) or a local directory;
/// metered either way. A location that looks like a URL of another kind is refused, never taken for a
/// local directory named `http:` (backups would silently land on the local disk).
pub fn open(location: &str) -> Result<std::sync::Arc<dyn WriteBackend>, BackendError> {
    let inner: std::sync::Arc<dyn WriteBackend> = if location.starts_with("s3:") {
        let s3: std::sync::Arc<dyn WriteBackend> = std::sync::Arc::new(s3::S3Backend::open(location)?);
        let mut policy = retry::RetryPolicy::DEFAULT;
        // SILO_RETRY_SECONDS: how long one request may keep failing before silo gives up (default 180).
        if let Some(secs) = std::env::var("SILO_RETRY_SECONDS").ok().and_then(|v| v.parse::<u64>().ok()) {
            policy.budget = std::time::Duration::from_secs(secs.clamp(1, 86_400));
        }
        std::sync::Arc::new(retry::Retrying::new(s3, policy))
    } else {
        check_local_location(location)?;
        std::sync::Arc::new(local::LocalBackend::new(location))
    };
    Ok(std::sync::Arc::new(metered::Metered::new(inner)))
}

/// The backend `init` creates a repository on: as `open`, and with `group_readable` (local directories
/// only) everything it creates may be read by the directory's group.
pub fn open_for_init(location: &str, group_readable: bool) -> Result<std::sync::Arc<dyn WriteBackend>, BackendError> {
    if !group_readable {
        return open(location);
    }
    if location.starts_with("s3:") {
        return Err(BackendError::Location {
            location: location.to_string(),
            reason: "--group-readable applies to local directories; on S3, the bucket policy decides who reads".into(),
        });
    }
    check_local_location(location)?;
    let local: std::sync::Arc<dyn WriteBackend> = std::sync::Arc::new(local::LocalBackend::group_readable(location));
    Ok(std::sync::Arc::new(metered::Metered::new(local)))
}

/// A local location must not look like a URL (`http://…`, `s3://…`, `sftp:…`): say what to write instead.
fn check_local_location(location: &str) -> Result<(), BackendError> {
    let refuse = |reason: String| Err(BackendError::Location { location: location.to_string(), reason });
    if location.is_empty() {
        return refuse("is empty".into());
    }
    if let Some((scheme, rest)) = location.split_once(':') {
        let scheme_like = !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
        if scheme_like && !location.starts_with('.') && !location.starts_with('/') {
            let hint = if rest.starts_with("//") && matches!(scheme, "http" | "https") {
                format!("for S3 write s3:{location}")
            } else if scheme == "s3" {
                "write s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]".into()
            } else {
                format!(
                    "silo supports local directories and s3:http[s]://…; for a directory named so, write ./{location}"
                )
            };
            return refuse(format!("is not a local directory or a known scheme; {hint}"));
        }
    }
    Ok(())
}

/// Object names (format-spec/objects.md).
pub mod names {
    use silo_format::ObjectId;

    pub const CONFIG: &str = "config";
    pub const KEYS: &str = "keys/";
    pub const PACKS: &str = "packs/";
    pub const INDEX: &str = "index/";
    pub const SNAPSHOTS: &str = "snapshots/";
    pub const SESSIONS: &str = "sessions/";
    pub const POLICIES: &str = "policies/";
    pub const LEASE: &str = "gc/lease";
    pub const DAMAGED: &str = "damaged/";
    pub const DRILLS: &str = "drills/";
    pub const RUNS: &str = "runs/";
    /// Temporary objects: the local backend's files being written, S3 clock probes.
    pub const TMP: &str = "tmp/";

    pub fn pack(id: &ObjectId) -> String {
        let hex = id.to_hex();
        format!("packs/{}/{hex}", &hex[..2])
    }

    /// `prefix` followed by the id in hex: every flat object kind.
    fn flat(prefix: &str, id: &ObjectId) -> String {
        format!("{prefix}{}", id.to_hex())
    }

    pub fn index(id: &ObjectId) -> String {
        flat(INDEX, id)
    }
    pub fn snapshot(id: &ObjectId) -> String {
        flat(SNAPSHOTS, id)
    }
    pub fn session(id: &ObjectId) -> String {
        flat(SESSIONS, id)
    }
    pub fn key(id: &ObjectId) -> String {
        flat(KEYS, id)
    }
    pub fn policy(id: &ObjectId) -> String {
        flat(POLICIES, id)
    }
    pub fn damage_mark(id: &ObjectId) -> String {
        flat(DAMAGED, id)
    }
    pub fn drill(id: &ObjectId) -> String {
        flat(DRILLS, id)
    }
    pub fn run(id: &ObjectId) -> String {
        flat(RUNS, id)
    }

    /// A sealed object kind and where objects of it live: what `Repository::save` / `load` need.
    pub trait Named: silo_format::Sealed {
        /// The listing prefix of the kind (`snapshots/`).
        const PREFIX: &'static str;
        fn name(id: &ObjectId) -> String;
    }

    macro_rules! named {
        ($t:ty, $prefix:expr, $name:path) => {
            impl Named for $t {
                const PREFIX: &'static str = $prefix;
                fn name(id: &ObjectId) -> String {
                    $name(id)
                }
            }
        };
    }
    named!(silo_format::manifest::SnapshotManifest, SNAPSHOTS, snapshot);
    named!(silo_format::index::IndexSegment, INDEX, index);
    named!(silo_format::maintenance::Session, SESSIONS, session);
    named!(silo_format::maintenance::StoredPolicy, POLICIES, policy);
    named!(silo_format::maintenance::DamageMark, DAMAGED, damage_mark);
    named!(silo_format::maintenance::DrillRecord, DRILLS, drill);
    named!(silo_format::maintenance::RunRecord, RUNS, run);
    // The one lease: its id is always zero.
    named!(silo_format::maintenance::Lease, LEASE, lease);

    fn lease(_: &ObjectId) -> String {
        LEASE.to_string()
    }

    /// Whether `name` is a temporary object silo writes: the local backend's `tmp/<8 hex>.tmp` files and the
    /// S3 backend's `tmp/clock-probe-<64 hex>` / `tmp/conditional-probe-<64 hex>` probes. Only these are ever
    /// removed as leftovers (by gc, or by an `init` redoing a killed one): a file of another name in `tmp/`
    /// was not made by silo.
    pub fn is_silo_temporary(name: &str) -> bool {
        let Some(rest) = name.strip_prefix(TMP) else { return false };
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(stem) = rest.strip_suffix(".tmp") {
            return hex(stem, 8);
        }
        ["clock-probe-", "conditional-probe-"].iter().any(|p| rest.strip_prefix(p).is_some_and(|h| hex(h, 64)))
    }

    /// S3 probe objects: of the store's clock, and of whether it honours conditional PUTs.
    pub fn clock_probe() -> String {
        format!("{TMP}clock-probe-{}", ObjectId::random().to_hex())
    }

    pub fn conditional_probe() -> String {
        format!("{TMP}conditional-probe-{}", ObjectId::random().to_hex())
    }

    /// The id in an object name of the form `prefix/…/<64 hex>`, if it has one.
    pub fn id_of(name: &str) -> Option<ObjectId> {
        ObjectId::from_hex(name.rsplit('/').next()?)
    }
}

#[cfg(test)]
mod tests {
    use super::names::is_silo_temporary;

    #[test]
    fn only_silo_temporary_names_count_as_leftovers() {
        assert!(is_silo_temporary("tmp/0a1b2c3d.tmp"));
        assert!(is_silo_temporary(&format!("tmp/clock-probe-{}", "a".repeat(64))));
        assert!(is_silo_temporary(&format!("tmp/conditional-probe-{}", "0".repeat(64))));
        for other in
            ["tmp/notes.txt", "tmp/0a1b2c3d.tmp.bak", "tmp/xyz12345.tmp", "keys/0a1b2c3d.tmp", "tmp/sub/0a1b2c3d.tmp"]
        {
            assert!(!is_silo_temporary(other), "{other}");
        }
    }
}
