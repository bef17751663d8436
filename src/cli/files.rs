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
