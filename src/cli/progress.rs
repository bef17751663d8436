//! A progress line on stderr, shown only when stderr is a terminal: bytes so far, rate, and percentage when
//! the total is known. Dropping the handle stops and clears it.

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
                let n = counter.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64().max(0.001);
                let pct = total
                    .filter(|t| *t > 0)
                    .map(|t| format!(" ({:.0}%)", n as f64 * 100.0 / t as f64))
                    .unwrap_or_default();
                eprint!("\r\x1b[K{verb} {}{pct}, {}/s", human_bytes(n), human_bytes(rate as u64));
                let _ = std::io::stderr().flush();
            }
            eprint!("\r\x1b[K");
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
