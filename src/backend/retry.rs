//! Retries that last (docs/design.md "I8 bounded waits"): every request to an object store is retried on
//! transient failures — 5xx answers, timeouts, connections refused or reset, a body cut short (listings
//! included) — with exponential backoff and jitter, until a total budget per request is spent. While it
//! waits, stderr says what for, every few seconds. Not-found, refused permissions and malformed requests are
//! answers, not faults: returned at once.
//!
//! The policy is a pure function (`RetryPolicy::delay`), unit-tested; `Retrying` is the I/O around it.
//!
//! One budget per command: once a request gave up (the store unreachable for the whole budget), every later
//! request of the same command gets the short `AFTER_OUTAGE` budget until one succeeds again, so a command
//! that still has a heartbeat, a session delete and a run record to send fails in ~3 minutes, not in four
//! budgets one after another (a partitioned create took 825 s).

use super::{BackendError, ObjectInfo, ReadBackend, WriteBackend};
use async_trait::async_trait;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long to wait before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The first wait (before jitter).
    pub first: Duration,
    /// No single wait is longer.
    pub cap: Duration,
    /// Attempts and waits together never take longer than this for one request.
    pub budget: Duration,
}

impl RetryPolicy {
    /// docs/operations.md "S3-compatible storage": a request is given up after 3 minutes of failures.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        first: Duration::from_millis(500),
        cap: Duration::from_secs(20),
        budget: Duration::from_secs(180),
    };

    /// What is left to a request once another request of the command gave up: an attempt or two.
    pub const AFTER_OUTAGE: RetryPolicy =
        RetryPolicy { first: Duration::from_millis(500), cap: Duration::from_secs(2), budget: Duration::from_secs(5) };

    /// The wait after `failures` failed attempts (1 = the first failed), `elapsed` since the first attempt
    /// began, with `jitter` in [0, 1): half the exponential step fixed, half random ("equal jitter"), so
    /// waits grow for certain and clients that failed together do not retry together. `None` once the
    /// budget is spent; the last wait is shortened to end at the budget, so one more attempt is made there.
    pub fn delay(&self, failures: u32, elapsed: Duration, jitter: f64) -> Option<Duration> {
        if elapsed >= self.budget {
            return None;
        }
        let step = self.first.saturating_mul(1u32 << failures.saturating_sub(1).min(20)).min(self.cap);
        let wait = step / 2 + step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        Some(wait.min(self.budget - elapsed))
    }
}

/// Wraps a backend with `RetryPolicy`; counts the attempts beyond the first (`RequestCounts::retries`).
pub struct Retrying {
    inner: Arc<dyn WriteBackend>,
    policy: RetryPolicy,
    retries: AtomicU64,
    /// How often a request that is still waiting says so on stderr.
    report_every: Duration,
    /// Set when a request gave up, cleared by the next success: later requests use `AFTER_OUTAGE`.
    unreachable: std::sync::atomic::AtomicBool,
}

impl Retrying {
    pub fn new(inner: Arc<dyn WriteBackend>, policy: RetryPolicy) -> Self {
        Retrying {
            inner,
            policy,
            retries: AtomicU64::new(0),
            report_every: Duration::from_secs(5),
            unreachable: std::sync::atomic::AtomicBool::new(false),
        }
    }

