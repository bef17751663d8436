//! Storage backends: a flat namespace of immutable objects (`config`, `keys/…`, `packs/xx/…`, `index/…`,
//! `snapshots/…`). An object is written once under its final name and later maybe deleted; never modified.
//! The trait is shaped for object stores: whole-object puts, ranged reads, listing by prefix, create-if-absent.

pub mod local;
pub mod metered;
pub mod s3;

use async_trait::async_trait;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("object {name} not found")]
    NotFound { name: String },
    #[error("object {name}: {source}")]
    Io { name: String, source: std::io::Error },
    #[error("object {name}: wanted {wanted} bytes at offset {offset}, object ends earlier")]
    ShortRead { name: String, offset: u64, wanted: u64 },
}

impl BackendError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
    /// Last modification, µs since the epoch, by the backend's clock.
    pub modified: i64,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Where the repository lives, for messages.
    fn location(&self) -> String;
    /// Stores `data` under `name` atomically and durably (a reader sees all of it or nothing).
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError>;
    /// Like `put`, but only if `name` does not exist yet; returns false (and writes nothing) if it does.
    async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError>;
    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError>;
    /// Exactly `len` bytes at `offset`, or an error.
    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError>;
    /// Every object whose name starts with `prefix` (a directory such as `index/`), in no particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError>;
    async fn delete(&self, name: &str) -> Result<(), BackendError>;
    /// The backend's own clock (µs since the epoch), for gc's skew check; `None` if it has none to offer.
    async fn server_time(&self) -> Result<Option<i64>, BackendError> {
        Ok(None)
    }
    /// Requests made so far through this handle (object stores charge per request); zero if not metered.
    fn requests(&self) -> metered::RequestCounts {
        metered::RequestCounts::default()
    }
}

/// The backend for a repository location: `s3:http[s]://…` or a local directory; metered either way.
pub fn open(location: &str) -> Result<std::sync::Arc<dyn Backend>, BackendError> {
    let inner: std::sync::Arc<dyn Backend> = if location.starts_with("s3:") {
        std::sync::Arc::new(s3::S3Backend::open(location)?)
    } else {
        std::sync::Arc::new(local::LocalBackend::new(location))
    };
    Ok(std::sync::Arc::new(metered::Metered::new(inner)))
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

    pub fn pack(id: &ObjectId) -> String {
        let hex = id.to_hex();
        format!("packs/{}/{hex}", &hex[..2])
    }

    pub fn index(id: &ObjectId) -> String {
        format!("index/{}", id.to_hex())
    }

    pub fn snapshot(id: &ObjectId) -> String {
        format!("snapshots/{}", id.to_hex())
    }

    pub fn session(id: &ObjectId) -> String {
        format!("sessions/{}", id.to_hex())
    }

    pub fn key(id: &ObjectId) -> String {
        format!("keys/{}", id.to_hex())
    }

    /// The id in an object name of the form `prefix/…/<64 hex>`, if it has one.
    pub fn id_of(name: &str) -> Option<ObjectId> {
        ObjectId::from_hex(name.rsplit('/').next()?)
    }
}
