//! The local index cache (design.md §6, I5): a `--cache-dir` holding the user's files is never deleted, a
//! directory silo did not mark is left alone, a corrupt one silo marked is rebuilt, and an unusable one falls
//! back to a private cache for the run.

mod util;

use util::*;

#[test]
fn a_cache_dir_with_the_users_files_is_never_deleted() {
    let repo = TestRepo::init();
    let mine = repo.dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"precious").unwrap();
    std::fs::write(mine.join("CURRENT"), b"not a rocksdb").unwrap();
    let mine_s = mine.to_str().unwrap();
    let data = dump(1 << 20, 20);
    repo.ok(&["--cache-dir", mine_s, "snapshot", "create", "--name", "db"], &data);
    assert!(repo.ok(&["--cache-dir", mine_s, "snapshot", "restore", "db:latest"], b"").stdout == data);
    assert_eq!(std::fs::read(mine.join("notes.txt")).unwrap(), b"precious");
    assert_eq!(std::fs::read(mine.join("CURRENT")).unwrap(), b"not a rocksdb");
    // The cache itself lives in a per-repository subdirectory silo marked as its own.
    let sub: Vec<_> = std::fs::read_dir(&mine).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
    assert_eq!(sub.len(), 1);
    assert!(sub[0].path().join("CACHEDIR.TAG").is_file());

    // A per-repository directory silo did not mark, full of the user's files: left alone, a private
    // cache is used for the run.
    let theirs = repo.dir.path().join("theirs");
    let sub_name = sub[0].file_name();
    std::fs::create_dir_all(theirs.join(&sub_name)).unwrap();
    std::fs::write(theirs.join(&sub_name).join("LOCK"), b"user data").unwrap();
    std::fs::write(theirs.join(&sub_name).join("CURRENT"), b"user data").unwrap();
    let theirs_s = theirs.to_str().unwrap();
    assert!(repo.ok(&["--cache-dir", theirs_s, "snapshot", "restore", "db:latest"], b"").stdout == data);
    assert_eq!(std::fs::read(theirs.join(&sub_name).join("LOCK")).unwrap(), b"user data");
    assert!(!theirs.join(&sub_name).join("CACHEDIR.TAG").exists());

    // A corrupt cache silo marked is rebuilt.
    for e in std::fs::read_dir(sub[0].path()).unwrap().flatten() {
        if e.file_name() != "CACHEDIR.TAG" && e.path().is_file() {
            std::fs::write(e.path(), b"garbage").unwrap();
        }
    }
    assert!(repo.ok(&["--cache-dir", mine_s, "snapshot", "restore", "db:latest"], b"").stdout == data);
    assert_eq!(std::fs::read(mine.join("notes.txt")).unwrap(), b"precious");
}

#[test]
fn an_unusable_cache_falls_back_to_a_private_one() {
    let repo = TestRepo::init();
    let data = dump(1 << 20, 21);
    repo.create("db", &data);
    let file = repo.dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = repo.ok(&["--cache-dir", file.to_str().unwrap(), "snapshot", "restore", "db:latest"], b"");
    assert!(out.stdout == data);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
