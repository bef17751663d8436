//! Where silo writes its answer (I7): `--output` replaces only what silo created, through a temporary name
//! beside it; a reader that went away (`| head`) ends it quietly (141), a full disk under stdout after a commit
//! says the snapshot was committed (exit 9), and a closed stdout is refused before anything is restored.

mod util;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::{Command, Stdio};
use util::*;

#[test]
fn output_never_replaces_what_silo_did_not_create() {
    let repo = TestRepo::init();
    let data = dump(1 << 20, 30);
    repo.create("db", &data);
    let dir = repo.dir.path();
    let restore_to =
        |target: &std::path::Path| repo.run(&["snapshot", "restore", "db:latest", "-o", target.to_str().unwrap()], b"");

    // keep.sql.partial of the user's is untouched; keep.sql is created 0600.
    std::fs::write(dir.join("keep.sql.partial"), b"mine").unwrap();
    assert!(restore_to(&dir.join("keep.sql")).status.success());
    assert_eq!(std::fs::read(dir.join("keep.sql.partial")).unwrap(), b"mine");
    assert!(std::fs::read(dir.join("keep.sql")).unwrap() == data);
    assert_eq!(std::fs::metadata(dir.join("keep.sql")).unwrap().permissions().mode() & 0o777, 0o600);

    // An existing file keeps its mode (0600 stays 0600, 0640 stays 0640).
    for mode in [0o600, 0o640] {
        let f = dir.join(format!("mode-{mode:o}.sql"));
        std::fs::write(&f, b"old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(restore_to(&f).status.success());
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, mode);
        assert!(std::fs::read(&f).unwrap() == data);
    }

    // A symbolic link stays a link; the file it points to gets the data.
    std::fs::write(dir.join("real.sql"), b"old").unwrap();
    std::os::unix::fs::symlink(dir.join("real.sql"), dir.join("link.sql")).unwrap();
    assert!(restore_to(&dir.join("link.sql")).status.success());
    assert!(std::fs::symlink_metadata(dir.join("link.sql")).unwrap().file_type().is_symlink());
    assert!(std::fs::read(dir.join("real.sql")).unwrap() == data);

    // Character devices and FIFOs are written through, never replaced.
    let null = std::path::Path::new("/dev/null");
    assert!(restore_to(null).status.success());
    assert!(std::fs::metadata(null).unwrap().file_type().is_char_device(), "/dev/null is still a device");
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    assert!(restore_to(&fifo).status.success());
    assert!(reader.join().unwrap() == data);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // A directory is refused with a usage error; no temporary file is left anywhere.
    let refused = restore_to(dir);
    assert_eq!(refused.status.code(), Some(EXIT_USAGE), "{}", stderr(&refused));
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("silo-partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn closed_and_full_outputs_end_cleanly_without_panics() {
    let repo = TestRepo::init();
    for i in 0..3 {
        repo.create("db", &dump(64 << 10, 50 + i));
    }
    // The reader is gone before silo writes its answer (`| head` that already exited).
    for args in [vec!["snapshot", "list"], vec!["check"], vec!["stats"], vec!["--json", "snapshot", "list"]] {
        let mut child = repo.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    // A full disk under stdout after the commit: the snapshot exists, the error says so, and exit 9.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut cmd = repo.cmd(&["snapshot", "create", "--name", "full"]);
    cmd.stdin(Stdio::piped()).stdout(full).stderr(Stdio::piped());
    let out = run_with_input_cmd(&mut cmd, &dump(64 << 10, 60));
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(stderr(&out).contains("was committed"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    assert!(repo.restore("full:latest") == dump(64 << 10, 60));
    // Restore with stdout closed: refused, nothing written anywhere.
    let mut closed = Command::new("sh");
    for (k, v) in repo.cmd(&[]).get_envs() {
        match v {
            Some(v) => closed.env(k, v),
            None => closed.env_remove(k),
        };
    }
    closed.args(["-c", "exec \"$0\" snapshot restore db:latest >&-", silo_bin()]);
    let out = closed.output().unwrap();
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard output is closed"), "{}", stderr(&out));
}

fn run_with_input_cmd(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}
