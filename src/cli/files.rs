//! Files the CLI writes for other programs (metrics, timers, cron lines): whole or not at all — written
//! under a temporary name beside the target, given their mode, synced, then renamed over it. Whether an
//! existing file may be replaced is the caller's decision (each checks it is one silo wrote).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub fn replace_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".silo-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether `path` (a file about to be written or replaced) lies inside the local repository at `location`
/// (through any symbolic link): silo writes there only through the repository's own objects, so a restore
/// aimed there would replace a key file, `config` or a pack (I11: not even a writer key may do that through
/// silo). An object store's location has no local files.
pub fn inside_repository(path: &Path, location: &str) -> bool {
    if location.starts_with("s3:") {
        return false;
    }
    let Ok(root) = std::fs::canonicalize(location) else { return false };
    let resolved = std::fs::canonicalize(path).or_else(|_| {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| std::io::Error::other("no file name"))?;
        std::fs::canonicalize(parent).map(|p| p.join(name))
    });
    resolved.is_ok_and(|p| p.starts_with(&root))
}

/// Refuses `what` (`--output FILE`, `--sqlite FILE`, ...) when `path` lies inside the local repository at
/// `location` (usage error, exit 2).
pub fn refuse_inside_repository(what: &str, path: &Path, location: &str) -> anyhow::Result<()> {
    if inside_repository(path, location) {
        return Err(silo::Error::Input {
            what: format!("{what} {}", path.display()),
            message: format!(
                "is inside the repository {location}; silo never writes into a repository except as its objects: \
                 name a file outside it"
            ),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_inside_a_local_repository_through_any_link_is_inside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("keys")).expect("mkdir");
        std::fs::write(repo.join("config"), b"x").expect("write");
        std::os::unix::fs::symlink(&repo, dir.path().join("link")).expect("symlink");
        let loc = repo.display().to_string();
        assert!(inside_repository(&repo.join("config"), &loc));
        assert!(inside_repository(&repo.join("keys").join("new"), &loc));
        assert!(inside_repository(&dir.path().join("link").join("config"), &loc));
        assert!(inside_repository(&repo.join("keys").join("..").join("config"), &loc));
        assert!(!inside_repository(&dir.path().join("restored.sql"), &loc));
        assert!(!inside_repository(&dir.path().join("repo-copy"), &loc));
        assert!(!inside_repository(&repo.join("config"), "s3:http://127.0.0.1:9/b"));
    }
}
