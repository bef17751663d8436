//! The S3 backend against a real Garage started by the test: round trip, dedup, request counts, ranged
//! restores, check finding damage, create-if-absent with and without conditional PUT, copy between local and
//! S3, and a three-node cluster (replication factor 3) losing a node in the middle of a create.
//! The rest of the suite runs on S3 too when SILO_TEST_BACKEND=s3 (scripts/test.sh does both).

mod util;

use silo::backend::s3::S3Backend;
use silo::backend::{ReadBackend, WriteBackend};
use std::process::Stdio;
use util::garage::Garage;
use util::services;
use util::*;

fn garage() -> Option<&'static Garage> {
    util::garage::shared()
}

struct S3Repo {
    repo: TestRepo,
    garage: &'static Garage,
}

impl S3Repo {
    fn init(g: &'static Garage, node: usize) -> S3Repo {
        let repo = TestRepo { dir: tempfile::tempdir().expect("tempdir"), location: g.location(node, &random_name()) };
        let s = S3Repo { repo, garage: g };
        s.ok(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"], b"");
        s
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.repo.cmd(args);
        c.envs(self.garage.env());
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        run_with_input(self.cmd(args), stdin)
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        let out = self.run(args, stdin);
        assert!(out.status.success(), "silo {args:?}: {}", stderr(&out));
        out
    }

    fn json(&self, args: &[&str], stdin: &[u8]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_slice(&self.ok(&a, stdin).stdout).expect("json")
    }

    fn backend(&self) -> S3Backend {
        S3Backend::connect(&self.repo.location, &self.garage.credentials()).expect("backend")
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn round_trip_dedup_request_counts_and_check_on_s3() {
    let Some(g) = garage() else { return };
    let s3 = S3Repo::init(g, 0);
    let data = dump(24 << 20, 11);
    let first = s3.json(&["snapshot", "create", "--name", "shop"], &data);
    let puts = first["requests"]["put"].as_u64().unwrap();
    let packs = first["packs"].as_u64().unwrap();
    assert!(packs >= 1 && puts >= packs + 2, "packs, a segment and the manifest are PUTs: {first}");
    assert!(first["requests"]["bytes_up"].as_u64().unwrap() >= first["new_bytes_stored"].as_u64().unwrap());

    // Restore reads with ranged GETs, a handful per pack, and reports them.
    let target = s3.repo.dir.path().join("restored.sql");
    let report = s3.json(&["snapshot", "restore", "shop:latest", "--output", target.to_str().unwrap()], b"");
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let ranged = report["requests"]["get_range"].as_u64().unwrap();
    assert!(ranged >= packs, "{report}");
    assert!(ranged <= first["chunks"].as_u64().unwrap(), "adjacent chunks share a read: {report}");
    assert_eq!(report["requests"]["put"], 0, "a restore writes nothing: {report}");
    // ... and on stderr when stdout is the data.
    let piped = s3.ok(&["--json", "snapshot", "restore", "shop:latest"], b"");
    assert!(piped.stdout == data);
    let line: serde_json::Value = serde_json::from_slice(stderr(&piped).lines().last().unwrap().as_bytes()).unwrap();
    assert_eq!(line["bytes"].as_u64(), Some(data.len() as u64));

    // Unchanged input: no new chunks, no pack uploads.
    let again = s3.json(&["snapshot", "create", "--name", "shop"], &data);
    assert_eq!(again["new_chunks"], 0);
    assert_eq!(again["packs"], 0);
    assert!(again["requests"]["put"].as_u64().unwrap() <= 3, "session + manifest only: {again}");

    // gc with nothing to do, check with data, then a damaged pack is found and named.
    s3.ok(&["gc"], b"");
    let check = s3.json(&["check", "--read-data"], b"");
    assert_eq!(check["damaged"].as_array().map(Vec::len), Some(0), "{check}");
    let backend = s3.backend();
    let rt = rt();
    let packs = rt.block_on(backend.list("packs/")).unwrap();
    let victim = &packs[0].name;
    let mut bytes = rt.block_on(backend.get(victim)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    rt.block_on(backend.put(victim, bytes)).unwrap();
    let out = s3.run(&["check", "--read-data"], b"");
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{}", stderr(&out));
    let pack_id = victim.rsplit('/').next().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pack_id[..8]) || stderr(&out).contains(&pack_id[..8]));
}

#[test]
fn create_if_absent_holds_with_and_without_conditional_put() {
    let Some(g) = garage() else { return };
    let s3 = S3Repo::init(g, 0);
    let backend = s3.backend();
    let rt = rt();
    let conditional = rt.block_on(backend.probe_conditional()).unwrap();
    println!("Garage honours PUT If-None-Match: {conditional}");
    assert!(rt.block_on(backend.put_if_absent("gc/test-lease", b"first".to_vec())).unwrap());
    assert!(!rt.block_on(backend.put_if_absent("gc/test-lease", b"second".to_vec())).unwrap());
    assert_eq!(rt.block_on(backend.get("gc/test-lease")).unwrap(), b"first");
    // The documented fallback for stores without conditional PUT: write, settle, read back.
    let fallback = S3Backend::connect(&s3.repo.location, &g.credentials()).unwrap().without_conditional_put();
    assert!(rt.block_on(fallback.put_if_absent("gc/other", b"one".to_vec())).unwrap());
    assert!(!rt.block_on(fallback.put_if_absent("gc/other", b"two".to_vec())).unwrap());
    assert_eq!(rt.block_on(fallback.get("gc/other")).unwrap(), b"one");
    // Two gc runs at once: the first (in-process) holds the lease, the second (the binary) is refused with
    // the holder named, and the first then finishes and releases the lease.
    let a = s3.ok(&["snapshot", "create", "--name", "a"], &dump(1 << 20, 21)).stdout;
    s3.ok(&["snapshot", "create", "--name", "b"], &dump(1 << 20, 22));
    s3.ok(&["forget", String::from_utf8_lossy(&a).trim()], b"");
    let holder = rt
        .block_on(silo::repo::Repository::open(std::sync::Arc::new(s3.backend()), PASSWORD.as_bytes(), None))
        .expect("open");
    let lease = rt.block_on(holder.acquire_lease(120)).expect("lease");
    let second = s3.run(&["gc", "--safety", "none"], b"");
    assert_eq!(second.status.code(), Some(6), "{}", stderr(&second));
    assert!(stderr(&second).contains(&format!("pid {}", std::process::id())), "{}", stderr(&second));
    let options = silo::repo::gc::GcOptions { safety: silo::repo::gc::SafetyPreset::None, ..Default::default() };
    let plan = rt.block_on(holder.gc_plan(&options)).expect("plan");
    let report = rt.block_on(holder.gc_execute(plan, &lease)).expect("the lease holder finishes");
    assert!(report.packs_deleted >= 1, "{report:?}");
    rt.block_on(holder.release_lease(lease)).expect("release");
    assert!(rt.block_on(backend.get("gc/lease")).is_err(), "and releases the lease");
    assert!(s3.ok(&["snapshot", "restore", "b:latest"], b"").stdout == dump(1 << 20, 22));
}

#[test]
fn copy_between_local_and_s3_in_both_directions() {
    let Some(g) = garage() else { return };
    let local = TestRepo::init();
    if local.is_s3() {
        return; // under SILO_TEST_BACKEND=s3 the plain copy tests already cover S3 to S3
    }
    let data = dump(5 << 20, 12);
    local.create("crm", &data);
    let s3 = S3Repo::init(g, 0);
    let mut up = local.cmd(&["--json", "copy", "--to", &s3.repo.location]);
    up.envs(g.env());
    let out = run_with_input(up, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = s3.ok(&["snapshot", "restore", "crm:latest"], b"");
    assert!(restored.stdout == data);

    let back = TestRepo::init();
    let mut down = s3.cmd(&["copy", "--to", &back.location]);
    down.envs(g.env());
    let out = run_with_input(down, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(back.restore("crm:latest"), data);
}

#[test]
fn a_three_node_cluster_losing_a_node_mid_create_commits_a_whole_snapshot_or_nothing() {
    if util::garage::binary().is_err() {
        services::require("Garage (S3)", Err("no garage binary: run scripts/install-garage.sh".into()));
        return;
    }
    let mut cluster = Garage::start(3, 3).expect("three-node Garage");
    let repo_location = cluster.location(0, &random_name());
    let repo = TestRepo { dir: tempfile::tempdir().expect("tempdir"), location: repo_location.clone() };
    let env = cluster.env();
    let silo = |args: &[&str]| {
        let mut c = repo.cmd(args);
        c.envs(env.clone());
        c
    };
    let out = run_with_input(silo(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]), b"");
    assert!(out.status.success(), "{}", stderr(&out));

    let len: u64 = 160 << 20;
    let mut create = silo(&["--json", "snapshot", "create", "--name", "big"]);
    let mut child = create.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let feeder = feed_generated(&mut child, len, 13);
    // Wait until packs are landing, then crash the third node.
    let backend = S3Backend::connect(&repo_location, &cluster.credentials()).unwrap();
    let rt = rt();
    let mut seen = 0;
    wait_until("3 packs uploaded", || {
        seen = rt.block_on(backend.list("packs/")).map(|p| p.len()).unwrap_or(0);
        seen >= 3
    });
    assert!(seen >= 3, "the create was uploading packs when the node died");
    cluster.kill_node(2);
    let sent = feeder.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let list = {
        let o = run_with_input(silo(&["--json", "snapshot", "list"]), b"");
        assert!(o.status.success(), "the repository stays readable with two of three nodes: {}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    // Replication factor 3 with write quorum 2: losing one node is what the cluster is built to survive, and
    // the create rides it out on its retries (docs/operations.md says so).
    assert!(out.status.success(), "the create commits with one node of three down: {}", stderr(&out));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let mut restore = silo(&["snapshot", "restore", "big:latest"]);
    let mut child = restore.stdout(Stdio::piped()).spawn().unwrap();
    let (n, hash) = hash_reader(child.stdout.take().unwrap());
    assert!(child.wait().unwrap().success(), "restore with one node down");
    assert_eq!((n, hash), (len, sent), "restores byte-exact from the two remaining nodes");
    let check = run_with_input(silo(&["check"]), b"");
    assert!(check.status.success(), "structure intact: {}", stderr(&check));
}
