//! The dashboard's view of a repository (pure): what the pages and `/api/v1/` show, built from the facts
//! `silo status` reads (jobs/facts.rs), with each job's state from the same judgement (I27).

use crate::jobs::facts::Gathered;
use crate::jobs::status::{JobStatus, Limits, State};
use serde::Serialize;
use silo_format::maintenance::{RunKind, RunRecord};
use std::collections::BTreeMap;

/// Days of history the size charts show.
pub const TREND_DAYS: u32 = 90;

#[derive(Clone, Debug, Serialize)]
pub struct View {
    /// The repository's clock when its facts were read (µs).
    pub refreshed_us: i64,
    /// The worst job's state.
    pub state: State,
    pub jobs: Vec<JobStatus>,
    pub names: BTreeMap<String, NameDetail>,
    pub repository: RepositorySummary,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct NameDetail {
    /// Newest first.
    pub snapshots: Vec<SnapshotRow>,
    /// The job's runs (and creates of this name), newest first.
    pub runs: Vec<RunRow>,
    /// Drills of the name's snapshots, newest first.
    pub drills: Vec<DrillRow>,
    /// (finished µs, bytes) of each snapshot, oldest first: the size chart.
    pub sizes: Vec<(i64, u64)>,
    /// The name's retention policy and what `silo forget --dry-run` would remove now; None without a policy.
    pub retention: Option<Retention>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Retention {
    /// As forget's flags: `keep-daily 7, keep-monthly 12`.
    pub policy: String,
    /// Where the policy comes from: the jobs file's `keep`, or `silo policy set`.
    pub from: String,
    /// Snapshots a forget would remove now, newest first (every host of the name).
    pub removes: Vec<Removal>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Removal {
    pub id: String,
    pub host: String,
    pub finished_us: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SnapshotRow {
    pub id: String,
    pub finished_us: i64,
    pub host: String,
    pub tags: Vec<String>,
    pub bytes: u64,
    /// What its run added to the repository, when a run record says.
    pub added_bytes: Option<u64>,
    pub damaged: bool,
    pub streams: Vec<StreamRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamRow {
    pub name: String,
    /// The command as the user typed it (`text::command_text`), or none for standard input.
    pub command: Option<String>,
    pub bytes: u64,
    /// The dump format silo recognised, if any.
    pub dump: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub kind: String,
    pub job: String,
    pub host: String,
    pub started_us: i64,
    pub finished_us: i64,
    pub ok: bool,
    pub exit_code: u8,
    pub error: String,
    pub bytes_added: u64,
    pub snapshot: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DrillRow {
    pub snapshot: String,
    pub stream: String,
    pub finished_us: i64,
    pub ok: bool,
    pub seconds: f64,
    pub error: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RepositorySummary {
    pub snapshots: usize,
    /// Bytes the snapshots hold as streams, and bytes the packs take.
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    pub packs: usize,
    pub run_records: usize,
    pub damaged_run_records: usize,
    pub damaged_snapshots: usize,
    pub last_gc: Option<RunRow>,
    pub last_check: Option<RunRow>,
}

fn run_row(r: &RunRecord) -> RunRow {
    RunRow {
        kind: kind_name(&r.kind),
        job: r.job.clone(),
        host: r.host.clone(),
        started_us: r.started,
        finished_us: r.finished,
        ok: r.ok,
        exit_code: r.exit_code,
        error: r.error.clone(),
        bytes_added: r.bytes_added,
        snapshot: r.snapshot.map(|s| s.to_hex()),
    }
}

/// The run kind's word (`run`, `create`, `gc`, ...), as run records name it.
fn kind_name(kind: &RunKind) -> String {
    kind.as_str().to_string()
}

impl View {
    /// Adds each name's retention from a forget plan over every group (`repo::forget::plan_groups`), with
    /// where each name's policy came from.
    pub fn set_retention(&mut self, groups: &[crate::repo::forget::ForgetGroup], from: &BTreeMap<String, String>) {
        for g in groups {
            let (Some(policy), Some(d)) = (&g.policy, self.names.get_mut(&g.name)) else { continue };
            let r = d.retention.get_or_insert_with(|| Retention {
                policy: policy.to_string(),
                from: from.get(&g.name).cloned().unwrap_or_default(),
                removes: Vec::new(),
            });
            r.removes.extend(g.decisions.iter().filter(|x| !x.keep).map(|x| Removal {
                id: x.item.id.to_hex(),
                host: g.host.clone(),
                finished_us: x.time,
            }));
            r.removes.sort_by_key(|x| std::cmp::Reverse(x.finished_us));
        }
    }

    /// The view of `g`, judged with the jobs file's `limits` (empty without one).
    pub fn build(g: &Gathered, limits: &BTreeMap<String, Limits>) -> View {
        let names = g.names(limits);
        let jobs = g.statuses(&names, limits);
        let state = jobs.iter().map(|j| j.state).min().unwrap_or(State::Ok);
        let mut detail: BTreeMap<String, NameDetail> =
            names.iter().map(|n| (n.clone(), NameDetail::default())).collect();
        let mut added: BTreeMap<silo_format::ObjectId, u64> = BTreeMap::new();
        let mut snapshot_name: BTreeMap<silo_format::ObjectId, String> = BTreeMap::new();
        for (_, r) in &g.history {
            if let Some(s) = r.snapshot {
                added.insert(s, r.bytes_added);
            }
            if crate::jobs::status::is_job_run(&r.kind) {
                if let Some(d) = detail.get_mut(&r.job) {
                    d.runs.push(run_row(r));
                }
            }
        }
        let mut logical = 0;
        let mut damaged = 0;
        for s in &g.snapshots {
            let m = &s.manifest;
            logical += m.total_size();
            damaged += usize::from(g.marks.contains_key(&s.id));
            snapshot_name.insert(s.id, m.name.clone());
            let Some(d) = detail.get_mut(&m.name) else { continue };
            d.snapshots.push(SnapshotRow {
                id: s.id.to_hex(),
                finished_us: m.finished,
                host: m.host.clone(),
                tags: m.tags.clone(),
                bytes: m.total_size(),
                added_bytes: added.get(&s.id).copied(),
                damaged: g.marks.contains_key(&s.id),
                streams: m
                    .streams
                    .iter()
                    .map(|st| StreamRow {
                        name: st.name.clone(),
                        command: st.command.as_deref().map(crate::text::command_text),
                        bytes: st.size,
                        dump: st.dump.as_ref().map(|r| silo_format::manifest::dump_format::name(r.format).to_string()),
                    })
                    .collect(),
            });
        }
        for (_, _, dr) in &g.drills {
            let Some(name) = snapshot_name.get(&dr.snapshot) else { continue };
            if let Some(d) = detail.get_mut(name) {
                d.drills.push(DrillRow {
                    snapshot: dr.snapshot.to_hex(),
                    stream: dr.stream.clone(),
                    finished_us: dr.finished,
                    ok: dr.ok,
                    seconds: (dr.finished - dr.started) as f64 / 1e6,
                    error: dr.error.clone(),
                });
            }
        }
        for d in detail.values_mut() {
            d.snapshots.sort_by_key(|s| std::cmp::Reverse(s.finished_us));
            d.runs.sort_by_key(|r| std::cmp::Reverse(r.finished_us));
            d.drills.sort_by_key(|r| std::cmp::Reverse(r.finished_us));
            d.sizes = d.snapshots.iter().rev().map(|s| (s.finished_us, s.bytes)).collect();
        }
        let newest = |kind: RunKind| {
            g.history.iter().map(|(_, r)| r).filter(|r| r.kind == kind).max_by_key(|r| r.finished).map(run_row)
        };
        View {
            refreshed_us: g.now_us,
            state,
            jobs,
            names: detail,
            repository: RepositorySummary {
                snapshots: g.snapshots.len(),
                logical_bytes: logical,
                stored_bytes: g.pack_bytes,
                packs: g.packs,
                run_records: g.history.len(),
                damaged_run_records: g.damaged_records,
                damaged_snapshots: damaged,
                last_gc: newest(RunKind::Gc),
                last_check: newest(RunKind::Check),
            },
        }
    }
}

/// The action running, and how the last one ended.
#[derive(Clone, Debug, Default)]
pub struct ActionState {
    pub running: Option<(String, i64)>,
    pub last: Option<(String, i64, Option<i32>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::snapshots::Snapshot;
    use silo_format::maintenance::{DamageMark, DrillRecord};
    use silo_format::manifest::{SnapshotManifest, StreamManifest};
    use silo_format::ObjectId;

    const H: i64 = 3_600_000_000;

    fn snap(n: u8, name: &str, hour: i64, size: u64) -> Snapshot {
        Snapshot {
            id: ObjectId([n; 32]),
            manifest: SnapshotManifest {
                version: 2,
                name: name.into(),
                host: "db1".into(),
                tags: vec![],
                started: hour * H - 1,
                finished: hour * H,
                silo_version: "t".into(),
                streams: vec![StreamManifest {
                    name: "main".into(),
                    command: Some(vec!["pg_dump".into(), "--dbname=shop".into()]),
                    exit_status: Some(0),
                    size,
                    blake3: [0; 32],
                    chunks: vec![],
                    dump: None,
                }],
            },
        }
    }

    #[test]
    fn a_view_joins_runs_drills_and_marks_to_their_names_newest_first() {
        let mut run = RunRecord::new(RunKind::Run, "shop", "db1", 2 * H - 5, 2 * H);
        run.snapshot = Some(ObjectId([2; 32]));
        run.bytes_added = 77;
        let mut failed = RunRecord::new(RunKind::Run, "shop", "db1", 3 * H - 5, 3 * H);
        (failed.ok, failed.exit_code, failed.error) = (false, 7, "pg_dump failed".into());
        let gc = RunRecord::new(RunKind::Gc, "", "db1", 4 * H - 5, 4 * H);
        let drill = DrillRecord {
            version: 1,
            snapshot: ObjectId([1; 32]),
            stream: "main".into(),
            command: vec!["psql".into()],
            host: "db1".into(),
            started: 5 * H,
            finished: 5 * H + 2_500_000,
            bytes: 10,
            exit_status: Some(0),
            ok: true,
            error: String::new(),
        };
        let mut g = Gathered {
            snapshots: vec![snap(1, "shop", 1, 100), snap(2, "shop", 2, 120), snap(3, "crm", 1, 5)],
            history: vec![(ObjectId([9; 32]), run), (ObjectId([8; 32]), failed), (ObjectId([7; 32]), gc)],
            drills: vec![(ObjectId([6; 32]), String::new(), drill)],
            pack_bytes: 50,
            packs: 1,
            now_us: 6 * H,
            ..Gathered::default()
        };
        g.marks.insert(
            ObjectId([1; 32]),
            DamageMark { version: 1, snapshot: ObjectId([1; 32]), found_at: 5 * H, reason: "pack lost".into() },
        );
        let v = View::build(&g, &BTreeMap::new());
        assert_eq!(v.jobs.iter().map(|j| j.job.as_str()).collect::<Vec<_>>(), ["crm", "shop"]);
        assert_eq!(v.state, State::Damaged);
        let shop = &v.names["shop"];
        let ids: Vec<&str> = shop.snapshots.iter().map(|s| &s.id[..2]).collect();
        assert_eq!(ids, ["02", "01"], "newest first");
        assert_eq!((shop.snapshots[0].added_bytes, shop.snapshots[1].added_bytes), (Some(77), None));
        assert!(shop.snapshots[1].damaged && !shop.snapshots[0].damaged);
        assert_eq!(shop.snapshots[0].streams[0].command.as_deref(), Some("pg_dump --dbname=shop"));
        assert_eq!(
            shop.runs.iter().map(|r| r.ok).collect::<Vec<_>>(),
            [false, true],
            "failed runs listed, newest first"
        );
        assert_eq!(shop.drills.len(), 1);
        assert!((shop.drills[0].seconds - 2.5).abs() < 1e-9);
        assert_eq!(shop.sizes, [(H, 100), (2 * H, 120)], "the chart oldest first");
        assert!(v.names["crm"].runs.is_empty() && v.names["crm"].drills.is_empty());
        let r = &v.repository;
        assert_eq!((r.snapshots, r.logical_bytes, r.stored_bytes, r.damaged_snapshots), (3, 225, 50, 1));
        assert_eq!(r.last_gc.as_ref().map(|g| g.finished_us), Some(4 * H));
        assert!(r.last_check.is_none());
    }
}
