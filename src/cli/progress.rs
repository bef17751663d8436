//! A progress line on stderr, shown only when stderr is a terminal: bytes so far, rate, elapsed time, and
//! percentage and time left when the total is known. Dropping the handle stops and clears it, so the answer
//! that follows starts on a clean line. The line itself is a pure function (`line`), unit-tested.

use super::output::human_bytes;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(verb: &'static str, counter: Arc<AtomicU64>, total: Option<u64>) -> Option<Progress> {
        Progress::start_with(move |elapsed| Some(line(verb, counter.load(Ordering::Relaxed), total, elapsed)))
    }

    /// A line `text(elapsed)` redrawn every 250 ms (nothing while it is None), when stderr is a terminal.
    pub fn start_with(text: impl Fn(Duration) -> Option<String> + Send + 'static) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(250));
                let Some(text) = text(started.elapsed()) else { continue };
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[K{text}");
                let _ = err.flush();
            }
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        });
        Some(Progress { stop, thread: Some(thread) })
    }

    /// restore-database's phase: `restore-database shop: loading 120.0 MiB (45%), ...`, `... verifying`,
    /// `... swapping`.
    pub fn restore(target: String, shared: Arc<silo::restore::Progress>) -> Option<Progress> {
        Progress::start_with(move |elapsed| {
            let phase = shared.phase()?;
            let (loaded, total) = (shared.loaded.load(Ordering::Relaxed), shared.total.load(Ordering::Relaxed));
            Some(restore_line(&target, phase, loaded, total, elapsed))
        })
    }
}

/// `restore-database shop: loading 120.0 MiB (45%), 40.0 MiB/s, 0:03 elapsed, 0:04 left`, then
/// `restore-database shop: verifying, 0:09 elapsed` and `... swapping, 0:10 elapsed`.
pub fn restore_line(target: &str, phase: silo::restore::Phase, loaded: u64, total: u64, elapsed: Duration) -> String {
    use silo::restore::Phase;
    match phase {
        Phase::Loading => format!("restore-database {target}: {}", line("loading", loaded, Some(total), elapsed)),
        Phase::Verifying => format!("restore-database {target}: verifying, {} elapsed", clock(elapsed)),
        Phase::Swapping => format!("restore-database {target}: swapping, {} elapsed", clock(elapsed)),
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `read 1.2 GiB (60%), 410.0 MiB/s, 0:03 elapsed, 0:02 left`.
pub fn line(verb: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    let mut text = format!("{verb} {}", human_bytes(done));
    if let Some(t) = total.filter(|t| *t > 0) {
        text.push_str(&format!(" ({:.0}%)", (done.min(t) as f64 * 100.0 / t as f64)));
    }
    text.push_str(&format!(", {}/s, {} elapsed", human_bytes(rate as u64), clock(elapsed)));
    if let Some(t) = total.filter(|t| *t > done && rate >= 1.0) {
        text.push_str(&format!(", {} left", clock(Duration::from_secs_f64((t - done) as f64 / rate))));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_percentage_and_time_left_when_the_total_is_known() {
        let l = line("read", 600 << 20, Some(1000 << 20), Duration::from_secs(3));
        assert_eq!(l, "read 600.0 MiB (60%), 200.0 MiB/s, 0:03 elapsed, 0:02 left");
        let l = line("read", 5 << 20, None, Duration::from_secs(3725));
        assert_eq!(l, "read 5.0 MiB, 1.4 KiB/s, 1:02:05 elapsed");
        assert!(!line("restored", 10, Some(10), Duration::from_secs(1)).contains("left"));
    }

    #[test]
    fn restore_database_says_its_phase() {
        use silo::restore::Phase;
        let l = restore_line("shop", Phase::Loading, 450 << 20, 1000 << 20, Duration::from_secs(9));
        assert_eq!(l, "restore-database shop: loading 450.0 MiB (45%), 50.0 MiB/s, 0:09 elapsed, 0:11 left");
        assert_eq!(
            restore_line("shop", Phase::Verifying, 1, 1, Duration::from_secs(70)),
            "restore-database shop: verifying, 1:10 elapsed"
        );
        assert!(restore_line("shop", Phase::Swapping, 1, 1, Duration::ZERO).ends_with("swapping, 0:00 elapsed"));
    }
}
