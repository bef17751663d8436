//! `silo snapshot restore`: a stream to stdout or `--output` (I7 only what silo created: a regular file is
//! complete or absent, replaced only through a temporary name beside it), verified chunk by chunk and as a
//! whole (I3); `--fallback` lets the library walk back to the newest intact snapshot, saying so.

use crate::cli::context::Invocation;
use crate::cli::output::{emit, Report, CLOSED_AT_START};
use crate::cli::progress::Progress;
use anyhow::{Context, Result};
use serde::Serialize;
use silo::format::manifest::StreamManifest;
use silo::repo::read::RestoreReport;
use silo::repo::snapshots::{Snapshot, SnapshotSpec};
use silo::repo::Repository;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ID, ID prefix, NAME:latest or NAME:latest~N, optionally followed by :STREAM. With --before/--after:
    /// NAME:latest[~N] counts back from the newest of NAME in that window.
    snapshot: String,
    /// The newest snapshot of the name finished before the end of this UTC day (YYYY-MM-DD, today,
    /// yesterday), as `snapshot list --before` reads it.
    #[arg(long, value_name = "DAY", conflicts_with = "fallback")]
    before: Option<String>,
    /// The newest snapshot of the name finished on or after the start of this UTC day (YYYY-MM-DD, today,
    /// yesterday), as `snapshot list --after` reads it.
    #[arg(long, value_name = "DAY", conflicts_with = "fallback")]
    after: Option<String>,
    /// Write to this file instead of stdout: a regular file is written under a temporary name and renamed
    /// (complete or absent, 0600 or the existing file's mode); a device or FIFO is written through.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// With NAME:latest[~N]: if that snapshot cannot be restored intact, fall back to the next older one
    /// of the same name (each candidate is verified before a byte is written; says which on stderr).
    #[arg(long)]
    fallback: bool,
    /// Only this table of a plain pg_dump or mysqldump stream (`schema.table` or `table`): its DDL, data,
    /// sequences, defaults, indexes and constraints but foreign keys, as SQL an empty database loads. The
    /// whole stream is still verified. To stdout (redirect it to keep it).
    #[arg(long, value_name = "NAME", conflicts_with = "output")]
    table: Option<String>,
}

#[derive(Serialize)]
struct Restored {
    snapshot: String,
    stream: String,
    bytes: u64,
    chunks: u64,
    duration_seconds: f64,
    requests: silo::backend::metered::RequestCounts,
}

