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
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(250));
                let text = line(verb, counter.load(Ordering::Relaxed), total, started.elapsed());
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[K{text}");
                let _ = err.flush();
            }
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        });
        Some(Progress { stop, thread: Some(thread) })
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
}
