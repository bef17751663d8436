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
    assert!(run_with_input(c, &dump(2 << 20, 96)).status.success(), "a second snapshot, so forget has work");
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

/// Damages key file `id` in one of three ways: garbage, the wrapped secret flipped (the file still decodes),
/// or cut short.
fn damage_key(repo: &TestRepo, id: &str, how: u64) {
    let path = repo.path().join("keys").join(id);
    let mut bytes = std::fs::read(&path).unwrap();
    match how % 3 {
        0 => bytes = b"garbage\n".to_vec(),
        1 => {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
        }
        _ => bytes.truncate(bytes.len() / 2),
    }
    std::fs::write(&path, bytes).unwrap();
}

fn current_key(repo: &TestRepo, password: &str) -> String {
    let k = keys(repo, password).into_iter().find(|k| k["current"] == true).unwrap();
    k["id"].as_str().unwrap().to_string()
}

/// I17: a key file that is damaged (any of three ways) never counts as the key that remains, so removing
/// the key the password opened is refused; another owner key proven by its password lets it go.
#[test]
fn a_damaged_key_never_counts_as_the_one_left() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("damages key files in place") {
        return;
    }
    let data = dump(1 << 16, 3);
    repo.create("db", &data);
    let mine = current_key(&repo, PASSWORD);
    for how in 0..3 {
        let pw = format!("second password {how}");
        let file = password_file(&repo, &format!("second{how}"), &pw);
        let out = run_as(&repo, PASSWORD, &["--json", "key", "add", "--new-password-file", &file]);
        assert!(out.status.success(), "{}", stderr(&out));
        let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        damage_key(&repo, added["added"].as_str().unwrap(), how);
        for args in [
            vec!["key", "remove", "--force", mine.as_str()],
            vec!["key", "remove", "--force", mine.as_str(), "--other-password-file", file.as_str()],
        ] {
            let out = run_as(&repo, PASSWORD, &args);
            assert!(!out.status.success(), "damage {how}, {args:?}: the only working key went");
            assert!(!stderr(&out).contains(&pw), "no password in an error: {}", stderr(&out));
            assert_eq!(run_as(&repo, PASSWORD, &["snapshot", "restore", "db:latest"]).stdout, data, "damage {how}");
        }
    }
    // Without another password, the key in use stays even beside an intact second key.
    let good = password_file(&repo, "good", "good password");
    assert!(run_as(&repo, PASSWORD, &["key", "add", "--new-password-file", &good]).status.success());
    let out = run_as(&repo, PASSWORD, &["key", "remove", "--force", &mine]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("--other-password-file"), "{}", stderr(&out));
    // Proven by its password, the intact one counts.
    let out = run_as(&repo, PASSWORD, &["key", "remove", "--force", &mine, "--other-password-file", &good]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(run_as(&repo, PASSWORD, &["snapshot", "list"]).status.code(), Some(EXIT_AUTH));
    assert_eq!(run_as(&repo, "good password", &["snapshot", "restore", "db:latest"]).stdout, data);
}

/// I17: a writer key is not an owner key; the last owner key stays while writer keys exist.
#[test]
fn the_last_owner_key_stays_while_writer_keys_exist() {
    let repo = TestRepo::init();
    let writer = password_file(&repo, "writer", "writer password");
    assert!(run_as(&repo, PASSWORD, &["key", "add", "--writer", "--new-password-file", &writer]).status.success());
    let mine = current_key(&repo, PASSWORD);
    let out = run_as(&repo, PASSWORD, &["key", "remove", "--force", &mine, "--other-password-file", &writer]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("owner key"), "{}", stderr(&out));
    assert!(run_as(&repo, PASSWORD, &["snapshot", "list"]).status.success());
}

/// I17 as a model: random sequences of key add (owner or writer), passwd, remove (with and without --force
/// and another password) and damage to key files; after every step some owner password the test holds
/// still opens the repository and restores.
#[test]
fn random_key_changes_with_damaged_files_always_leave_an_owner_password_that_opens() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("damages key files in place") {
        return;
    }
    let data = dump(1 << 15, 4);
    repo.create("db", &data);
    // The model: key id -> (password, owner?, damaged?).
    let mut model: Vec<(String, String, bool, bool)> =
        vec![(current_key(&repo, PASSWORD), PASSWORD.to_string(), true, false)];
    let mut rng = 0x5eed_1234_u64 ^ std::process::id() as u64;
    eprintln!("seed {rng:#x}");
    let mut made = 0;
    for step in 0..36 {
        let r = xorshift(&mut rng);
        let pick = |n: usize, r: u64| (r >> 8) as usize % n.max(1);
        let usable: Vec<usize> = (0..model.len()).filter(|&i| model[i].2 && !model[i].3).collect();
        let actor = usable[pick(usable.len(), r)];
        let actor_pw = model[actor].1.clone();
        match r % 5 {
            0 | 1 => {
                made += 1;
                let pw = format!("pw {made}");
                let file = password_file(&repo, &format!("pw{made}"), &pw);
                let owner = r.is_multiple_of(5);
                let mut args = vec!["--json", "key", "add", "--new-password-file", &file];
                if !owner {
                    args.push("--writer");
                }
                let out = run_as(&repo, &actor_pw, &args);
                assert!(out.status.success(), "step {step}: {}", stderr(&out));
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                model.push((v["added"].as_str().unwrap().to_string(), pw, owner, false));
            }
            2 => {
                // Damage any key but the last intact owner key the model holds (that would be the test's doing).
                let victim = pick(model.len(), r >> 16);
                if model[victim].3 || (usable.len() == 1 && usable[0] == victim) {
                    continue;
                }
                damage_key(&repo, &model[victim].0, r >> 24);
                model[victim].3 = true;
            }
            3 => {
                let victim = pick(model.len(), r >> 16);
                let other = pick(model.len(), r >> 32);
                let other_file = password_file(&repo, "other", &model[other].1);
                let mut args = vec!["key", "remove", model[victim].0.as_str()];
                if r & (1 << 40) != 0 {
                    args.push("--force");
                }
                if r & (1 << 41) != 0 {
                    args.extend(["--other-password-file", other_file.as_str()]);
                }
                if run_as(&repo, &actor_pw, &args).status.success() {
                    model.remove(victim);
                }
            }
            _ => {
                made += 1;
                let pw = format!("pw {made}");
                let file = password_file(&repo, &format!("pw{made}"), &pw);
                let out = run_as(&repo, &actor_pw, &["--json", "key", "passwd", "--new-password-file", &file]);
                if out.status.success() {
                    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                    model.retain(|k| Some(k.0.as_str()) != v["removed"].as_str());
                    model.push((v["added"].as_str().unwrap().to_string(), pw, true, false));
                }
            }
        }
        let opens = model
            .iter()
            .filter(|k| k.2 && !k.3)
            .any(|k| run_as(&repo, &k.1, &["snapshot", "restore", "db:latest"]).stdout == data);
        assert!(opens, "step {step}: no owner password the test holds opens the repository; model {model:?}");
    }
}

