//! Faults between silo and a real Garage (issue 19), injected by a proxy on loopback (util/faultproxy.rs):
//! outages (connections refused), 503 bursts, answers cut mid-body on every request kind, bytes flipped in
//! transit, a request that never answers, a store that stays down, SIGTERM mid-restore. Every committed
//! snapshot is verified by a cold restore and `check --read-data`; no restore ever exits 0 with wrong bytes.

mod util;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::faultproxy::{Fault, FaultProxy, Rule};
use util::garage::Garage;
use util::*;

fn garage() -> Option<&'static Garage> {
    util::garage::shared()
}

/// A fresh repository on Garage, reached through its own fault proxy.
struct Faulty {
    proxy: FaultProxy,
    location: String,
    dir: tempfile::TempDir,
    garage: &'static Garage,
}

impl Faulty {
    fn new(g: &'static Garage) -> Faulty {
        Faulty::under(g, &random_name())
    }

    /// A fresh repository under the key prefix `prefix`.
    fn under(g: &'static Garage, prefix: &str) -> Faulty {
        let proxy = FaultProxy::start(g.nodes[0].s3_port);
        let location = proxy.location(&g.bucket, prefix);
        let f = Faulty { proxy, location, dir: tempfile::tempdir().expect("tempdir"), garage: g };
        let out = f.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"], b"");
        assert!(out.status.success(), "{}", stderr(&out));
        f
    }

    /// A fresh cache each time: every command starts cold, as on another machine.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(silo_bin());
        c.args(args)
            .envs(self.garage.env())
            .env("SILO_REPO", &self.location)
            .env("SILO_PASSWORD", PASSWORD)
            .env("SILO_CACHE_DIR", self.dir.path().join(format!("cache-{}", random_name())))
            .env("SILO_LOG", "warn");
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_input(self.cmd(args), stdin)
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.run(args, stdin);
        assert!(out.status.success(), "silo {args:?}: {}", stderr(&out));
        out
    }

    /// Restores `spec` (no faults) and checks every byte, then `check --read-data`.
    fn verify(&self, spec: &str, data: &[u8]) {
        self.proxy.clear();
        let out = self.ok(&["snapshot", "restore", spec], b"");
        assert!(out.stdout == data, "{spec}: restored {} bytes, stored {}", out.stdout.len(), data.len());
        let check = self.run(&["check", "--read-data"], b"");
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    }
}

#[test]
fn outages_and_503_bursts_of_eight_seconds_are_outlasted() {
    let Some(g) = garage() else { return };
    let f = Faulty::new(g);
    let data = dump(16 << 20, 1);
    f.proxy.add(Rule::for_time(Fault::Refuse, Duration::from_secs(8)));
    let out = f.ok(&["snapshot", "create", "--name", "shop"], &data);
    assert!(stderr(&out).contains("retry"), "the waits are said: {}", stderr(&out));
    f.verify("shop:latest", &data);

    let more = dump(16 << 20, 2);
    f.proxy.add(Rule::for_time(Fault::SlowDown, Duration::from_secs(8)));
    f.ok(&["snapshot", "create", "--name", "shop"], &more);
    assert!(f.proxy.applied() >= 5, "503s were injected: {}", f.proxy.applied());
    f.verify("shop:latest", &more);

    // The report counts every attempt the store saw: three pack uploads answered 503 are three retries.
    f.proxy.add(Rule::times(Fault::SlowDown, 3).on("PUT").at("packs/"));
    let report: serde_json::Value =
        serde_json::from_slice(&f.ok(&["--json", "snapshot", "create", "--name", "other"], &dump(4 << 20, 9)).stdout)
            .unwrap();
    assert_eq!(report["requests"]["retries"], 3, "{report}");

    f.proxy.add(Rule::for_time(Fault::Refuse, Duration::from_secs(8)));
    let out = f.ok(&["snapshot", "restore", "shop:latest~1"], b"");
    assert!(out.stdout == data, "restore through an outage");
}

#[test]
fn answers_cut_mid_body_are_retried_for_every_request_kind() {
    let Some(g) = garage() else { return };
    // A status-like number in every URL: a cut is transient whatever the text of its error names.
    let f = Faulty::under(g, &format!("{}-416", random_name()));
    let data = dump(12 << 20, 3);
    for method in ["LIST", "GET", "PUT", "DELETE", "HEAD"] {
        f.proxy.add(Rule::times(Fault::CutBody, 2).on(method));
    }
    f.ok(&["snapshot", "create", "--name", "db"], &data);
    f.ok(&["snapshot", "create", "--name", "db"], &dump(12 << 20, 4));
    for method in ["LIST", "GET"] {
        f.proxy.add(Rule::times(Fault::CutBody, 3).on(method));
    }
    let out = f.ok(&["snapshot", "restore", "db:latest~1"], b"");
    assert!(out.stdout == data);
    f.proxy.add(Rule::times(Fault::CutBody, 3).on("LIST"));
    f.ok(&["forget", "--keep-last", "1"], b"");
    f.proxy.add(Rule::times(Fault::CutBody, 3));
    f.ok(&["gc", "--safety", "none"], b"");
    f.proxy.add(Rule::times(Fault::CutBody, 3));
    f.ok(&["check"], b"");
    assert!(f.proxy.applied() >= 10, "faults were injected: {}", f.proxy.applied());
    f.verify("db:latest", &dump(12 << 20, 4));
}

