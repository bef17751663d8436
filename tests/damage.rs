//! Maintenance under damage (issue 34, issue 28 item 4), through the real binary: a lost index segment, a
//! lost pack and a damaged chunk each cost exactly what they lost, never more. gc keeps a pack no index names
//! while it holds what a snapshot references (I25); `repair index` makes the index the packs' trailers (I24);
//! a copy found missing or damaged is never deduplicated against again, so the next backup of the same data
//! stores it anew and restores (I20).

mod util;

use std::path::PathBuf;
use util::*;

fn fresh_repo() -> Option<TestRepo> {
    let repo = TestRepo::init_with(&["--pack-size", "1048576"]);
    (!repo.skip_unless_local("damages the repository's files in place")).then_some(repo)
}

fn packs(repo: &TestRepo) -> Vec<PathBuf> {
    repo.objects("packs")
}

/// The cache is a cache (I5): dropped, so nothing but the repository itself answers.
fn drop_cache(repo: &TestRepo) {
    let _ = std::fs::remove_dir_all(repo.cache());
}

#[test]
fn a_lost_index_segment_never_lets_gc_delete_a_live_pack() {
    let Some(repo) = fresh_repo() else { return };
    let data = dump(3 << 20, 71);
    repo.create("db", &data);
    let before = packs(&repo);
    assert!(!before.is_empty());
    for seg in repo.objects("index") {
        std::fs::remove_file(seg).unwrap();
    }
    drop_cache(&repo);

    // check names the packs as live and unindexed, never as orphans gc reclaims.
    let out = repo.run(&["check"], b"");
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unindexed") && text.contains("silo repair index"), "{text}");
    assert!(!text.contains("gc reclaims it"), "{text}");

    // gc, even with no safety and run twice, keeps them.
    for _ in 0..2 {
        let report = repo.json(&["gc", "--safety", "none"]);
        assert_eq!(report["packs_deleted"], 0, "{report}");
        assert!(!report["unindexed_kept"].as_array().unwrap().is_empty(), "{report}");
    }
    assert_eq!(packs(&repo), before, "no pack was deleted");

    // repair index brings every snapshot back.
    repo.ok(&["repair", "index"], b"");
    assert_eq!(repo.restore("db:latest"), data);
    assert!(repo.run(&["check", "--read-data"], b"").status.success());
}

