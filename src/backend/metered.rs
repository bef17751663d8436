//! Counts the requests a backend handle makes, by kind, as an object store would bill them.

use super::{BackendError, ObjectInfo, RangeRequest, ReadBackend, WriteBackend};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Keys per listing request on S3 (`ListObjectsV2` pages).
const LIST_PAGE: u64 = 1000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub put: u64,
    pub get: u64,
    /// Ranged GETs (restore reads runs of chunks, check reads trailers).
    pub get_range: u64,
    /// Listing pages (one per 1000 keys, at least one per listing).
    pub list: u64,
    pub delete: u64,
    /// Bytes sent in puts and received in gets.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Attempts beyond the first, over all kinds: object stores bill each one (retry.rs).
    pub retries: u64,
}

impl RequestCounts {
    /// Logical requests (each counted once, however often it was retried).
    pub fn total(&self) -> u64 {
        self.put + self.get + self.get_range + self.list + self.delete
    }

    /// Requests as the store saw (and bills) them: logical requests plus retries.
    pub fn attempts(&self) -> u64 {
        self.total() + self.retries
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            put: self.put - earlier.put,
            get: self.get - earlier.get,
            get_range: self.get_range - earlier.get_range,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            bytes_up: self.bytes_up - earlier.bytes_up,
            bytes_down: self.bytes_down - earlier.bytes_down,
            retries: self.retries.saturating_sub(earlier.retries),
        }
    }
}

#[derive(Default)]
struct Counters {
    put: AtomicU64,
    get: AtomicU64,
    get_range: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

pub struct Metered {
    inner: Arc<dyn WriteBackend>,
    counters: Counters,
}

impl Metered {
    pub fn new(inner: Arc<dyn WriteBackend>) -> Self {
        Metered { inner, counters: Counters::default() }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

#[async_trait]
impl ReadBackend for Metered {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        add(&self.counters.get, 1);
        let data = self.inner.get(name).await?;
        add(&self.counters.bytes_down, data.len() as u64);
        Ok(data)
    }

    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        add(&self.counters.get_range, 1);
        let data = self.inner.get_range(name, offset, len).await?;
        add(&self.counters.bytes_down, data.len() as u64);
        Ok(data)
    }

    async fn get_ranges(&self, ranges: &[RangeRequest]) -> Vec<Result<Vec<u8>, BackendError>> {
        add(&self.counters.get_range, ranges.len() as u64);
        let answers = self.inner.get_ranges(ranges).await;
        add(&self.counters.bytes_down, answers.iter().flatten().map(|d| d.len() as u64).sum());
        answers
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let found = self.inner.list(prefix).await?;
        add(&self.counters.list, (found.len() as u64).div_ceil(LIST_PAGE).max(1));
        Ok(found)
    }

    fn local_mode(&self, name: &str) -> Option<u32> {
        self.inner.local_mode(name)
    }

    fn requests(&self) -> RequestCounts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            put: get(&c.put),
            get: get(&c.get),
            get_range: get(&c.get_range),
            list: get(&c.list),
            delete: get(&c.delete),
            bytes_up: get(&c.bytes_up),
            bytes_down: get(&c.bytes_down),
            retries: self.inner.requests().retries,
        }
    }
}

#[async_trait]
impl WriteBackend for Metered {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        add(&self.counters.put, 1);
        add(&self.counters.bytes_up, data.len() as u64);
        self.inner.put(name, data).await
    }

    async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError> {
        add(&self.counters.put, 1);
        add(&self.counters.bytes_up, data.len() as u64);
        self.inner.put_if_absent(name, data).await
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        add(&self.counters.delete, 1);
        self.inner.delete(name).await
    }

    async fn server_time(&self) -> Result<Option<i64>, BackendError> {
        self.inner.server_time().await
    }
}