    async fn run<T, F, Fut>(&self, what: &str, name: &str, mut attempt: F) -> Result<T, BackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let started = Instant::now();
        let mut failures = 0u32;
        let policy = if self.unreachable.load(Ordering::Relaxed) {
            RetryPolicy {
                budget: RetryPolicy::AFTER_OUTAGE.budget.min(self.policy.budget),
                ..RetryPolicy::AFTER_OUTAGE
            }
        } else {
            self.policy
        };
        loop {
            let result = self.watch(what, name, started, attempt()).await;
            match result {
                Ok(v) => {
                    self.unreachable.store(false, Ordering::Relaxed);
                    if failures > 0 {
                        tracing::warn!(
                            "{what} {name}: succeeded after {failures} retries ({:.0} s)",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(v);
                }
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => {
                    failures += 1;
                    let Some(wait) = policy.delay(failures, started.elapsed(), rand::random::<f64>()) else {
                        self.unreachable.store(true, Ordering::Relaxed);
                        return Err(BackendError::GaveUp {
                            name: name.to_string(),
                            attempts: failures,
                            seconds: started.elapsed().as_secs(),
                            last: e.to_string(),
                        });
                    };
                    tracing::warn!(
                        "{what} {name}: {e}; retry {failures} in {:.1} s (gives up {} s after the first attempt)",
                        wait.as_secs_f64(),
                        policy.budget.as_secs()
                    );
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Runs one attempt, saying on stderr every few seconds that it is still waiting.
    async fn watch<T>(
        &self,
        what: &str,
        name: &str,
        started: Instant,
        attempt: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        tokio::pin!(attempt);
        let mut ticker = tokio::time::interval(self.report_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                r = &mut attempt => return r,
                _ = ticker.tick() => tracing::warn!(
                    "still waiting for {what} {name} at {} ({:.0} s)",
                    self.inner.location(),
                    started.elapsed().as_secs_f64()
                ),
            }
        }
    }
}

#[async_trait]
impl ReadBackend for Retrying {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        self.run("GET", name, || self.inner.get(name)).await
    }

    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        self.run("GET", name, || self.inner.get_range(name, offset, len)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        self.run("LIST", prefix, || self.inner.list(prefix)).await
    }

    fn local_mode(&self, name: &str) -> Option<u32> {
        self.inner.local_mode(name)
    }

    fn requests(&self) -> super::metered::RequestCounts {
        super::metered::RequestCounts { retries: self.retries.load(Ordering::Relaxed), ..Default::default() }
    }
}

#[async_trait]
impl WriteBackend for Retrying {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        self.run("PUT", name, || self.inner.put(name, data.clone())).await
    }

    /// A retried create-if-absent whose first attempt did reach the store finds its own object: compared
    /// byte for byte, that is a success, not "someone else was first".
    async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError> {
        let mut tried = false;
        self.run("PUT", name, || {
            let first = !std::mem::replace(&mut tried, true);
            let data = data.clone();
            async move {
                match self.inner.put_if_absent(name, data.clone()).await? {
                    true => Ok(true),
                    false if first => Ok(false),
                    false => Ok(self.inner.get(name).await? == data),
                }
            }
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        self.run("DELETE", name, || self.inner.delete(name)).await
    }

    async fn server_time(&self) -> Result<Option<i64>, BackendError> {
        self.run("clock probe", "tmp/", || self.inner.server_time()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that never answers: every request fails as a refused connection would.
    struct Down(AtomicU64);

    #[async_trait]
    impl ReadBackend for Down {
        fn location(&self) -> String {
            "down".into()
        }

        async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
            self.put(name, Vec::new()).await.map(|()| Vec::new())
        }

        async fn get_range(&self, name: &str, _: u64, _: u64) -> Result<Vec<u8>, BackendError> {
            self.get(name).await
        }

        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
            self.put(prefix, Vec::new()).await.map(|()| Vec::new())
        }
    }

    #[async_trait]
    impl WriteBackend for Down {
        async fn put(&self, name: &str, _: Vec<u8>) -> Result<(), BackendError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(BackendError::Io { name: name.into(), source: std::io::ErrorKind::ConnectionRefused.into() })
        }

        async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError> {
            self.put(name, data).await.map(|()| true)
        }

        async fn delete(&self, name: &str) -> Result<(), BackendError> {
            self.put(name, Vec::new()).await
        }

        async fn server_time(&self) -> Result<Option<i64>, BackendError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn after_one_request_gave_up_the_next_ones_get_an_attempt_or_two() {
        let down = Arc::new(Down(AtomicU64::new(0)));
        let quick = RetryPolicy {
            first: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            budget: Duration::from_millis(60),
        };
        let r = Retrying::new(down.clone(), quick);
        assert!(matches!(r.put("packs/a", vec![1]).await, Err(BackendError::GaveUp { .. })));
        let first = down.0.swap(0, Ordering::Relaxed);
        assert!(first >= 8, "the first request used its whole budget: {first} attempts");
        for name in ["sessions/x", "runs/y"] {
            assert!(r.delete(name).await.is_err());
            let later = down.0.swap(0, Ordering::Relaxed);
            assert!((1..=4).contains(&later), "{name}: {later} attempts once the store was known down");
        }
    }

    const P: RetryPolicy = RetryPolicy::DEFAULT;

    #[test]
    fn waits_grow_with_jitter_up_to_the_cap() {
        assert_eq!(P.delay(1, Duration::ZERO, 0.0), Some(Duration::from_millis(250)));
        assert_eq!(P.delay(1, Duration::ZERO, 0.999_999).map(|d| d.as_millis()), Some(499));
        assert_eq!(P.delay(4, Duration::ZERO, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(P.delay(7, Duration::ZERO, 0.0), Some(Duration::from_secs(10)), "capped at 20 s, halved");
        assert_eq!(P.delay(60, Duration::ZERO, 1.0), Some(Duration::from_secs(20)));
    }

    #[test]
    fn the_budget_bounds_the_total_and_the_last_wait_ends_on_it() {
        assert_eq!(P.delay(9, Duration::from_secs(175), 0.5), Some(Duration::from_secs(5)));
        assert_eq!(P.delay(9, Duration::from_secs(180), 0.5), None);
        assert_eq!(P.delay(1, Duration::from_secs(500), 0.0), None);
    }

    #[test]
    fn an_outage_of_a_minute_is_survived_with_few_attempts() {
        // With the longest waits every time, how many attempts fit in 60 s, and is 180 s really reached?
        let (mut elapsed, mut failures) = (Duration::ZERO, 0u32);
        while elapsed < Duration::from_secs(60) {
            failures += 1;
            elapsed += P.delay(failures, elapsed, 0.999).expect("within budget");
        }
        assert!((6..=12).contains(&failures), "{failures} attempts for a 60 s outage");
        let (mut elapsed, mut failures) = (Duration::ZERO, 0u32);
        while let Some(wait) = P.delay(failures + 1, elapsed, 0.0) {
            failures += 1;
            elapsed += wait;
        }
        assert_eq!(elapsed, Duration::from_secs(180), "the whole budget is used before giving up");
    }
}