/// I19: a writer key (a compromised database host) plants tiny snapshots under a real name; the owner's
/// stored policy then keeps the real ones it would have kept, and the planted ones in addition, flagged.
#[test]
fn planted_snapshots_from_a_writer_key_never_displace_real_ones() {
    let repo = TestRepo::init();
    let writer = password_file(&repo, "writer", "writer password");
    assert!(run_as(&repo, PASSWORD, &["key", "add", "--writer", "--new-password-file", &writer]).status.success());
    let real: Vec<String> = (0..4).map(|i| repo.create("shop", &dump(200_000, 40 + i))).collect();
    repo.ok(&["policy", "set", "shop", "--keep-last", "2"], b"");
    for _ in 0..2 {
        let out = run_with_input(
            {
                let mut c = repo.cmd(&["snapshot", "create", "--name", "shop", "--no-validate"]);
                c.env("SILO_PASSWORD", "writer password");
                c
            },
            b"x",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let listed = repo.json(&["snapshot", "list", "--name", "shop"]);
    let suspect: Vec<bool> = listed.as_array().unwrap().iter().map(|s| !s["suspect"].is_null()).collect();
    assert_eq!(suspect, [false, false, false, false, true, true], "{listed}");
    let forgot = repo.json(&["forget"]);
    let removed: Vec<String> = forgot["groups"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == false)
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(removed, [real[1].clone(), real[0].clone()], "only the two oldest real ones go: {forgot}");
    let left = repo.snapshot_ids();
    assert!(left.contains(&real[3]) && left.contains(&real[2]), "{left:?}");
    assert_eq!(left.len(), 4, "two real, two planted (kept, not counted)");
    assert_eq!(repo.restore("shop:latest~2"), dump(200_000, 43));
}

/// I19 as a model through the binary: random sequences of creates by the owner (real dumps of similar sizes)
/// and by a writer key (planted: tiny, empty, or shrinking chains), with the owner's stored policy applied
/// by `forget` and `prune` now and then; after every forget the owner's real snapshots left are exactly the
/// newest N real ones (keep-last N), whatever was planted.
#[test]
fn random_plants_by_a_writer_never_displace_the_owners_real_snapshots() {
    let repo = TestRepo::init();
    let writer = password_file(&repo, "writer", "writer password");
    assert!(run_as(&repo, PASSWORD, &["key", "add", "--writer", "--new-password-file", &writer]).status.success());
    repo.ok(&["policy", "set", "shop", "--keep-last", "3"], b"");
    let mut rng = 0x0419_u64 ^ u64::from(std::process::id());
    eprintln!("seed {rng:#x}");
    let mut real: Vec<String> = Vec::new();
    let mut plant = 60_000usize;
    for step in 0..30 {
        let r = xorshift(&mut rng);
        match r % 4 {
            0 | 1 => real.push(repo.create("shop", &dump(100_000 + (r >> 8) as usize % 20_000, r))),
            2 => {
                // A plant: empty, tiny, or the next link of a shrinking chain.
                let (data, extra): (Vec<u8>, &[&str]) = match (r >> 8) % 3 {
                    0 => (Vec::new(), &["--allow-empty"]),
                    1 => (b"x".to_vec(), &[]),
                    _ => {
                        plant = plant * 55 / 100 + 1;
                        (dump(plant, r), &[])
                    }
                };
                let mut args = vec!["snapshot", "create", "--name", "shop", "--no-validate"];
                args.extend_from_slice(extra);
                let out = run_with_input(
                    {
                        let mut c = repo.cmd(&args);
                        c.env("SILO_PASSWORD", "writer password");
                        c
                    },
                    &data,
                );
                assert!(out.status.success(), "step {step}: {}", stderr(&out));
            }
            _ => {
                let cmd = if r & 0x100 == 0 { vec!["forget"] } else { vec!["prune", "--safety", "none"] };
                repo.ok(&cmd, b"");
                let left = repo.snapshot_ids();
                let kept: Vec<&String> = real.iter().filter(|id| left.contains(id)).collect();
                let expected: Vec<&String> = real.iter().rev().take(3).rev().collect();
                assert_eq!(kept, expected, "step {step}: the owner's newest real snapshots are kept");
            }
        }
    }
}
