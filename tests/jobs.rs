//! Issue 15: jobs files, `silo run`, run history, `silo status` — through the real binary, against the
//! local PostgreSQL, MariaDB, SQLite and Redis. Tests that share a database server hold `SERVER` (a
//! `"all"` job lists every database on it, so none may come or go meanwhile).

mod util;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use util::{services, stderr, TestRepo, PASSWORD};

static SERVER: Mutex<()> = Mutex::new(());

fn server() -> std::sync::MutexGuard<'static, ()> {
    SERVER.lock().unwrap_or_else(|p| p.into_inner())
}

/// A main repository, an offsite one and a jobs file beside them.
struct Setup {
    main: TestRepo,
    offsite: TestRepo,
    config: PathBuf,
    password_file: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let (main, offsite) = (TestRepo::init(), TestRepo::init());
        let password_file = main.dir.path().join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = main.dir.path().join("silo.toml");
        Setup { main, offsite, config, password_file }
    }

    /// Writes the jobs file: both repositories, then `jobs` (TOML text).
    fn jobs(&self, jobs: &str) {
        let text = format!(
            "[repository]\nlocation = {:?}\npassword_file = {:?}\n\n[offsite]\nlocation = {:?}\npassword_env = \
             \"SILO_TEST_OFFSITE_PASSWORD\"\n\n{jobs}",
            self.main.location,
            self.password_file.display().to_string(),
            self.offsite.location
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn silo(&self, args: &[&str]) -> Output {
        let mut c = self.main.cmd(args);
        c.env("SILO_CONFIG", &self.config)
            .env_remove("SILO_REPO")
            .env_remove("SILO_PASSWORD")
            .env("SILO_TEST_OFFSITE_PASSWORD", PASSWORD)
            .envs(services::PG_ENV)
            .envs(services::MY_ENV);
        util::run_with_input(c, b"")
    }

    fn json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.silo(&a);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stderr(&out)));
        (out.status.code().unwrap_or(-1), v)
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn run_records(repo: &TestRepo) -> usize {
    repo.objects("runs").len()
}

