//! Key management through the real binary (issue 18, item 2): list, add, passwd and remove key files, with
//! restores under each password, removed passwords refused, the last key and the key in use protected, bad
//! input refused, and two `key passwd` at once.

mod util;

use std::os::unix::fs::PermissionsExt;
use util::*;

/// A password file with `password` on its first line, owner-only.
fn password_file(repo: &TestRepo, name: &str, password: &str) -> String {
    let path = repo.dir.path().join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

/// `silo ARGS` with `password` instead of the harness's.
fn run_as(repo: &TestRepo, password: &str, args: &[&str]) -> std::process::Output {
    let mut c = repo.cmd(args);
    c.env("SILO_PASSWORD", password).env("USER", "tester");
    run_with_input(c, b"")
}

fn keys(repo: &TestRepo, password: &str) -> Vec<serde_json::Value> {
    let out = run_as(repo, password, &["--json", "key", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn keys_are_added_changed_and_removed_with_restores_under_each_password() {
    let repo = TestRepo::init();
    let data = dump(1 << 20, 90);
    repo.create("db", &data);
    let first = keys(&repo, PASSWORD);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["current"], true);
    assert!(first[0]["host"].as_str().is_some_and(|h| !h.is_empty()));

    // A second password opens the same repository.
    let second = password_file(&repo, "second", "second password");
    let out = run_as(&repo, PASSWORD, &["--json", "key", "add", "--new-password-file", &second]);
    assert!(out.status.success(), "{}", stderr(&out));
    let added =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["added"].as_str().unwrap().to_string();
    let listed = keys(&repo, "second password");
    assert_eq!(listed.len(), 2);
    let new = listed.iter().find(|k| k["id"] == added.as_str()).expect("the added key is listed");
    assert_eq!((new["current"].as_bool(), new["user"].as_str()), (Some(true), Some("tester")));
    assert_eq!(new["kdf_memory_kib"], first[0]["kdf_memory_kib"], "a new key keeps the current parameters");
    for pw in [PASSWORD, "second password"] {
        let out = run_as(&repo, pw, &["snapshot", "restore", "db:latest"]);
        assert!(out.status.success() && out.stdout == data, "restore under {pw:?}: {}", stderr(&out));
    }

    // passwd: the new one opens, the one used is gone and refused.
    let third = password_file(&repo, "third", "third password");
    let out = run_as(&repo, "second password", &["key", "passwd", "--new-password-file", &third]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(run_as(&repo, "second password", &["snapshot", "list"]).status.code(), Some(EXIT_AUTH));
    let out = run_as(&repo, "third password", &["snapshot", "restore", "db:latest"]);
    assert!(out.status.success() && out.stdout == data, "{}", stderr(&out));
    assert_eq!(keys(&repo, PASSWORD).len(), 2);

    // remove: not the key in use without --force, never the last, and then that password is refused.
    let original = keys(&repo, PASSWORD).into_iter().find(|k| k["current"] == true).unwrap();
    let prefix = &original["id"].as_str().unwrap()[..10];
    let refused = run_as(&repo, PASSWORD, &["key", "remove", prefix]);
    assert_eq!(refused.status.code(), Some(EXIT_USAGE), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    let out = run_as(&repo, "third password", &["key", "remove", prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(run_as(&repo, PASSWORD, &["snapshot", "list"]).status.code(), Some(EXIT_AUTH), "removed password");
    let last = keys(&repo, "third password");
    assert_eq!(last.len(), 1);
    let id = last[0]["id"].as_str().unwrap();
    let out = run_as(&repo, "third password", &["key", "remove", "--force", id]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "the last key stays: {}", stderr(&out));
    assert!(stderr(&out).contains("last key"), "{}", stderr(&out));
    assert!(run_as(&repo, "third password", &["snapshot", "restore", "db:latest"]).stdout == data);
}

#[test]
fn bad_input_is_refused_without_changing_the_keys() {
    let repo = TestRepo::init();
    let open = repo.dir.path().join("open");
    std::fs::write(&open, "readable by all\n").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let empty = password_file(&repo, "empty", "");
    let cases: Vec<Vec<&str>> = vec![
        vec!["key", "add", "--new-password-file", open.to_str().unwrap()],
        vec!["key", "add", "--new-password-file", &empty],
        vec!["key", "add"], // no file and no terminal
        vec!["key", "remove", "ffffffffffff"],
        vec!["key", "remove", ""],
        vec!["key", "add", "--new-password-file", &empty, "--kdf-memory", "1"],
    ];
    for args in cases {
        let out = run_as(&repo, PASSWORD, &args);
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("readable by all"), "a password is never shown: {}", stderr(&out));
    }
    let strong = password_file(&repo, "strong", "another");
    let out = run_as(&repo, PASSWORD, &["key", "add", "--new-password-file", &strong, "--kdf-memory", "1"]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "argon2 parameters out of range: {}", stderr(&out));
    assert_eq!(keys(&repo, PASSWORD).len(), 1, "nothing was added");
}

#[test]
fn two_password_changes_at_once_leave_working_keys_and_no_old_one() {
    let repo = TestRepo::init();
    let data = dump(256 << 10, 91);
    repo.create("db", &data);
    let files: Vec<String> = (0..2).map(|i| password_file(&repo, &format!("new{i}"), &format!("new {i}"))).collect();
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            let mut c = repo.cmd(&["key", "passwd", "--new-password-file", f]);
            c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            c.spawn().expect("spawn")
        })
        .collect();
    // A change that opens the repository after the other one removed the old key finds no key for the old
    // password (exit 4): that is the truth then, not a failure of the protocol. Which happens depends on
    // timing; what must hold either way: every change that succeeded works, and the old key is gone.
    let mut changed = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        match out.status.code() {
            Some(0) => changed.push(i),
            Some(EXIT_AUTH) => assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out)),
            _ => panic!("key passwd: {}", stderr(&out)),
        }
    }
    assert!(!changed.is_empty(), "at least the first change succeeds");
    assert_eq!(run_as(&repo, PASSWORD, &["snapshot", "list"]).status.code(), Some(EXIT_AUTH), "the old one is gone");
    for i in &changed {
        let out = run_as(&repo, &format!("new {i}"), &["snapshot", "restore", "db:latest"]);
        assert!(out.status.success() && out.stdout == data, "new {i}: {}", stderr(&out));
    }
    assert_eq!(keys(&repo, &format!("new {}", changed[0])).len(), changed.len());
}

#[test]
fn a_writer_key_creates_copies_and_reads_but_never_deletes() {
    let repo = TestRepo::init();
    let writer = password_file(&repo, "writer", "writer password");
    let out = run_as(&repo, PASSWORD, &["key", "add", "--writer", "--new-password-file", &writer]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = keys(&repo, "writer password");
    assert!(listed.iter().any(|k| k["role"] == "writer" && k["current"] == true), "{listed:?}");

    // Creating works and issues no DELETE; the session object is left for gc.
    let data = dump(2 << 20, 95);
    let mut c = repo.cmd(&["--json", "snapshot", "create", "--name", "db"]);
    c.env("SILO_PASSWORD", "writer password");
    let out = run_with_input(c, &data);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["requests"]["delete"], 0, "a writer never deletes: {report}");
    assert_eq!(repo.objects("sessions").len(), 1, "the writer's session object stays for gc");
    let restored = run_as(&repo, "writer password", &["snapshot", "restore", "db:latest"]);
    assert!(restored.status.success() && restored.stdout == data);
    assert!(run_as(&repo, "writer password", &["check"]).status.success(), "check only reads");

    // Copying into a repository with a writer key there works the same way.
    let target = TestRepo::init();
    let target_writer = password_file(&target, "writer", "target writer");
    assert!(run_as(&target, PASSWORD, &["key", "add", "--writer", "--new-password-file", &target_writer])
        .status
        .success());
    let mut c = repo.cmd(&["copy", "--to", &target.location]);
    c.env("SILO_TO_PASSWORD", "target writer");
    let out = run_with_input(c, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(target.restore("db:latest") == data);

    // Everything that deletes or rewrites is refused with a writer key, and changes nothing but adding the
    // refused commands' run records (I13: failures leave a trace; a record only adds).
    let mut c = repo.cmd(&["snapshot", "create", "--name", "db"]);
    c.env("SILO_PASSWORD", "writer password");
    assert!(run_with_input(c, &dump(64 << 10, 96)).status.success(), "a second snapshot, so forget has work");
    let not_runs = |objects: Vec<std::path::PathBuf>| -> Vec<std::path::PathBuf> {
        objects.into_iter().filter(|p| !p.to_string_lossy().contains("runs/")).collect()
    };
    let before = repo.objects("");
    let runs_before = repo.objects("runs").len();
    let some_key = listed[0]["id"].as_str().unwrap();
    for args in [
        vec!["gc"],
        vec!["gc", "--safety", "none"],
        vec!["prune"],
        vec!["forget", "--keep-last", "1"],
        vec!["forget", "db:latest"],
        vec!["policy", "set", "db", "--keep-last", "2"],
        vec!["repair", "index"],
        vec!["key", "add", "--new-password-file", &writer],
        vec!["key", "passwd", "--new-password-file", &writer],
        vec!["key", "remove", "--force", some_key],
    ] {
        let out = run_as(&repo, "writer password", &args);
        assert_eq!(out.status.code(), Some(EXIT_AUTH), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("writer key"), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(not_runs(repo.objects("")), not_runs(before), "the refused commands changed nothing");
    assert_eq!(repo.objects("runs").len(), runs_before + 5, "gc, gc, prune, forget, forget: recorded as failed");
    // A dry run only reads: allowed.
    assert!(run_as(&repo, "writer password", &["gc", "--dry-run"]).status.success());
    // The owner's gc removes the writer's leftover session once it is old.
    let later = util::inproc::gc_at(&repo, 3 * 86_400);
    assert!(later["leftovers_removed"].as_u64().unwrap() >= 1, "{later}");
    assert!(repo.objects("sessions").is_empty());
}
