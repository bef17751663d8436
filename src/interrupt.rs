//! Ctrl-C, SIGTERM and `--deadline` (docs/design.md "I9 interrupted is clean", "I8 bounded waits"): silo
//! stops, undoes what only it knew about — a writer's session object, gc's lease, a partial `--output` file,
//! the commands it started — and exits 130 (SIGINT), 143 (SIGTERM) or 3 (deadline passed). Nothing committed
//! is touched; what an interrupted create uploaded is unreferenced and reclaimed by gc.
//!
//! The signal handler only writes the signal number to a pipe; a watcher thread reads it and runs the
//! registered clean-ups (each bounded in time), then exits. Code that owns something to undo registers a
//! clean-up for as long as it owns it (`on_interrupt` returns a guard that unregisters on drop).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Cleanup = Box<dyn FnOnce() + Send>;

fn registry() -> &'static Mutex<BTreeMap<u64, Cleanup>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<u64, Cleanup>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, BTreeMap<u64, Cleanup>> {
    registry().lock().unwrap_or_else(|p| p.into_inner())
}

static NEXT: AtomicU64 = AtomicU64::new(1);
/// What the watcher reads when the deadline passed (signal numbers are below 65).
const DEADLINE: u8 = 255;
/// Exit status when the deadline passed: as for a store that cannot be reached (docs/operations.md "Exit codes").
const DEADLINE_EXIT: i32 = 3;
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
/// Set by the watcher before it runs the clean-ups: from then on nothing may be committed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Held by a commit in progress (`commit`) and by the watcher while it decides: an interrupt either comes
/// before a commit (which then does not happen) or after it (and then the command finishes as committed).
static COMMIT: Mutex<()> = Mutex::new(());
/// Set once a command's commit is done: an interrupt after it finds nothing to undo, so the command's exit
/// status says what is stored (a restored file in place, a snapshot committed), never 130/143.
static COMMITTED: AtomicBool = AtomicBool::new(false);

/// True once silo has been interrupted (signal or deadline): a step that would commit must not.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs the step that makes a command's work visible (the rename of a restored file, a snapshot's manifest)
/// unless silo was interrupted first (`None`). An interrupt arriving while it runs waits for it, and one
/// arriving after it lets the command finish with its own status: what the exit says is what is on disk.
/// A step that fails commits nothing: an interrupt that waited for it then cleans up and exits as usual.
pub fn commit<T, E>(step: impl FnOnce() -> Result<T, E>) -> Option<Result<T, E>> {
    let _held = COMMIT.lock().unwrap_or_else(|p| p.into_inner());
    if interrupted() {
        return None;
    }
    let out = step();
    if out.is_ok() {
        COMMITTED.store(true, Ordering::SeqCst);
    }
    Some(out)
}

/// Called by `main` before it returns: once interrupted, the watcher owns the exit (its clean-ups must
/// finish, and the exit status is the signal's), so the main thread waits for it instead of exiting with
/// its own status — or running static destructors while the clean-ups still use the runtime.
pub fn wait_if_interrupted() {
    while interrupted() {
        std::thread::park();
    }
}

/// Unregisters its clean-up when dropped (the thing to undo is gone or committed).
pub struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        lock().remove(&self.0);
    }
}

/// Runs `cleanup` if silo is interrupted while the returned guard lives. Clean-ups run newest first.
pub fn on_interrupt(cleanup: impl FnOnce() + Send + 'static) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    lock().insert(id, Box::new(cleanup));
    Registration(id)
}

/// Wakes the watcher with `byte` (a signal number, or `DEADLINE`). Async-signal-safe: an atomic load and
/// one write(2).
fn wake(byte: u8) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; one byte to our own pipe.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

extern "C" fn handler(sig: libc::c_int) {
    wake(sig as u8);
}

/// Installs the SIGINT/SIGTERM handlers and the watcher thread. Call once, early in main.
pub fn install() {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    PIPE_WRITE.store(fds[1], Ordering::Relaxed);
    let read_fd = fds[0];
    std::thread::spawn(move || {
        let mut byte = 0u8;
        loop {
            // SAFETY: read(2) of one byte from our own pipe into a local.
            let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
            if n == 1 {
                break;
            }
            if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return;
            }
        }
        let sig = i32::from(byte);
        {
            let _held = COMMIT.lock().unwrap_or_else(|p| p.into_inner());
            if COMMITTED.load(Ordering::SeqCst) {
                // The work is committed: nothing to undo; the command finishes and exits as it stands.
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    b"silo: signal received after the work was committed; finishing\n",
                );
                return;
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
        let cleanups: Vec<Cleanup> = std::mem::take(&mut *lock()).into_values().rev().collect();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for c in cleanups {
                c();
            }
            let _ = done_tx.send(());
        });
        // Clean-ups that hang (a store that does not answer) must not keep silo from stopping.
        let _ = done_rx.recv_timeout(Duration::from_secs(10));
        let what = match byte {
            DEADLINE => "error: the --deadline passed",
            _ if sig == libc::SIGINT => "interrupted (SIGINT)",
            _ => "terminated (SIGTERM)",
        };
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("silo: {what}: stopped and cleaned up (a snapshot not yet committed stays uncommitted)\n")
                .as_bytes(),
        );
        // _exit, not exit: static destructors (RocksDB's) must not run while other threads still use them.
        // SAFETY: _exit ends the process at once; nothing after it runs.
        unsafe { libc::_exit(if byte == DEADLINE { DEADLINE_EXIT } else { 128 + sig }) }
    });
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installing a handler that only calls write(2).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Stops silo as on an interrupt once `after` has passed (the command's overall deadline).
pub fn deadline(after: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        wake(DEADLINE);
    });
}
