//! Owner-only files (issue 18 item 1), through the real binary: whatever the caller's umask, everything silo
//! creates — repository objects and directories, the index cache, restored `--output` files — is 0600/0700,
//! unless the repository was made with `init --group-readable` (0640/0750); the commands silo starts get the
//! caller's umask back; `check` warns about key files other users can read. And secret-free (I12): no command
//! silo starts sees its passwords. And silo never writes into the repository it reads (a restore aimed at
//! `config` or a key file), whichever key opened it (I11).

mod util;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use util::*;

/// `cmd` run with umask `mask`, as a user's shell would start it.
fn with_umask(mut cmd: Command, mask: libc::mode_t) -> Command {
    // SAFETY: umask(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
    cmd
}

fn ok(cmd: Command, stdin: &[u8]) -> std::process::Output {
    let out = run_with_input(cmd, stdin);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// Every file and directory below `dir` (itself included) with its permission bits.
fn modes(dir: &Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let meta = std::fs::metadata(dir).expect("metadata");
    out.push((dir.to_path_buf(), meta.is_dir(), meta.permissions().mode() & 0o7777));
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            out.extend(modes(&e.path()));
        }
    }
    out
}

fn assert_at_most(dir: &Path, file: u32, directory: u32, what: &str) {
    let found = modes(dir);
    assert!(found.len() > 3, "{what}: nothing below {}", dir.display());
    for (path, is_dir, mode) in found {
        let limit = if is_dir { directory } else { file };
        assert_eq!(mode & !limit, 0, "{what}: {} is {mode:04o}, more open than {limit:04o}", path.display());
    }
}

#[test]
fn everything_silo_creates_is_owner_only_whatever_the_umask() {
    for mask in [0o022, 0o000, 0o077] {
        let repo = TestRepo::uninitialised();
        if repo.skip_unless_local("file modes are a local directory's") {
            return;
        }
        let init = ["init", "--kdf-memory", "64", "--kdf-iterations", "1"];
        ok(with_umask(repo.cmd(&init), mask), b"");
        let data = dump(3 << 20, 40);
        ok(with_umask(repo.cmd(&["snapshot", "create", "--name", "db"]), mask), &data);
        ok(with_umask(repo.cmd(&["gc", "--dry-run"]), mask), b"");
        let restored = repo.dir.path().join("restored.sql");
        let path = restored.to_str().expect("utf-8");
        ok(with_umask(repo.cmd(&["snapshot", "restore", "db:latest", "--output", path]), mask), b"");
        assert_eq!(std::fs::read(&restored).expect("restored"), data);
        assert_eq!(std::fs::metadata(&restored).unwrap().permissions().mode() & 0o777, 0o600, "umask {mask:03o}");
        let what = format!("umask {mask:03o}");
        assert_at_most(&repo.path(), 0o600, 0o700, &what);
        assert_at_most(&repo.cache(), 0o600, 0o700, &what);
    }
}

#[test]
fn a_group_readable_repository_stays_so_and_nothing_is_readable_by_others() {
    let repo = TestRepo::uninitialised();
    if repo.skip_unless_local("file modes are a local directory's") {
        return;
    }
    let init = ["init", "--kdf-memory", "64", "--kdf-iterations", "1", "--group-readable"];
    ok(with_umask(repo.cmd(&init), 0o077), b"");
    assert_eq!(std::fs::metadata(repo.path().join("config")).unwrap().permissions().mode() & 0o777, 0o640);
    // A later writer with a tight umask keeps the repository readable by the group.
    ok(with_umask(repo.cmd(&["snapshot", "create", "--name", "db"]), 0o077), &dump(1 << 20, 41));
    let found = modes(&repo.path());
    assert!(found.iter().any(|(p, d, m)| !d && *m == 0o640 && p.starts_with(repo.path().join("packs"))));
    assert_at_most(&repo.path(), 0o640, 0o750, "group-readable");
    // ...and check does not call its key files open.
    let out = repo.json(&["check"]);
    assert_eq!(out["warnings"], serde_json::json!([]), "{out}");
    let s3 = run_with_input(repo.cmd(&["init", "--group-readable", "--repo", "s3:http://127.0.0.1:1/b"]), b"");
    assert_eq!(s3.status.code(), Some(EXIT_USAGE), "{}", stderr(&s3));
    assert!(stderr(&s3).contains("local directories"), "{}", stderr(&s3));
}

