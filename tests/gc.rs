//! Retention and garbage collection: forget by policy and reclaiming space through the real binary; the
//! time-dependent parts (the two-phase sweep over hours, a gc paused past its lease, rounds an hour apart)
//! with gc run in-process against the library with its clock moved (tests/util/inproc.rs), while writers
//! and killed gc runs are real processes.

mod util;

use silo::repo::gc::GcOptions;
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use util::inproc::{gc_at, gc_later};
use util::*;

const HOUR: i64 = 3600;

/// `silo --json gc ARGS` through the binary (clock as it is).
fn gc_json(repo: &TestRepo, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json", "gc"];
    a.extend_from_slice(args);
    let out = run_with_input(repo.cmd(&a), b"");
    assert!(out.status.success(), "gc {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("gc report")
}

fn options(f: impl FnOnce(&mut GcOptions)) -> GcOptions {
    let mut o = GcOptions::default();
    f(&mut o);
    o
}

fn stored(repo: &TestRepo) -> u64 {
    repo.json(&["stats"])["stored_bytes"].as_u64().unwrap()
}

#[test]
fn forget_applies_keep_rules_and_dry_run_changes_nothing() {
    let repo = TestRepo::init();
    let ids: Vec<String> = (0..5).map(|i| repo.create("db", format!("day {i}").as_bytes())).collect();
    repo.create("other", b"x");
    let dry = repo.json(&["forget", "--name", "db", "--keep-last", "2", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    let decisions = dry["groups"][0]["snapshots"].as_array().unwrap();
    assert_eq!(decisions.len(), 5);
    assert_eq!(decisions.iter().filter(|d| d["keep"] == true).count(), 2);
    assert_eq!(decisions[0]["reasons"][0], "last");
    assert_eq!(repo.snapshot_count(), 6, "dry run removes nothing");

    repo.json(&["forget", "--name", "db", "--keep-last", "2"]);
    let left = repo.snapshot_ids();
    assert_eq!(left.len(), 3);
    assert!(left.contains(&ids[4]) && left.contains(&ids[3]) && !left.contains(&ids[0]));
    assert_eq!(repo.restore("db:latest"), b"day 4");

    let bad = repo.run(&["forget", "--keep-within", "3x"], b"");
    assert_eq!(bad.status.code(), Some(EXIT_USAGE), "{}", stderr(&bad));
}

#[test]
fn stored_policies_drive_forget_and_prune() {
    let repo = TestRepo::init();
    repo.ok(&["policy", "set", "db", "--keep-last", "1"], b"");
    let shown = repo.json(&["policy", "show"]);
    assert_eq!(shown[0]["name"], "db");
    assert_eq!(shown[0]["keep_last"], 1);
    for i in 0..3 {
        repo.create("db", &dump(1 << 20, 100 + i));
        repo.create("crm", &dump(1 << 20, 200 + i));
    }
    let report = repo.json(&["prune", "--safety", "none"]);
    assert_eq!(report["forgotten"].as_array().unwrap().len(), 2, "only db has a policy: {report}");
    assert!(report["gc"]["packs_deleted"].as_u64().unwrap() >= 2, "{report}");
    let list = repo.json(&["snapshot", "list"]);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| **n == "db").count(), 1);
    assert_eq!(names.iter().filter(|n| **n == "crm").count(), 3, "no policy keeps everything");
    assert_eq!(repo.restore("db:latest"), dump(1 << 20, 102));
    for back in 0..3 {
        assert_eq!(repo.restore(&format!("crm:latest~{back}")), dump(1 << 20, 202 - back));
    }
    // Replacing a policy leaves one stored object; clearing removes it.
    repo.ok(&["policy", "set", "db", "--keep-daily", "7"], b"");
    assert_eq!(repo.objects("policies").len(), 1);
    repo.ok(&["policy", "set", "db"], b"");
    assert_eq!(repo.objects("policies").len(), 0);
}

#[test]
fn forgetting_all_but_one_stream_and_gc_none_reclaims_the_rest() {
    let repo = TestRepo::init();
    let streams: Vec<Vec<u8>> = (0..5).map(|i| dump(4 << 20, 300 + i)).collect();
    for s in &streams {
        repo.create("db", s);
    }
    let before = stored(&repo);
    repo.json(&["forget", "--keep-last", "1"]);
    let report = gc_json(&repo, &["--safety", "none"]);
    assert_eq!(report["packs_pending"], 0);
    let after = stored(&repo);
    assert!(after * 4 < before, "stored bytes must drop to about one stream's: {before} -> {after}");
    assert!(after as f64 > before as f64 / 5.0 * 0.8, "the kept stream's data must remain: {before} -> {after}");
    assert_eq!(repo.restore("db:latest"), streams[4]);
    assert_eq!(repo.objects("index").len(), 1, "the index was compacted");
    assert_eq!(repo.create_json("db", &streams[4])["new_chunks"], 0, "dedup still works after compaction");
}

#[test]
fn two_phase_sweep_waits_for_safety_age_and_grace_period() {
    let repo = TestRepo::init(); // defaults: safety age 24 h, grace 24 h
    let keep = dump(2 << 20, 400);
    repo.create("db", &dump(2 << 20, 401));
    repo.create("db", &keep);
    repo.json(&["forget", "--keep-last", "1"]);
    let before = stored(&repo);

    let young = gc_json(&repo, &[]);
    assert_eq!(young["packs_marked"], 0, "packs younger than the safety age are left alone: {young}");
    assert!(young["packs_too_young"].as_u64().unwrap() >= 1);

    let mark = gc_at(&repo, 25 * HOUR);
    assert!(mark["packs_marked"].as_u64().unwrap() >= 1, "{mark}");
    assert_eq!(mark["packs_deleted"], 0);
    assert!(mark["pending_reclaimable_at"].is_string(), "{mark}");
    assert_eq!(stored(&repo), before, "marking deletes nothing");

    let within_grace = gc_at(&repo, 26 * HOUR);
    assert_eq!(within_grace["packs_deleted"], 0, "{within_grace}");
    assert!(within_grace["packs_pending"].as_u64().unwrap() >= 1);

    let dry = gc_later(&repo, &options(|o| o.dry_run = true), 50 * HOUR);
    assert!(dry["packs_deleted"].as_u64().unwrap() >= 1, "{dry}");
    let planned = dry["plan"].as_array().expect("a dry run prints its plan");
    assert!(planned.iter().any(|p| p["action"] == "delete" && p["pack"].as_str().is_some_and(|id| id.len() == 64)));
    assert_eq!(stored(&repo), before, "dry run deletes nothing");

    let sweep = gc_at(&repo, 50 * HOUR);
    assert!(sweep["packs_deleted"].as_u64().unwrap() >= 1, "{sweep}");
    assert!(sweep.get("plan").is_none(), "only a dry run lists its plan: {sweep}");
    assert!(stored(&repo) < before);
    assert_eq!(repo.restore("db:latest"), keep);
}

#[test]
fn a_pack_that_became_live_again_is_rescued_not_deleted() {
    let repo = TestRepo::init();
    let data = dump(2 << 20, 500);
    repo.create("db", &data);
    repo.create("db", &dump(2 << 20, 501));
    repo.json(&["forget", "--name", "db", "--keep-last", "1"]);
    assert_eq!(repo.snapshot_count(), 1);
    let mark = gc_at(&repo, 25 * HOUR);
    assert!(mark["packs_marked"].as_u64().unwrap() >= 1, "{mark}");
    // A writer stores the same data: it must not deduplicate against the marked pack.
    let again = repo.create_json("db", &data);
    assert!(again["new_chunks"].as_u64().unwrap() > 0, "marked chunks are not dedup targets: {again}");
    let sweep = gc_at(&repo, 50 * HOUR);
    assert!(sweep["packs_deleted"].as_u64().unwrap() >= 1, "{sweep}");
    assert_eq!(repo.restore("db:latest"), data);
}

#[test]
fn concurrent_writers_during_repeated_gc_lose_nothing() {
    // Aggressive settings: no safety age, 1 s grace, in real time.
    let repo =
        Arc::new(TestRepo::init_with(&["--gc-safety-age", "0", "--gc-grace-period", "1", "--pack-size", "1048576"]));
    let base = Arc::new(dump(3 << 20, 600));
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (repo, base) = (repo.clone(), base.clone());
            std::thread::spawn(move || {
                let mut committed = HashMap::new();
                for i in 0..25u64 {
                    // Shared prefix (dedups across writers and rounds) + a part unique to this round.
                    let mut data = base[..(1 << 20) * (1 + (i as usize % 3))].to_vec();
                    data.extend_from_slice(&dump(512 << 10, 1000 + w * 100 + i));
                    let id = repo.create(&format!("w{w}"), &data);
                    committed.insert(id, blake3::hash(&data));
                }
                committed
            })
        })
        .collect();
    let gc_loop = {
        let (repo, done) = (repo.clone(), done.clone());
        std::thread::spawn(move || {
            let mut runs = 0i64;
            let mut deleted = 0;
            while !done.load(Ordering::SeqCst) || runs < 3 {
                for w in 0..4 {
                    // Sizes vary 1.5-3.5 MiB by design: the size rule of I19 is not what this test is about.
                    repo.ok(
                        &["forget", "--name", &format!("w{w}"), "--keep-last", "2", "--suspect-shrink", "100"],
                        b"",
                    );
                }
                // Each run's clock is 2 s later than the last: past the 1 s grace, so every run deletes what
                // the previous one marked, while the writers keep going.
                let r = gc_later(&repo, &options(|o| o.repack_threshold = 0.3), 2 * runs);
                deleted += r["packs_deleted"].as_u64().unwrap();
                runs += 1;
            }
            (runs, deleted)
        })
    };
    let mut committed = HashMap::new();
    for w in writers {
        committed.extend(w.join().expect("writer"));
    }
    done.store(true, Ordering::SeqCst);
    let (runs, deleted) = gc_loop.join().expect("gc loop");
    assert!(runs >= 3);
    for w in 0..4 {
        repo.ok(&["forget", "--name", &format!("w{w}"), "--keep-last", "2", "--suspect-shrink", "100"], b"");
    }
    // Let the grace period of the last marks pass, then sweep for real once more.
    assert!(deleted > 0, "gc must have deleted packs while the writers ran");
    let last = gc_at(&repo, 2 * runs + 10);
    eprintln!(
        "gc runs during writes: {runs}, packs deleted then: {deleted}, in the last run: {}",
        last["packs_deleted"]
    );
    let list = repo.json(&["snapshot", "list"]);
    let snaps = list.as_array().unwrap();
    assert_eq!(snaps.len(), 8, "keep-last 2 of 4 writers");
    for s in snaps {
        let id = s["id"].as_str().unwrap();
        let restored = repo.restore(id);
        assert_eq!(Some(&blake3::hash(&restored)), committed.get(id), "snapshot {id} must restore byte-exact");
    }
}

