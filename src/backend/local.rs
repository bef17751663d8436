//! The local-directory backend. Every write goes temp file → fsync → rename (or hard link, for
//! create-if-absent) → fsync of the directory, so a crash leaves either the whole object or none of it
//! (stray temp files under `tmp/` are never read). Blocking file I/O runs on tokio's blocking pool.
//!
//! Owner-only (issue 18): every file is created 0600 and every directory 0700, whatever the umask — unless
//! the repository was made with `init --group-readable`, which is recorded as the mode of `config` (0640):
//! then files are 0640 and directories 0750 (format-spec/objects.md "Local permissions").

use super::{BackendError, ObjectInfo, RangeRequest, ReadBackend, WriteBackend};
use async_trait::async_trait;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const TMP_DIR: &str = "tmp";

#[derive(Clone)]
pub struct LocalBackend {
    root: Arc<PathBuf>,
    /// Whether group members may read: set for `init --group-readable`, else read from `config`'s mode.
    group_readable: Arc<std::sync::OnceLock<bool>>,
}

/// The modes new files and directories get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes {
    pub file: u32,
    pub dir: u32,
}

impl Modes {
    pub const OWNER_ONLY: Modes = Modes { file: 0o600, dir: 0o700 };
    pub const GROUP_READABLE: Modes = Modes { file: 0o640, dir: 0o750 };
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: Arc::new(root.into()), group_readable: Arc::default() }
    }

    /// A backend for `init --group-readable`: everything it creates, `config` first, is group-readable.
    pub fn group_readable(root: impl Into<PathBuf>) -> Self {
        let b = Self::new(root);
        let _ = b.group_readable.set(true);
        b
    }

    /// The modes for new objects: group-readable when `config` is (a repository made so), else owner-only.
    pub fn modes(&self) -> Modes {
        let group = *self.group_readable.get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(self.root.join(super::names::CONFIG)).is_ok_and(|m| m.permissions().mode() & 0o040 != 0)
        });
        if group {
            Modes::GROUP_READABLE
        } else {
            Modes::OWNER_ONLY
        }
    }

    /// The permission bits of object `name`, for `check`'s warning about key files others can read.
    pub fn mode_of(&self, name: &str) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(self.path(name)).ok().map(|m| m.permissions().mode() & 0o7777)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn io(name: &str, source: io::Error) -> BackendError {
        // ENOTDIR: the repository path (or a directory in it) is a file, so the object is not there.
        if source.kind() == io::ErrorKind::NotFound || source.kind() == io::ErrorKind::NotADirectory {
            BackendError::NotFound { name: name.to_string() }
        } else {
            BackendError::Io { name: name.to_string(), source }
        }
    }

    /// Writes `data` to a fresh durable temp file (of mode `modes.file`) and returns its path.
    fn write_temp(root: &Path, modes: Modes, data: &[u8]) -> io::Result<PathBuf> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = root.join(TMP_DIR);
        create_dirs(&dir, modes)?;
        let tmp = dir.join(format!("{}.tmp", silo_format::ObjectId::random().short()));
        let mut f = OpenOptions::new().write(true).create_new(true).mode(modes.file).open(&tmp)?;
        // The umask may have taken bits away (group read); it never adds any.
        let written = f
            .set_permissions(fs::Permissions::from_mode(modes.file))
            .and_then(|_| f.write_all(data))
            .and_then(|_| f.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    fn final_path(root: &Path, modes: Modes, name: &str) -> io::Result<PathBuf> {
        let path = root.join(name);
        if let Some(parent) = path.parent() {
            create_dirs(parent, modes)?;
        }
        Ok(path)
    }

    async fn blocking<T: Send + 'static>(
        name: &str,
        f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| BackendError::Io { name: name.to_string(), source: io::Error::other(e.to_string()) })?
    }
}

/// Exactly `len` bytes of `f` (object `name`) at `offset`, read into a buffer that is not zeroed first.
fn read_range(f: &mut File, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
    f.seek(SeekFrom::Start(offset)).map_err(|e| LocalBackend::io(name, e))?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(usize::MAX).min(1 << 30));
    match f.take(len).read_to_end(&mut buf) {
        Ok(n) if n as u64 == len => Ok(buf),
        Ok(_) => Err(BackendError::ShortRead { name: name.to_string(), offset, wanted: len }),
        Err(e) => Err(LocalBackend::io(name, e)),
    }
}

/// `dir` and its missing parents, each new one of mode `modes.dir` (existing ones are left as they are).
fn create_dirs(dir: &Path, modes: Modes) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent, modes)?;
    }
    match fs::DirBuilder::new().mode(modes.dir).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(modes.dir)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