#[test]
fn a_lost_pack_is_stored_again_by_the_next_backup_with_or_without_repairs() {
    let Some(repo) = fresh_repo() else { return };
    let data = dump(3 << 20, 72);
    repo.create("db", &data);
    let lost = packs(&repo)[0].clone();
    std::fs::remove_file(&lost).unwrap();

    // Without any repair: the next backup of the same data finds the pack gone and stores its chunks again.
    repo.create("db", &data);
    assert_eq!(repo.restore("db:latest"), data, "the backup after the loss restores");
    // A backup under another name, with no delta, too.
    repo.ok(&["snapshot", "create", "--name", "other", "--no-delta"], &data);
    assert_eq!(repo.restore("other:latest"), data);

    // The repairs and gc the operator runs: the index then holds exactly what the packs hold, and a later
    // backup still restores; the first snapshot is whole again (its chunks were stored again).
    let repaired = repo.json(&["repair", "index"]);
    assert!(repaired["packs_gone"].as_array().is_some(), "{repaired}");
    repo.ok(&["repair", "snapshots"], b"");
    repo.ok(&["gc", "--safety", "none"], b"");
    drop_cache(&repo);
    repo.create("db", &data);
    assert_eq!(repo.restore("db:latest"), data);
    assert_eq!(repo.restore("db:latest~2"), data, "the snapshot made before the loss is restorable again");
    let check = repo.run(&["check", "--read-data"], b"");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn a_lost_pack_found_by_repair_leaves_the_index_before_the_next_backup() {
    let Some(repo) = fresh_repo() else { return };
    let data = dump(3 << 20, 73);
    repo.create("db", &data);
    std::fs::remove_file(&packs(&repo)[0]).unwrap();
    let repaired = repo.json(&["repair", "index"]);
    assert_eq!(repaired["packs_gone"].as_array().unwrap().len(), 1, "{repaired}");
    drop_cache(&repo);
    repo.create("db", &data);
    assert_eq!(repo.restore("db:latest"), data);
}

#[test]
fn a_damaged_chunk_found_once_is_never_reused() {
    let Some(repo) = fresh_repo() else { return };
    let data = dump(2 << 20, 74);
    let first = repo.create("db", &data);
    // One byte inside the first chunk of the first pack.
    let pack = packs(&repo)[0].clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[64] ^= 0x01;
    std::fs::write(&pack, bytes).unwrap();

    let plain = repo.run(&["check"], b"");
    assert!(plain.status.success(), "{}", stderr(&plain));
    assert!(String::from_utf8_lossy(&plain.stdout).contains("no chunk data was read"), "a structural check says so");
    let found = repo.run(&["check", "--read-data"], b"");
    assert_eq!(found.status.code(), Some(EXIT_DAMAGED), "{}", String::from_utf8_lossy(&found.stdout));
    let repaired = repo.json(&["repair", "snapshots", "--read-data"]);
    assert_eq!(repaired["marked"].as_array().unwrap().len(), 1, "{repaired}");
    assert!(repaired["copies_dropped"].as_u64().unwrap() >= 1, "{repaired}");

    // The next backup of the same data stores the damaged chunk again: it restores, and so does the first.
    repo.create("db", &data);
    assert_eq!(repo.restore("db:latest"), data);
    assert_eq!(repo.restore(&first), data, "the damaged snapshot heals once its chunk is stored again");
    let check = repo.run(&["check", "--read-data"], b"");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    // gc never copies the damaged copy into a new pack, and keeps everything restorable.
    repo.ok(&["gc", "--safety", "none"], b"");
    repo.ok(&["gc", "--safety", "none"], b"");
    drop_cache(&repo);
    assert_eq!(repo.restore(&first), data);
    assert!(repo.run(&["check", "--read-data"], b"").status.success());
}

/// Plants a gc lease as a process `pid` on this host would hold it, valid for an hour.
fn plant_lease(repo: &TestRepo, pid: u32) {
    let rt = util::inproc::runtime();
    let r = util::inproc::open_later(&rt, repo, 0);
    let now = silo::time::now_micros();
    let lease = silo::format::maintenance::Lease {
        version: silo::format::maintenance::MAINTENANCE_VERSION,
        holder: silo::format::ObjectId::random(),
        host: silo::repo::hostname(),
        pid,
        acquired_at: now,
        expires_at: now + 3600 * 1_000_000,
    };
    rt.block_on(r.save(silo::format::ObjectId::ZERO, &lease)).expect("lease");
}

/// A gc killed with SIGKILL leaves its lease for an hour: a holder on this host whose process is gone is
/// taken over at once; one that is alive is waited for, and `silo unlock` refuses to remove it.
#[test]
fn a_lease_whose_holder_died_on_this_host_is_taken_over() {
    let repo = TestRepo::init();
    repo.create("db", &dump(1 << 16, 75));
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    plant_lease(&repo, dead);
    repo.ok(&["gc"], b"");
    repo.ok(&["repair", "index"], b"");

    let mut alive = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    plant_lease(&repo, alive.id());
    for args in [vec!["gc"], vec!["unlock"], vec!["unlock", "--force"]] {
        let out = repo.run(&args, b"");
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("pid {}", alive.id())), "{}", stderr(&out));
    }
    alive.kill().unwrap();
    alive.wait().unwrap();
    let out = repo.json(&["unlock"]);
    assert!(out["removed"].as_str().is_some_and(|h| h.ends_with(&format!("pid {}", alive.id()))), "{out}");
    assert_eq!(repo.json(&["unlock"])["removed"], serde_json::Value::Null);
    repo.ok(&["gc"], b"");
}

