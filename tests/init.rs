//! `silo init` and opening what is not a silo repository: foreign repositories, plain files, a killed
//! init's leftovers, the user's own files where silo keeps its objects, locations that look like URLs.
//! One behaviour per test.

mod util;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use util::*;

const INIT: [&str; 5] = ["init", "--kdf-memory", "64", "--kdf-iterations", "1"];

/// Runs silo with its repository at `location` and the test password; the cache beside it in `dir`.
fn run(dir: &Path, location: &Path, args: &[&str]) -> Output {
    Command::new(silo_bin())
        .args(args)
        .env("SILO_REPO", location)
        .env("SILO_PASSWORD", PASSWORD)
        .env("SILO_CACHE_DIR", dir.join("cache"))
        .stdin(Stdio::null())
        .output()
        .expect("run silo")
}

/// Sets every file below `dir` back `seconds` in time (modification time), as if written that long ago.
fn age_files(dir: &Path, seconds: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            age_files(&p, seconds);
        } else {
            let then = std::time::SystemTime::now() - Duration::from_secs(seconds);
            std::fs::File::options().write(true).open(&p).and_then(|f| f.set_modified(then)).expect("set mtime");
        }
    }
}

#[test]
fn a_restic_or_borg_repository_is_refused_as_not_silos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let restic = dir.path().join("restic");
    std::fs::create_dir_all(restic.join("data")).expect("mkdir");
    std::fs::write(restic.join("config"), (0..200u32).map(|i| (i * 7 % 256) as u8).collect::<Vec<u8>>())
        .expect("write");
    let out = run(dir.path(), &restic, &["snapshot", "list"]);
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(stderr(&out).contains("not silo's"), "{}", stderr(&out));
    let borg = dir.path().join("borg");
    std::fs::create_dir_all(&borg).expect("mkdir");
    std::fs::write(borg.join("config"), b"[repository]\nversion = 1\n").expect("write");
    let out = run(dir.path(), &borg, &["snapshot", "list"]);
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(stderr(&out).contains("not silo's"), "{}", stderr(&out));
}

#[test]
fn a_plain_file_as_the_repository_is_unreachable_with_a_clean_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    let out = run(dir.path(), &file, &["snapshot", "list"]);
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(!stderr(&out).contains("object :"), "{}", stderr(&out));
}

#[test]
fn an_init_killed_after_its_key_file_is_refused_for_a_minute_then_redone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let killed = dir.path().join("killed");
    assert!(run(dir.path(), &killed, &INIT).status.success());
    std::fs::remove_file(killed.join("config")).expect("remove config");
    let soon = run(dir.path(), &killed, &INIT);
    assert_eq!(soon.status.code(), Some(EXIT_USAGE), "{}", stderr(&soon));
    assert!(stderr(&soon).contains("try again"), "{}", stderr(&soon));
    assert_eq!(run(dir.path(), &killed, &["snapshot", "list"]).status.code(), Some(EXIT_UNREACHABLE));
    age_files(&killed, 120); // as if killed two minutes ago
    let later = run(dir.path(), &killed, &INIT);
    assert!(later.status.success(), "{}", stderr(&later));
    assert!(run(dir.path(), &killed, &["snapshot", "list"]).status.success());
}

#[test]
fn init_never_touches_the_users_files_where_silo_keeps_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (place, sub, file) in [("user-tmp", "tmp", "draft.txt"), ("busy", "keys", "notes")] {
        let at = dir.path().join(place);
        std::fs::create_dir_all(at.join(sub)).expect("mkdir");
        std::fs::write(at.join(sub).join(file), b"mine").expect("write");
        age_files(&at, 120);
        assert_ne!(run(dir.path(), &at, &INIT).status.code(), Some(0), "{place}");
        assert_eq!(std::fs::read(at.join(sub).join(file)).expect("read"), b"mine", "{place}");
    }
}

#[test]
fn a_mount_points_lost_and_found_is_not_the_repositorys_business() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = dir.path().join("mount");
    std::fs::create_dir_all(mount.join("lost+found")).expect("mkdir");
    let out = run(dir.path(), &mount, &INIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run(dir.path(), &mount, &["check"]).status.success());
}

#[test]
fn gc_plans_on_a_repository_it_cannot_write_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    assert!(run(dir.path(), &repo, &INIT).status.success());
    // tmp/ is a file, so no clock probe fits: the plan uses this machine's clock.
    std::fs::remove_dir_all(repo.join("tmp")).ok();
    std::fs::write(repo.join("tmp"), b"").expect("write");
    let dry = run(dir.path(), &repo, &["gc", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
}

#[test]
fn a_gc_safety_age_beyond_the_clock_is_refused_at_init() {
    let big = TestRepo::uninitialised();
    for value in ["10000000000000", "18446744073709551615"] {
        let out = big.run(&["init", "--kdf-memory", "64", "--gc-safety-age", value], b"");
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{value}: {}", stderr(&out));
    }
}

#[test]
fn url_like_locations_without_a_known_scheme_are_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    for location in
        ["http://127.0.0.1:9/bucket/prefix", "https://s3.example.com/b", "s3://bucket/prefix", "sftp:host:/x"]
    {
        let out = Command::new(silo_bin())
            .args(["init", "--kdf-memory", "64"])
            .current_dir(dir.path())
            .env("SILO_REPO", location)
            .env("SILO_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .expect("run silo");
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{location}: {}", stderr(&out));
        assert!(std::fs::read_dir(dir.path()).expect("read dir").next().is_none(), "{location}: nothing created");
        if location.starts_with("http") {
            assert!(stderr(&out).contains(&format!("s3:{location}")), "{}", stderr(&out));
        }
    }
}

#[test]
fn a_directory_whose_name_has_a_colon_is_reachable_as_dot_slash_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(silo_bin())
        .args(INIT)
        .current_dir(dir.path())
        .env("SILO_REPO", "./backups:2026")
        .env("SILO_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("run silo");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("backups:2026").join("config").is_file());
}