#[async_trait]
impl ReadBackend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        let (path, owned) = (self.path(name), name.to_string());
        Self::blocking(name, move || fs::read(&path).map_err(|e| Self::io(&owned, e))).await
    }

    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        let (path, owned) = (self.path(name), name.to_string());
        Self::blocking(name, move || {
            let mut f = File::open(&path).map_err(|e| Self::io(&owned, e))?;
            read_range(&mut f, &owned, offset, len)
        })
        .await
    }

    /// All ranges in one blocking call (a hop to the blocking pool per range cost a restore of delta chains,
    /// whose groups read a span in each of several packs, more in thread wake-ups than the reads), each
    /// object opened once for the ranges of it that follow one another.
    async fn get_ranges(&self, ranges: &[RangeRequest]) -> Vec<Result<Vec<u8>, BackendError>> {
        let wanted: Vec<(PathBuf, RangeRequest)> = ranges.iter().map(|r| (self.path(&r.name), r.clone())).collect();
        let answers = tokio::task::spawn_blocking(move || {
            let mut open: Option<(PathBuf, File)> = None;
            let mut answers = Vec::with_capacity(wanted.len());
            // Each range gets one answer: the open's error, or its read.
            for (path, r) in wanted {
                if open.as_ref().is_none_or(|(p, _)| *p != path) {
                    open = match File::open(&path) {
                        Ok(f) => Some((path, f)),
                        Err(e) => {
                            answers.push(Err(Self::io(&r.name, e)));
                            None
                        }
                    };
                }
                if let Some((_, f)) = open.as_mut() {
                    answers.push(read_range(f, &r.name, r.offset, r.len));
                }
            }
            answers
        })
        .await;
        match answers {
            Ok(answers) => answers,
            Err(e) => ranges
                .iter()
                .map(|r| Err(BackendError::Io { name: r.name.clone(), source: io::Error::other(e.to_string()) }))
                .collect(),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let (root, owned) = (self.root.clone(), prefix.to_string());
        Self::blocking(prefix, move || {
            let mut out = Vec::new();
            let start = root.join(&owned);
            walk(&root, &start, &mut out).map_err(|e| BackendError::Io { name: owned.clone(), source: e })?;
            Ok(out)
        })
        .await
    }

    fn local_mode(&self, name: &str) -> Option<u32> {
        self.mode_of(name)
    }
}

#[async_trait]
impl WriteBackend for LocalBackend {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        let (root, owned, modes) = (self.root.clone(), name.to_string(), self.modes());
        Self::blocking(name, move || {
            let run = || -> io::Result<()> {
                let tmp = Self::write_temp(&root, modes, &data)?;
                let path = Self::final_path(&root, modes, &owned)?;
                if let Err(e) = fs::rename(&tmp, &path) {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
                sync_dir(&path)
            };
            run().map_err(|e| Self::io(&owned, e))
        })
        .await
    }

    async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError> {
        let (root, owned, modes) = (self.root.clone(), name.to_string(), self.modes());
        Self::blocking(name, move || {
            let run = || -> io::Result<bool> {
                let tmp = Self::write_temp(&root, modes, &data)?;
                let path = Self::final_path(&root, modes, &owned)?;
                // link(2) fails with EEXIST instead of replacing: an atomic create-if-absent.
                let linked = fs::hard_link(&tmp, &path);
                let _ = fs::remove_file(&tmp);
                match linked {
                    Ok(()) => sync_dir(&path).map(|_| true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                }
            };
            run().map_err(|e| Self::io(&owned, e))
        })
        .await
    }

    /// The file system's clock: the modification time of a freshly written probe file (differs from ours
    /// on a network file system whose server clock is off). A repository that cannot be written (read-only,
    /// full disk) has no clock to offer: gc must still be able to run there, to free space or to plan.
    async fn server_time(&self) -> Result<Option<i64>, BackendError> {
        let (root, modes) = (self.root.clone(), self.modes());
        Self::blocking("tmp/clock probe", move || {
            let run = || -> io::Result<i64> {
                let tmp = Self::write_temp(&root, modes, b"clock")?;
                let t = micros(&fs::metadata(&tmp)?);
                let _ = fs::remove_file(&tmp);
                Ok(t)
            };
            match run() {
                Ok(t) => Ok(Some(t)),
                Err(e) => {
                    tracing::debug!("no clock probe in {} ({e}); using this machine's clock", root.display());
                    Ok(None)
                }
            }
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        let (path, owned) = (self.path(name), name.to_string());
        Self::blocking(name, move || {
            fs::remove_file(&path).map_err(|e| Self::io(&owned, e))?;
            sync_dir(&path).map_err(|e| Self::io(&owned, e))
        })
        .await
    }
}

fn micros(meta: &fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // A prefix naming one object lists that object, as on an object store.
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            let meta = fs::metadata(dir)?;
            if let Ok(rel) = dir.strip_prefix(root) {
                out.push(ObjectInfo {
                    name: rel.to_string_lossy().replace('\\', "/"),
                    size: meta.len(),
                    modified: micros(&meta),
                });
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // A mount point's lost+found belongs to fsck, not to the repository.
        if dir == root && entry.file_name() == "lost+found" {
            continue;
        }
        // An object deleted while we list is simply not listed.
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let path = entry.path();
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(ObjectInfo {
                name: rel.to_string_lossy().replace('\\', "/"),
                size: meta.len(),
                modified: micros(&meta),
            });
        }
    }
    Ok(())
}
