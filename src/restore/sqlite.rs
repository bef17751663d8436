//! restore-database of an SQLite file: sqlite3 loads a `.dump` (or the stream is the file itself) into the
//! scratch file; the swap is renameat2 `RENAME_EXCHANGE`, refused while another process holds the live file open
//! for writing or its `-wal` holds changes. The files silo created or moved aside are listed by device, inode,
//! size and time in `FILE.silo-restore-database` (the marks file), its only mark. Upholds I15, I18, I22 (the
//! path is absolute).

use super::{fail, Connection, Engine, Failure, Kind, Result, Target};
use crate::dumps::swap::Loader;
use crate::inputs::process::ChildEnv;
use crate::repo::snapshots::Snapshot;
use crate::repo::Repository;
use silo_format::manifest::StreamManifest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(super) struct Sqlite;

impl Engine for Sqlite {
    fn kind(&self) -> Kind {
        Kind::Sqlite
    }

    fn env(&self) -> ChildEnv {
        ChildEnv::base()
    }

    fn connect(&self, _c: &mut Command, _conn: &Connection) {}

    fn endpoint(&self, _conn: &Connection) -> (Option<String>, String) {
        (None, String::new())
    }

    fn sql_client(&self, t: &Target, database: &str) -> Command {
        let mut c = t.client("sqlite3");
        c.args(["-bail", "-batch", database]);
        c
    }

    fn exists(&self, _t: &Target, name: &str) -> Result<bool> {
        Ok(Path::new(name).exists())
    }

    fn ours(&self, t: &Target, name: &str) -> Result<bool> {
        let path = Path::new(name);
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(true);
        }
        let Some(id) = identity(path) else { return Ok(false) };
        let marks = marks(t);
        Ok(if path == Path::new(&t.names.new) {
            // The scratch is written after it is listed: device and inode identify it.
            marks.iter().any(|m| m[..2] == id[..2])
        } else {
            marks.contains(&id)
        })
    }

    fn drop(&self, _t: &Target, name: &str) -> Result<()> {
        // With its journal and WAL files: a stale hot journal would be played into the next file.
        for path in [name.to_string(), format!("{name}-journal"), format!("{name}-wal"), format!("{name}-shm")] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(Failure::Failed, format!("removing {path}: {e}"))),
            }
        }
        Ok(())
    }

    /// The scratch file is created empty and listed as silo's before anything is written to it: a kill
    /// mid-load leaves a file the next run may remove.
    fn create_scratch(&self, t: &Target) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let new = &t.names.new;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(new)
            .map_err(|e| fail(Failure::Failed, format!("creating {new}: {e}")))?;
        mark(t, Path::new(new))
    }

    fn loader(&self, t: &Target, _loader: Loader) -> Command {
        self.sql_client(t, &t.names.new)
    }

    fn check_integrity(&self, t: &Target) -> Result<()> {
        let new = &t.names.new;
        let ok = t.sql(new, "PRAGMA integrity_check;")?;
        if ok != "ok" {
            return Err(fail(Failure::VerifyFailed, format!("PRAGMA integrity_check on {new}: {ok}")));
        }
        Ok(())
    }

    fn refuse_while_held_open(&self, t: &Target) -> Result<()> {
        let live = &t.names.live;
        let paths = [live.clone(), format!("{live}-wal"), format!("{live}-shm"), format!("{live}-journal")];
        let holders = holders_of(&paths.iter().map(PathBuf::from).collect::<Vec<_>>());
        if holders.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = holders.iter().map(|(pid, comm)| format!("{comm} (pid {pid})")).collect();
        Err(fail(
            Failure::Busy,
            format!(
                "{live} is open in {}: stop it first (--stop-command) so no write lands in the replaced file; \
                 nothing was swapped",
                shown.join(", ")
            ),
        ))
    }

    fn exchange_in(&self, t: &Target, live_exists: bool) -> Result<()> {
        let n = &t.names;
        if !live_exists {
            return rename(Path::new(&n.new), Path::new(&n.live));
        }
        let wal = format!("{}-wal", n.live);
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            t.drop_scratch();
            return Err(fail(
                Failure::Busy,
                format!(
                    "{wal} holds changes not yet in {}: stop the application (--stop-command) so SQLite checkpoints \
                     it; nothing was swapped",
                    n.live
                ),
            ));
        }
        copy_mode(Path::new(&n.live), Path::new(&n.new))?;
        // The live file becomes silo's rollback target: listed before it moves.
        mark(t, Path::new(&n.live))?;
        exchange(Path::new(&n.live), Path::new(&n.new))?;
        rename(Path::new(&n.new), Path::new(&n.prev))
    }

    fn exchange_back(&self, t: &Target) -> Result<()> {
        let n = &t.names;
        // The live file becomes the rollback target: listed (as it is now) before it moves.
        mark(t, Path::new(&n.live))?;
        exchange(Path::new(&n.live), Path::new(&n.prev))
    }
}

/// Why the file at `path` is not one restore-database may replace: it exists, is not empty, and does not
/// begin with SQLite's header (or cannot be read). None for a database, an empty file, or no file.
pub(super) fn not_a_database(path: &Path) -> Option<String> {
    use std::io::Read;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("cannot be read ({e})")),
    };
    if !meta.is_file() {
        return Some("is not a regular file".into());
    }
    if meta.len() == 0 {
        return None;
    }
    let mut head = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    match read {
        Ok(()) if &head == b"SQLite format 3\0" => None,
        Ok(()) => Some("is not an SQLite database (no SQLite header)".into()),
        Err(e) => Some(format!("is not an SQLite database ({e})")),
    }
}

