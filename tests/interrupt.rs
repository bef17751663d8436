//! I9 interrupted is clean: SIGINT or SIGTERM during a create removes its session object and commits nothing;
//! during a restore to a file, the exit code says what is on disk.

mod util;

use std::process::Stdio;
use util::*;

#[test]
fn ctrl_c_during_create_removes_the_session_and_commits_nothing() {
    let repo = TestRepo::init();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let b = format!("b=touch {}; exec sleep 300", marker.display());
    for (sig, when) in [(libc::SIGINT, "session"), (libc::SIGTERM, "session"), (libc::SIGINT, "commands")] {
        let _ = std::fs::remove_file(&marker);
        let mut child = repo
            .cmd(&["snapshot", "create", "--name", "db", "--stream", "a=cat", "--stream", &b])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // As soon as the session exists, and once the commands run (the interrupt kills them; the streams
        // then end short, and what they had must not be committed).
        if when == "session" {
            wait_until("1 objects in sessions/", || !repo.objects("sessions").is_empty());
        } else {
            wait_until("the stream command to start", || marker.exists());
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(128 + sig), "{}", stderr(&out));
        let left = repo.objects("sessions");
        assert!(left.is_empty(), "the session object is removed: {left:?}; {}", stderr(&out));
        assert_eq!(repo.snapshot_count(), 0, "{}", stderr(&out));
    }
}

/// I9 (issue 34, item 8): SIGTERM at any moment of `restore -o FILE` leaves what the exit says: exit 0 and
/// the whole file, or 143 and no file (never the whole file with 143). The kill points sweep the whole run,
/// its last moments included, where the rename happens.
#[test]
fn sigterm_during_restore_to_a_file_exits_as_what_is_on_disk() {
    let repo = TestRepo::init();
    let data = dump(8 << 20, 76);
    repo.create("db", &data);
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x5167_u64;
    let (mut whole, mut stopped) = (0, 0);
    for round in 0..24 {
        let out = dir.path().join(format!("restored-{round}"));
        let mut c = repo.cmd(&["snapshot", "restore", "db:latest", "--output", out.to_str().unwrap()]);
        c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let child = c.spawn().unwrap();
        let at = util::xorshift(&mut state) % 400;
        std::thread::sleep(std::time::Duration::from_millis(at));
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait_with_output().unwrap().status;
        match status.code() {
            Some(0) => {
                assert_eq!(std::fs::read(&out).unwrap(), data, "round {round} ({at} ms): exit 0 with the whole file");
                whole += 1;
            }
            // 143, or killed by the signal itself before silo installed its handler.
            Some(143) | None => {
                use std::os::unix::process::ExitStatusExt;
                assert!(status.code().is_some() || status.signal() == Some(libc::SIGTERM), "{status:?}");
                assert!(!out.exists(), "round {round} ({at} ms): exit 143 yet {} is there", out.display());
                stopped += 1;
            }
            other => panic!("round {round} ({at} ms): exit {other:?}"),
        }
        let partial: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".silo-partial"))
            .collect();
        assert!(partial.is_empty(), "round {round}: a partial file was left");
    }
    eprintln!("{whole} rounds finished whole, {stopped} stopped");
}
