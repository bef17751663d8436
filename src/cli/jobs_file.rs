//! Finding, reading and trusting the jobs file (`--config`, `SILO_CONFIG`, `/etc/silo/silo.toml`,
//! `$XDG_CONFIG_HOME/silo/silo.toml`), and opening the repositories it names. A file that holds a password
//! must be owner-only (I12); a password file it names must be too (password.rs). Reading it is bounded and a
//! file that is not UTF-8 is one `FILE:LINE` error (I23).

use super::context::Invocation;
use super::password;
use anyhow::{Context, Result};
use silo::jobs::{JobsFile, PasswordSource, RepoConfig};
use silo::repo::Repository;
use std::path::PathBuf;

pub struct Loaded {
    pub path: PathBuf,
    pub file: JobsFile,
}

/// Each job's status limits (freshness, minimum size, shrink alert); empty without a jobs file.
pub fn limits(loaded: &Option<Loaded>) -> std::collections::BTreeMap<String, silo::jobs::status::Limits> {
    loaded
        .iter()
        .flat_map(|l| l.file.jobs.iter())
        .map(|(n, j)| {
            let limits = silo::jobs::status::Limits {
                freshness_seconds: j.freshness,
                min_size: j.min_size,
                shrink_alert: j.shrink_alert,
            };
            (n.clone(), limits)
        })
        .collect()
}

/// The jobs file's path: the one given, else the first default that exists.
fn path(ctx: &Invocation) -> Option<PathBuf> {
    ctx.cli.config.clone().or_else(|| silo::jobs::default_paths().into_iter().find(|p| p.exists()))
}

/// The jobs file, which must exist.
pub fn load(ctx: &Invocation) -> Result<Loaded> {
    match find(ctx)? {
        Some(l) => Ok(l),
        None => Err(silo::Error::Input {
            what: "no jobs file".into(),
            message: format!(
                "pass --config FILE or set SILO_CONFIG (looked in {}); docs/recipes.md has examples",
                silo::jobs::default_paths().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
        .into()),
    }
}

/// The jobs file if one is given or found.
pub fn find(ctx: &Invocation) -> Result<Option<Loaded>> {
    let Some(path) = path(ctx) else { return Ok(None) };
    let shown = path.display().to_string();
    let bytes = read_bounded(&path)?;
    let file = silo::jobs::parse_bytes(&bytes, &shown).map_err(|e| silo::Error::Input {
        what: format!("jobs file {}:{}", e.file, e.line),
        message: format!("{}; nothing was run", e.message),
    })?;
    if file.holds_password() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).with_context(|| format!("reading jobs file {shown}"))?.permissions().mode();
        if let Some(refusal) = password::open_to_others(mode) {
            return Err(silo::Error::Input {
                what: format!("jobs file {shown}"),
                message: format!(
                    "holds a password and {refusal}; run `chmod 600 {shown}` or use password_file; nothing was run"
                ),
            }
            .into());
        }
    }
    Ok(Some(Loaded { path, file }))
}

/// The file's bytes, refusing one larger than `MAX_FILE_BYTES` (I23: `--config /dev/zero` must not fill
/// memory).
fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let limit = silo::jobs::MAX_FILE_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading jobs file {}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(silo::Error::Input {
            what: format!("jobs file {}", path.display()),
            message: format!("is larger than {} KiB; a jobs file is text of a few KiB: check --config", limit >> 10),
        }
        .into());
    }
    Ok(bytes)
}

/// The password of a repository the jobs file names.
pub fn password_of(which: &str, cfg: &RepoConfig) -> Result<Vec<u8>> {
    match cfg.password_source() {
        Some(PasswordSource::File(f)) => password::read_file(&f),
        Some(PasswordSource::Env(name)) => {
            silo::inputs::process::add_secret_variable(&name);
            password::env_bytes(&name).filter(|p| !p.is_empty()).ok_or_else(|| {
                silo::Error::Input {
                    what: format!("[{which}] password_env = {name:?}"),
                    message: format!("the environment variable {name} is not set or empty"),
                }
                .into()
            })
        }
        Some(PasswordSource::Inline(secret)) => Ok(secret.0.into_bytes()),
        None => Err(silo::Error::NoPassword.into()),
    }
}

/// Opens a repository the jobs file names (its cache below its own cache_dir, else --cache-dir).
pub fn open(ctx: &Invocation, which: &str, cfg: &RepoConfig) -> Result<Repository> {
    let password = password_of(which, cfg)?;
    let backend = silo::backend::open(&cfg.location)?;
    let cache = cfg.cache_dir.clone().or_else(|| ctx.cli.cache_dir.clone());
    Ok(ctx.rt.block_on(Repository::open(backend, &password, cache))?)
}
