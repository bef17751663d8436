//! What `silo status` and `silo serve` read from a repository, read once into owned values (`gather`, I/O),
//! and the jobs' states judged from them (`Gathered::statuses`, pure). Upholds I27: the dashboard and
//! `silo status` judge the same facts with the same function (status.rs `Facts::judge`).

use super::status::{is_job_run, Facts, JobStatus, Limits};
use crate::repo::snapshots::Snapshot;
use crate::repo::Repository;
use silo_format::maintenance::{DamageMark, DrillRecord, RunRecord};
use silo_format::ObjectId;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A repository's facts at one moment.
#[derive(Clone, Debug, Default)]
pub struct Gathered {
    /// Snapshot headers (manifests without their chunk lists' use), in the order listed.
    pub snapshots: Vec<Snapshot>,
    pub marks: HashMap<ObjectId, DamageMark>,
    pub history: Vec<(ObjectId, RunRecord)>,
    /// Run records that did not open.
    pub damaged_records: usize,
    pub drills: Vec<(ObjectId, String, DrillRecord)>,
    /// Bytes and count of the repository's packs.
    pub pack_bytes: u64,
    pub packs: usize,
    /// The repository's clock when this was read (µs).
    pub now_us: i64,
}

/// Reads what status needs from `repo`. A repository that has lost its keys (its directory moved or
/// deleted under an open handle, the wrong bucket mounted) is an error, not an empty repository: a
/// dashboard must not turn "gone" into "no snapshots".
pub async fn gather(repo: &Repository) -> crate::Result<Gathered> {
    use crate::backend::ReadBackend;
    if ReadBackend::list(&repo.backend, crate::backend::names::KEYS).await?.is_empty() {
        return Err(crate::Error::NotARepository { location: repo.backend.location() });
    }
    let snapshots = repo.list_snapshot_heads().await?;
    let marks = repo.damage_marks().await?;
    let history = repo.run_history().await?;
    let drills = repo.load_all::<DrillRecord>().await?;
    let packs = ReadBackend::list(&repo.backend, crate::backend::names::PACKS).await?;
    Ok(Gathered {
        snapshots,
        marks,
        history: history.records,
        damaged_records: history.damaged,
        drills,
        pack_bytes: packs.iter().map(|o| o.size).sum(),
        packs: packs.len(),
        now_us: repo.now(),
    })
}

impl Gathered {
    /// The names to judge: the jobs file's jobs when it has any, else every snapshot name and every job a
    /// run record names (a job that never succeeded has records, not snapshots).
    pub fn names(&self, limits: &BTreeMap<String, Limits>) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = limits.keys().cloned().collect();
        if limits.is_empty() {
            names.extend(self.snapshots.iter().map(|s| s.manifest.name.clone()));
            names.extend(self.history.iter().filter(|(_, r)| is_job_run(&r.kind)).map(|(_, r)| r.job.clone()));
        }
        names
    }

    /// Each name's state, by the one judgement `silo status` makes (names without limits get the defaults:
    /// no freshness limit, no minimum, 50%).
    pub fn statuses(&self, names: &BTreeSet<String>, limits: &BTreeMap<String, Limits>) -> Vec<JobStatus> {
        let facts = Facts {
            snapshots: &self.snapshots,
            marks: &self.marks,
            history: &self.history,
            drills: &self.drills,
            now_us: self.now_us,
        };
        names
            .iter()
            .map(|name| {
                let limit = limits.get(name).copied().unwrap_or(Limits {
                    freshness_seconds: None,
                    min_size: None,
                    shrink_alert: 50,
                });
                facts.judge(name, limit)
            })
            .collect()
    }
}
