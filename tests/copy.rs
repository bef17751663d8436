//! `silo copy` between repositories with different passwords (so different keys and chunk ids): what is
//! copied restores byte-exact, keeps its name and times, is never copied twice, uploads only chunks the
//! target lacks, and a damaged source commits nothing.

mod util;

use util::*;

const TARGET_PASSWORD: &str = "another password";

/// `silo copy` from `from` into `to` (which has TARGET_PASSWORD), as JSON.
fn copy(from: &TestRepo, to: &TestRepo, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--json", "copy", "--to", to.location.as_str()];
    args.extend_from_slice(extra);
    let mut c = from.cmd(&args);
    c.env("SILO_TO_PASSWORD", TARGET_PASSWORD);
    run_with_input(c, b"")
}

fn copy_ok(from: &TestRepo, to: &TestRepo, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = copy(from, to, extra);
    assert!(out.status.success(), "copy failed: {}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json").as_array().expect("array").clone()
}

fn target(repo: &TestRepo, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut c = repo.cmd(args);
    c.env("SILO_PASSWORD", TARGET_PASSWORD);
    run_with_input(c, stdin)
}

fn init_target() -> TestRepo {
    let repo = TestRepo::uninitialised();
    let out = target(&repo, &["init", "--kdf-memory", "64", "--kdf-iterations", "1"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    repo
}

fn target_json(repo: &TestRepo, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = target(repo, &a, b"");
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn copies_restore_keep_their_times_and_are_not_repeated() {
    let source = TestRepo::init();
    let (a, b) = (dump(3 << 20, 1), dump(2 << 20, 2));
    source.create("shop", &a);
    source.create("crm", &b);
    let to = init_target();

    let copied = copy_ok(&source, &to, &[]);
    assert_eq!(copied.len(), 2);
    assert!(copied.iter().all(|c| c["copied"] == true), "{copied:?}");
    let restored = target(&to, &["snapshot", "restore", "shop:latest"], b"");
    assert!(restored.status.success() && restored.stdout == a, "shop restores from the target");
    let restored = target(&to, &["snapshot", "restore", "crm:latest"], b"");
    assert!(restored.status.success() && restored.stdout == b, "crm restores from the target");

    let src = source.json(&["snapshot", "list"]);
    let dst = target_json(&to, &["snapshot", "list"]);
    for (s, d) in src.as_array().unwrap().iter().zip(dst.as_array().unwrap()) {
        for field in ["name", "host", "started", "finished", "tags"] {
            assert_eq!(s[field], d[field], "{field} is kept");
        }
        assert_ne!(s["id"], d["id"]);
    }

    // Again: nothing to do, nothing uploaded.
    let again = copy_ok(&source, &to, &[]);
    assert!(again.iter().all(|c| c["copied"] == false), "{again:?}");
    assert_eq!(target_json(&to, &["snapshot", "list"]).as_array().unwrap().len(), 2);

    // A day later: only the changed chunks travel.
    let mut next = a.clone();
    next.extend_from_slice(&dump(100_000, 3));
    next[1_000_000..1_000_100].copy_from_slice(&[b'x'; 100]);
    source.create("shop", &next);
    let third = copy_ok(&source, &to, &["--name", "shop"]);
    let new: Vec<_> = third.iter().filter(|c| c["copied"] == true).collect();
    assert_eq!(new.len(), 1, "{third:?}");
    let uploaded = new[0]["new_bytes_stored"].as_u64().unwrap();
    let total = source.json(&["stats"])["stored_bytes"].as_u64().unwrap();
    assert!(uploaded * 5 < total, "a small change uploads little: {uploaded} of {total}");
    assert!(new[0]["source_requests"].as_u64().unwrap() > 0);
    let restored = target(&to, &["snapshot", "restore", "shop:latest"], b"");
    assert!(restored.stdout == next);

    // One snapshot by selector; human output says what happened.
    let one = TestRepo::init();
    let out = {
        let mut c = source.cmd(&["copy", "--to", &one.location, "crm:latest"]);
        c.env("SILO_TO_PASSWORD", PASSWORD);
        run_with_input(c, b"")
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 snapshots copied, 0 already present"));
    assert!(stderr(&out).contains("copied as"), "{}", stderr(&out));
    assert_eq!(one.snapshot_count(), 1);
    assert_eq!(one.restore("crm:latest"), b);
}

#[test]
fn a_damaged_source_commits_nothing_and_wrong_passwords_are_refused() {
    let source = TestRepo::init();
    if source.skip_unless_local("flips a byte of a pack file") {
        return;
    }
    source.create("shop", &dump(3 << 20, 4));
    let to = init_target();

    let mut wrong = source.cmd(&["copy", "--to", &to.location]);
    wrong.env("SILO_TO_PASSWORD", "not it");
    let out = run_with_input(wrong, b"");
    assert_eq!(out.status.code(), Some(EXIT_AUTH), "{}", stderr(&out));
    assert!(stderr(&out).contains("target"), "says which repository refused: {}", stderr(&out));

    let same = source.run(&["copy", "--to", &source.location], b"");
    assert_eq!(same.status.code(), Some(EXIT_USAGE), "{}", stderr(&same));
    assert!(stderr(&same).contains("same repository"));

    let pack = source.objects("packs")[0].clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&pack, bytes).unwrap();
    let out = copy(&source, &to, &[]);
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("source snapshot") && err.contains("nothing was committed"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("silo: error")).count(), 1, "{err}");
    assert!(target_json(&to, &["snapshot", "list"]).as_array().unwrap().is_empty());
    let check = target(&to, &["check", "--read-data"], b"");
    assert!(check.status.success(), "the target stays consistent: {}", stderr(&check));
}

/// Issue 34: a damaged snapshot does not stop the copy: every intact snapshot (newer ones too) is copied,
/// the damaged one is reported, and the exit says damage (5).
#[test]
fn copy_passes_over_a_damaged_snapshot_and_copies_the_intact_ones() {
    let source = TestRepo::init();
    if source.skip_unless_local("flips a byte of a pack file") {
        return;
    }
    source.create("old", &dump(2 << 20, 14));
    let old_packs = source.objects("packs");
    let newer = dump(2 << 20, 15);
    source.create("new", &newer);
    let pack = old_packs[0].clone();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&pack, bytes).unwrap();
    let to = init_target();
    let out = copy(&source, &to, &[]);
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 damaged snapshot(s) not copied"), "{}", stderr(&out));
    let listed = target_json(&to, &["snapshot", "list"]);
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["new"], "{listed}");
    let restored = target(&to, &["snapshot", "restore", "new:latest"], b"");
    assert_eq!(restored.stdout, newer);
}
