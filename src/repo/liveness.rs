//! Whether a writer may commit without re-checking the repository (pure; docs/design.md "I4 gc grace",
//! "I6 late writers").
//!
//! gc judges a writer session by the backend's clock: a session object not rewritten for `alive_within` is
//! dead, and the packs it uploaded but had not indexed yet become garbage. A writer that was frozen (a
//! suspended VM, SIGSTOP), cut off from the backend, or whose backend clock jumped cannot know what gc
//! concluded meanwhile. So before committing it compares what it observed with what gc tolerates, and when
//! the two could disagree it must verify every chunk it references against a fresh listing of `packs/`.

use std::time::Duration;

/// What a writer observed about its own session, measured on a clock that keeps running while the machine
/// is suspended (CLOCK_BOOTTIME), so a laptop lid closed for two days counts as two days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionFacts {
    /// The longest time between two successful heartbeats, including from the last one until now.
    pub longest_gap: Duration,
    /// How far the backend's clock moved against ours during the session (|offset at end - offset at start|).
    pub clock_drift: Duration,
    /// From the session's start until now.
    pub age: Duration,
}

/// What gc tolerates, from the repository's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tolerance {
    /// gc declares a session dead when its object was not rewritten for this long.
    pub alive_within: Duration,
    /// How long gc keeps the deletion mark of a pack it deleted (what lets a late writer notice).
    pub tombstone_retention: Duration,
    /// The largest clock disagreement gc itself accepts.
    pub max_skew: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitCheck {
    /// Nothing gc could have done unseen: the rescue of marked chunks is enough.
    Commit,
    /// gc may have judged this session dead: verify every referenced chunk first. The text says why.
    VerifyFirst(String),
}

/// Half of gc's limits: a writer re-checks long before gc could have acted on a silent session, so delays in
/// writing the heartbeat itself (a slow PUT, a loaded machine) never make the two disagree.
pub fn commit_check(facts: &SessionFacts, tolerance: &Tolerance) -> CommitCheck {
    let secs = |d: Duration| d.as_secs();
    if facts.longest_gap >= tolerance.alive_within / 2 {
        return CommitCheck::VerifyFirst(format!(
            "this session went {} s without a heartbeat (suspended, stopped or cut off; gc treats {} s as dead)",
            secs(facts.longest_gap),
            secs(tolerance.alive_within)
        ));
    }
    if facts.clock_drift >= tolerance.max_skew / 2 {
        return CommitCheck::VerifyFirst(format!(
            "the repository's clock moved {} s against this machine's during the session",
            secs(facts.clock_drift)
        ));
    }
    if facts.age >= tolerance.tombstone_retention / 2 {
        return CommitCheck::VerifyFirst(format!(
            "this session ran for {} s, longer than gc keeps its deletion marks for certain",
            secs(facts.age)
        ));
    }
    CommitCheck::Commit
}

/// gc's rule, shared with the writer: a session silent for this long is dead.
pub fn alive_within(safety_age_seconds: u64) -> Duration {
    Duration::from_secs(safety_age_seconds.max(600))
}

/// CLOCK_BOOTTIME: monotonic, and counts time spent suspended (CLOCK_MONOTONIC stops during suspend).
pub fn boot_clock() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the struct we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerance = Tolerance {
        alive_within: Duration::from_secs(600),
        tombstone_retention: Duration::from_secs(30 * 86_400),
        max_skew: Duration::from_secs(300),
    };

    fn facts(gap: u64, drift: u64, age: u64) -> SessionFacts {
        SessionFacts {
            longest_gap: Duration::from_secs(gap),
            clock_drift: Duration::from_secs(drift),
            age: Duration::from_secs(age),
        }
    }

    #[test]
    fn a_healthy_session_commits() {
        assert_eq!(commit_check(&facts(61, 0, 3600), &TOL), CommitCheck::Commit);
        assert_eq!(commit_check(&facts(299, 149, 15 * 86_400 - 1), &TOL), CommitCheck::Commit);
    }

    #[test]
    fn a_gap_of_half_what_gc_tolerates_forces_verification() {
        assert!(matches!(commit_check(&facts(300, 0, 400), &TOL), CommitCheck::VerifyFirst(r) if r.contains("300 s")));
        assert!(matches!(commit_check(&facts(2 * 86_400, 0, 2 * 86_400), &TOL), CommitCheck::VerifyFirst(_)));
    }

    #[test]
    fn clock_drift_and_long_sessions_force_verification() {
        assert!(matches!(commit_check(&facts(10, 150, 400), &TOL), CommitCheck::VerifyFirst(r) if r.contains("clock")));
        assert!(
            matches!(commit_check(&facts(10, 0, 15 * 86_400), &TOL), CommitCheck::VerifyFirst(r) if r.contains("ran for"))
        );
    }

    #[test]
    fn gc_tolerance_has_a_floor_of_ten_minutes() {
        assert_eq!(alive_within(1), Duration::from_secs(600));
        assert_eq!(alive_within(86_400), Duration::from_secs(86_400));
    }

    #[test]
    fn the_boot_clock_advances() {
        let a = boot_clock();
        let b = boot_clock();
        assert!(a > Duration::ZERO && b >= a);
    }
}