/// Issue 34 item 3: a pack cut short at its end (the last 10 bytes: its trailer's footer) keeps its chunks
/// readable by their index entries: check reports the pack, not the snapshots; gc goes on; `repair packs`
/// rewrites the chunks and the pack leaves the repository.
#[test]
fn a_pack_whose_trailer_is_cut_is_repaired_without_losing_a_chunk() {
    let Some(repo) = fresh_repo() else { return };
    let data = dump(3 << 20, 77);
    let first = repo.create("db", &data);
    let cut = packs(&repo)[0].clone();
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    drop_cache(&repo);

    let out = repo.run(&["--json", "check", "--read-data"], b"");
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["affected_snapshots"].as_array().unwrap().len(), 0, "no snapshot is lost: {report}");
    assert!(report.to_string().contains("repair packs"), "{report}");
    assert_eq!(repo.restore(&first), data);
    repo.ok(&["gc"], b"");

    let repaired = repo.json(&["repair", "packs"]);
    assert_eq!(repaired["damaged_packs"].as_array().unwrap().len(), 1, "{repaired}");
    assert_eq!(repaired["chunks_lost"], 0, "{repaired}");
    assert!(repaired["chunks_rewritten"].as_u64().unwrap() > 0, "{repaired}");
    repo.ok(&["gc", "--safety", "none"], b"");
    assert!(!cut.exists(), "the damaged pack is gone once gc ran");
    drop_cache(&repo);
    assert_eq!(repo.restore(&first), data);
    let check = repo.run(&["check", "--read-data"], b"");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

/// One kind of damage to a repository's files.
#[derive(Clone, Copy, Debug)]
enum Damage {
    IndexSegmentLost,
    PackLost,
    PackByteFlipped,
    PackTrailerCut,
    ManifestLost,
    ManifestFlipped,
    KeyDamaged,
    ConfigFlipped,
}