#[test]
fn a_gc_paused_past_its_lease_deletes_nothing_when_resumed() {
    let repo = TestRepo::init();
    repo.create("db", &dump(2 << 20, 700));
    let keep = dump(2 << 20, 701);
    repo.create("db", &keep);
    repo.json(&["forget", "--keep-last", "1"]);
    gc_at(&repo, 25 * HOUR); // marks

    // This gc plans to delete the marked packs under a 60 s lease, then stalls before executing...
    let rt = util::inproc::runtime();
    let paused = util::inproc::open_later(&rt, &repo, 50 * HOUR);
    let lease = rt.block_on(paused.acquire_lease(60)).expect("lease");
    let plan = rt.block_on(paused.gc_plan(&GcOptions::default())).expect("plan");
    assert!(plan.report().packs_deleted >= 1, "the plan deletes: {:?}", plan.report());
    // ...hours (clock +2 h past its lease): another gc breaks the expired lease and sweeps.
    let other = gc_at(&repo, 52 * HOUR);
    assert!(other["packs_deleted"].as_u64().unwrap() >= 1, "{other}");
    let before_resume = repo.objects("");
    let resumed = rt.block_on(paused.gc_execute(plan, &lease));
    assert!(matches!(resumed, Err(silo::Error::LeaseLost { .. })), "{:?}", resumed.map(|_| ()));
    assert_eq!(repo.objects(""), before_resume, "the resumed gc changed nothing");
    assert_eq!(repo.restore("db:latest"), keep);
}