#[test]
fn bytes_flipped_in_transit_are_fetched_again_not_called_damage() {
    let Some(g) = garage() else { return };
    let f = Faulty::new(g);
    let data = dump(6 << 20, 5);
    f.ok(&["snapshot", "create", "--name", "shop"], &data);
    f.proxy.add(Rule::times(Fault::FlipByte, 1).on("GET").at("snapshots%2F"));
    f.proxy.add(Rule::times(Fault::FlipByte, 1).on("GET").at("snapshots/"));
    f.proxy.add(Rule::times(Fault::FlipByte, 1).on("GET").at("packs/"));
    f.proxy.add(Rule::times(Fault::FlipByte, 1).on("GET").at("index/"));
    let out = f.ok(&["snapshot", "restore", "shop:latest"], b"");
    assert!(out.stdout == data);
    assert!(f.proxy.applied() >= 2, "flips were injected: {}", f.proxy.applied());
}

#[test]
fn a_request_that_never_answers_times_out_says_so_and_is_retried() {
    let Some(g) = garage() else { return };
    // The timeout's text carries the URL; "416" in it (as in pack 268e3416...) once read as the store's
    // "416 Range Not Satisfiable", and the stall was reported as a damaged repository.
    let f = Faulty::under(g, &format!("{}-416", random_name()));
    let data = dump(4 << 20, 6);
    f.ok(&["snapshot", "create", "--name", "shop"], &data);
    f.proxy.add(Rule::times(Fault::Hold(Duration::from_secs(300)), 1).on("GET").at("packs/"));
    let started = Instant::now();
    let out = f.ok(&["snapshot", "restore", "shop:latest"], b"");
    assert!(out.stdout == data);
    assert!(stderr(&out).contains("still waiting"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(240), "a stalled request must not wait without limit");
}

#[test]
fn a_store_that_stays_down_fails_within_the_budget_with_exit_3() {
    let Some(g) = garage() else { return };
    let f = Faulty::new(g);
    f.ok(&["snapshot", "create", "--name", "shop"], &dump(1 << 20, 7));
    f.proxy.add(Rule::for_time(Fault::Refuse, Duration::from_secs(600)));
    let mut c = f.cmd(&["snapshot", "restore", "shop:latest"]);
    c.env("SILO_RETRY_SECONDS", "5");
    let started = Instant::now();
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(stderr(&out).contains("gave up"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(started.elapsed() < Duration::from_secs(120), "{:?}", started.elapsed());
}

impl Faulty {
    /// The names of the objects under `prefix`, listed past the proxy.
    fn objects(&self, prefix: &str) -> Vec<String> {
        use silo::backend::ReadBackend;
        let backend = silo::backend::s3::S3Backend::connect(
            &self.garage.location(0, self.location.rsplit('/').next().expect("prefix")),
            &self.garage.credentials(),
        )
        .expect("backend");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(backend.list(prefix)).expect("list").into_iter().map(|o| o.name).collect()
    }
}

#[test]
fn an_interrupt_while_the_session_is_slow_to_remove_commits_nothing() {
    let Some(g) = garage() else { return };
    let f = Faulty::new(g);
    // Removing the session object takes 3 s (a delete is a multi-object delete: a POST naming the keys in
    // its body). The create's own thread has that long to go on after the interrupt killed its commands,
    // as it once did: their streams ended without an error of their own, and it committed what they had.
    f.proxy.add(
        Rule::for_time(Fault::Delay(Duration::from_secs(3)), Duration::from_secs(120))
            .on("POST")
            .with_body("sessions/"),
    );
    let marker = f.dir.path().join("started");
    let b = format!("b=touch {}; exec sleep 300", marker.display());
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let _ = std::fs::remove_file(&marker);
        let child = f
            .cmd(&["snapshot", "create", "--name", "db", "--stream", "a=sleep 300", "--stream", &b])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The commands run (they start after the session object is written), so the interrupt stops them.
        wait_until("the stream command to start", || marker.exists());
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(128 + sig), "{}", stderr(&out));
        assert!(f.objects("snapshots/").is_empty(), "nothing committed: {}", stderr(&out));
        assert!(f.objects("sessions/").is_empty(), "the session object is removed: {}", stderr(&out));
    }
    f.proxy.clear();
    let data = dump(1 << 20, 11);
    f.ok(&["snapshot", "create", "--name", "db"], &data);
    f.verify("db:latest", &data);
}

#[test]
fn sigterm_mid_restore_removes_the_partial_output() {
    let Some(g) = garage() else { return };
    let f = Faulty::new(g);
    let data = dump(8 << 20, 8);
    f.ok(&["snapshot", "create", "--name", "shop"], &data);
    // Slow pack reads: the restore is still running when it is told to stop.
    f.proxy.add(Rule::for_time(Fault::Delay(Duration::from_secs(2)), Duration::from_secs(60)).on("GET").at("packs/"));
    let out_dir = f.dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let target = out_dir.join("out.sql");
    let child = f
        .cmd(&["snapshot", "restore", "shop:latest", "-o", target.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the restore to start writing", || std::fs::read_dir(&out_dir).unwrap().count() > 0);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0, "no partial output is left");
}

#[test]
fn garage_killed_and_restarted_or_frozen_mid_command_is_survived() {
    // A Garage of its own: this test stops it, which the other tests must not see.
    if util::garage::binary().is_err() {
        util::services::require("Garage (S3)", Err("no garage binary".into()));
        return;
    }
    let mut g = match Garage::start(1, 1) {
        Ok(g) => g,
        Err(e) => {
            util::services::require("Garage (S3)", Err(e));
            return;
        }
    };
    let location = g.location(0, &random_name());
    let dir = tempfile::tempdir().unwrap();
    let cmd = |g: &Garage, args: &[&str]| {
        let mut c = Command::new(silo_bin());
        c.args(args)
            .envs(g.env())
            .env("SILO_REPO", &location)
            .env("SILO_PASSWORD", PASSWORD)
            .env("SILO_CACHE_DIR", dir.path().join(format!("cache-{}", random_name())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let out = run_with_input(cmd(&g, &["init", "--kdf-memory", "64", "--kdf-iterations", "1"]), b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut stored = Vec::new();
    // Killed for 8 s, killed for 30 s, frozen (SIGSTOP) for 30 s.
    for (round, down) in [(0u64, 8u64), (1, 30), (2, 30)] {
        let data = dump(24 << 20, 40 + round);
        let mut child = cmd(&g, &["snapshot", "create", "--name", "db"]).spawn().unwrap();
        let feeder = {
            let mut input = child.stdin.take().unwrap();
            let data = data.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                for part in data.chunks(1 << 20) {
                    let _ = input.write_all(part);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(500)); // chooses when the store dies; nothing depends on it
        if round < 2 {
            g.kill_node(0);
            std::thread::sleep(Duration::from_secs(down)); // the outage being survived
            g.start_node(0);
        } else {
            g.signal_node(0, libc::SIGSTOP);
            std::thread::sleep(Duration::from_secs(down)); // the freeze being survived
            g.signal_node(0, libc::SIGCONT);
        }
        feeder.join().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "store down {down} s: {}", stderr(&out));
        stored.push((String::from_utf8_lossy(&out.stdout).trim().to_string(), data));
    }
    for (id, data) in &stored {
        let out = run_with_input(cmd(&g, &["snapshot", "restore", id]), b"");
        assert!(out.status.success() && out.stdout == *data, "{id}: {}", stderr(&out));
    }
    let check = run_with_input(cmd(&g, &["check", "--read-data"]), b"");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn the_overall_deadline_stops_a_command_waiting_on_a_frozen_store() {
    let Some(g) = garage() else { return };
    let f = Faulty::new(g);
    f.ok(&["snapshot", "create", "--name", "shop"], &dump(1 << 20, 10));
    f.proxy.add(Rule::for_time(Fault::Hold(Duration::from_secs(300)), Duration::from_secs(300)));
    let started = Instant::now();
    let out = f.run(&["--deadline", "5s", "snapshot", "restore", "shop:latest"], b"");
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(stderr(&out).contains("--deadline"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}

#[test]
fn packs_the_store_refuses_to_delete_stay_marked_until_a_later_gc() {
    // An Object Lock retention (or credentials without delete rights) answers 403 to a DELETE: gc keeps
    // going, reports the packs it could not delete, keeps them marked and indexed, and a later gc deletes them.
    let Some(g) = garage() else { return };
    let f = Faulty::new(g);
    let keep = dump(2 << 20, 31);
    let gone = f.ok(&["snapshot", "create", "--name", "a"], &dump(2 << 20, 30)).stdout;
    f.ok(&["snapshot", "create", "--name", "b"], &keep);
    f.ok(&["forget", String::from_utf8_lossy(&gone).trim()], b"");
    // object_store deletes through the multi-object API (POST ?delete).
    f.proxy.add(Rule::times(Fault::Deny, 1000).on("POST").at("?delete").with_body("/packs/"));
    let out = f.ok(&["--json", "gc", "--safety", "none"], b"");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert!(report["packs_kept_by_store"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["packs_deleted"], 0, "{report}");
    assert!(stderr(&out).contains("refused to delete"), "{}", stderr(&out));
    f.verify("b:latest", &keep);
    // The retention has passed: the next gc deletes them.
    let out = f.ok(&["--json", "gc", "--safety", "none"], b"");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["packs_kept_by_store"], 0, "{report}");
    f.verify("b:latest", &keep);
}
