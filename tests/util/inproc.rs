//! The library in-process, with time moved: a `Repository` over the test repository's backend whose clock
//! (and the backend's, as gc sees it) runs `by` seconds ahead — hours of gc safety age and grace period, a
//! lease long expired, a writer whose clock is off — without any switch in the shipped binary.

use super::{shared_s3, TestRepo, PASSWORD};
use async_trait::async_trait;
use silo::backend::{BackendError, ObjectInfo, ReadBackend, WriteBackend};
use silo::clock::OffsetClock;
use silo::repo::Repository;
use std::sync::Arc;

/// A backend whose clock reads `by` µs later: objects keep the stamps they were written with (so they look
/// `by` older), and the backend's "now" (`server_time`) moves.
pub struct Later {
    inner: Arc<dyn WriteBackend>,
    by: i64,
}

#[async_trait]
impl ReadBackend for Later {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        self.inner.get(name).await
    }

    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        self.inner.get_range(name, offset, len).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix).await
    }
}

#[async_trait]
impl WriteBackend for Later {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        self.inner.put(name, data).await
    }

    async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError> {
        self.inner.put_if_absent(name, data).await
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        self.inner.delete(name).await
    }

    async fn server_time(&self) -> Result<Option<i64>, BackendError> {
        Ok(self.inner.server_time().await?.map(|t| t + self.by))
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// The repository's own backend (local directory or S3), as the binary would open it.
pub fn backend_of(repo: &TestRepo) -> Arc<dyn WriteBackend> {
    if repo.is_s3() {
        let creds = shared_s3().expect("s3").credentials();
        Arc::new(silo::backend::s3::S3Backend::connect(&repo.location, &creds).expect("backend"))
    } else {
        silo::backend::open(&repo.location).expect("backend")
    }
}

/// The repository opened in-process with every clock `seconds` ahead (negative: behind).
pub fn open_later(rt: &tokio::runtime::Runtime, repo: &TestRepo, seconds: i64) -> Repository {
    let by = seconds * 1_000_000;
    let backend: Arc<dyn WriteBackend> = Arc::new(Later { inner: backend_of(repo), by });
    let opened = rt.block_on(Repository::open(backend, PASSWORD.as_bytes(), Some(repo.cache()))).expect("open");
    opened.with_clock(Arc::new(OffsetClock(by)))
}

/// `silo --json gc` as it would answer with the clock `seconds` ahead: the report the binary prints.
pub fn gc_later(repo: &TestRepo, options: &silo::repo::gc::GcOptions, seconds: i64) -> serde_json::Value {
    let rt = runtime();
    let r = open_later(&rt, repo, seconds);
    let report = rt.block_on(r.gc(options)).unwrap_or_else(|e| panic!("gc at +{seconds} s: {e}"));
    serde_json::to_value(&report).expect("report")
}

/// gc with default options (`--safety full`), `seconds` ahead.
pub fn gc_at(repo: &TestRepo, seconds: i64) -> serde_json::Value {
    gc_later(repo, &Default::default(), seconds)
}

/// Removes a lease a killed gc left, as a gc would once it expired: takes it with the clock far ahead.
pub fn expire_lease(repo: &TestRepo) {
    let rt = runtime();
    let r = open_later(&rt, repo, 30 * 86_400);
    let lease = rt.block_on(r.acquire_lease(60)).expect("the old lease has expired");
    rt.block_on(r.release_lease(lease)).expect("release");
}
