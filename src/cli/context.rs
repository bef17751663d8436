//! What every command gets: the parsed global options, the async runtime, and opening the repository.

use super::jobs_file::Loaded;
use super::{password, Cli};
use anyhow::Result;
use silo::jobs::{PasswordSource, RepoConfig};
use silo::repo::Repository;
use std::sync::Mutex;
use tokio::runtime::Runtime;

/// A repository as the rule picks it: where, its password, its cache, and where the password came from
/// (for messages; never the password).
pub struct Target {
    pub location: String,
    pub password: Vec<u8>,
    pub cache_dir: Option<std::path::PathBuf>,
    pub from: String,
}

pub struct Invocation {
    pub cli: Cli,
    pub rt: Runtime,
    /// The first repository this command opened: its run record goes there (record.rs).
    pub opened: Mutex<Option<Repository>>,
    /// What the command did, for its run record (set by the commands that know).
    pub details: Mutex<RunDetails>,
}

/// A command's facts for its run record.
#[derive(Clone, Debug, Default)]
pub struct RunDetails {
    /// A dry run: no record.
    pub skip: bool,
    pub job: String,
    pub snapshot: Option<silo_format::ObjectId>,
    pub bytes_read: u64,
    pub bytes_added: u64,
}

impl Invocation {
    pub fn json(&self) -> bool {
        self.cli.json
    }

    /// The repository's password (password.rs says from where).
    pub fn password(&self, confirm: bool) -> Result<Vec<u8>> {
        password::read(self.cli.password_file.as_deref(), confirm)
    }

    /// The repository a command uses, by one rule (docs/usage.md "Which repository"), first that applies:
    /// 1. `--job NAME` / `--offsite`: the jobs file's `[repository]` (that job's), or its `[offsite]` with
    ///    `--offsite` (a job's only when it has `offsite = true`), with the password the file names for it;
    /// 2. `--repo` or `SILO_REPO`, its password from `--password-file`, `SILO_PASSWORD_FILE`, `SILO_PASSWORD`
    ///    or the terminal;
    /// 3. the jobs file's `[repository]` (`--config`, `SILO_CONFIG`, the default paths), with its password
    ///    unless `--password-file`, `SILO_PASSWORD_FILE` or `SILO_PASSWORD` gives one.
    pub fn open(&self) -> Result<Repository> {
        self.open_by_rule(false)
    }

    fn open_by_rule(&self, with_cache: bool) -> Result<Repository> {
        let t = self.target()?;
        said_where(self.open_at_with(&t.location, &t.password, with_cache, t.cache_dir.as_deref()), &t.from)
    }

    /// The repository the rule of `open` picks, with its password and cache directory, not yet opened (for
    /// `silo serve`, which opens it again on every refresh that failed).
    pub fn target(&self) -> Result<Target> {
        if self.cli.job.is_some() || self.cli.offsite {
            let jobs = super::jobs_file::load(self)?;
            let (which, cfg) = picked(&jobs, self.cli.job.as_deref(), self.cli.offsite)?;
            if let Some(other) = self.cli.repo.as_deref().filter(|r| *r != cfg.location) {
                note!(
                    "silo: note: --repo/SILO_REPO ({other}) is not used: {} picks {}",
                    self.picked_by(),
                    cfg.location
                );
            }
            // The file's password for the repository it names; a flag or SILO_PASSWORD only when it names none
            // (an exported SILO_PASSWORD is the main repository's, never the offsite's).
            let (password, from) = match cfg.password_source() {
                Some(source) => (super::jobs_file::password_of(which, cfg)?, jobs_source(which, &source)),
                None => (self.password(false)?, password::source(self.cli.password_file.as_deref())),
            };
            return Ok(Target { location: cfg.location.clone(), password, cache_dir: self.cache_dir(cfg), from });
        }
        if self.cli.repo.is_none() {
            if let Some(jobs) = super::jobs_file::find(self)? {
                let cfg = &jobs.file.repository;
                let given = self.cli.password_file.is_some() || std::env::var_os("SILO_PASSWORD").is_some();
                let (password, from) = match cfg.password_source() {
                    Some(source) if !given => {
                        (super::jobs_file::password_of("repository", cfg)?, jobs_source("repository", &source))
                    }
                    _ => (self.password(false)?, password::source(self.cli.password_file.as_deref())),
                };
                return Ok(Target { location: cfg.location.clone(), password, cache_dir: self.cache_dir(cfg), from });
            }
        }
        let location = self.location()?.to_string();
        let from = password::source(self.cli.password_file.as_deref());
        Ok(Target { location, password: self.password(false)?, cache_dir: self.cli.cache_dir.clone(), from })
    }