#[test]
fn check_warns_about_key_files_other_users_can_read() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("file modes are a local directory's") {
        return;
    }
    let key = repo.objects("keys").pop().expect("a key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = repo.ok(&["check"], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("warning:") && text.contains("chmod 600"), "{text}");
    let report = repo.json(&["check"]);
    let warnings = report["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(warnings[0].as_str().unwrap().contains("mode 0644"), "{report}");
}

#[test]
fn commands_silo_starts_get_the_callers_umask() {
    let repo = TestRepo::init();
    for (mask, shown) in [(0o022, "0022"), (0o002, "0002")] {
        ok(with_umask(repo.cmd(&["snapshot", "create", "--name", "u", "--", "sh", "-c", "umask"]), mask), b"");
        assert_eq!(String::from_utf8_lossy(&repo.restore("u:latest")).trim(), shown);
    }
}

/// Stores `data` as snapshot `name` dated `finished` (µs), as someone holding the key could: the library's
/// create with recorded times (what `copy` uses to keep an original's dates).
fn plant(repo: &TestRepo, name: &str, data: &[u8], finished: i64) -> String {
    use silo::inputs::{Source, StreamSpec};
    let rt = util::inproc::runtime();
    let r = util::inproc::open_later(&rt, repo, 0);
    let options = silo::repo::write::CreateOptions {
        name: name.into(),
        host: silo::repo::hostname(), // the real snapshots' group
        tags: vec![],
        streams: vec![StreamSpec { name: "data".into(), source: Source::bytes(data.to_vec()) }],
        progress: Default::default(),
        warn: |_| {},
        times: Some((finished - 1_000_000, finished)),
        allow_empty: false,
        min_size: None,
        validation: Default::default(),
        deltas: true,
    };
    r.create_snapshot(rt.handle(), &options).expect("planted").id.to_hex()
}

#[test]
fn future_dated_snapshots_cannot_push_real_ones_out_of_retention() {
    let repo = TestRepo::init();
    let real: Vec<String> = (0..3).map(|i| repo.create("db", &dump(256 << 10, 50 + i))).collect();
    let year = 365 * 86_400 * 1_000_000i64;
    let now = silo::time::now_micros();
    let planted: Vec<String> = (0..3).map(|i| plant(&repo, "db", b"planted", now + year + i)).collect();
    let plan = repo.json(&["forget", "--keep-last", "3"]);
    let decisions = plan["groups"][0]["snapshots"].as_array().expect("decisions");
    for d in decisions {
        let id = d["id"].as_str().unwrap().to_string();
        assert_eq!(d["keep"], true, "nothing is removed: {plan}");
        if planted.contains(&id) {
            assert_eq!(d["reasons"][0], "future-dated", "{plan}");
        }
    }
    let left = repo.snapshot_ids();
    assert!(real.iter().chain(&planted).all(|id| left.contains(id)), "every real snapshot stays");
    // `db:latest` is the newest real one, not a planted one from the future (which restores by id).
    assert!(repo.restore("db:latest") == dump(256 << 10, 52), "latest skips future-dated snapshots");
    assert!(repo.restore("db:latest~1") == dump(256 << 10, 51));
    assert_eq!(repo.restore(&planted[0]), b"planted");
    // check names each of them, and freshness is not fooled by them.
    let report = repo.json(&["check"]);
    let warnings: Vec<&str> = report["warnings"].as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    assert_eq!(warnings.iter().filter(|w| w.contains("in the future")).count(), 3, "{report}");
    let old = TestRepo::init();
    plant(&old, "shop", &dump(64 << 10, 60), now - 30 * 3600 * 1_000_000);
    plant(&old, "shop", b"planted", now + year);
    let stale = old.run(&["check", "--max-age", "26h", "--name", "shop"], b"");
    assert_eq!(stale.status.code(), Some(8), "a planted future snapshot does not make shop fresh: {}", stderr(&stale));
}

#[test]
fn no_secret_appears_in_any_output_at_any_verbosity() {
    // Every command below goes through the harness, which fails the test if a secret it was given appears
    // on its stdout or stderr (util::assert_no_secret); here the commands run at -vv, failing and not.
    let repo = TestRepo::init();
    let other = TestRepo::init();
    let as_user = |r: &TestRepo, password: &str, args: &[&str], stdin: &[u8]| {
        let mut c = r.cmd(args);
        c.env("SILO_PASSWORD", password).env("SILO_TO_PASSWORD", PASSWORD);
        run_with_input(c, stdin)
    };
    let data = dump(512 << 10, 42);
    for args in [
        vec!["-vv", "snapshot", "create", "--name", "db"],
        vec!["-vv", "--json", "snapshot", "create", "--name", "db"],
        vec!["-vv", "snapshot", "create", "--name", "db", "--", "sh", "-c", "echo partial; exit 3"],
        vec!["-vv", "snapshot", "restore", "db:latest"],
        vec!["-vv", "--json", "snapshot", "show", "db:latest"],
        vec!["-vv", "check", "--read-data"],
        vec!["-vv", "gc", "--dry-run"],
        vec!["-vv", "--json", "key", "list"],
        vec!["-vv", "copy", "--to", &other.location],
        vec!["-vv", "--json", "stats"],
    ] {
        let stdin: &[u8] = if args.contains(&"create") { &data } else { b"" };
        as_user(&repo, PASSWORD, &args, stdin);
    }
    let wrong = as_user(&repo, "a wrong password of some length", &["-vv", "snapshot", "list"], b"");
    assert_eq!(wrong.status.code(), Some(EXIT_AUTH));
}

#[test]
fn a_password_on_a_stream_command_line_is_warned_about_and_never_repeated() {
    let repo = TestRepo::init();
    let out =
        repo.ok(&["snapshot", "create", "--name", "db", "--", "sh", "-c", "echo rows", "--password=hunter2"], b"");
    let err = stderr(&out);
    assert!(err.contains("looks like a password") && err.contains("PGPASSFILE"), "{err}");
    assert!(!err.contains("hunter2"), "the warning names the flag, not the value: {err}");
    let clean = repo.ok(&["snapshot", "create", "--name", "db", "--", "sh", "-c", "echo rows"], b"");
    assert!(!stderr(&clean).contains("looks like a password"), "{}", stderr(&clean));
}

#[test]
fn another_local_user_cannot_read_a_repository_made_with_the_default_modes() {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: needs root to run silo as another user (nobody)");
        return;
    }
    let repo = TestRepo::init();
    if repo.skip_unless_local("file modes are a local directory's") {
        return;
    }
    repo.create("db", &dump(64 << 10, 43));
    // The temporary directory above the repository is the test's (0700): open it so only the repository's
    // own modes stand between `nobody` and the files.
    std::fs::set_permissions(repo.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = repo.cmd(&["snapshot", "list"]);
    c.env("SILO_CACHE_DIR", "/nonexistent");
    // SAFETY: setgid/setuid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_with_input(c, b"");
    assert_ne!(out.status.code(), Some(0), "nobody listed a root-made repository: {}", stderr(&out));
    assert!(stderr(&out).contains("Permission denied"), "{}", stderr(&out));
    let key = repo.objects("keys").pop().unwrap();
    let mut cat = Command::new("cat");
    cat.arg(&key);
    // SAFETY: as above.
    unsafe {
        cat.pre_exec(|| {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert!(!cat.output().unwrap().status.success(), "nobody read the key file");
}

#[test]
fn commands_silo_starts_never_see_its_secrets() {
    let repo = TestRepo::init();
    let mut c = repo.cmd(&["snapshot", "create", "--name", "env", "--", "sh", "-c", "env; echo end"]);
    c.env("SILO_TO_PASSWORD", "second secret").env("SILO_FROM_PASSWORD", "third secret");
    let out = run_with_input(c, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = String::from_utf8(repo.restore("env:latest")).unwrap();
    assert!(seen.contains("SILO_REPO="), "the rest of the environment is passed on: {seen}");
    for secret in [PASSWORD, "second secret", "third secret"] {
        assert!(!seen.contains(secret), "a child saw {secret:?}");
    }
    let drill = repo.run(
        &["drill", "env:latest", "--", "sh", "-c", "cat >/dev/null; env | grep -c SILO_PASSWORD && exit 1 || exit 0"],
        b"",
    );
    assert!(drill.status.success(), "{}", stderr(&drill));
}

/// Every file of a local repository with its bytes, to see that nothing was replaced or removed.
fn repository_files(repo: &TestRepo) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    relative(repo, repo.objects(""))
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(repo.path().join(&p)).expect("read")))
        .collect()
}

/// `objects`' paths relative to the repository.
fn relative(repo: &TestRepo, paths: Vec<std::path::PathBuf>) -> Vec<std::path::PathBuf> {
    let root = repo.path();
    paths.into_iter().map(|p| p.strip_prefix(&root).map(Path::to_path_buf).unwrap_or(p)).collect()
}

fn writer_password(repo: &TestRepo) -> &'static str {
    let file = repo.dir.path().join("writer-password");
    std::fs::write(&file, "writer secret\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    repo.ok(&["key", "add", "--writer", "--new-password-file", file.to_str().expect("utf-8")], b"");
    "writer secret"
}

#[test]
fn a_restore_never_writes_into_the_repository_it_reads() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("local files") {
        return;
    }
    repo.create("db", b"a backup\n");
    let writer = writer_password(&repo);
    let before = repository_files(&repo);
    let key = before.keys().find(|p| p.starts_with("keys")).expect("a key file").clone();
    std::os::unix::fs::symlink(repo.path(), repo.dir.path().join("link")).expect("symlink");
    for target in [repo.path().join(&key), repo.path().join("config"), repo.dir.path().join("link").join("config")] {
        for password in [PASSWORD, writer] {
            let mut c = repo.cmd(&["snapshot", "restore", "db:latest", "--output", target.to_str().expect("utf-8")]);
            c.env("SILO_PASSWORD", password);
            let out = run_with_input(c, b"");
            assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}: {}", target.display(), stderr(&out));
            assert!(stderr(&out).contains("inside the repository"), "{}", stderr(&out));
        }
    }
    assert!(repository_files(&repo) == before, "no repository file was replaced");
    repo.ok(&["snapshot", "list"], b"");
}

