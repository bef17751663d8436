//! What every command gets: the parsed global options, the async runtime, and opening the repository.

use super::{password, Cli};
use anyhow::Result;
use silo::repo::Repository;
use std::sync::Mutex;
use tokio::runtime::Runtime;

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

    /// The repository a command uses, by one rule (docs/usage.md "Which repository"): `--repo` or
    /// `SILO_REPO`; else the jobs file's `[repository]` (`--config`, `SILO_CONFIG`, the default paths), with
    /// its password unless `--password-file`, `SILO_PASSWORD_FILE` or `SILO_PASSWORD` gives one.
    pub fn open(&self) -> Result<Repository> {
        self.open_by_rule(false)
    }

    fn open_by_rule(&self, with_cache: bool) -> Result<Repository> {
        if self.cli.repo.is_none() {
            if let Some(jobs) = super::jobs_file::find(self)? {
                let cfg = &jobs.file.repository;
                let given = self.cli.password_file.is_some() || std::env::var_os("SILO_PASSWORD").is_some();
                let pw = if given { self.password(false)? } else { super::jobs_file::password_of("repository", cfg)? };
                return self.said_where(self.open_at_with(&cfg.location, &pw, with_cache));
            }
        }
        let location = self.location()?;
        self.said_where(self.open_at_with(location, &self.password(false)?, with_cache))
    }

    /// A wrong password says where it came from (which flag, variable or file), never what it was.
    fn said_where(&self, opened: Result<Repository>) -> Result<Repository> {
        opened.map_err(|e| match e.downcast_ref::<silo::Error>() {
            Some(silo::Error::WrongPassword) => {
                let from = password::source(self.cli.password_file.as_deref());
                e.context(format!("the password from {from}"))
            }
            _ => e,
        })
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
        self.open_at_with(location, password, false)
    }

    fn open_at_with(&self, location: &str, password: &[u8], with_cache: bool) -> Result<Repository> {
        let (backend, dir) = (silo::backend::open(location)?, self.cli.cache_dir.clone());
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

/// Seconds from a duration flag such as `7d`, `36h` or `1y6mo`.
pub fn duration_arg(flag: &str, text: &str) -> Result<u64, silo::Error> {
    silo::retention::parse_duration(text).map_err(|why| silo::Error::Input {
        what: format!("{flag} {text:?}"),
        message: format!("{why}; expected a duration like 7d, 36h, 30min or 1y6mo (units y mo w d h min s)"),
    })
}