impl Report for Restored {
    /// For people the restored data is the answer; the numbers go to the log.
    fn human(&self) -> Result<()> {
        tracing::info!(
            "restored {} bytes in {} chunks with {} requests in {:.3} s",
            self.bytes,
            self.chunks,
            self.requests.total(),
            self.duration_seconds
        );
        Ok(())
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    // A dump on a terminal is megabytes of noise (and may hold escape sequences): refused like reading one.
    if a.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(silo::Error::Input {
            what: "snapshot restore".into(),
            message: "standard output is a terminal: pipe it (`| psql ...`) or pass --output FILE".into(),
        }
        .into());
    }
    let repo = ctx.open_with_cache()?;
    let spec = SnapshotSpec::parse(&a.snapshot)?;
    let snap = if a.before.is_some() || a.after.is_some() {
        in_window(ctx, &repo, &spec, a)?
    } else if a.fallback {
        repo.choose_intact(ctx.rt.handle(), &spec, &|text| note!("silo: {text}"))?
    } else {
        let (snap, heads) = ctx.rt.block_on(repo.resolve_with_heads(&spec))?;
        warn_if_suspect(&snap, &heads, &a.snapshot);
        snap
    };
    let stream = snap.stream(&spec.stream)?;
    let counter = std::sync::Arc::new(AtomicU64::new(0));
    let shown = Progress::start("restored", counter.clone(), Some(stream.size));
    let report = match &a.output {
        None if CLOSED_AT_START.load(std::sync::atomic::Ordering::SeqCst) & 2 != 0 => {
            return Err(silo::Error::Input {
                what: "snapshot restore".into(),
                message:
                    "standard output is closed, so there is nowhere to restore to; redirect it or use --output FILE"
                        .into(),
            }
            .into())
        }
        None => {
            let stdout = std::io::stdout();
            {
                use std::os::fd::AsRawFd;
                // SAFETY: fcntl on our stdout; F_SETPIPE_SZ fails harmlessly when it is not a pipe.
                unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
            }
            // Chunks go straight to the descriptor, one write each: a buffer in between copied every byte.
            let lock = stdout.lock();
            let fd = std::os::fd::AsFd::as_fd(&lock).try_clone_to_owned().context("duplicating stdout")?;
            let mut out = std::fs::File::from(fd);
            match &a.table {
                None => repo.restore_stream(ctx.rt.handle(), &snap, stream, &mut out, &counter)?,
                Some(table) => {
                    let mut one = silo::dumps::table::TableWriter::new(out, table);
                    let report = repo.restore_stream(ctx.rt.handle(), &snap, stream, &mut one, &counter)?;
                    one.finish().map_err(|message| silo::Error::Input { what: format!("--table {table}"), message })?;
                    report
                }
            }
        }
        Some(path) => {
            crate::cli::files::refuse_inside_repository(
                "--output",
                path,
                &silo::backend::ReadBackend::location(&repo.backend),
            )?;
            restore_to_file(ctx, &repo, &snap, stream, path, &counter)?
        }
    };
    drop(shown);
    let restored = Restored {
        snapshot: snap.id.to_hex(),
        stream: stream.name.clone(),
        bytes: report.bytes,
        chunks: report.chunks,
        duration_seconds: report.duration.as_secs_f64(),
        requests: report.requests,
    };
    if ctx.json() && a.output.is_none() {
        // stdout carries the data: the JSON report goes to stderr, on one line.
        note!("{}", serde_json::to_string(&restored)?);
        return Ok(());
    }
    emit(&restored, ctx.json())
}

/// The snapshot `NAME:latest[~N]` names among those of NAME that finished in the `--before`/`--after`
/// window (the same days `snapshot list` filters by).
fn in_window(ctx: &Invocation, repo: &Repository, spec: &SnapshotSpec, a: &Args) -> Result<Snapshot> {
    let silo::repo::snapshots::Selector::Latest { name, back } = &spec.selector else {
        return Err(silo::Error::Input {
            what: format!("{} with --before/--after", a.snapshot),
            message: "--before and --after pick by name: write NAME:latest (or NAME:latest~N)".into(),
        }
        .into());
    };
    let window = super::Window::parse(a.before.as_deref(), a.after.as_deref(), repo.now())?;
    let scan = ctx.rt.block_on(repo.scan_snapshot_heads())?;
    let mut of_name: Vec<_> =
        scan.snapshots.iter().filter(|s| &s.manifest.name == name && window.holds(s.manifest.finished)).collect();
    of_name.sort_by_key(|s| std::cmp::Reverse(s.manifest.finished));
    let Some(chosen) = of_name.get(*back) else {
        let bounds: Vec<String> = [("before the end of", &a.before), ("on or after", &a.after)]
            .into_iter()
            .filter_map(|(how, day)| day.as_ref().map(|d| format!("{how} {d}")))
            .collect();
        return Err(silo::Error::SnapshotNotFound {
            spec: a.snapshot.clone(),
            hint: format!(
                " (of {name}, {} finished {} (UTC); `silo snapshot list --name {name}` shows them all)",
                of_name.len(),
                bounds.join(" and ")
            ),
        }
        .into());
    };
    Ok(ctx.rt.block_on(repo.load_snapshot(chosen.id))?)
}