#[test]
fn restore_database_never_swaps_a_repository_file_or_a_file_that_is_not_a_database() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("local files") || !util::services::sqlite() {
        return;
    }
    let db = repo.dir.path().join("app.db");
    let made = Command::new("sqlite3").arg(&db).arg("CREATE TABLE t(a); INSERT INTO t VALUES (1);").status();
    assert!(made.expect("sqlite3").success());
    let mut c = repo.cmd(&["snapshot", "create", "--name", "app", "--", "cat", db.to_str().expect("utf-8")]);
    c.stdin(Stdio::null());
    assert!(c.output().expect("create").status.success());
    let writer = writer_password(&repo);
    let before = repository_files(&repo);
    let notes = repo.dir.path().join("notes.txt");
    std::fs::write(&notes, b"not a database\n").expect("write");
    for target in [repo.path().join("config"), notes.clone()] {
        for password in [PASSWORD, writer] {
            let mut c = repo.cmd(&["restore-database", "app:latest", "--sqlite", target.to_str().expect("utf-8")]);
            c.env("SILO_PASSWORD", password);
            let out = run_with_input(c, b"");
            assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}: {}", target.display(), stderr(&out));
        }
    }
    assert!(repository_files(&repo) == before, "no repository file was swapped");
    assert_eq!(std::fs::read(&notes).expect("read"), b"not a database\n");
    assert!(std::fs::read_dir(repo.dir.path())
        .expect("ls")
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().contains("silo-prev")));
}

#[test]
fn restoring_latest_when_it_is_a_planted_empty_snapshot_warns_and_names_the_real_one() {
    let repo = TestRepo::init();
    let real: Vec<String> = (0..3).map(|i| repo.create("db", &dump(256 << 10, 70 + i))).collect();
    let writer = writer_password(&repo);
    let mut plant = repo.cmd(&["snapshot", "create", "--name", "db", "--allow-empty"]);
    plant.env("SILO_PASSWORD", writer);
    assert!(run_with_input(plant, b"").status.success());
    let out = repo.run(&["snapshot", "restore", "db:latest"], b"");
    assert!(out.status.success(), "restored as asked: {}", stderr(&out));
    assert!(out.stdout.is_empty());
    let warning = stderr(&out);
    assert!(warning.contains("suspect"), "{warning}");
    assert!(warning.contains(&real[2][..8]), "names the newest plausible snapshot {}: {warning}", &real[2][..8]);
    // A plausible latest restores without a word.
    let quiet = repo.run(&["snapshot", "restore", "db:latest~1"], b"");
    assert!(!stderr(&quiet).contains("suspect"), "{}", stderr(&quiet));
}