/// The target as an absolute path through any symlink.
pub(super) fn target(file: &Path) -> Result<String> {
    let resolved = match std::fs::canonicalize(file) {
        Ok(p) => p,
        Err(_) => {
            let name =
                file.file_name().ok_or_else(|| fail(Failure::Usage, format!("{}: not a file name", file.display())))?;
            let parent = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            std::fs::canonicalize(parent)
                .map_err(|e| fail(Failure::Usage, format!("{}: {e}", parent.display())))?
                .join(name)
        }
    };
    resolved.to_str().map(String::from).ok_or_else(|| fail(Failure::Usage, format!("{}: not UTF-8", file.display())))
}

/// Writes the stream, which is the database file itself, into the (listed, empty) scratch file.
pub(super) fn write_file(
    t: &Target,
    rt: &tokio::runtime::Handle,
    repo: &Repository,
    snap: &Snapshot,
    st: &StreamManifest,
) -> Result<()> {
    let new = &t.names.new;
    let progress = &t.options.progress.loaded;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(new)
        .map_err(|e| fail(Failure::Failed, format!("opening {new}: {e}")))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut file);
    repo.restore_stream(rt, snap, st, &mut out, progress)?;
    out.flush().map_err(|e| fail(Failure::Failed, format!("writing {new}: {e}")))?;
    drop(out);
    file.sync_all().map_err(|e| fail(Failure::Failed, format!("syncing {new}: {e}")))?;
    Ok(())
}

/// The file beside the live one where restore-database lists the files (device and inode) it created or moved
/// aside; a file at a scratch or rollback path is silo's only when it is listed.
fn marks_path(t: &Target) -> PathBuf {
    PathBuf::from(format!("{}.silo-restore-database", t.names.live))
}

/// Listed files: device, inode, size, modification time (ns).
fn marks(t: &Target) -> Vec<[i128; 4]> {
    let text = std::fs::read_to_string(marks_path(t)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let v: Vec<i128> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
            v.try_into().ok()
        })
        .collect()
}

/// A file's identity as listed. The rollback file is never written after it is moved aside, so its size and
/// time are part of it (an inode number alone may be reused by a file someone else makes there).
fn identity(path: &Path) -> Option<[i128; 4]> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
    let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    Some([i128::from(m.dev()), i128::from(m.ino()), i128::from(m.size()), mtime])
}

/// Adds `path`'s file to the list, keeping only entries still found at one of the four paths.
fn mark(t: &Target, path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let n = &t.names;
    let present: Vec<[i128; 4]> =
        [&n.live, &n.new, &n.prev, &n.swap].iter().filter_map(|p| identity(Path::new(p))).collect();
    let mut marks: Vec<[i128; 4]> = marks(t).into_iter().filter(|m| present.iter().any(|p| p[..2] == m[..2])).collect();
    marks.extend(identity(path));
    marks.sort_unstable();
    marks.dedup();
    let text: String = marks.iter().map(|m| format!("{} {} {} {}\n", m[0], m[1], m[2], m[3])).collect();
    let target = marks_path(t);
    let tmp = PathBuf::from(format!("{}.tmp-{}", target.display(), std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &target));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(Failure::Failed, format!("recording silo's files in {}: {e}", target.display()))
    })
}

/// The processes (pid, name) other than this one with one of `paths` open for writing, from /proc/*/fd and
/// fdinfo (a reader that opened it read-only can never write into the replaced file). Processes of other users
/// are visible only to root; what cannot be read is passed over.
fn holders_of(paths: &[PathBuf]) -> Vec<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let wanted: Vec<(u64, u64)> =
        paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| (m.dev(), m.ino())).collect();
    let mut out = Vec::new();
    if wanted.is_empty() {
        return out;
    }
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::metadata(fd.path()).is_ok_and(|m| wanted.contains(&(m.dev(), m.ino())))
                && opened_for_writing(&entry.path().join("fdinfo").join(fd.file_name()))
        });
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

/// Whether an fdinfo file says its descriptor was opened for writing (unreadable: assumed so).
fn opened_for_writing(fdinfo: &Path) -> bool {
    let text = std::fs::read_to_string(fdinfo).unwrap_or_default();
    let flags = text.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok());
    flags.is_none_or(|f| f & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32)
}

/// Atomically exchanges two paths (renameat2 RENAME_EXCHANGE): at every instant each name holds one file.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(|e| fail(Failure::Usage, e.to_string()))?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(|e| fail(Failure::Usage, e.to_string()))?;
    // SAFETY: renameat2(2) with two NUL-terminated paths this function owns.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(fail(
            Failure::Failed,
            format!("exchanging {} and {}: {e}; nothing was swapped", a.display(), b.display()),
        ));
    }
    sync_dir(a)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .map_err(|e| fail(Failure::Failed, format!("renaming {} to {}: {e}", from.display(), to.display())))?;
    sync_dir(to)
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail(Failure::Failed, format!("syncing {}: {e}", dir.display())))
}

/// The restored file gets the live file's permissions and owner.
fn copy_mode(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(from).map_err(|e| fail(Failure::Failed, format!("{}: {e}", from.display())))?;
    std::fs::set_permissions(to, m.permissions())
        .map_err(|e| fail(Failure::Failed, format!("{}: {e}", to.display())))?;
    // Only root may give a file away; as the owner this is a no-op.
    let _ = std::os::unix::fs::chown(to, Some(m.uid()), Some(m.gid()));
    Ok(())
}