    /// A jobs file's cache directory for its repository, else `--cache-dir`.
    fn cache_dir(&self, cfg: &RepoConfig) -> Option<std::path::PathBuf> {
        cfg.cache_dir.clone().or_else(|| self.cli.cache_dir.clone())
    }

    /// `--job NAME`, `--offsite` or both, as the user wrote them (for messages).
    fn picked_by(&self) -> String {
        match (&self.cli.job, self.cli.offsite) {
            (Some(job), true) => format!("--job {job} --offsite"),
            (Some(job), false) => format!("--job {job}"),
            (None, _) => "--offsite".into(),
        }
    }

    pub fn location(&self) -> Result<&str, silo::Error> {
        self.cli.repo.as_deref().ok_or_else(|| silo::Error::Input {
            what: "no repository given".into(),
            message: "pass --repo DIR (or s3:http[s]://HOST/BUCKET) or set SILO_REPO".into(),
        })
    }

    /// Like `open`, for a command that reads the index cache at once (restore, create): the cache is
    /// opened while the password's key is derived.
    pub fn open_with_cache(&self) -> Result<Repository> {
        self.open_by_rule(true)
    }

    pub fn open_at(&self, location: &str, password: &[u8]) -> Result<Repository> {
        self.open_at_with(location, password, false, None)
    }

    /// Opens `location`; its cache below `cache_dir` (a jobs file's), else `--cache-dir`.
    fn open_at_with(
        &self,
        location: &str,
        password: &[u8],
        with_cache: bool,
        cache_dir: Option<&std::path::Path>,
    ) -> Result<Repository> {
        let backend = silo::backend::open(location)?;
        let dir = cache_dir.map(Into::into).or_else(|| self.cli.cache_dir.clone());
        let repo = self.rt.block_on(async {
            if with_cache {
                Repository::open_with_cache(backend, password, dir).await
            } else {
                Repository::open(backend, password, dir).await
            }
        })?;
        self.opened.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| repo.clone());
        Ok(repo)
    }

    /// Sets facts of this command's run record.
    pub fn record(&self, f: impl FnOnce(&mut RunDetails)) {
        f(&mut self.details.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A wrong password says where it came from (which flag, variable or file), never what it was.
fn said_where(opened: Result<Repository>, from: &str) -> Result<Repository> {
    opened.map_err(|e| match e.downcast_ref::<silo::Error>() {
        Some(silo::Error::WrongPassword) => e.context(format!("the password from {from}")),
        _ => e,
    })
}

/// Where a jobs file's password comes from, for messages (never the password).
fn jobs_source(which: &str, source: &PasswordSource) -> String {
    match source {
        PasswordSource::File(f) => format!("the jobs file's [{which}] password_file {}", f.display()),
        PasswordSource::Env(name) => format!("the jobs file's [{which}] password_env {name}"),
        PasswordSource::Inline(_) => format!("the jobs file's [{which}] password"),
    }
}

/// The repository `--job` / `--offsite` pick from the jobs file, and which table it is. A job that does not
/// exist, or an offsite that is not there, is a one-line refusal naming it (exit 2).
fn picked<'a>(jobs: &'a Loaded, job: Option<&str>, offsite: bool) -> Result<(&'static str, &'a RepoConfig)> {
    let refuse = |what: String, message: String| -> anyhow::Error { silo::Error::Input { what, message }.into() };
    let (file, path) = (&jobs.file, jobs.path.display());
    if let Some(name) = job {
        let Some(j) = file.jobs.get(name) else {
            let known: Vec<&str> = file.jobs.keys().map(String::as_str).collect();
            return Err(refuse(
                format!("--job {name}"),
                format!("the jobs file {path} has no job {name:?}; its jobs are {}", known.join(", ")),
            ));
        };
        if offsite && !j.offsite {
            return Err(refuse(
                format!("--job {name} --offsite"),
                format!(
                    "job {name} has no offsite copy (no `offsite = true` in {path}); drop --offsite for its repository"
                ),
            ));
        }
    }
    match (offsite, &file.offsite) {
        (false, _) => Ok(("repository", &file.repository)),
        (true, Some(o)) => Ok(("offsite", o)),
        (true, None) => Err(refuse(
            job.map_or("--offsite".into(), |j| format!("--job {j} --offsite")),
            format!("the jobs file {path} has no [offsite] repository"),
        )),
    }
}

/// Seconds from a duration flag such as `7d`, `36h` or `1y6mo`.
pub fn duration_arg(flag: &str, text: &str) -> Result<u64, silo::Error> {
    silo::retention::parse_duration(text).map_err(|why| silo::Error::Input {
        what: format!("{flag} {text:?}"),
        message: format!("{why}; expected a duration like 7d, 36h, 30min or 1y6mo (units y mo w d h min s)"),
    })
}
