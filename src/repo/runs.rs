//! Run history (format-spec/maintenance.md "runs"): every run and command, successful or failed, leaves a
//! `runs/<id>` record; `silo status` reads them. A record that cannot reach the repository is kept in a
//! local spool and uploaded by the next run that can (nothing about a failure is lost because the
//! repository was down). Records older than the kept age are deleted by gc, so history stays bounded.
//! A damaged record is skipped and counted, never allowed to hide the others. Upholds I13; `store_or_spool`
//! is the one place that decides where a record goes.

use super::Repository;
use crate::backend::{names, ReadBackend};
use crate::{Error, Result};
use silo_format::maintenance::RunRecord;
use silo_format::{ObjectId, Sealed};
use std::path::{Path, PathBuf};

/// How long run records are kept by default (gc `--keep-runs`).
pub const KEEP_RUNS_DAYS: u64 = 90;

/// The run records of a repository, in the order they finished.
pub struct RunHistory {
    pub records: Vec<(ObjectId, RunRecord)>,
    /// Records that did not open (named in the log).
    pub damaged: usize,
}

impl Repository {
    /// Stores `record` as a new `runs/<id>`.
    pub async fn record_run(&self, record: &RunRecord) -> Result<ObjectId> {
        let id = ObjectId::random();
        self.save(id, record).await?;
        Ok(id)
    }

    pub async fn run_history(&self) -> Result<RunHistory> {
        use futures::StreamExt;
        // Records are small and many (hourly jobs keep ~2000 each over 90 days): fetched 32 at a time, not
        // one round trip after another.
        let listed = self.backend.list(names::RUNS).await?;
        let loads = listed
            .into_iter()
            .filter_map(|info| names::id_of(&info.name).map(|id| (id, info.name)))
            .map(|(id, name)| async move { (id, self.load_sealed::<RunRecord>(&name, id).await, name) });
        let mut results = futures::stream::iter(loads).buffer_unordered(32);
        let mut records = Vec::new();
        let mut damaged = 0;
        while let Some((id, loaded, name)) = results.next().await {
            match loaded {
                Ok(r) => records.push((id, r)),
                Err(Error::Backend(e)) if e.is_not_found() => {}
                Err(e @ Error::Backend(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!("run record {name}: {e}; skipped");
                    damaged += 1;
                }
            }
        }
        // In the order runs ended: the latest outcome is the last one (an overlapping run may start earlier
        // and end later).
        records.sort_by_key(|(id, r)| (r.finished, *id));
        Ok(RunHistory { records, damaged })
    }

    /// Deletes run records that finished more than `keep_seconds` ago. Returns how many (or, in a dry run,
    /// would be).
    pub async fn prune_runs(&self, keep_seconds: u64, dry_run: bool) -> Result<usize> {
        let store = if dry_run { None } else { Some(self.owner_store("deleting run records")?) };
        let cutoff = self.now().saturating_sub(i64::try_from(keep_seconds).unwrap_or(i64::MAX / 2) * 1_000_000);
        let old: Vec<ObjectId> = self
            .run_history()
            .await?
            .records
            .into_iter()
            .filter(|(_, r)| r.finished < cutoff)
            .map(|(id, _)| id)
            .collect();
        if let Some(store) = store {
            for id in &old {
                store.delete(&names::run(id)).await?;
            }
        }
        Ok(old.len())
    }
}

/// Where a run record went (I13).
#[derive(Debug)]
pub enum Kept {
    /// In the repository.
    Stored,
    /// In the local spool, for the next run that reaches the repository; `why` the repository did not take it.
    Spooled { path: PathBuf, why: String },
    /// Nowhere: why the repository did not take it, and why the spool did not (`None`: no spool was given).
    Lost { why: String, spool_error: Option<String> },
}

/// Stores `record` in `repo`, or — when the repository is out of reach (`repo` says why) or refuses it — in
/// `spool`. The one place that decides where a record goes; never changes a run's outcome.
pub async fn store_or_spool(repo: Result<&Repository, String>, spool: Option<&Spool>, record: &RunRecord) -> Kept {
    let why = match repo {
        Ok(repo) => match repo.record_run(record).await {
            Ok(_) => return Kept::Stored,
            Err(e) => e.to_string(),
        },
        Err(why) => why,
    };
    match spool.map(|s| s.put(record)) {
        Some(Ok(path)) => Kept::Spooled { path, why },
        Some(Err(e)) => Kept::Lost { why, spool_error: Some(e.to_string()) },
        None => Kept::Lost { why, spool_error: None },
    }
}

/// The local spool of records a run could not store: `<cache base>/spool/<location hash>/<id>.run`, each
/// the record's encoded body (not sealed: sealing needs the repository's keys, which were out of reach).
/// Owner-only, like everything silo writes (I12); records never hold a secret.
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool for the repository at `location`, below the cache base (`--cache-dir`, `SILO_CACHE_DIR`,
    /// `$XDG_CACHE_HOME/silo` or `~/.cache/silo`). `None` without any.
    pub fn for_location(base: Option<&Path>, location: &str) -> Option<Spool> {
        let base = crate::cache::base_dir(base)?;
        let key = blake3::hash(location.as_bytes()).to_hex();
        Some(Spool { dir: base.join("spool").join(&key.as_str()[..32]) })
    }

    pub fn put(&self, record: &RunRecord) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{}.run", ObjectId::random().to_hex()));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, silo_format::encoding::encode(record))?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// Uploads every spooled record into `repo`, removing each once stored. Returns how many. A spooled file
    /// that does not decode is left in place and named in the log.
    pub async fn flush(&self, repo: &Repository) -> Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(format!("reading spool {}", self.dir.display()), e)),
        };
        let mut stored = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "run") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            match RunRecord::decode_body(&bytes) {
                Ok(record) => {
                    repo.record_run(&record).await?;
                    std::fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                    stored += 1;
                }
                Err(e) => tracing::warn!("spooled run record {}: {e}; left in place", path.display()),
            }
        }
        Ok(stored)
    }
}