#[test]
fn gc_killed_at_random_points_leaves_a_consistent_repository() {
    let repo = TestRepo::init_with(&["--pack-size", "1048576"]);
    let mut kept = Vec::new();
    for i in 0..8u64 {
        let data = dump(3 << 20, 800 + i);
        let id = repo.create(&format!("db{}", i % 2), &data);
        kept.push((id, data));
    }
    repo.json(&["forget", "--name", "db0", "--keep-last", "1"]);
    let alive = repo.snapshot_ids();
    kept.retain(|(id, _)| alive.contains(id));
    let mut seed = 0x9e37_79b9u64;
    let mut kills = 0;
    for round in 0..12i64 {
        xorshift(&mut seed);
        let delay = std::time::Duration::from_millis(seed % 120);
        // The lease a killed gc left is gone once it expires: here at once.
        util::inproc::expire_lease(&repo);
        let mut child = repo
            .cmd(&["gc", "--lease-seconds", "60", "--safety", "none"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay); // chooses the kill point; nothing below depends on it
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        for (id, data) in &kept {
            assert!(repo.restore(id) == *data, "round {round}: snapshot {id} damaged after a killed gc");
        }
    }
    eprintln!("gc killed mid-run {kills} of 12 times");
    util::inproc::expire_lease(&repo);
    let finish = gc_json(&repo, &["--safety", "none"]);
    assert_eq!(finish["dry_run"], false);
    let check = gc_json(&repo, &["--safety", "none", "--dry-run"]);
    assert_eq!(check["packs_deleted"], 0, "a finished gc leaves nothing dead behind: {check}");
    for (id, data) in &kept {
        assert!(repo.restore(id) == *data);
    }
}

/// Pseudo-random bytes (no deduplication, no compression), `len` rounded down to 8.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len / 8).flat_map(|_| xorshift(&mut state).to_le_bytes()).collect()
}

