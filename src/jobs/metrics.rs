//! `silo status --prometheus FILE`: job states in the Prometheus text format, for node_exporter's textfile
//! collector. The names and labels are stable (docs/jobs.md (metrics)); every metric is a gauge with HELP and
//! TYPE lines, checked by `promtool check metrics` in the tests. Pure: the caller writes the file.

use super::status::{JobStatus, State};
use std::fmt::Write;

/// (name, help, value of a job's status). Timestamps in seconds since the epoch.
type Metric = (&'static str, &'static str, fn(&JobStatus) -> Option<f64>);

const SECONDS: f64 = 1_000_000.0;

const METRICS: [Metric; 15] = [
    ("silo_job_ok", "1 when the job's state is ok, else 0", |s| Some(f64::from(u8::from(s.state == State::Ok)))),
    ("silo_job_state", "The job's state: 0 ok, 1 never, 2 stale, 3 shrunk, 4 failing, 5 damaged", |s| {
        Some(state_number(s.state))
    }),
    ("silo_job_last_snapshot_timestamp_seconds", "When the job's newest snapshot finished", |s| {
        s.last_snapshot.map(|t| t as f64 / SECONDS)
    }),
    ("silo_job_last_run_success", "1 when the job's latest run succeeded, 0 when it failed", |s| {
        s.last_run_ok.map(|ok| f64::from(u8::from(ok)))
    }),
    ("silo_job_last_success_timestamp_seconds", "When the job's latest successful run finished", |s| {
        s.last_success.map(|t| t as f64 / SECONDS)
    }),
    ("silo_job_last_failure_timestamp_seconds", "When the job's latest failed run finished", |s| {
        s.last_failure.map(|t| t as f64 / SECONDS)
    }),
    ("silo_job_freshness_limit_seconds", "The job's freshness limit", |s| s.freshness_seconds.map(|f| f as f64)),
    ("silo_job_latest_snapshot_bytes", "Bytes read into the job's newest snapshot", |s| {
        s.latest_bytes.map(|b| b as f64)
    }),
    ("silo_job_latest_added_bytes", "Bytes the job's newest snapshot added to the repository", |s| {
        s.latest_added_bytes.map(|b| b as f64)
    }),
    ("silo_job_snapshots", "Snapshots of the job in the repository", |s| Some(s.snapshots as f64)),
    ("silo_job_damaged_snapshots", "Snapshots of the job marked damaged", |s| Some(s.damaged_snapshots as f64)),
    ("silo_job_last_check_timestamp_seconds", "When the latest check covering the job's snapshots finished", |s| {
        s.last_check.map(|t| t as f64 / SECONDS)
    }),
    ("silo_job_last_check_success", "1 when that check passed, else 0", |s| {
        s.last_check_ok.map(|ok| f64::from(u8::from(ok)))
    }),
    ("silo_job_last_drill_success", "1 when the job's latest restore drill succeeded, else 0", |s| {
        s.last_drill_ok.map(|ok| f64::from(u8::from(ok)))
    }),
    ("silo_job_last_drill_duration_seconds", "How long the job's latest restore drill took", |s| s.last_drill_seconds),
];

fn state_number(s: State) -> f64 {
    match s {
        State::Ok => 0.0,
        State::Never => 1.0,
        State::Stale => 2.0,
        State::Shrunk => 3.0,
        State::Failing => 4.0,
        State::Damaged => 5.0,
    }
}

/// A label value escaped as the text format requires (backslash, quote, newline).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The text of the metrics file, written at `now` (µs); `repository_bytes`: what the packs take.
pub fn text(statuses: &[JobStatus], repository_bytes: u64, now: i64) -> String {
    let mut out = String::new();
    for (name, help, value) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}.");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for s in statuses {
            if let Some(v) = value(s) {
                let _ = writeln!(out, "{name}{{job=\"{}\"}} {v}", label(&s.job));
            }
        }
    }
    let _ = writeln!(out, "# HELP silo_repository_bytes Bytes the repository's packs take.");
    let _ = writeln!(out, "# TYPE silo_repository_bytes gauge");
    let _ = writeln!(out, "silo_repository_bytes {repository_bytes}");
    let _ = writeln!(out, "# HELP silo_status_timestamp_seconds When silo status wrote this file.");
    let _ = writeln!(out, "# TYPE silo_status_timestamp_seconds gauge");
    let _ = writeln!(out, "silo_status_timestamp_seconds {}", now as f64 / SECONDS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::status::{judge, Limits, SnapshotFact};

    #[test]
    fn every_metric_has_help_and_type_and_labels_are_escaped() {
        let snap = SnapshotFact { id: "a".into(), finished_us: 3_000_000, bytes: 10, damaged: false, dumps: vec![] };
        let s = judge(
            "we\"ird\\job",
            Limits { freshness_seconds: Some(60), min_size: None, shrink_alert: 50 },
            &[snap],
            &[],
            None,
            None,
            5_000_000,
        );
        let t = text(&[s], 1234, 5_000_000);
        assert!(t.contains("\nsilo_repository_bytes 1234\n"));
        for (name, _, _) in METRICS {
            assert!(t.contains(&format!("# HELP {name} ")) && t.contains(&format!("# TYPE {name} gauge")), "{name}");
        }
        assert!(t.contains("silo_job_ok{job=\"we\\\"ird\\\\job\"} 1"), "{t}");
        assert!(t.contains("silo_job_last_snapshot_timestamp_seconds{job=\"we\\\"ird\\\\job\"} 3"), "{t}");
        assert!(!t.contains("silo_job_last_run_success{"), "no run, no value: {t}");
        assert!(t.ends_with("silo_status_timestamp_seconds 5\n"));
    }
}