fn flip(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

fn apply(repo: &TestRepo, damage: Damage) {
    let first = |dir: &str| repo.objects(dir).into_iter().next().unwrap_or_else(|| panic!("no {dir}"));
    match damage {
        Damage::IndexSegmentLost => std::fs::remove_file(first("index")).unwrap(),
        Damage::PackLost => std::fs::remove_file(first("packs")).unwrap(),
        Damage::PackByteFlipped => flip(&first("packs"), 200),
        Damage::PackTrailerCut => {
            let p = first("packs");
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        }
        Damage::ManifestLost => std::fs::remove_file(first("snapshots")).unwrap(),
        Damage::ManifestFlipped => flip(&first("snapshots"), 40),
        // The second key file (the test holds both passwords; the first still opens).
        Damage::KeyDamaged => {
            let keys = repo.objects("keys");
            let newest = keys.iter().max_by_key(|k| std::fs::metadata(k).unwrap().modified().unwrap()).unwrap();
            flip(newest, 60);
        }
        Damage::ConfigFlipped => flip(&repo.path().join("config"), 60),
    }
}

/// The snapshots (id -> data) that restore byte for byte now, read with no cache.
fn restorable(repo: &TestRepo, all: &[(String, Vec<u8>)]) -> Vec<String> {
    drop_cache(repo);
    all.iter()
        .filter(|(id, data)| {
            let out = repo.run(&["snapshot", "restore", id], b"");
            out.status.success() && out.stdout == *data
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Issue 34's damage matrix: each kind of damage, then every maintenance command in turn; after every
/// step, every snapshot that restored right after the damage still restores byte for byte (no command turns
/// damage into more loss), no command crashes, and a new backup of the same data restores.
#[test]
fn damage_matrix_no_maintenance_command_turns_damage_into_more_loss() {
    let kinds = [
        Damage::IndexSegmentLost,
        Damage::PackLost,
        Damage::PackByteFlipped,
        Damage::PackTrailerCut,
        Damage::ManifestLost,
        Damage::ManifestFlipped,
        Damage::KeyDamaged,
        Damage::ConfigFlipped,
    ];
    let mut summary = Vec::new();
    for damage in kinds {
        let Some(repo) = fresh_repo() else { return };
        let second = repo.dir.path().join("second");
        std::fs::write(&second, "second password\n").unwrap();
        std::fs::set_permissions(&second, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        repo.ok(&["key", "add", "--new-password-file", second.to_str().unwrap()], b"");
        let a1 = dump(2 << 20, 80);
        let b1 = dump(2 << 20, 81);
        let mut a2 = a1.clone();
        a2[1 << 20..(1 << 20) + 4096].fill(b'x');
        let mut all = Vec::new();
        for (name, data) in [("a", &a1), ("b", &b1), ("a", &a2)] {
            all.push((repo.create(name, data), data.clone()));
        }
        apply(&repo, damage);
        let kept = restorable(&repo, &all);
        let target = TestRepo::init();
        let steps: Vec<Vec<&str>> = vec![
            vec!["check"],
            vec!["check", "--read-data"],
            vec!["repair", "index"],
            vec!["repair", "snapshots", "--read-data"],
            vec!["repair", "packs"],
            vec!["gc", "--safety", "none"],
            vec!["forget", "--keep-last", "10"],
            vec!["copy", "--to", &target.location],
            vec!["gc", "--safety", "none"],
        ];
        for step in &steps {
            let out = repo.run(step, b"");
            assert!(
                matches!(out.status.code(), Some(0..=12)),
                "{damage:?}, {step:?}: crashed ({:?}): {}",
                out.status,
                stderr(&out)
            );
            let now = restorable(&repo, &all);
            let lost: Vec<&String> = kept.iter().filter(|id| !now.contains(id)).collect();
            assert!(lost.is_empty(), "{damage:?}: after {step:?}, {lost:?} no longer restore (before: {kept:?})");
        }
        // A new backup of the same data restores (unless the repository itself cannot be opened).
        let out = repo.run(&["snapshot", "create", "--name", "a"], &a2);
        if matches!(damage, Damage::ConfigFlipped) {
            assert!(!out.status.success(), "a repository whose config is damaged takes no backup");
        } else {
            assert!(out.status.success(), "{damage:?}: {}", stderr(&out));
            drop_cache(&repo);
            assert_eq!(repo.restore("a:latest"), a2, "{damage:?}: the backup after the damage restores");
        }
        summary.push(format!("{damage:?}: {} of {} snapshots restorable after the damage", kept.len(), all.len()));
    }
    eprintln!("damage matrix:\n  {}", summary.join("\n  "));
}

/// I20, found by an adversarial pass: once `check --read-data` reported a damaged chunk, a backup of the same
/// data on this machine stores it again (it restores) even before `repair snapshots` ran.
#[test]
fn a_chunk_check_found_damaged_is_stored_again_before_any_repair() {
    let Some(repo) = fresh_repo() else { return };
    let data = dump(2 << 20, 78);
    repo.create("a", &data);
    let pack = packs(&repo)[0].clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    let found = repo.run(&["check", "--read-data"], b"");
    assert_eq!(found.status.code(), Some(EXIT_DAMAGED), "{}", String::from_utf8_lossy(&found.stdout));
    repo.create("a2", &data);
    assert_eq!(repo.restore("a2:latest"), data, "the backup after check found the damage restores");
    // Also from another machine's point of view (no local cache, so no local quarantine).
    drop_cache(&repo);
    assert_eq!(repo.restore("a2:latest"), data, "readers prefer the copy stored again");
}

/// I25, found by an adversarial pass: a pack no index names whose trailer was cut is never called an orphan
/// gc reclaims (it may hold what snapshots need), gc keeps it, and `repair packs` says it cannot locate its
/// chunks instead of reporting nothing.
#[test]
fn an_unindexed_pack_with_a_cut_trailer_is_never_an_orphan() {
    let Some(repo) = fresh_repo() else { return };
    repo.create("a", &dump(2 << 20, 79));
    let pack = packs(&repo)[0].clone();
    let bytes = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &bytes[..bytes.len() - 10]).unwrap();
    for seg in repo.objects("index") {
        std::fs::remove_file(seg).unwrap();
    }
    drop_cache(&repo);
    let out = repo.run(&["check", "--read-data"], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{text}");
    assert!(!text.contains("orphan") && !text.contains("gc reclaims"), "{text}");
    assert!(text.contains("trailer cannot be read"), "{text}");
    repo.ok(&["gc", "--safety", "none"], b"");
    assert!(pack.exists(), "gc keeps it");
    let repaired = repo.json(&["repair", "packs"]);
    assert_eq!(repaired["unrepairable"].as_array().unwrap().len(), 1, "{repaired}");
}
