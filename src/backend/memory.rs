//! An in-memory backend: objects in a map, stamped by an injected clock (crate::clock). For tests of the
//! library in-process — hours of gc safety age and grace period pass in milliseconds when the same
//! `ManualClock` drives the repository and the backend — and it passes the same conformance suite as the
//! local and S3 backends (tests/backends.rs). Nothing survives the process.

use super::{BackendError, ObjectInfo, ReadBackend, WriteBackend};
use crate::clock::Clock;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Object name -> (bytes, stamp in µs).
type Objects = BTreeMap<String, (Arc<Vec<u8>>, i64)>;

pub struct MemoryBackend {
    objects: Mutex<Objects>,
    clock: Arc<dyn Clock>,
}

impl MemoryBackend {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryBackend { objects: Mutex::new(BTreeMap::new()), clock }
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.objects.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn not_found(name: &str) -> BackendError {
        BackendError::NotFound { name: name.to_string() }
    }
}

#[async_trait]
impl ReadBackend for MemoryBackend {
    fn location(&self) -> String {
        "memory:".to_string()
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        let data = self.objects().get(name).map(|(d, _)| d.clone()).ok_or_else(|| Self::not_found(name))?;
        Ok(data.as_ref().clone())
    }

    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        let data = self.objects().get(name).map(|(d, _)| d.clone()).ok_or_else(|| Self::not_found(name))?;
        let end = offset.checked_add(len).filter(|&e| e <= data.len() as u64);
        match end {
            Some(end) => Ok(data[offset as usize..end as usize].to_vec()),
            None => Err(BackendError::ShortRead { name: name.to_string(), offset, wanted: len }),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        Ok(self
            .objects()
            .range(prefix.to_string()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, (data, modified))| ObjectInfo {
                name: name.clone(),
                size: data.len() as u64,
                modified: *modified,
            })
            .collect())
    }
}

#[async_trait]
impl WriteBackend for MemoryBackend {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        let now = self.clock.now_micros();
        self.objects().insert(name.to_string(), (Arc::new(data), now));
        Ok(())
    }

    async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError> {
        let now = self.clock.now_micros();
        let mut objects = self.objects();
        if objects.contains_key(name) {
            return Ok(false);
        }
        objects.insert(name.to_string(), (Arc::new(data), now));
        Ok(true)
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        self.objects().remove(name).map(|_| ()).ok_or_else(|| Self::not_found(name))
    }

    async fn server_time(&self) -> Result<Option<i64>, BackendError> {
        Ok(Some(self.clock.now_micros()))
    }
}