/// A snapshot picked by name (`NAME:latest`, `NAME@DAY`; `heads` are what the pick scanned, none for an id)
/// that I19 judges suspect (empty, invalid, or far
/// smaller than the ones before it: a failed dump, or one a writer key planted) is restored as asked, with
/// a warning naming the newest plausible snapshot of that name and host. Only a warning: a database that
/// really shrank restores as it is.
fn warn_if_suspect(snap: &Snapshot, heads: &[Snapshot], asked: &str) {
    let group: Vec<Snapshot> = heads
        .iter()
        .filter(|s| s.manifest.name == snap.manifest.name && s.manifest.host == snap.manifest.host)
        .cloned()
        .collect();
    let suspects = silo::repo::forget::suspect_reasons(&group, silo::retention::SUSPECT_SHRINK_PERCENT);
    let Some(why) = suspects.get(&snap.id) else { return };
    let plausible = group
        .iter()
        .filter(|s| !suspects.contains_key(&s.id) && s.manifest.finished < snap.manifest.finished)
        .max_by_key(|s| s.manifest.finished);
    let instead = match plausible {
        Some(p) => format!(
            "; the newest plausible one is {} ({}): `silo snapshot restore {}`",
            p.id.short(),
            silo::time::format_micros(p.manifest.finished),
            p.id.short()
        ),
        None => String::new(),
    };
    note!("silo: warning: {asked} is snapshot {}, which is suspect ({why}){instead}", snap.id.short());
}

/// Where `--output` writes.
enum OutputTarget {
    /// A regular file (existing or not): written under an unpredictable temporary name created with
    /// O_EXCL (0600) beside it, fsynced, given the existing file's mode, and renamed over it — complete or
    /// absent. A symbolic link is followed: the file it points to is replaced, the link stays.
    Atomic { path: PathBuf, mode: Option<u32> },
    /// A character device or FIFO (`/dev/null`, `/dev/stdout`, a named pipe): written through as it is.
    Through(std::fs::File),
}

fn output_target(path: &Path) -> Result<OutputTarget> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let refuse = |why: &str| -> anyhow::Error {
        silo::Error::Input { what: format!("--output {}", path.display()), message: why.into() }.into()
    };
    let through = || -> Result<OutputTarget> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(OutputTarget::Through(file))
    };
    // /dev/stdout and friends lead to whatever the descriptor is: write to it, never replace it.
    if path.starts_with("/dev/fd")
        || path.starts_with("/proc")
        || ["/dev/stdout", "/dev/stderr"].iter().any(|p| path == Path::new(p))
    {
        return through();
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            let real = std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
            Ok(OutputTarget::Atomic { path: real, mode: Some(m.permissions().mode() & 0o7777) })
        }
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => through(),
        Ok(m) if m.is_dir() => Err(refuse("is a directory; name a file")),
        Ok(_) => Err(refuse("is not a regular file, character device or FIFO; silo will not replace it")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(refuse("is a symbolic link to nothing; name the file itself"));
            }
            Ok(OutputTarget::Atomic { path: path.to_path_buf(), mode: None })
        }
        Err(e) => Err(anyhow::Error::from(e).context(format!("--output {}", path.display()))),
    }
}

/// Restores into `path` as `output_target` decides: a regular file is complete or absent.
fn restore_to_file(
    ctx: &Invocation,
    repo: &Repository,
    snap: &Snapshot,
    stream: &StreamManifest,
    path: &Path,
    counter: &AtomicU64,
) -> Result<RestoreReport> {
    let (path, mode) = match output_target(path)? {
        OutputTarget::Through(file) => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let report = repo.restore_stream(ctx.rt.handle(), snap, stream, &mut out, counter)?;
            out.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", path.display()))?;
            return Ok(report);
        }
        OutputTarget::Atomic { path, mode } => (path, mode),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".silo-partial")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let (file, temp_path) = temp.into_parts();
    let _on_interrupt = {
        let partial = temp_path.to_path_buf();
        silo::interrupt::on_interrupt(move || {
            let _ = std::fs::remove_file(&partial);
        })
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let report = repo.restore_stream(ctx.rt.handle(), snap, stream, &mut out, counter)?;
    let file = out.into_inner().map_err(|e| e.into_error()).context("writing restored data")?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode)).context("keeping the file's mode")?;
    }
    file.sync_all().context("syncing restored file")?;
    // I9: an interrupt either comes before the rename (the partial file is removed, exit 130/143) or after
    // it (the file is whole, exit 0), never a whole file with an interrupted exit.
    silo::interrupt::commit(|| temp_path.persist(&path))
        .ok_or_else(|| silo::Error::Interrupted { what: format!("{}", path.display()) })?
        .map_err(|e| e.error)
        .with_context(|| format!("renaming the restored file to {}", path.display()))?;
    Ok(report)
}
