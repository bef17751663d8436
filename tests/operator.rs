//! The operator at 3 a.m. (issue 30), through the real binary: the messages that guide a tired person to the
//! right command say the right thing — `silo restore` points at `snapshot restore` first, a mistyped
//! repository path is never answered with "run `silo init`", and a wrong password says where it came from
//! (never what it was).

mod util;

use util::*;

#[test]
fn silo_restore_points_at_snapshot_restore_first() {
    let repo = TestRepo::init();
    let out = repo.run(&["restore", "shop:latest"], b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE));
    let err = stderr(&out);
    let (plain, live) = (err.find("silo snapshot restore"), err.find("silo restore-database"));
    assert!(plain.is_some() && live.is_some() && plain < live, "{err}");
}

#[test]
fn a_mistyped_repository_path_is_never_answered_with_init() {
    let repo = TestRepo::init();
    let mut c = repo.cmd(&["snapshot", "restore", "shop:latest"]);
    c.env("SILO_REPO", repo.dir.path().join("rpeo"));
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(!stderr(&out).contains("silo init"), "{}", stderr(&out));
    assert!(stderr(&out).contains("SILO_REPO"), "{}", stderr(&out));
}

#[test]
fn a_wrong_password_says_where_it_came_from() {
    let repo = TestRepo::init();
    let mut c = repo.cmd(&["snapshot", "list"]);
    c.env("SILO_PASSWORD", "not the password");
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_AUTH));
    assert!(stderr(&out).contains("SILO_PASSWORD") && !stderr(&out).contains("not the password"), "{}", stderr(&out));

    let file = repo.dir.path().join("pw");
    std::fs::write(&file, "also wrong\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut c = repo.cmd(&["--password-file", file.to_str().unwrap(), "snapshot", "list"]);
    c.env_remove("SILO_PASSWORD");
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_AUTH));
    let err = stderr(&out);
    assert!(err.contains(file.to_str().unwrap()) && !err.contains("also wrong"), "{err}");
}
