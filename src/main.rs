//! The `silo` binary: logging setup, argument parsing, and the mapping of errors to one stderr line and a
//! documented exit code.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Past a file-size limit (ulimit -f) a write should fail with EFBIG and be reported like a full disk,
    // not kill silo with SIGXFSZ before it can say what happened.
    // SAFETY: setting a signal disposition to SIG_IGN at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // glibc gives each thread that allocates its own arena (up to 8 per core); chunk buffers freed on
    // other threads then fragment them, and restore's peak RSS crept from 97 MiB (2 GiB restored) to
    // 134 MiB (10 GiB). And once a large block is freed, glibc raises its mmap threshold to that size, so
    // later read buffers and packs (MiBs each) come from the heap and stay resident: create's peak RSS
    // crept from 83 MiB (2 GiB) to 106 MiB (10 GiB). Two arenas and a fixed 1 MiB threshold keep both
    // flat (benches/memory.sh).
    // SAFETY: mallopt at start-up, before any thread exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let parsed = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { cli::exit::USAGE } else { 0 });
        }
    };
    let default = match std::env::args().filter(|a| a.starts_with("-v")).map(|a| a.len() - 1).sum::<usize>() {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SILO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    match cli::run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
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
            eprintln!("silo: error: {msg}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
