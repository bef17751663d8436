//! The `silo` binary: logging setup, argument parsing, and the mapping of errors to one stderr line and a
//! documented exit code.

mod cli;

use clap::FromArgMatches;
use std::process::ExitCode;

/// Runs before Rust's runtime, which parks /dev/null on a standard descriptor the caller closed (`>&-`) so
/// that no later file takes its number: remember which were closed, so that `restore` can refuse to pour a
/// dump into nothing when the user meant no such thing.
extern "C" fn record_closed_standard_descriptors() {
    for fd in 0..=2 {
        // SAFETY: fcntl(F_GETFD) only queries a descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            cli::CLOSED_AT_START.fetch_or(1 << fd, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[used]
#[link_section = ".init_array"]
static RECORD_CLOSED: extern "C" fn() = record_closed_standard_descriptors;

fn main() -> ExitCode {
    // Past a file-size limit (ulimit -f) a write should fail with EFBIG and be reported like a full disk,
    // not kill silo with SIGXFSZ before it can say what happened.
    // SAFETY: setting a signal disposition to SIG_IGN at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // Owner-only (issue 18): whatever silo creates — the index cache's files, temporary files, restored
    // output — is 0600/0700 whatever the caller's umask; the commands silo starts get the caller's back.
    // SAFETY: umask(2) at start-up, before any thread exists.
    let callers = unsafe { libc::umask(0o077) };
    silo::inputs::process::set_child_umask(callers);
    // glibc's allocator, tuned for silo's MiB-sized buffers freed on other threads: two arenas (not 8 per
    // core), a fixed 1 MiB mmap threshold (large buffers are unmapped when freed, not kept on the heap) and an
    // 8 MiB trim threshold (restoring delta chains does not fault the same pages in again and again). Keeps
    // peak RSS flat with the size of a stream; the measurements are in docs/benchmarks.md "Allocator and KDF
    // memory".
    // SAFETY: mallopt at start-up, before any thread exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
    let parsed = match cli::command().try_get_matches().and_then(|mut m| cli::Cli::from_arg_matches_mut(&mut m)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
                let word = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
                let hint = match word.as_str() {
                    "restore" | "create" | "list" | "show" => Some(format!("silo snapshot {word}")),
                    "snapshots" | "ls" => Some("silo snapshot list".to_string()),
                    "backup" => Some("silo snapshot create".to_string()),
                    _ => None,
                };
                if let Some(h) = hint {
                    cli::output::note_line(format_args!("hint: did you mean `{h}`?"));
                }
            }
            return ExitCode::from(if e.use_stderr() { cli::exit::USAGE } else { 0 });
        }
    };
    silo::interrupt::install();
    let default = match std::env::args().filter(|a| a.starts_with("-v")).map(|a| a.len() - 1).sum::<usize>() {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SILO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: never into log files, and never with NO_COLOR set.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .init();
    let outcome = cli::run(parsed).and_then(|()| Ok(cli::output::flush()?));
    silo::interrupt::wait_if_interrupted();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.downcast_ref::<cli::output::OutputFailed>()
                .is_some_and(|o| o.0.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            // The reader went away (`| head`): what it wanted it got; stop quietly, as a SIGPIPE would.
            ExitCode::from(cli::exit::BROKEN_PIPE)
        }
        Err(e) => {
            let mut msg = e.to_string();
            // Library errors already include their cause in their text; add only what is new.
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !msg.contains(&text) {
                    msg.push_str(": ");
                    msg.push_str(&text);
                }
            }
            cli::output::note_line(format_args!("silo: error: {msg}"));
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