#[test]
fn a_bad_jobs_file_is_one_line_with_its_line_number_and_nothing_runs() {
    let s = Setup::new();
    s.jobs("[jobs.app]\nstreams = [{ command = \"echo hi\" }]\nkeep = { daily = 7 }\nfreshnes = \"26h\"\n");
    let out = s.silo(&["run", "--all"]);
    assert_eq!(code(&out), util::EXIT_USAGE, "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("silo.toml:12:") && err.contains("unknown field `freshnes`"), "{err}");
    assert!(err.contains("nothing was run"), "{err}");
    assert_eq!(s.main.snapshot_count(), 0);

    s.jobs("[jobs.app]\nstreams = [{ command = \"echo hi\", directory = \"/srv\" }]\n");
    let err = stderr(&s.silo(&["run", "app"]));
    assert!(err.contains("silo.toml:10:") && err.contains("exactly one of postgres, mariadb"), "{err}");
    s.jobs("[jobs.app]\nstreams = [{ command = \"echo hi\" }]\noffsite = true\nfreshness = \"a while\"\n");
    let err = stderr(&s.silo(&["run", "app"]));
    assert!(err.contains("silo.toml:12:") && err.contains("expected a duration like 26h"), "{err}");
    s.jobs("[jobs.app]\nstreams = [{ command = \"echo hi\" }]\n");
    let out = s.silo(&["run", "nope"]);
    assert_eq!(code(&out), util::EXIT_USAGE);
    assert!(stderr(&out).contains("no job \"nope\"") && stderr(&out).contains("it has app"), "{}", stderr(&out));
    assert_eq!(s.main.snapshot_count(), 0);
}

#[test]
fn a_jobs_file_that_holds_a_password_must_be_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let text = format!(
        "[repository]\nlocation = {:?}\npassword = {PASSWORD:?}\n\n[jobs.app]\nstreams = [{{ command = \"echo hi\" }}]\n",
        s.main.location
    );
    std::fs::write(&s.config, text).unwrap();
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = s.silo(&["run", "app"]);
    assert_eq!(code(&out), util::EXIT_USAGE);
    let err = stderr(&out);
    assert!(err.contains("holds a password") && err.contains("chmod 600"), "{err}");
    assert!(!err.contains(PASSWORD) && !String::from_utf8_lossy(&out.stdout).contains(PASSWORD));
    assert_eq!(s.main.snapshot_count(), 0);
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = s.silo(&["run", "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(PASSWORD) && !String::from_utf8_lossy(&out.stdout).contains(PASSWORD));
    assert_eq!(s.main.snapshot_count(), 1);
}

#[test]
fn a_job_creates_copies_offsite_forgets_and_records_every_run() {
    let s = Setup::new();
    let tree = s.main.dir.path().join("www");
    std::fs::create_dir_all(tree.join("img")).unwrap();
    std::fs::write(tree.join("index.html"), "<h1>shop</h1>").unwrap();
    std::fs::write(tree.join("img/logo.svg"), "<svg/>").unwrap();
    s.jobs(&format!(
        "[jobs.site]\nstreams = [{{ directory = {:?} }}, {{ command = \"printf 'orders 1\\\\n'\", name = \"orders\" }}]\n\
         keep = {{ last = 2 }}\noffsite = true\nfreshness = \"26h\"\n",
        tree.display().to_string()
    ));
    let (_, plan) = s.json(&["run", "--all", "--dry-run"]);
    let steps: Vec<&str> =
        plan["jobs"][0]["steps"].as_array().unwrap().iter().map(|x| x["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["create", "copy", "forget", "forget-offsite"]);
    assert!(plan["jobs"][0]["steps"][0]["detail"].as_str().unwrap().contains("www = tar --create"), "{plan}");
    assert_eq!((s.main.snapshot_count(), run_records(&s.main)), (0, 0), "a dry run touches nothing");

    for round in 1..=3 {
        let (code, report) = s.json(&["run", "site"]);
        assert_eq!(code, 0, "round {round}: {report}");
        let job = &report["jobs"][0];
        assert_eq!((job["ok"].as_bool(), job["recorded"].as_str()), (Some(true), Some("repository")), "{report}");
        assert!(job["bytes_read"].as_u64().unwrap() > 0);
    }
    assert_eq!(s.main.snapshot_count(), 2, "keep last 2 here");
    assert_eq!(s.offsite.snapshot_count(), 2, "... and offsite");
    assert_eq!(run_records(&s.main), 3);
    // The directory stream is a tar of the tree, the command stream its output.
    let tar = s.main.restore("site:latest:www");
    let listing = util::run_with_input(
        {
            let mut c = Command::new("tar");
            c.arg("-t");
            c
        },
        &tar,
    );
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(names.contains("./index.html") && names.contains("./img/logo.svg"), "{names}");
    assert_eq!(s.offsite.restore("site:latest:orders"), b"orders 1\n");

    let (code, status) = s.json(&["status"]);
    assert_eq!(code, 0, "{status}");
    let job = &status["jobs"][0];
    assert_eq!(
        (job["job"].as_str(), job["state"].as_str(), job["last_run_ok"].as_bool()),
        (Some("site"), Some("ok"), Some(true))
    );
    assert_eq!(job["freshness_seconds"].as_u64(), Some(26 * 3600));
    assert!(job["latest_added_bytes"].is_u64() && job["latest_bytes"].as_u64().unwrap() > 0, "{status}");
}

#[test]
fn a_failing_dump_fails_the_run_is_recorded_keeps_the_old_backups_and_status_says_why() {
    let s = Setup::new();
    let flag = s.main.dir.path().join("broken");
    let cmd = format!(
        "if [ -e {0} ]; then echo 'pg_dump: error: connection refused' >&2; exit 3; fi; echo rows",
        flag.display()
    );
    s.jobs(&format!("[jobs.shop]\nstreams = [{{ command = {cmd:?} }}]\nkeep = {{ last = 1 }}\n"));
    assert!(s.silo(&["run", "shop"]).status.success());
    std::fs::write(&flag, "").unwrap();
    for _ in 0..2 {
        let out = s.silo(&["run", "shop"]);
        assert_eq!(code(&out), util::EXIT_COMMAND_FAILED, "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("shop: FAILED") && text.contains("forget skipped"), "{text}");
        assert!(stderr(&out).contains("1 of 1 jobs failed: shop"), "{}", stderr(&out));
    }
    assert_eq!(s.main.snapshot_count(), 1, "the good backup stays: forget does not run after a failure");
    assert_eq!(run_records(&s.main), 3, "failed runs are recorded too");
    let (code, status) = s.json(&["status"]);
    assert_eq!(code, 10, "failing: {status}");
    let job = &status["jobs"][0];
    assert_eq!(job["state"].as_str(), Some("failing"));
    let reason = job["reasons"][0].as_str().unwrap();
    assert!(reason.contains("last 2 runs failed") && reason.contains("connection refused"), "{reason}");
    let human = s.silo(&["status"]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("last failure"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );

    std::fs::remove_file(&flag).unwrap();
    assert!(s.silo(&["run", "shop"]).status.success());
    let (code, status) = s.json(&["status"]);
    assert_eq!((code, status["jobs"][0]["state"].as_str()), (0, Some("ok")), "recovered: {status}");
    assert!(status["jobs"][0]["last_failure"].is_i64());
}

#[test]
fn a_dump_below_min_size_is_not_committed_and_a_shrunk_one_is_flagged() {
    let s = Setup::new();
    let size = s.main.dir.path().join("size");
    std::fs::write(&size, "200000").unwrap();
    let cmd = format!("head -c $(cat {}) /dev/zero | tr '\\\\0' x", size.display());
    let http = util::receiver::Receiver::start();
    s.jobs(&format!(
        "[notify.hook]\nwebhook = {{ url = \"{}\" }}\nevents = [\"size-drop\"]\n\n[jobs.shop]\n\
         streams = [{{ command = {cmd:?} }}]\nmin_size = \"10 kB\"\nnotify = [\"hook\"]\n",
        http.url("/hook")
    ));
    assert!(s.silo(&["run", "shop"]).status.success());
    std::fs::write(&size, "5000").unwrap();
    let out = s.silo(&["run", "shop"]);
    assert_eq!(code(&out), util::EXIT_COMMAND_FAILED, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("below the job's min_size of 10000 bytes"));
    assert_eq!(s.main.snapshot_count(), 1, "nothing committed");
    // 60% smaller than the day before: committed (above the minimum), flagged by status.
    std::fs::write(&size, "80000").unwrap();
    assert!(s.silo(&["run", "shop"]).status.success());
    let (code, status) = s.json(&["status", "shop"]);
    assert_eq!(code, 10, "{status}");
    assert_eq!(status["jobs"][0]["state"].as_str(), Some("shrunk"));
    assert!(status["jobs"][0]["reasons"][0].as_str().unwrap().contains("60% smaller"), "{status}");
    // The run that made it raised the alert.
    let got = http.take();
    assert_eq!(got.len(), 1, "{got:?}");
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event"].as_str(), Some("size-drop"));
    assert!(body["message"].as_str().unwrap().contains("60% smaller"), "{body}");
}

/// A plain pg_dump of one table with `rows` rows (as pg_dump writes it, trailer included).
fn pg_dump_text(rows: usize) -> String {
    let mut d = String::from("--\n-- PostgreSQL database dump\n--\n\nCOPY public.orders (id) FROM stdin;\n");
    for i in 0..rows {
        d += &format!("{i}\n");
    }
    d + "\\.\n\nCOPY public.users (id) FROM stdin;\n1\n\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n"
}

#[test]
fn a_table_that_shrinks_or_vanishes_is_warned_of_flagged_by_status_and_alerted() {
    let s = Setup::new();
    let file = s.main.dir.path().join("dump.sql");
    std::fs::write(&file, pg_dump_text(1000)).unwrap();
    let http = util::receiver::Receiver::start();
    s.jobs(&format!(
        "[notify.hook]\nwebhook = {{ url = \"{}\" }}\nevents = [\"size-drop\"]\n\n[jobs.shop]\n\
         streams = [{{ command = \"cat {}\", name = \"pg\" }}]\nshrink_alert = 50\nnotify = [\"hook\"]\n",
        http.url("/hook"),
        file.display()
    ));
    assert!(s.silo(&["run", "shop"]).status.success());
    // The orders table keeps 300 of its 1000 rows and users is gone; the dump is whole, so it is committed.
    std::fs::write(&file, pg_dump_text(300).replace("COPY public.users (id) FROM stdin;\n1\n\\.\n\n", "")).unwrap();
    let out = s.silo(&["run", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("table public.orders of stream pg shrank by 70% (1000 -> 300 rows)"), "{err}");
    assert!(err.contains("table public.users of stream pg is gone"), "{err}");
    let (exit, status) = s.json(&["status", "shop"]);
    assert_eq!(exit, 10, "{status}");
    let job = &status["jobs"][0];
    assert_eq!(job["state"].as_str(), Some("shrunk"), "{status}");
    assert!(job["reasons"].to_string().contains("public.orders of stream pg shrank by 70%"), "{status}");
    let got = http.take();
    assert_eq!(got.len(), 1, "one size-drop alert: {got:?}");
    // A dump cut short is not committed by a job either: the run fails and says what is missing.
    std::fs::write(&file, &pg_dump_text(1000)[..3000]).unwrap();
    let out = s.silo(&["run", "shop"]);
    assert_eq!(code(&out), util::EXIT_COMMAND_FAILED, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not whole"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(s.main.snapshot_count(), 2);
    // `validate = false` on the stream: stored unjudged.
    s.jobs(&format!("[jobs.raw]\nstreams = [{{ command = \"cat {}\", validate = false }}]\n", file.display()));
    let out = s.silo(&["run", "raw"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.main.snapshot_count(), 3);
    // Plain `snapshot create` warns too, in its --json warnings.
    let created = s.main.create_json("direct", pg_dump_text(1000).as_bytes());
    assert!(created["warnings"].as_array().unwrap().is_empty());
    let created = s.main.create_json("direct", pg_dump_text(10).as_bytes());
    assert!(created["warnings"].to_string().contains("shrank by 99%"), "{created}");
}

#[test]
fn an_unreachable_repository_spools_the_record_and_the_next_run_uploads_it() {
    let s = Setup::new();
    let later = TestRepo::uninitialised();
    let text = format!(
        "[repository]\nlocation = {:?}\npassword_file = {:?}\n\n[jobs.app]\nstreams = [{{ command = \"echo hi\" }}]\n",
        later.location,
        s.password_file.display().to_string()
    );
    std::fs::write(&s.config, text).unwrap();
    let out = s.silo(&["run", "app"]);
    assert_eq!(code(&out), util::EXIT_UNREACHABLE, "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("run record: spooled"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The repository appears (a mount came back): the next run uploads the spooled record first.
    let mut init = later.cmd(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]);
    init.env("SILO_CACHE_DIR", s.main.cache());
    assert!(util::run_with_input(init, b"").status.success());
    let out = s.silo(&["run", "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("uploaded 1 run records spooled"), "{}", stderr(&out));
    assert_eq!(run_records(&later), 2);
    let (_, status) = s.json(&["status"]);
    assert_eq!(status["jobs"][0]["state"].as_str(), Some("ok"));
    assert!(status["jobs"][0]["last_error"].as_str().unwrap().contains("create:"), "{status}");
}

#[test]
fn plain_commands_are_recorded_too_and_gc_bounds_the_history() {
    let repo = TestRepo::init();
    repo.create("shop", b"one");
    let failed = repo.run(&["snapshot", "create", "--name", "shop", "--", "false"], b"");
    assert_eq!(code(&failed), util::EXIT_COMMAND_FAILED);
    repo.ok(&["forget", "--name", "shop", "--keep-last", "1", "--dry-run"], b"");
    repo.ok(&["check"], b"");
    assert_eq!(run_records(&repo), 3, "create, failed create, check (a dry run is not a run)");
    let status = repo.run(&["--json", "status"], b"");
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["jobs"][0]["state"].as_str(), Some("failing"), "{v}");
    assert!(v["jobs"][0]["last_error"].as_str().unwrap().contains("false"), "{v}");
    let gc = repo.json(&["gc", "--keep-runs", "0s"]);
    assert_eq!(gc["run_records_deleted"].as_u64(), Some(3), "{gc}");
    assert_eq!(run_records(&repo), 1, "the gc's own record");
}

#[test]
fn status_writes_prometheus_metrics_that_promtool_accepts() {
    let repo = TestRepo::init();
    repo.create("shop", b"rows");
    let file = repo.dir.path().join("silo.prom");
    repo.ok(&["status", "--prometheus", file.to_str().unwrap()], b"");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("silo_job_ok{job=\"shop\"} 1"), "{text}");
    assert!(text.contains("silo_job_latest_snapshot_bytes{job=\"shop\"} 4"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
    // A file silo did not write is never replaced.
    let other = repo.dir.path().join("notes.txt");
    std::fs::write(&other, "mine").unwrap();
    let out = repo.run(&["status", "--prometheus", other.to_str().unwrap()], b"");
    assert_eq!(code(&out), util::EXIT_USAGE);
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "mine");
    if services::require("promtool", services::tool("promtool", "--version")) {
        let mut check = Command::new("promtool");
        check.args(["check", "metrics"]);
        let out = util::run_with_input(check, text.as_bytes());
        assert!(out.status.success(), "promtool: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    }
}

/// Restores `spec` of `repo` into a fresh PostgreSQL database and returns its comparable dump.
fn pg_restored(repo: &TestRepo, spec: &str, db: &str) -> Vec<u8> {
    services::pg_fresh(db);
    let mut psql = services::pg("psql");
    psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db]);
    repo.restore_into(spec, psql);
    let dump = services::comparable(&services::pg_dump(db));
    services::pg_drop(db);
    dump
}

#[test]
fn postgres_all_dumps_every_database_and_the_globals() {
    if !services::postgres() {
        return;
    }
    let _server = server();
    let dbs = ["silo_j_a", "silo_j_b", "silo_j_c"];
    for (i, db) in dbs.iter().enumerate() {
        services::pg_fresh(db);
        services::psql(db, &format!("CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, {}) g", 100 * (i + 1)));
    }
    let s = Setup::new();
    s.jobs("[jobs.pg]\nstreams = [{ postgres = { database = \"all\", host = \"127.0.0.1\", user = \"postgres\" } }]\nfreshness = \"36h\"\n");
    let (code, report) = s.json(&["run", "pg"]);
    assert_eq!(code, 0, "{report}");
    let show = s.main.json(&["snapshot", "show", "pg:latest"]);
    let streams: Vec<&str> = show["streams"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    for want in dbs.iter().copied().chain(["postgres", "globals"]) {
        assert!(streams.contains(&want), "{want} in {streams:?}");
    }
    assert!(!streams.contains(&"template0") && !streams.contains(&"template1"), "{streams:?}");
    for db in dbs {
        let original = services::comparable(&services::pg_dump(db));
        assert_eq!(pg_restored(&s.main, &format!("pg:latest:{db}"), "silo_j_restored"), original, "{db}");
    }
    let globals = s.main.restore("pg:latest:globals");
    assert!(String::from_utf8_lossy(&globals).contains("CREATE ROLE postgres"), "pg_dumpall --globals-only");
    for db in dbs {
        services::pg_drop(db);
    }
}

#[test]
fn a_database_that_is_down_fails_the_run_and_status_says_why() {
    if !services::postgres() {
        return;
    }
    let s = Setup::new();
    // Nothing listens on port 1: the server is down.
    s.jobs("[jobs.pg]\nstreams = [{ postgres = { database = \"shop\", host = \"127.0.0.1\", port = 1 } }]\n");
    let out = s.silo(&["run", "pg"]);
    assert_eq!(code(&out), util::EXIT_COMMAND_FAILED, "{}", stderr(&out));
    assert_eq!(s.main.snapshot_count(), 0);
    let (code, status) = s.json(&["status"]);
    assert_eq!(code, 10);
    let reason = status["jobs"][0]["reasons"][0].as_str().unwrap();
    assert!(reason.contains("pg_dump") && reason.contains("exited with status 1"), "{reason}");
}

#[test]
fn mariadb_sqlite_and_redis_presets_make_restorable_streams() {
    if !services::mariadb() || !services::sqlite() {
        return;
    }
    let _server = server();
    let my = "silo_j_my";
    services::my_fresh(my);
    services::mysql(
        Some(my),
        "CREATE TABLE t (id int primary key, v varchar(40)); INSERT INTO t VALUES (1, 'one'), (2, 'two')",
    );
    let s = Setup::new();
    let db = s.main.dir.path().join("app.db");
    let made = Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE notes(x); INSERT INTO notes VALUES ('kept');")
        .output()
        .unwrap();
    assert!(made.status.success());
    let redis = services::tool("redis-cli", "--version").and_then(|()| {
        let ping = Command::new("redis-cli").args(["-h", "127.0.0.1", "ping"]).output().map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&ping.stdout).trim() == "PONG" {
            Ok(())
        } else {
            Err("no PONG".into())
        }
    });
    let with_redis = services::require("Redis at 127.0.0.1:6379", redis);
    s.jobs(&format!(
        "[jobs.app]\nstreams = [{{ mariadb = {{ database = \"{my}\", host = \"127.0.0.1\", user = \"root\" }} }}, {{ sqlite = {:?} }}{}]\n",
        db.display().to_string(),
        if with_redis { ", { redis = { host = \"127.0.0.1\" } }" } else { "" }
    ));
    let (code, report) = s.json(&["run", "app"]);
    assert_eq!(code, 0, "{report}");
    let dump = s.main.restore(&format!("app:latest:{my}"));
    let text = String::from_utf8_lossy(&dump);
    assert!(text.contains("INSERT INTO `t` VALUES") && text.contains("(2,'two')"), "mysqldump of {my}");
    services::my_fresh("silo_j_my_restored");
    let mut load = services::my("mysql");
    load.arg("silo_j_my_restored");
    s.main.restore_into(&format!("app:latest:{my}"), load);
    assert_eq!(services::mysql(Some("silo_j_my_restored"), "SELECT v FROM t ORDER BY id"), "one\ntwo");
    services::my_drop("silo_j_my_restored");
    services::my_drop(my);
    let sql = s.main.restore("app:latest:app");
    assert!(String::from_utf8_lossy(&sql).contains("INSERT INTO notes VALUES('kept');"), "sqlite .dump");
    if with_redis {
        assert!(s.main.restore("app:latest:redis").starts_with(b"REDIS"), "an RDB file");
    }
}

#[test]
fn schedules_become_timers_systemd_accepts_or_cron_lines_and_only_silos_files_are_touched() {
    let s = Setup::new();
    s.jobs("[jobs.shop]\nstreams = [{ command = \"echo hi\" }]\nschedule = \"every 8h\"\n\n[jobs.logs]\nstreams = [{ command = \"echo hi\" }]\nschedule = \"weekly sun 03:30\"\n\n[jobs.adhoc]\nstreams = [{ command = \"echo hi\" }]\n");
    let units = s.main.dir.path().join("units");
    let dir = units.to_str().unwrap();
    let (status, report) = s.json(&["schedule", "install", "--dir", dir]);
    assert_eq!(status, 0, "{report}");
    let jobs: Vec<&str> = report["jobs"].as_array().unwrap().iter().map(|j| j["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["logs", "shop", "(freshness watch)"], "jobs without a schedule are left out");
    assert!(
        report["next_steps"][1]
            .as_str()
            .unwrap()
            .contains("systemctl enable --now silo-job-logs.timer silo-job-shop.timer silo-watch.timer"),
        "{report}"
    );
    // Issue 30: the freshness watch (status --notify, hourly) goes with the jobs, so a job whose timer died
    // still alerts.
    let watch = std::fs::read_to_string(units.join("silo-watch.service")).unwrap();
    assert!(watch.contains("status --notify"), "{watch}");
    let watch_timer = std::fs::read_to_string(units.join("silo-watch.timer")).unwrap();
    assert!(watch_timer.contains("OnCalendar=*-*-* *:00:00"), "{watch_timer}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(units.join("silo-job-shop.timer")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only like every file silo writes");
    let timer = std::fs::read_to_string(units.join("silo-job-shop.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 00/8:00:00") && timer.contains("Persistent=true"), "{timer}");
    let service = std::fs::read_to_string(units.join("silo-job-shop.service")).unwrap();
    assert!(
        service.contains(&format!("--config {} run shop", s.config.canonicalize().unwrap().display())),
        "{service}"
    );
    if services::require("systemd-analyze", services::tool("systemd-analyze", "--version")) {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .args(
                [
                    "silo-job-shop.timer",
                    "silo-job-shop.service",
                    "silo-job-logs.timer",
                    "silo-job-logs.service",
                    "silo-watch.timer",
                    "silo-watch.service",
                ]
                .map(|f| units.join(f)),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "systemd-analyze verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!text.contains("silo-job"), "no complaint about the units: {text}");
    }
    let (_, listed) = s.json(&["schedule", "list", "--dir", dir]);
    assert!(listed["jobs"].as_array().unwrap().iter().all(|j| j["installed"] == true), "{listed}");
    let out = s.silo(&["schedule", "install", "adhoc", "--dir", dir]);
    assert_eq!(code(&out), util::EXIT_USAGE);
    assert!(stderr(&out).contains("has no schedule"), "{}", stderr(&out));

    // A unit silo did not write is never replaced nor removed.
    std::fs::write(units.join("silo-job-logs.timer"), "[Timer]\nOnCalendar=daily\n").unwrap();
    let out = s.silo(&["schedule", "install", "logs", "--dir", dir]);
    assert_eq!(code(&out), util::EXIT_USAGE);
    assert!(stderr(&out).contains("was not written by silo schedule"), "{}", stderr(&out));
    assert!(s.silo(&["schedule", "uninstall", "--dir", dir]).status.success());
    let left: Vec<String> =
        std::fs::read_dir(&units).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["silo-job-logs.timer"], "only silo's files removed");

    let cron = s.main.dir.path().join("cron.d");
    let (status, _) = s.json(&["schedule", "install", "--cron", "--dir", cron.to_str().unwrap(), "--user", "postgres"]);
    assert_eq!(status, 0);
    let line = std::fs::read_to_string(cron.join("silo-job-shop")).unwrap();
    assert!(line.contains("\n0 */8 * * * postgres /") && line.ends_with("run shop\n"), "{line}");
    let line = std::fs::read_to_string(cron.join("silo-job-logs")).unwrap();
    assert!(line.contains("\n30 3 * * 0 postgres /"), "{line}");
    let line = std::fs::read_to_string(cron.join("silo-watch")).unwrap();
    assert!(line.contains("\n0 * * * * postgres /") && line.ends_with("status --notify\n"), "{line}");
}

fn secret_file(dir: &std::path::Path, name: &str, value: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

#[test]
fn notifications_reach_every_target_once_per_cooldown_and_never_change_the_outcome() {
    let s = Setup::new();
    let dir = s.main.dir.path();
    let Some(mail) = util::mail::MailServer::start(dir) else { return };
    let http = util::receiver::Receiver::start();
    let flag = dir.join("broken");
    std::fs::write(&flag, "").unwrap();
    let cmd =
        format!("if [ -e {0} ]; then echo 'mysqldump: Got error: 2002' >&2; exit 2; fi; echo rows", flag.display());
    let hook_secret = secret_file(dir, "hook", "hook secret 123");
    let app_token = secret_file(dir, "pushover-token", "app-token-abc");
    let user_key = secret_file(dir, "pushover-user", "user-key-xyz");
    s.jobs(&format!(
        r#"[notify.hook]
webhook = {{ url = "{}", secret = {{ file = "{hook_secret}" }} }}

[notify.phone]
ntfy = {{ url = "{}", token = {{ env = "SILO_TEST_NTFY_TOKEN" }} }}

[notify.pager]
pushover = {{ token = {{ file = "{app_token}" }}, user = {{ file = "{user_key}" }}, url = "{}" }}
events = ["failed", "recovered"]

[notify.hc]
healthchecks = {{ url = "{}" }}

[notify.mail]
email = {{ to = ["ops@example.net"], from = "silo@example.net", smtp = "127.0.0.1:{}" }}

[notify.dead]
webhook = {{ url = "http://127.0.0.1:1/hook" }}

[jobs.shop]
streams = [{{ command = {cmd:?} }}]
notify = ["hook", "phone", "pager", "hc", "mail", "dead"]
cooldown = "6h"
"#,
        http.url("/hook"),
        http.url("/ntfy/backups"),
        http.url("/1/messages.json"),
        http.url("/ping/abc"),
        mail.port
    ));
    let run = || {
        let mut c = s.main.cmd(&["--json", "run", "shop"]);
        c.env("SILO_CONFIG", &s.config).env_remove("SILO_REPO").env_remove("SILO_PASSWORD");
        c.env("SILO_TEST_OFFSITE_PASSWORD", PASSWORD).env("SILO_TEST_NTFY_TOKEN", "ntfy-token-777");
        let out = util::run_with_input(c, b"");
        for secret in ["hook secret 123", "app-token-abc", "user-key-xyz", "ntfy-token-777", PASSWORD] {
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(secret) && !stderr(&out).contains(secret),
                "{secret} shown"
            );
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (code(&out), report)
    };

    // 1. The dump fails: every target hears of it; the dead one's failure is recorded, the outcome unchanged.
    let (status, report) = run();
    assert_eq!(status, util::EXIT_COMMAND_FAILED, "{report}");
    let got = http.take();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/ping/abc/start", "/hook", "/ntfy/backups", "/1/messages.json", "/ping/abc/fail"], "{got:?}");
    let hook = &got[1];
    let body: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(
        (body["event"].as_str(), body["job"].as_str(), body["exit_code"].as_u64()),
        (Some("failed"), Some("shop"), Some(7))
    );
    assert!(body["error"].as_str().unwrap().contains("Got error: 2002"), "{body}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hook secret 123");
    let want = format!("sha256={}", hex::encode(ring::hmac::sign(&key, &hook.body).as_ref()));
    assert_eq!(hook.headers.get("x-silo-signature"), Some(&want), "HMAC-SHA256 of the body");
    let ntfy = &got[2];
    assert_eq!(ntfy.headers.get("authorization").map(String::as_str), Some("Bearer ntfy-token-777"));
    assert_eq!(ntfy.headers.get("priority").map(String::as_str), Some("high"));
    assert!(ntfy.headers["title"].contains("shop FAILED") && String::from_utf8_lossy(&ntfy.body).contains("2002"));
    let form: BTreeMap<String, String> = url_form(&got[3].body);
    assert_eq!(
        (form["token"].as_str(), form["user"].as_str(), form["priority"].as_str()),
        ("app-token-abc", "user-key-xyz", "1")
    );
    assert!(String::from_utf8_lossy(&got[4].body).contains("2002"), "the fail ping carries the error");
    let mails = mail.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: silo: backup job shop FAILED") && mails[0].contains("To: ops@example.net"),
        "{}",
        mails[0]
    );
    let steps = &report["jobs"][0]["steps"];
    let step = |name: &str| steps.as_array().unwrap().iter().find(|x| x["step"] == name).cloned().unwrap_or_default();
    assert_eq!(step("notify:dead:failed")["outcome"], "failed", "{steps}");
    assert!(
        step("notify:dead:failed")["detail"].as_str().unwrap().contains("cannot connect to 127.0.0.1:1"),
        "{steps}"
    );
    assert_eq!(step("notify:hook:failed")["outcome"], "ok");

    // 2. Failing again within the cooldown: pings only; the rest is held back and says until when.
    let (status, report) = run();
    assert_eq!(status, util::EXIT_COMMAND_FAILED);
    let paths: Vec<String> = http.take().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/ping/abc/start", "/ping/abc/fail"]);
    assert_eq!(mail.messages().len(), 1);
    let steps = &report["jobs"][0]["steps"];
    let hook = steps.as_array().unwrap().iter().find(|x| x["step"] == "notify:hook:failed").unwrap();
    assert_eq!(hook["outcome"], "skipped");
    assert!(hook["detail"].as_str().unwrap().starts_with("cooldown until "), "{hook}");

    // 3. Fixed: "recovered" goes out at once, and the run succeeds although one target is down.
    std::fs::remove_file(&flag).unwrap();
    let (status, _) = run();
    assert_eq!(status, 0, "a dead notifier never fails a run");
    let got = http.take();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/ping/abc/start", "/hook", "/ntfy/backups", "/1/messages.json", "/ping/abc"]);
    let body: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!((body["event"].as_str(), body["ok"].as_bool()), (Some("recovered"), Some(true)));
    assert_eq!(got[2].headers.get("priority").map(String::as_str), Some("default"));
    assert_eq!(mail.messages().len(), 2);
}

fn url_form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[test]
fn check_and_drill_run_when_their_cadence_is_due_and_a_failed_drill_fails_the_run() {
    let s = Setup::new();
    let drilled = s.main.dir.path().join("drilled");
    s.jobs(&format!(
        "[jobs.shop]\nstreams = [{{ command = \"printf 'orders 1\\\\n'\" }}]\ncheck = {{ subset = \"100%\" }}\n\
         drill = {{ command = \"cat > {}\", every = \"7d\" }}\n\n[jobs.bad]\nstreams = [{{ command = \"echo x\" }}]\n\
         drill = {{ command = \"echo 'ERROR: relation missing' >&2; exit 3\" }}\n",
        drilled.display()
    ));
    let step_names = |report: &serde_json::Value| -> Vec<String> {
        report["jobs"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| format!("{}={}", x["step"].as_str().unwrap(), x["outcome"].as_str().unwrap()))
            .collect()
    };
    let (code, report) = s.json(&["run", "shop"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(step_names(&report), ["create=ok", "check=ok", "drill=ok"]);
    assert_eq!(std::fs::read(&drilled).unwrap(), b"orders 1\n", "the drill restored the newest snapshot");
    let (code, report) = s.json(&["run", "shop"]);
    assert_eq!(code, 0);
    assert_eq!(step_names(&report), ["create=ok"], "checked and drilled a moment ago: not due for 7 days");
    let (_, status) = s.json(&["status", "shop"]);
    assert_eq!(status["jobs"][0]["last_drill_ok"].as_bool(), Some(true), "{status}");

    let (code, report) = s.json(&["run", "bad"]);
    assert_eq!(code, util::EXIT_COMMAND_FAILED, "{report}");
    assert_eq!(step_names(&report), ["create=ok", "drill=failed"]);
    assert!(report["jobs"][0]["steps"][1]["detail"].as_str().unwrap().contains("relation missing"), "{report}");
}

#[test]
fn an_ldap_directory_is_dumped_with_slapcat_and_restores_with_slapadd() {
    let s = Setup::new();
    let Some(slapd) = util::ldap::Slapd::start(s.main.dir.path()) else { return };
    s.jobs(&format!(
        "[jobs.directory]\nstreams = [{{ ldap = {{ config = {:?}, suffix = \"{}\" }} }}]\n",
        slapd.config.display().to_string(),
        util::ldap::SUFFIX
    ));
    let (code, report) = s.json(&["run", "directory"]);
    assert_eq!(code, 0, "{report}");
    let restored = s.main.restore("directory:latest:ldap");
    assert_eq!(restored, slapd.slapcat(), "the stream is slapcat's LDIF");
    assert!(String::from_utf8_lossy(&restored).contains("dn: uid=ada,dc=example,dc=net"));
    // It loads into an empty directory.
    let fresh = util::ldap::config(&s.main.dir.path().join("fresh"));
    let ldif = s.main.dir.path().join("restored.ldif");
    std::fs::write(&ldif, &restored).unwrap();
    let added = Command::new("/usr/sbin/slapadd").arg("-f").arg(&fresh).arg("-l").arg(&ldif).output().unwrap();
    assert!(added.status.success(), "slapadd: {}", stderr(&added));
    let again =
        Command::new("/usr/sbin/slapcat").arg("-f").arg(&fresh).args(["-b", util::ldap::SUFFIX]).output().unwrap();
    assert_eq!(again.stdout, restored, "the same directory after a restore");
}

#[test]
fn e_mail_goes_over_starttls_with_auth_and_an_unverified_server_or_a_wrong_password_is_a_failed_send() {
    let s = Setup::new();
    let dir = s.main.dir.path();
    let Some((mail, ca)) = util::mail::MailServer::start_tls(dir, "smtp pass 42") else { return };
    let password = secret_file(dir, "smtp-password", "smtp pass 42");
    let write = |ca_line: &str| {
        s.jobs(&format!(
            "[notify.mail]\nemail = {{ to = [\"ops@example.net\"], from = \"silo@example.net\", smtp = \"localhost:{}\", \
             username = \"silo\", password = {{ file = \"{password}\" }}{ca_line} }}\n\n[jobs.shop]\n\
             streams = [{{ command = \"exit 1\" }}]\nnotify = [\"mail\"]\ncooldown = \"0s\"\n",
            mail.port
        ))
    };
    let mail_step = |report: &serde_json::Value| {
        report["jobs"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["step"] == "notify:mail:failed")
            .cloned()
            .unwrap()
    };
    // The test CA is not one this machine trusts: no mail, the send fails, the run's outcome is the dump's.
    write("");
    let (code, report) = s.json(&["run", "shop"]);
    assert_eq!(code, util::EXIT_COMMAND_FAILED);
    assert_eq!(mail_step(&report)["outcome"], "failed");
    assert!(mail_step(&report)["detail"].as_str().unwrap().contains("TLS with localhost"), "{report}");
    assert!(mail.messages().is_empty());
    // Trusting the CA: STARTTLS, AUTH PLAIN, delivered.
    write(&format!(", ca_file = {:?}", ca.display().to_string()));
    let (code, report) = s.json(&["run", "shop"]);
    assert_eq!(code, util::EXIT_COMMAND_FAILED);
    assert_eq!(mail_step(&report)["outcome"], "ok", "{report}");
    let mails = mail.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("Subject: silo: backup job shop FAILED"), "{}", mails[0]);
    // A wrong password: refused by the server, recorded, nothing else changes.
    std::fs::write(dir.join("smtp-password"), "wrong").unwrap();
    let (code, report) = s.json(&["run", "shop"]);
    assert_eq!(code, util::EXIT_COMMAND_FAILED);
    let step = mail_step(&report);
    assert!(step["outcome"] == "failed" && step["detail"].as_str().unwrap().contains("AUTH"), "{report}");
    assert!(!report.to_string().contains("smtp pass 42"));
    assert_eq!(mail.messages().len(), 1);
}

#[test]
fn status_notify_reports_a_job_that_never_ran_once_per_cooldown() {
    let s = Setup::new();
    let http = util::receiver::Receiver::start();
    s.jobs(&format!(
        "[notify.hook]\nwebhook = {{ url = \"{}\" }}\n\n[jobs.forgotten]\nstreams = [{{ command = \"echo x\" }}]\n\
         freshness = \"26h\"\nnotify = [\"hook\"]\n",
        http.url("/hook")
    ));
    let (code, status) = s.json(&["status", "--notify"]);
    assert_eq!(code, 8, "never ran: stale: {status}");
    assert_eq!(status["notifications"][0]["outcome"], "ok", "{status}");
    assert!(status["repository_bytes"].is_u64());
    let got = http.take();
    assert_eq!(got.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!((body["event"].as_str(), body["job"].as_str()), (Some("stale"), Some("forgotten")));
    // Issue 30: the payload states the job's state, never `ok: true, exit_code: 0` for a stale job.
    assert_eq!((body["ok"].as_bool(), body["exit_code"].as_u64()), (Some(false), Some(8)), "{body}");
    assert!(body["message"].as_str().unwrap().contains("no snapshot yet"), "{body}");
    let (code, status) = s.json(&["status", "--notify"]);
    assert_eq!(code, 8);
    assert_eq!(status["notifications"][0]["outcome"], "skipped", "within the cooldown: {status}");
    assert!(http.take().is_empty());
}

#[test]
fn e_mail_through_a_sendmail_program() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let dir = s.main.dir.path();
    let sendmail = dir.join("sendmail");
    std::fs::write(&sendmail, format!("#!/bin/sh\necho \"$@\" > {0}/args\ncat > {0}/mail.eml\n", dir.display()))
        .unwrap();
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.jobs(&format!(
        "[notify.mail]\nemail = {{ to = [\"ops@example.net\", \"dba@example.net\"], from = \"silo@example.net\", sendmail = {:?} }}\n\n\
         [jobs.shop]\nstreams = [{{ command = \"echo 'ERROR: out of memory' >&2; exit 137\" }}]\nnotify = [\"mail\"]\n",
        sendmail.display().to_string()
    ));
    let (code, _) = s.json(&["run", "shop"]);
    assert_eq!(code, util::EXIT_COMMAND_FAILED);
    assert_eq!(std::fs::read_to_string(dir.join("args")).unwrap().trim(), "-t -i", "recipients from the headers");
    let mail = std::fs::read_to_string(dir.join("mail.eml")).unwrap();
    assert!(
        mail.contains("To: ops@example.net, dba@example.net\r\n")
            && mail.contains("Subject: silo: backup job shop FAILED\r\n"),
        "{mail}"
    );
    assert!(mail.contains("out of memory"), "the error line: {mail}");
}

#[test]
fn a_damaged_run_record_is_skipped_and_counted_never_hiding_the_others() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("flips a byte of a file") {
        return;
    }
    repo.create("shop", b"rows");
    repo.create("shop", b"rows 2");
    let records = repo.objects("runs");
    assert_eq!(records.len(), 2);
    let mut bytes = std::fs::read(&records[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&records[0], bytes).unwrap();
    let out = repo.run(&["--json", "status"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["damaged_run_records"].as_u64(), v["run_records"].as_u64()), (Some(1), Some(1)), "{v}");
    assert_eq!(v["jobs"][0]["last_run_ok"].as_bool(), Some(true));
}

#[test]
fn an_overlapping_run_of_the_same_job_is_refused_as_busy_and_recorded() {
    let s = Setup::new();
    let fifo = s.main.dir.path().join("dump.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    s.jobs(&format!("[jobs.slow]\nstreams = [{{ command = \"cat {}\" }}]\n", fifo.display()));
    let mut first = s.main.cmd(&["run", "slow"]);
    first.env("SILO_CONFIG", &s.config).env_remove("SILO_REPO").env_remove("SILO_PASSWORD");
    let first = first.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Opening the FIFO for writing returns once the first run's dump is reading it: the first run holds the
    // job's lock from before its dump started.
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let (code, report) = s.json(&["run", "slow"]);
    assert_eq!(code, 6, "busy: {report}");
    let detail = report["jobs"][0]["steps"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("job slow is still running on this machine"), "{report}");
    use std::io::Write;
    writer.write_all(b"rows\n").unwrap();
    drop(writer);
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "the first run finishes: {}", stderr(&out));
    assert_eq!(s.main.restore("slow:latest"), b"rows\n");
    let (_, status) = s.json(&["status", "slow"]);
    assert_eq!(status["jobs"][0]["last_run_ok"].as_bool(), Some(true), "{status}");
    assert_eq!(status["run_records"].as_u64(), Some(2), "the refused run is recorded too");
}

/// An executable script `name` in `dir` (a stand-in for a dump tool found first on PATH).
fn script(dir: &std::path::Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Issue 28 item 6 (I21): the commands of a job get an allow-listed environment: the offsite password, a
/// notifier's token and the S3 secret never reach them; each preset's tool gets the variables it reads and
/// no other tool's; the job's `env = [...]` is passed on.
#[test]
fn children_get_an_allow_listed_environment_never_silos_secrets() {
    let s = Setup::new();
    let bin = s.main.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Stand-ins that print their environment as the dump.
    script(&bin, "pg_dump", "env | sort");
    script(&bin, "mysqldump", "env | sort");
    s.jobs(
        "[notify.phone]\nntfy = { url = \"http://127.0.0.1:1/t\", token = { env = \"SILO_TEST_NTFY_TOKEN\" } }\n\n\
         [jobs.app]\nstreams = [{ postgres = { database = \"shop\" } }, { mariadb = { database = \"shop\" }, name = \"my\" }, \
         { command = \"env | sort\", name = \"cmd\" }]\nenv = [\"SILO_TEST_PASSED\"]\noffsite = true\n",
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = s.main.cmd(&["run", "app"]);
    c.env("SILO_CONFIG", &s.config).env_remove("SILO_REPO").env_remove("SILO_PASSWORD");
    c.env("SILO_TEST_OFFSITE_PASSWORD", PASSWORD)
        .env("SILO_TEST_NTFY_TOKEN", "ntfy-token-777")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-888")
        .env("PGPASSFILE", "/etc/pg-pass-file")
        .env("MYSQL_TCP_PORT", "3307")
        .env("REDISCLI_AUTH", "redis-auth-999")
        .env("SILO_TEST_PASSED", "passed-on")
        .env("SILO_TEST_UNLISTED", "not-passed")
        .env("PATH", &path);
    let out = util::run_with_input(c, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let env_of = |stream: &str| String::from_utf8(s.main.restore(&format!("app:latest:{stream}"))).unwrap();
    for stream in ["shop", "my", "cmd"] {
        let env = env_of(stream);
        for secret in [PASSWORD, "ntfy-token-777", "aws-secret-888", "redis-auth-999", "not-passed"] {
            assert!(!env.contains(secret), "{stream} was given {secret:?}:\n{env}");
        }
        assert!(env.contains(&format!("PATH={path}\n")), "{stream} keeps PATH:\n{env}");
        assert!(env.contains("SILO_TEST_PASSED=passed-on\n"), "{stream}: the job's env is passed on:\n{env}");
    }
    let (pg, my, cmd) = (env_of("shop"), env_of("my"), env_of("cmd"));
    assert!(pg.contains("PGPASSFILE=/etc/pg-pass-file\n") && !pg.contains("MYSQL_TCP_PORT"), "{pg}");
    assert!(my.contains("MYSQL_TCP_PORT=3307\n") && !my.contains("PGPASSFILE"), "{my}");
    assert!(!cmd.contains("PGPASSFILE") && !cmd.contains("MYSQL_TCP_PORT"), "{cmd}");
}

/// Issue 28 item 7 (I22): database names are never options. `-rvictim` (a name MariaDB accepts) in an
/// `"all"` listing made mysqldump truncate a file `victim` in silo's working directory; odd names failed
/// the whole job. Now the name goes behind `--`, an odd one is skipped and reported (the run fails, exit 7)
/// while every other database is backed up, and `database = "--version"` is refused by the check.
#[test]
fn database_names_that_look_like_options_are_never_options() {
    if !services::mariadb() {
        return;
    }
    let _server = server();
    let s = Setup::new();
    let cwd = s.main.dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(cwd.join("victim"), "precious").unwrap();
    let normal = "silo_j_names";
    services::my_fresh(normal);
    services::mysql(Some(normal), "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (7)");
    for odd in ["-rvictim", "we ird"] {
        services::mysql(None, &format!("DROP DATABASE IF EXISTS `{odd}`; CREATE DATABASE `{odd}`"));
    }
    s.jobs("[jobs.my]\nstreams = [{ mariadb = { database = \"all\", host = \"127.0.0.1\", user = \"root\" } }]\n");
    let mut c = s.main.cmd(&["--json", "run", "my"]);
    c.current_dir(&cwd).env("SILO_CONFIG", &s.config).env_remove("SILO_REPO").env_remove("SILO_PASSWORD");
    c.env("SILO_TEST_OFFSITE_PASSWORD", PASSWORD).envs(services::MY_ENV);
    let out = util::run_with_input(c, b"");
    for odd in ["-rvictim", "we ird"] {
        services::mysql(None, &format!("DROP DATABASE IF EXISTS `{odd}`"));
    }
    let dump = s.main.restore(&format!("my:latest:{normal}"));
    services::my_drop(normal);
    assert_eq!(std::fs::read_to_string(cwd.join("victim")).unwrap(), "precious", "mysqldump took -rvictim as -r");
    assert_eq!(code(&out), util::EXIT_COMMAND_FAILED, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&dump);
    assert!(text.contains("INSERT INTO `t` VALUES") && text.contains("(7)"), "the others are backed up: {text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let steps = &report["jobs"][0]["steps"];
    let list = steps.as_array().unwrap().iter().find(|x| x["step"] == "list").expect("a list step");
    let detail = list["detail"].as_str().unwrap();
    assert!(list["outcome"] == "failed" && detail.contains("\"-rvictim\"") && detail.contains("\"we ird\""), "{list}");
    let show = s.main.json(&["snapshot", "show", "my:latest"]);
    let streams: Vec<&str> = show["streams"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert!(streams.contains(&normal) && !streams.iter().any(|n| n.contains("victim")), "{streams:?}");

    let before = s.main.snapshot_count();
    s.jobs("[jobs.v]\nstreams = [{ mariadb = { database = \"--version\", host = \"127.0.0.1\" } }]\n");
    let out = s.silo(&["run", "v"]);
    assert_eq!(code(&out), util::EXIT_USAGE, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("silo.toml:10:") && stderr(&out).contains("cannot start with '-'"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.main.snapshot_count(), before, "nothing was run");
}

/// Runs job `job` of `s`'s jobs file (`--json`), returning the exit code and the job's steps.
fn run_steps(s: &Setup, job: &str) -> (i32, Vec<serde_json::Value>) {
    let (code, report) = s.json(&["run", job]);
    let steps = report["jobs"][0]["steps"].as_array().cloned().unwrap_or_default();
    (code, steps)
}

fn step_of<'a>(steps: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    steps.iter().find(|x| x["step"] == name).unwrap_or_else(|| panic!("no step {name} in {steps:?}"))
}

/// Issue 28 item 8 (I23): a redirect is a failed send, never followed: a 307 re-sent the Pushover token to
/// another host (with a `Referer` carrying the secret URL), a 302 turned the POST into a GET that was
/// recorded as delivered.
#[test]
fn a_redirect_is_a_failed_send_and_the_other_host_gets_nothing() {
    let s = Setup::new();
    let dir = s.main.dir.path();
    let (http, elsewhere) = (util::receiver::Receiver::start(), util::receiver::Receiver::start());
    let to = |code: &str, path: &str| {
        format!("HTTP/1.1 {code}\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n", elsewhere.url(path))
    };
    http.answer("/1/", &to("307 Temporary Redirect", "/stolen"));
    http.answer("/ping/", &to("302 Found", "/got"));
    http.answer("/ntfy/", &to("308 Permanent Redirect", "/topic"));
    let token = secret_file(dir, "token", "app-token-abc");
    s.jobs(&format!(
        "[notify.pager]\npushover = {{ token = {{ file = \"{token}\" }}, user = {{ file = \"{token}\" }}, url = \"{}\" }}\n\n\
         [notify.hc]\nhealthchecks = {{ url = \"{}\" }}\n\n[notify.phone]\nntfy = {{ url = \"{}\" }}\n\n\
         [jobs.shop]\nstreams = [{{ command = \"exit 1\" }}]\nnotify = [\"pager\", \"hc\", \"phone\"]\n",
        http.url("/1/messages.json"),
        http.url("/ping/secret-uuid"),
        http.url("/ntfy/secret-topic"),
    ));
    let (code, steps) = run_steps(&s, "shop");
    assert_eq!(code, util::EXIT_COMMAND_FAILED, "{steps:?}");
    assert!(elsewhere.take().is_empty(), "the other host got a request");
    for name in ["notify:pager:failed", "notify:phone:failed", "ping:hc:start", "ping:hc:fail"] {
        let step = step_of(&steps, name);
        assert_eq!(step["outcome"], "failed", "{name}: {step}");
        assert!(step["detail"].as_str().unwrap().contains("redirect"), "{name}: {step}");
        assert!(!step["detail"].as_str().unwrap().contains("secret"), "{name}: {step}");
    }
    let got = http.take();
    assert!(got.iter().all(|r| r.method == "POST" && !r.headers.contains_key("referer")), "{got:?}");
    assert_eq!(got.len(), 4, "a redirect is not retried: {got:?}");
}

/// Issue 28 item 8 (I23): an SMTP server that sends an endless greeting line costs silo a bounded read (it
/// drove silo to 3 GB before STARTTLS); a server that says "try later" (4xx) is tried 3 times, as the
/// README says, and the run's outcome is unchanged.
#[test]
fn an_endless_smtp_greeting_is_read_bounded_and_a_busy_server_is_tried_three_times() {
    static ENDLESS: [u8; 8192] = [b'a'; 8192];
    let endless = util::mail::HostileSmtp::start(&ENDLESS, 64 << 20);
    let busy = util::mail::HostileSmtp::start(b"421 4.3.2 busy, try later\r\n", 27);
    let s = Setup::new();
    s.jobs(&format!(
        "[notify.endless]\nemail = {{ to = [\"ops@example.net\"], from = \"silo@example.net\", smtp = \"127.0.0.1:{}\" }}\n\n\
         [notify.busy]\nemail = {{ to = [\"ops@example.net\"], from = \"silo@example.net\", smtp = \"127.0.0.1:{}\" }}\n\n\
         [jobs.shop]\nstreams = [{{ command = \"exit 1\" }}]\nnotify = [\"endless\", \"busy\"]\n",
        endless.port, busy.port
    ));
    let (code, steps) = run_steps(&s, "shop");
    assert_eq!(code, util::EXIT_COMMAND_FAILED, "the outcome is the dump's: {steps:?}");
    let step = step_of(&steps, "notify:endless:failed");
    assert_eq!(step["outcome"], "failed", "{step}");
    assert!(step["detail"].as_str().unwrap().contains("longer than 4096 bytes"), "{step}");
    assert!(endless.written() < 32 << 20, "silo read {} bytes of one greeting line", endless.written());
    assert_eq!(endless.connections(), 1, "a hostile answer is not tried again");
    let step = step_of(&steps, "notify:busy:failed");
    assert!(step["outcome"] == "failed" && step["detail"].as_str().unwrap().contains("(3 tries)"), "{step}");
    assert_eq!(busy.connections(), 3, "a server that says try later is tried 3 times");
}

/// Issue 28 item 8 (I23): CR/LF in an e-mail address injected an extra `RCPT TO`; a jobs file's path with a
/// line break injected a line into the cron file; `schedule --user` was not checked. All refused before
/// anything is sent or written.
#[test]
fn addresses_paths_and_users_that_would_inject_a_line_are_refused() {
    let s = Setup::new();
    s.jobs(
        "[notify.mail]\nemail = { to = [\"ops@example.net>\\r\\nRCPT TO:<evil@example.org\"], from = \"silo@example.net\", \
         smtp = \"127.0.0.1:25\" }\n\n[jobs.shop]\nstreams = [{ command = \"echo x\" }]\nnotify = [\"mail\"]\n",
    );
    let out = s.silo(&["run", "--dry-run", "shop"]);
    assert_eq!(code(&out), util::EXIT_USAGE, "{}", stderr(&out));
    assert!(stderr(&out).contains("silo.toml:9:") && stderr(&out).contains("not a plain address"), "{}", stderr(&out));

    let cron = s.main.dir.path().join("cron.d");
    s.jobs("[jobs.shop]\nstreams = [{ command = \"echo x\" }]\nschedule = \"daily 02:00\"\n");
    let bad_user = "root\n* * * * * root touch /tmp/silo-injected\n#";
    let out = s.silo(&["schedule", "install", "--cron", "--dir", cron.to_str().unwrap(), "--user", bad_user]);
    assert_eq!(code(&out), util::EXIT_USAGE, "{}", stderr(&out));
    assert!(stderr(&out).contains("not a user name"), "{}", stderr(&out));
    assert!(!cron.join("silo-job-shop").exists(), "nothing was written");

    let odd = s.main.dir.path().join("conf\n* * * * * root touch /tmp/silo-injected\n");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::copy(&s.config, odd.join("silo.toml")).unwrap();
    let mut c = s.main.cmd(&["schedule", "install", "--cron", "--dir", cron.to_str().unwrap()]);
    c.env("SILO_CONFIG", odd.join("silo.toml")).env_remove("SILO_REPO");
    let out = util::run_with_input(c, b"");
    let written = std::fs::read_to_string(cron.join("silo-job-shop")).unwrap_or_default();
    assert!(!written.contains("\n* * * * * root touch"), "a line was injected:\n{written}");
    assert_eq!(code(&out), util::EXIT_USAGE, "{}", stderr(&out));
    assert!(stderr(&out).contains("inject a line"), "{}", stderr(&out));
}

/// Issue 28 item 9: what would fail every run is caught by the check (`FILE:LINE`, exit 2, nothing runs):
/// a `keep` rule of 0, `password_env = ""`, an `http://` location, a file that is not UTF-8; `--config
/// /dev/zero` is refused instead of read until memory runs out.
#[test]
fn what_would_fail_every_run_is_caught_by_the_check() {
    let s = Setup::new();
    for (jobs, line, want) in [
        (
            "[jobs.app]\nstreams = [{ command = \"echo hi\" }]\nkeep = { last = 0 }\n",
            11,
            "keep last = 0 would keep nothing",
        ),
        ("[jobs.app]\nstreams = [{ command = \"echo hi\" }]\nkeep = { daily = 0 }\n", 11, "keep daily = 0"),
        ("[jobs.app]\nstreams = [{ command = \"echo hi\" }]\nkeep = { within = \"0s\" }\n", 11, "keep within = 0"),
    ] {
        s.jobs(jobs);
        let out = s.silo(&["run", "app"]);
        assert_eq!(code(&out), util::EXIT_USAGE, "{jobs}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("silo.toml:{line}:")) && stderr(&out).contains(want),
            "{}",
            stderr(&out)
        );
    }
    let header_then = |location: &str, env: &str| {
        format!(
            "[repository]\nlocation = {location:?}\npassword_env = {env:?}\n\n[jobs.app]\nstreams = [{{ command = \"echo hi\" }}]\n"
        )
    };
    for (text, line, want) in [
        (header_then(&s.main.location, ""), 1, "password_env \"\" is not a variable name"),
        (header_then("http://127.0.0.1:9/bucket", "SILO_TEST_OFFSITE_PASSWORD"), 1, "for S3 write s3:http://"),
    ] {
        std::fs::write(&s.config, &text).unwrap();
        let out = s.silo(&["run", "app"]);
        assert_eq!(code(&out), util::EXIT_USAGE, "{text}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("silo.toml:{line}:")) && stderr(&out).contains(want),
            "{}",
            stderr(&out)
        );
    }
    let mut bytes = header_then(&s.main.location, "SILO_TEST_OFFSITE_PASSWORD").into_bytes();
    bytes.extend_from_slice(b"tags = [\"caf\xe9\"]\n");
    std::fs::write(&s.config, &bytes).unwrap();
    let out = s.silo(&["run", "app"]);
    assert_eq!(code(&out), util::EXIT_USAGE, "{}", stderr(&out));
    assert!(stderr(&out).contains("silo.toml:7:") && stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
    assert_eq!(s.main.snapshot_count(), 0, "nothing ran");

    // /dev/zero is endless: with 1 GiB of address space, reading it whole aborts; refused, it exits 2.
    let mut c = s.main.cmd(&["--config", "/dev/zero", "run", "app"]);
    c.env_remove("SILO_REPO");
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let out = util::run_with_input(c, b"");
    assert_eq!(code(&out), util::EXIT_USAGE, "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/zero") && stderr(&out).contains("larger than"), "{}", stderr(&out));
}

/// Issue 28 item 9: a job with `keep` run with a writer key (which may not forget, I11) failed every run
/// after committing; it now skips forget with a note and succeeds.
#[test]
fn a_writer_key_job_with_keep_skips_forget_with_a_note() {
    let s = Setup::new();
    let writer = s.main.dir.path().join("writer-password");
    std::fs::write(&writer, "writer password\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&writer, std::fs::Permissions::from_mode(0o600)).unwrap();
    s.main.ok(&["key", "add", "--writer", "--new-password-file", writer.to_str().unwrap()], b"");
    let text = format!(
        "[repository]\nlocation = {:?}\npassword_file = {:?}\n\n[jobs.app]\nstreams = [{{ command = \"echo hi\" }}]\nkeep = {{ last = 1 }}\n",
        s.main.location,
        writer.display().to_string()
    );
    std::fs::write(&s.config, text).unwrap();
    for _ in 0..2 {
        let out = s.silo(&["--json", "run", "app"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("writer key") && stderr(&out).contains("forget skipped"), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let steps = report["jobs"][0]["steps"].as_array().cloned().unwrap();
        assert_eq!(step_of(&steps, "forget")["outcome"], "skipped", "{steps:?}");
    }
    assert_eq!(s.main.snapshot_count(), 2, "both committed; nothing forgotten");
}
