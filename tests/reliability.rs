//! The data-loss and misleading-outcome paths an adversarial pass found (issue 13), each through the real
//! binary: a frozen or clock-skewed writer against gc, empty dumps and policies that keep nothing, and the
//! smaller ones (foreign repositories, killed init, durations, hosts, streams). gc's own recoveries are in
//! gc.rs, the cache's in cache.rs, outputs in output.rs, interrupts in interrupt.rs, secrets in security.rs.
//! Where time must move (gc hours later, a writer whose clock is off) that side runs in-process against the
//! library with its clock moved (tests/util/inproc.rs); frozen writers are real processes (SIGSTOP).

mod util;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};
use util::*;

use util::inproc::gc_at;

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len / 8).flat_map(|_| xorshift(&mut state).to_le_bytes()).collect()
}

/// Waits until `dir` of the repository holds at least `n` objects.
fn wait_for_objects(repo: &TestRepo, dir: &str, n: usize) {
    wait_until(&format!("{n} objects in {dir}/"), || repo.objects(dir).len() >= n);
}

/// `snapshot create --name NAME` through the binary (its clock right), fed through a pipe the caller holds.
fn spawn_writer(repo: &TestRepo, name: &str) -> (std::process::Child, std::process::ChildStdin) {
    let mut writer = repo
        .cmd(&["snapshot", "create", "--name", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn create");
    let input = writer.stdin.take().expect("stdin");
    (writer, input)
}

/// A writer whose clock is `skew` seconds off (the repository's backend clock is right): the library's
/// create in a thread of its own, fed through a pipe the caller holds.
struct SkewedWriter {
    thread: std::thread::JoinHandle<Result<String, silo::Error>>,
}

/// How a writer ended: the committed id, or the error it refused with and the exit code silo gives it.
struct Outcome {
    committed: Option<String>,
    code: Option<i32>,
    message: String,
}

impl SkewedWriter {
    fn spawn(repo: &TestRepo, name: &str, skew: i64) -> (SkewedWriter, std::io::PipeWriter) {
        use silo::inputs::{SharedReader, Source, StreamSpec};
        let (reader, input) = std::io::pipe().expect("pipe");
        let backend = util::inproc::backend_of(repo);
        let (name, cache) = (name.to_string(), repo.cache());
        let thread = std::thread::spawn(move || {
            let rt = util::inproc::runtime();
            let r = rt.block_on(silo::repo::Repository::open(backend, PASSWORD.as_bytes(), Some(cache)))?;
            let r = r.with_clock(std::sync::Arc::new(silo::clock::OffsetClock(skew * 1_000_000)));
            let source = Source::Reader { reader: SharedReader::new(reader), command: None, exit_status: None };
            let options = silo::repo::write::CreateOptions {
                name,
                host: "test".into(),
                tags: vec![],
                streams: vec![StreamSpec { name: "data".into(), source }],
                progress: Default::default(),
                warn: |_| {},
                times: None,
                allow_empty: false,
                min_size: None,
                validation: Default::default(),
                deltas: true,
            };
            Ok(r.create_snapshot(rt.handle(), &options)?.id.to_hex())
        });
        (SkewedWriter { thread }, input)
    }

    fn wait(self) -> Outcome {
        match self.thread.join().expect("writer thread") {
            Ok(id) => Outcome { committed: Some(id), code: Some(0), message: String::new() },
            Err(e) => {
                let code = match e {
                    silo::Error::SessionExpired { .. } | silo::Error::GcBusy { .. } => Some(6),
                    _ => Some(1),
                };
                Outcome { committed: None, code, message: e.to_string() }
            }
        }
    }
}

impl From<std::process::Output> for Outcome {
    fn from(out: std::process::Output) -> Self {
        let committed = out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string());
        Outcome { committed, code: out.status.code(), message: stderr(&out) }
    }
}

/// Either the writer committed a snapshot that restores byte for byte, or it failed, said that nothing was
/// committed, and left no snapshot behind. Never a committed snapshot that cannot be restored.
fn assert_committed_means_restorable(repo: &TestRepo, out: &Outcome, data: &[u8]) {
    if let Some(id) = &out.committed {
        assert!(repo.restore(id) == data, "committed snapshot {id} does not restore");
    } else {
        assert_eq!(out.code, Some(6), "{}", out.message);
        assert!(out.message.contains("nothing was committed"), "{}", out.message);
        assert_eq!(repo.snapshot_count(), 0, "a failed writer left a snapshot");
    }
    let check = repo.run(&["check"], b"");
    assert!(check.status.success(), "check after the writer: {}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn a_writer_frozen_while_gc_deletes_its_packs_never_commits_an_unrestorable_snapshot() {
    let repo = TestRepo::init_with(&["--gc-safety-age", "1", "--gc-grace-period", "1", "--pack-size", "1048576"]);
    // silo reads a pipe in 8 MiB windows: 12 MiB in, the first window is cut and its packs uploaded.
    let data = random_bytes(20 << 20, 1);
    let (writer, mut input) = spawn_writer(&repo, "frozen");
    input.write_all(&data[..12 << 20]).expect("first part");
    wait_for_objects(&repo, "packs", 2);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(writer.id() as i32, libc::SIGSTOP) };
    // Seen from gc, the writer has been silent for 1000 s (dead): its unindexed packs are garbage.
    let mark = gc_at(&repo, 1000);
    assert!(mark["packs_marked"].as_u64().unwrap() >= 2, "{mark}");
    let sweep = gc_at(&repo, 1002);
    assert!(sweep["packs_deleted"].as_u64().unwrap() >= 2, "{sweep}");
    // SAFETY: as above.
    unsafe { libc::kill(writer.id() as i32, libc::SIGCONT) };
    input.write_all(&data[12 << 20..]).expect("rest");
    drop(input);
    let out = Outcome::from(writer.wait_with_output().expect("wait"));
    assert!(out.committed.is_none(), "its packs are gone: committing would be a lie");
    assert_committed_means_restorable(&repo, &out, &data);
    // The next gc finishes the job: the late writer's index entries for deleted packs go, check stays clean.
    gc_at(&repo, 3000);
    let check = repo.run(&["check"], b"");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    // And the data can be stored again.
    let again = repo.create("frozen", &data);
    assert!(repo.restore(&again) == data);
}

#[test]
fn writers_with_fast_or_slow_clocks_are_protected_by_the_repositorys_clock() {
    for skew in [60i64, -900] {
        let repo = TestRepo::init_with(&["--gc-safety-age", "1", "--gc-grace-period", "1", "--pack-size", "1048576"]);
        let data = random_bytes(24 << 20, 2 + skew.unsigned_abs());
        let (writer, mut input) = SkewedWriter::spawn(&repo, "skewed", skew);
        // Feed in parts while gc runs at short times with a correct clock, each run past the last's grace.
        let mut gc_runs = 0;
        for part in data.chunks(1 << 20) {
            input.write_all(part).expect("feed");
            gc_at(&repo, 2 * gc_runs);
            gc_runs += 1;
        }
        drop(input);
        let out = writer.wait();
        assert!(out.committed.is_some(), "clock {skew:+} s: the writer's packs were in use: {}", out.message);
        assert_committed_means_restorable(&repo, &out, &data);
        gc_at(&repo, 2 * gc_runs + 10);
        assert!(repo.restore("skewed:latest") == data, "clock {skew:+} s: restorable after more gc");
    }
}

#[test]
fn concurrent_writers_and_gc_at_short_times_with_frozen_and_skewed_writers() {
    // Many rounds: each a writer (clock -900 s, 0 or +60 s) whose stream repeats half of the previous
    // round's (so it deduplicates against packs gc may be removing), fed in two parts with gc runs at 1 s
    // times in between — in a quarter of the rounds with the writer stopped and gc's clock far ahead (a
    // frozen writer whose session gc sees as dead). Frozen writers and those with a right clock are real
    // processes; a skewed one runs the library in-process with its clock moved.
    let repo = TestRepo::init_with(&["--gc-safety-age", "1", "--gc-grace-period", "1", "--pack-size", "1048576"]);
    let (mut committed, mut refused, mut frozen, mut frozen_refused) = (0, 0, 0, 0);
    let mut seed = 0x5eed_u64;
    let mut previous = random_bytes(14 << 20, 99);
    const ROUNDS: u64 = 200;
    for round in 0..ROUNDS {
        let mut skew = [-900i64, 0, 60][(xorshift(&mut seed) % 3) as usize];
        let freeze = xorshift(&mut seed).is_multiple_of(4);
        if freeze {
            skew = 0; // a process; its clock is irrelevant once gc's is 1000 s ahead
        }
        // New data first: silo holds the last, partial batch of a window until the next window is read, so
        // the first 8 MiB must hold more than a pack of new data for a pack to be uploaded before the freeze.
        let fresh = random_bytes(8 << 20, 100 + round);
        let mut data = fresh[..4 << 20].to_vec();
        data.extend_from_slice(&previous[4 << 20..10 << 20]);
        data.extend_from_slice(&fresh[4 << 20..]);
        let packs_before = repo.objects("packs").len();
        let (mut writer, mut input): (RoundWriter, Box<dyn Write>) = if skew == 0 {
            let (child, input) = spawn_writer(&repo, "w");
            (RoundWriter::Process(child), Box::new(input))
        } else {
            let (thread, input) = SkewedWriter::spawn(&repo, "w", skew);
            (RoundWriter::InProcess(thread), Box::new(input))
        };
        input.write_all(&data[..10 << 20]).expect("feed");
        let mut ended = false;
        wait_until(&format!("round {round}: a pack uploaded ({packs_before} before)"), || {
            ended = writer.ended();
            ended || repo.objects("packs").len() > packs_before
        });
        if ended && repo.objects("packs").len() <= packs_before {
            drop(input);
            panic!("round {round}: the writer ended early: {}", writer.wait().message);
        }
        // The second gc run's clock is 2 s ahead of the first's (past its grace); for a frozen writer both are
        // 1000 s ahead (as if it had been suspended for that long while gc ran).
        let jump = if freeze {
            frozen += 1;
            writer.signal(libc::SIGSTOP);
            1000
        } else {
            0
        };
        gc_at(&repo, jump);
        gc_at(&repo, jump + 2);
        if freeze {
            writer.signal(libc::SIGCONT);
        }
        input.write_all(&data[10 << 20..]).expect("feed");
        drop(input);
        let out = writer.wait();
        if let Some(id) = &out.committed {
            committed += 1;
            assert!(repo.restore(id) == data, "round {round} (clock {skew:+}, frozen {freeze}): {id} does not restore");
        } else {
            // A frozen writer's own packs were deleted: it must refuse. An unfrozen one may refuse too when
            // a chunk it deduplicated against was dead and gc removed it: gc's clock passed the grace period
            // during its session (2 s here; 24 h by default) — refusing is then the right answer.
            refused += 1;
            if freeze {
                frozen_refused += 1;
            }
            assert_eq!(out.code, Some(6), "round {round}: {}", out.message);
            assert!(out.message.contains("nothing was committed"), "{}", out.message);
        }
        repo.ok(&["forget", "--keep-last", "3"], b"");
        previous = data;
    }
    eprintln!(
        "{ROUNDS} writers with gc at 1 s times ({frozen} frozen): {committed} committed, all restorable; {refused} refused"
    );
    assert_eq!(frozen_refused, frozen, "every frozen writer whose packs gc deleted refuses to commit");
    assert!(committed * 10 >= (ROUNDS as usize - frozen) * 9, "writers that were not frozen commit");
    let check = repo.run(&["check", "--read-data"], b"");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

/// A round's writer: a process (which can be frozen) or a skewed in-process one.
enum RoundWriter {
    Process(std::process::Child),
    InProcess(SkewedWriter),
}

impl RoundWriter {
    fn ended(&mut self) -> bool {
        match self {
            RoundWriter::Process(c) => c.try_wait().expect("try_wait").is_some(),
            RoundWriter::InProcess(w) => w.thread.is_finished(),
        }
    }

    fn signal(&self, sig: i32) {
        if let RoundWriter::Process(c) = self {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    fn wait(self) -> Outcome {
        match self {
            RoundWriter::Process(c) => Outcome::from(c.wait_with_output().expect("wait")),
            RoundWriter::InProcess(w) => w.wait(),
        }
    }
}

#[test]
fn empty_streams_and_policies_that_keep_nothing_are_refused() {
    let repo = TestRepo::init();
    let real = dump(1 << 20, 40);
    repo.create("shop", &real);
    // `pg_dump shop | silo ...` against a server that is down: 0 bytes arrive.
    let empty = repo.run(&["snapshot", "create", "--name", "shop"], b"");
    assert_eq!(empty.status.code(), Some(EXIT_COMMAND_FAILED), "{}", stderr(&empty));
    assert!(stderr(&empty).contains("empty") && stderr(&empty).contains("--allow-empty"), "{}", stderr(&empty));
    let quiet = repo.run(&["snapshot", "create", "--name", "shop", "--", "true"], b"");
    assert_eq!(quiet.status.code(), Some(EXIT_COMMAND_FAILED), "{}", stderr(&quiet));
    assert_eq!(repo.snapshot_count(), 1);

    // Even empty runs that are allowed never push the only real backup out of retention.
    for _ in 0..3 {
        repo.ok(&["snapshot", "create", "--name", "shop", "--allow-empty"], b"");
    }
    repo.ok(&["forget", "--name", "shop", "--keep-last", "3"], b"");
    assert!(repo.restore("shop:latest~3") == real, "the real snapshot survives keep-last 3");
    repo.ok(&["policy", "set", "shop", "--keep-last", "1"], b"");
    repo.ok(&["prune", "--safety", "none"], b"");
    let left = repo.json(&["snapshot", "list"]);
    assert_eq!(left.as_array().unwrap().len(), 2, "{left}");
    assert!(repo.restore("shop:latest~1") == real);

    for args in [
        vec!["forget", "--keep-last", "0"],
        vec!["forget", "--name", "shop", "--keep-daily", "0"],
        vec!["policy", "set", "shop", "--keep-daily", "0"],
    ] {
        let out = repo.run(&args, b"");
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("keeps nothing"), "{}", stderr(&out));
    }
    assert_eq!(repo.snapshot_count(), 2);
}

#[test]
fn a_non_utf8_password_is_a_password() {
    use std::os::unix::ffi::OsStringExt;
    let repo = TestRepo::uninitialised();
    let odd = std::ffi::OsString::from_vec(vec![0xff, b'p', b'w', 0xfe]);
    let mut init = repo.cmd(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]);
    init.env("SILO_PASSWORD", &odd);
    let out = run_with_input(init, b"");
    assert!(out.status.success(), "a non-UTF-8 password is a password: {}", stderr(&out));
    let mut list = repo.cmd(&["snapshot", "list"]);
    list.env("SILO_PASSWORD", &odd);
    assert!(run_with_input(list, b"").status.success());
    assert_eq!(repo.run(&["snapshot", "list"], b"").status.code(), Some(EXIT_AUTH), "another password is wrong");
}

#[test]
fn an_empty_password_file_is_refused() {
    let repo = TestRepo::init();
    let empty = repo.dir.path().join("empty-password");
    std::fs::write(&empty, b"\n").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = repo.cmd(&["--password-file", empty.to_str().unwrap(), "snapshot", "list"]);
    c.env_remove("SILO_PASSWORD");
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
}

#[test]
fn an_ambiguous_duration_is_refused_and_spelt_out_ones_are_taken() {
    let repo = TestRepo::init();
    let out = repo.run(&["check", "--max-age", "30m"], b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE));
    assert!(stderr(&out).contains("ambiguous"), "{}", stderr(&out));
    repo.create("db", b"x");
    assert!(repo.run(&["check", "--max-age", "30min"], b"").status.success());
    assert!(repo.run(&["forget", "--keep-within", "1y6mo", "--dry-run"], b"").status.success());
}

#[test]
fn a_host_name_with_control_characters_or_10k_long_is_refused() {
    let repo = TestRepo::init();
    for host in ["a\nb", "\x1b[31mred", &"h".repeat(10_000)] {
        let out = repo.run(&["snapshot", "create", "--name", "db", "--host", host], b"data");
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{host:?}");
    }
}

#[test]
fn a_failed_drill_is_a_failed_drill_not_a_failed_snapshot() {
    let repo = TestRepo::init();
    repo.create("db", b"x");
    let drill = repo.run(&["drill", "db:latest", "--", "sh", "-c", "cat >/dev/null; exit 3"], b"");
    assert_eq!(drill.status.code(), Some(EXIT_COMMAND_FAILED));
    assert!(!stderr(&drill).contains("no snapshot was written"), "{}", stderr(&drill));
    assert!(stderr(&drill).contains("drill failed"), "{}", stderr(&drill));
}

#[test]
fn a_failing_stream_stops_the_others_at_once_and_background_children_are_not_waited_for() {
    let repo = TestRepo::init();
    let started = Instant::now();
    let out = repo.run(
        &["snapshot", "create", "--name", "db", "--stream", "a=sleep 0.2; exit 1", "--stream", "b=sleep 300 | cat"],
        b"",
    );
    assert_eq!(out.status.code(), Some(EXIT_COMMAND_FAILED), "{}", stderr(&out));
    assert!(stderr(&out).contains("sleep 0.2; exit 1"), "the failing stream is the one named: {}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60), "stream b was not stopped: {:?}", started.elapsed());
    assert_eq!(repo.snapshot_count(), 0);

    let started = Instant::now();
    let out =
        repo.run(&["snapshot", "create", "--name", "db", "--", "sh", "-c", "echo d; sleep 120 >/dev/null &"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60), "waited for a background child: {:?}", started.elapsed());
    assert_eq!(repo.restore("db:latest"), b"d\n");
}

#[test]
fn a_damaged_newest_manifest_is_never_silently_replaced_by_an_older_snapshot() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("flips a byte in a manifest file") {
        return;
    }
    let old = dump(1 << 20, 80);
    repo.create("shop", &old);
    let newest = repo.create("shop", &dump(1 << 20, 81));
    let file = repo.path().join("snapshots").join(&newest);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 1;
    std::fs::write(&file, bytes).unwrap();

    let out = repo.run(&["snapshot", "restore", "shop:latest"], b"");
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "no bytes of the older dump");
    assert!(stderr(&out).contains(&newest), "names the manifest: {}", stderr(&out));

    let fell = repo.run(&["snapshot", "restore", "shop:latest", "--fallback"], b"");
    assert!(fell.status.success(), "{}", stderr(&fell));
    assert!(fell.stdout == old);
    assert!(stderr(&fell).contains("falling back") && stderr(&fell).contains(&newest[..8]), "{}", stderr(&fell));

    let list = String::from_utf8(repo.ok(&["snapshot", "list"], b"").stdout).unwrap();
    assert!(list.contains("UNREADABLE") && list.contains(&newest[..8]), "{list}");
    let json = repo.json(&["snapshot", "list"]);
    assert!(
        json.as_array().unwrap().iter().any(|s| s["id"] == newest.as_str() && s["unreadable"].is_string()),
        "{json}"
    );
    // By id, the older one is still there to take.
    let older = repo.json(&["snapshot", "list"])[0]["id"].as_str().unwrap().to_string();
    assert!(repo.restore(&older) == old);
}
