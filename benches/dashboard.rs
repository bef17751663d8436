//! `silo serve` at scale (issue 32: a page renders in <= 100 ms at 10 000 snapshots and 100 000 run
//! records): building the view from a repository's facts (done once per refresh) and rendering the
//! overview, a name's page and the status JSON (done per request), over 20 jobs x 500 snapshots and
//! 100 000 run records. Run: `cargo bench --bench dashboard` (release profile).

use criterion::{criterion_group, criterion_main, Criterion};
use silo::format::maintenance::{RunKind, RunRecord};
use silo::format::manifest::{SnapshotManifest, StreamManifest, MANIFEST_VERSION};
use silo::format::ObjectId;
use silo::jobs::facts::Gathered;
use silo::repo::snapshots::Snapshot;
use silo::serve::model::View;
use silo::serve::pages;
use std::collections::BTreeMap;
use std::hint::black_box;

const JOBS: usize = 20;
const SNAPSHOTS: usize = 10_000;
const RECORDS: usize = 100_000;
const HOUR: i64 = 3_600_000_000;

fn id(n: usize, kind: u8) -> ObjectId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(n as u64).to_le_bytes());
    b[8] = kind;
    ObjectId(b)
}

fn facts() -> Gathered {
    let now = 1_800_000_000 * 1_000_000i64;
    let snapshots = (0..SNAPSHOTS)
        .map(|n| {
            let finished = now - (SNAPSHOTS - n) as i64 * HOUR / 4;
            Snapshot {
                id: id(n, 1),
                manifest: SnapshotManifest {
                    version: MANIFEST_VERSION,
                    name: format!("job{:02}", n % JOBS),
                    host: "db1".into(),
                    tags: vec!["nightly".into()],
                    started: finished - 60_000_000,
                    finished,
                    silo_version: "0.1.0".into(),
                    streams: vec![StreamManifest {
                        name: "shop".into(),
                        command: Some(vec!["pg_dump".into(), "--dbname=shop".into()]),
                        exit_status: Some(0),
                        size: 190_000_000 + n as u64 * 1000,
                        blake3: [0; 32],
                        chunks: Vec::new(),
                        dump: None,
                    }],
                },
            }
        })
        .collect();
    let history = (0..RECORDS)
        .map(|n| {
            let finished = now - (RECORDS - n) as i64 * HOUR / 40;
            let mut r = RunRecord::new(RunKind::Run, format!("job{:02}", n % JOBS), "db1", finished - 1, finished);
            r.bytes_added = 700_000;
            r.snapshot = (n % 10 == 0).then(|| id(n / 10, 1));
            if n % 97 == 0 {
                r.ok = false;
                r.exit_code = 7;
                r.error = "pg_dump: connection refused".into();
            }
            (id(n, 2), r)
        })
        .collect();
    Gathered { snapshots, history, pack_bytes: 40_000_000_000, packs: 2_000, now_us: now, ..Gathered::default() }
}

fn bench(c: &mut Criterion) {
    let g = facts();
    let limits = BTreeMap::new();
    let mut group = c.benchmark_group("dashboard");
    group.sample_size(10);
    group.bench_function("build view (per refresh)", |b| b.iter(|| black_box(View::build(&g, &limits))));
    let view = View::build(&g, &limits);
    group.bench_function("overview page", |b| {
        b.iter(|| black_box(pages::overview(&view, None, None, None).into_string()))
    });
    let (name, detail) = view.names.iter().next().expect("a name");
    group.bench_function("name page", |b| {
        b.iter(|| black_box(pages::name_page(&view, name, detail, None, None).into_string()))
    });
    group.bench_function("status json", |b| b.iter(|| black_box(serde_json::to_vec(&view.jobs))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
