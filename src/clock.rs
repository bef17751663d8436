//! The wall clock, injected: a `Repository` reads time only through its `Clock`, so tests can move time
//! (hours of gc safety age and grace period in milliseconds, a writer whose clock runs fast or slow) without
//! a switch in the shipped binary. Times are µs since the Unix epoch, UTC.

use std::fmt::Debug;

pub trait Clock: Send + Sync + Debug + 'static {
    fn now_micros(&self) -> i64;
}

/// The machine's clock: the only clock the binary uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        crate::time::now_micros()
    }
}

/// A clock that stands still until moved: for tests, and the in-memory backend's modification stamps.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn at(micros: i64) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(micros))
    }

    /// Starts at the machine's time now.
    pub fn starting_now() -> Self {
        Self::at(crate::time::now_micros())
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(by.as_micros() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The machine's clock moved by a fixed offset: a writer whose clock runs fast (positive) or slow.
#[derive(Clone, Copy, Debug)]
pub struct OffsetClock(pub i64);

impl Clock for OffsetClock {
    fn now_micros(&self) -> i64 {
        crate::time::now_micros() + self.0
    }
}