#[test]
fn gc_killed_mid_delete_is_finished_by_the_next_gc_and_check_does_not_cry_wolf() {
    let repo = TestRepo::init_with(&["--pack-size", "1048576"]);
    if repo.skip_unless_local("deletes pack files by hand, as a gc killed mid-delete leaves them") {
        return;
    }
    repo.create("db", &random_bytes(3 << 20, 10));
    let old_packs = repo.objects("packs");
    let keep = random_bytes(3 << 20, 11);
    repo.create("db", &keep);
    repo.ok(&["forget", "--keep-last", "1"], b"");
    let mark = gc_at(&repo, 25 * 3600);
    assert_eq!(mark["packs_marked"].as_u64().unwrap() as usize, old_packs.len(), "{mark}");
    // A gc past the grace period deleted some of the marked packs and was killed before it compacted.
    for p in &old_packs[..old_packs.len() / 2] {
        std::fs::remove_file(p).expect("remove pack");
    }
    let check = repo.run(&["check"], b"");
    assert!(
        check.status.success(),
        "packs gc deleted on purpose are not damage: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let finish = gc_at(&repo, 50 * 3600);
    assert!(finish["segments_compacted"].as_u64().unwrap() >= 1, "{finish}");
    let check = repo.json(&["check"]);
    assert!(check["damaged"].as_array().unwrap().is_empty(), "{check}");
    assert!(repo.objects("packs").iter().all(|p| !old_packs.contains(p)), "the next gc deleted the rest");
    assert!(repo.restore("db:latest") == keep);
    // Real damage is still damage: a pack of the kept snapshot removed by hand.
    let live: Vec<_> = repo.objects("packs").into_iter().filter(|p| !old_packs.contains(p)).collect();
    std::fs::remove_file(&live[0]).expect("remove live pack");
    let damaged = repo.run(&["check"], b"");
    assert_eq!(damaged.status.code(), Some(EXIT_DAMAGED));
}

#[test]
fn gc_removes_leftovers_of_killed_writers() {
    let repo = TestRepo::init();
    repo.create("db", &dump(1 << 20, 70));
    // A writer killed mid-run leaves its session object (and, locally, maybe temporary files).
    let mut child = repo
        .cmd(&["snapshot", "create", "--name", "db"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, &dump(1 << 20, 71)).unwrap();
    wait_until("1 objects in sessions/", || !repo.objects("sessions").is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    drop(input);
    if !repo.is_s3() {
        // A temporary file of a killed write, and a file silo did not make.
        std::fs::create_dir_all(repo.path().join("tmp")).unwrap();
        std::fs::write(repo.path().join("tmp").join("0a1b2c3d.tmp"), vec![0u8; 4096]).unwrap();
        std::fs::write(repo.path().join("tmp").join("notes.txt"), b"mine").unwrap();
    }
    let young = gc_at(&repo, 0);
    assert_eq!(young["leftovers_removed"], 0, "a session may still be alive: {young}");
    assert_eq!(repo.objects("sessions").len(), 1);
    let old = gc_at(&repo, 3 * 86_400);
    assert!(old["leftovers_removed"].as_u64().unwrap() >= 1, "{old}");
    assert!(repo.objects("sessions").is_empty());
    let left: Vec<_> =
        repo.objects("tmp").iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let expected: Vec<String> = if repo.is_s3() { vec![] } else { vec!["notes.txt".into()] };
    assert_eq!(left, expected, "only silo's temporary files are removed");
    assert!(repo.restore("db:latest") == dump(1 << 20, 70));
}
