//! Issue 17 part 3: `silo restore-database` puts a snapshot's dump in place of a live PostgreSQL, MariaDB or
//! SQLite database — restored into a scratch database, verified, swapped in atomically — and `--rollback`
//! swaps back. Checked against the real servers: a client querying the live database all along never finds
//! it missing, a verification failure changes nothing, a failing start command rolls back, `--fallback`
//! passes over a snapshot that does not verify, and SIGKILL at many points leaves the old or the new database
//! in place, intact.

mod util;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use util::{services, stderr, TestRepo};

fn restore_db(repo: &TestRepo, args: &[&str]) -> std::process::Output {
    let mut c = repo.cmd(&[&["restore-database"][..], args].concat());
    c.envs(services::PG_ENV).envs(services::MY_ENV);
    util::run_with_input(c, b"")
}

fn count(db: &str, table: &str) -> String {
    services::psql(db, &format!("SELECT count(*) FROM {table}"))
}

fn pg_exists(db: &str) -> bool {
    services::psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")) == "1"
}

/// Until stopped: asks the catalog whether `db` exists (from another database, so the answer is one MVCC
/// snapshot of pg_database), and queries `db` itself over a new connection. Returns the queries served and
/// every moment the name was missing — from the catalog, or as a connection error other than PostgreSQL's
/// "it seems to have just been dropped or renamed" (a connection attempt that raced the rename transaction:
/// it looked the name up before the commit and found it renamed after; the next attempt is served).
fn keep_querying(db: &'static str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut ok, mut missing) = (0, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            let mut c = services::pg("psql");
            c.args(["-X", "-A", "-t", "-d", "postgres", "-c"]);
            c.arg(format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"));
            let out = c.stdin(Stdio::null()).output().unwrap();
            let n = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && n != "1" {
                missing.push(format!("the catalog has {n} databases named {db}"));
            }
            let mut c = services::pg("psql");
            c.args(["-X", "-A", "-t", "-d", db, "-c", "SELECT count(*) FROM orders"]);
            let out = c.stdin(Stdio::null()).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                ok += 1;
            } else if err.contains("does not exist") && !err.contains("just been dropped or renamed") {
                missing.push(err);
            }
        }
        (ok, missing)
    })
}

#[test]
fn postgres_swap_under_a_querying_client_rollback_and_failed_verification() {
    if !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb_pg";
    for d in [DB, "silo_t_rdb_pg__silo_new", "silo_t_rdb_pg__silo_prev"] {
        services::pg_drop(d);
    }
    services::pg_fresh(DB);
    services::psql(
        DB,
        "CREATE TABLE orders (id serial PRIMARY KEY, note text);
         INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 5000) g;
         CREATE TABLE \"Line Items\" (id int);
         INSERT INTO \"Line Items\" SELECT generate_series(1, 300);",
    );
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "shop", "--", "pg_dump", "--no-password", DB]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    // The application then loses rows: the snapshot is what we want back.
    services::psql(DB, "DELETE FROM orders WHERE id > 1000; INSERT INTO orders (note) VALUES ('after')");

    let stop = Arc::new(AtomicBool::new(false));
    let client = keep_querying(DB, stop.clone());
    let out = restore_db(
        &repo,
        &["--json", "shop:latest", "--postgres", DB, "--check-sql", "SELECT count(*) > 0 FROM orders"],
    );
    stop.store(true, Ordering::SeqCst);
    let (served, missing) = client.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(missing.is_empty(), "the client found no database: {missing:?}");
    assert!(served > 0, "the client was served throughout");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tables_verified"], 2, "{report}");
    assert_eq!(count(DB, "orders"), "5000");
    assert_eq!(count(DB, "\"Line Items\""), "300");
    assert_eq!(count("silo_t_rdb_pg__silo_prev", "orders"), "1001", "the replaced database is kept");
    assert!(!pg_exists("silo_t_rdb_pg__silo_new"), "no scratch left");

    // --rollback swaps back, and again undoes it.
    let out = restore_db(&repo, &["--rollback", "--postgres", DB]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(DB, "orders"), "1001");
    assert!(restore_db(&repo, &["--rollback", "--postgres", DB]).status.success());
    assert_eq!(count(DB, "orders"), "5000");

    // A check that fails: nothing changes, the scratch is gone, exit 11.
    services::psql(DB, "INSERT INTO orders (note) VALUES ('live change')");
    let out = restore_db(
        &repo,
        &["shop:latest", "--postgres", DB, "--drop-previous", "--check-sql", "SELECT count(*) > 999999 FROM orders"],
    );
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(stderr(&out).contains("check query"), "{}", stderr(&out));
    assert_eq!(count(DB, "orders"), "5001", "the live database is untouched");
    assert_eq!(count("silo_t_rdb_pg__silo_prev", "orders"), "1001", "the rollback target too");
    assert!(!pg_exists("silo_t_rdb_pg__silo_new"));

    // A start command that fails after the swap: the previous database is put back, exit 12.
    let out = restore_db(&repo, &["shop:latest", "--postgres", DB, "--drop-previous", "--start-command", "exit 3"]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    assert_eq!(count(DB, "orders"), "5001", "the database before the attempt is live again");

    // --fallback passes over a newer snapshot that does not verify (committed although cut short).
    let cut = b"--\n-- PostgreSQL database dump\n--\n\nCOPY public.orders (id, note) FROM stdin;\n1\tx\n";
    let out = repo.run(&["snapshot", "create", "--name", "shop", "--accept-invalid"], cut);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = restore_db(&repo, &["shop:latest", "--postgres", DB, "--drop-previous"]);
    assert_eq!(out.status.code(), Some(11), "an invalid dump is not restored: {}", stderr(&out));
    let out = restore_db(&repo, &["--json", "shop:latest", "--postgres", DB, "--fallback", "--drop-previous"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["skipped"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(count(DB, "orders"), "5000");

    // A custom archive (pg_dump -Fc -Z0) goes through pg_restore, its rows counted and checked the same way.
    let mut create =
        repo.cmd(&["snapshot", "create", "--name", "shopc", "--", "pg_dump", "--no-password", "-Fc", "-Z0", DB]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    let out = restore_db(&repo, &["--json", "shopc:latest", "--postgres", DB, "--drop-previous"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tables_verified"], 2, "{report}");
    assert_eq!(count(DB, "orders"), "5000");

    // A database under silo's rollback name that silo did not make is never dropped: refused, nothing changed.
    services::pg_drop("silo_t_rdb_pg__silo_prev");
    services::psql("postgres", "CREATE DATABASE silo_t_rdb_pg__silo_prev");
    services::psql("silo_t_rdb_pg__silo_prev", "CREATE TABLE mine (x int); INSERT INTO mine VALUES (1)");
    let out = restore_db(&repo, &["shop:latest~1", "--postgres", DB, "--drop-previous"]);
    assert_eq!(out.status.code(), Some(util::EXIT_USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("was not made by silo restore-database"), "{}", stderr(&out));
    assert_eq!(count("silo_t_rdb_pg__silo_prev", "mine"), "1");
    assert_eq!(count(DB, "orders"), "5000");
    assert!(!pg_exists("silo_t_rdb_pg__silo_new"), "the scratch was removed");
    for d in [DB, "silo_t_rdb_pg__silo_prev"] {
        services::pg_drop(d);
    }
}

#[test]
fn postgres_sigkill_at_any_point_leaves_the_old_or_the_new_database() {
    if !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb_kill";
    for d in [DB, "silo_t_rdb_kill__silo_new", "silo_t_rdb_kill__silo_prev", "silo_t_rdb_kill__silo_swap"] {
        services::pg_drop(d);
    }
    services::pg_fresh(DB);
    services::psql(DB, "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 60000) g");
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "k", "--", "pg_dump", "--no-password", DB]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    services::psql(DB, "DELETE FROM orders WHERE id > 100");
    let mut state = 0xfeed_u64;
    for round in 0..12 {
        let mut c = repo.cmd(&["restore-database", "k:latest", "--postgres", DB, "--drop-previous"]);
        c.envs(services::PG_ENV).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        // A point anywhere in the run: restore, verification, swap (a run takes ~1-2 s here).
        let at = util::xorshift(&mut state) % 2500;
        std::thread::sleep(std::time::Duration::from_millis(at));
        let _ = child.kill();
        let _ = child.wait();
        let rows = count(DB, "orders");
        assert!(rows == "100" || rows == "60000", "round {round} (killed at {at} ms): {DB} has {rows} rows");
        // Whichever it is, it is whole: its rows are those of one of the two states.
        let sum = services::psql(DB, "SELECT coalesce(sum(id), 0) FROM orders");
        assert!(sum == "5050" || sum == "1800030000", "round {round}: {sum}");
    }
    // A later run completes despite what the kills left behind.
    let out = restore_db(&repo, &["k:latest", "--postgres", DB, "--drop-previous"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(DB, "orders"), "60000");
    for d in [DB, "silo_t_rdb_kill__silo_new", "silo_t_rdb_kill__silo_prev", "silo_t_rdb_kill__silo_swap"] {
        services::pg_drop(d);
    }
}

#[test]
fn mariadb_swap_and_rollback() {
    if !services::mariadb() {
        return;
    }
    const DB: &str = "silo_t_rdb_my";
    for d in [DB, "silo_t_rdb_my__silo_new", "silo_t_rdb_my__silo_prev", "silo_t_rdb_my__silo_swap"] {
        services::my_drop(d);
    }
    services::my_fresh(DB);
    services::mysql(
        Some(DB),
        "CREATE TABLE orders (id int PRIMARY KEY, note text);
         INSERT INTO orders SELECT seq, CONCAT('order ', seq) FROM seq_1_to_4000;
         CREATE TABLE empty_one (x int);",
    );
    let repo = TestRepo::init();
    let mut create =
        repo.cmd(&["snapshot", "create", "--name", "my", "--", "mysqldump", "-uroot", "--single-transaction", DB]);
    create.envs(services::MY_ENV);
    let out = util::run_with_input(create, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    services::mysql(Some(DB), "DELETE FROM orders WHERE id > 10; CREATE TABLE added_later (y int)");

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let mut c = services::my("mysql");
                c.args(["-N", "-B", DB, "-e", "SELECT COUNT(*) FROM orders"]);
                let out = c.stdin(Stdio::null()).output().unwrap();
                match out.status.success() {
                    true => ok += 1,
                    false => failed.push(String::from_utf8_lossy(&out.stderr).into_owned()),
                }
            }
            (ok, failed)
        })
    };
    let out = restore_db(&repo, &["--json", "my:latest", "--mariadb", DB, "--user", "root"]);
    stop.store(true, Ordering::SeqCst);
    let (served, failed) = client.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(served > 0 && failed.is_empty(), "a client querying throughout is always served: {failed:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tables_verified"], 2, "{report}");
    assert_eq!(services::mysql(Some(DB), "SELECT COUNT(*) FROM orders"), "4000");
    let tables = services::mysql(None, &format!("SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}'"));
    assert_eq!(tables, "empty_one,orders", "exactly the dump's tables are live");
    assert_eq!(services::mysql(Some("silo_t_rdb_my__silo_prev"), "SELECT COUNT(*) FROM orders"), "10");

    let out = restore_db(&repo, &["--rollback", "--mariadb", DB, "--user", "root"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(services::mysql(Some(DB), "SELECT COUNT(*) FROM orders"), "10");
    assert_eq!(services::mysql(Some(DB), "SELECT COUNT(*) FROM added_later"), "0", "the old tables are back");

    // SIGKILL anywhere: the live name holds the old tables or the new ones, all of them.
    let mut state = 0x5eed_u64;
    for round in 0..8 {
        let mut c = repo.cmd(&["restore-database", "my:latest", "--mariadb", DB, "--user", "root", "--drop-previous"]);
        c.envs(services::MY_ENV).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let at = util::xorshift(&mut state) % 1500;
        std::thread::sleep(std::time::Duration::from_millis(at));
        let _ = child.kill();
        let _ = child.wait();
        let rows = services::mysql(Some(DB), "SELECT COUNT(*) FROM orders");
        let tables = services::mysql(
            None,
            &format!("SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{DB}'"),
        );
        let old = rows == "10" && tables == "added_later,empty_one,orders";
        let new = rows == "4000" && tables == "empty_one,orders";
        assert!(old || new, "round {round} (killed at {at} ms): {rows} rows, tables {tables}");
    }

    // A view cannot move with RENAME TABLE: refused before anything changes.
    let before = services::mysql(Some(DB), "SELECT COUNT(*) FROM orders");
    services::mysql(Some(DB), "CREATE VIEW v AS SELECT id FROM orders");
    let out = restore_db(&repo, &["my:latest", "--mariadb", DB, "--user", "root", "--drop-previous"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert_eq!(services::mysql(Some(DB), "SELECT COUNT(*) FROM orders"), before);
    for d in [DB, "silo_t_rdb_my__silo_new", "silo_t_rdb_my__silo_prev", "silo_t_rdb_my__silo_swap"] {
        services::my_drop(d);
    }
}

#[test]
fn sqlite_swap_rollback_and_sigkill() {
    if !services::sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.db");
    let sql = |q: &str| {
        let out = Command::new("sqlite3").arg(&file).arg(q).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    sql("CREATE TABLE notes (id integer primary key, body text);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO notes SELECT i, 'note ' || i FROM n;");
    let repo = TestRepo::init();
    let f = file.to_str().unwrap();
    for (name, args) in [("dump", vec!["sqlite3", f, ".dump"]), ("file", vec!["cat", f])] {
        let c = repo.cmd(&[&["snapshot", "create", "--name", name, "--"][..], &args].concat());
        assert!(util::run_with_input(c, b"").status.success());
    }
    sql("DELETE FROM notes WHERE id > 7");
    for name in ["dump", "file"] {
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let (stop, file) = (stop.clone(), file.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    let out = Command::new("sqlite3")
                        .arg("-readonly")
                        .arg(&file)
                        .arg("SELECT count(*) FROM notes")
                        .output()
                        .unwrap();
                    match out.status.success() {
                        true => ok += 1,
                        false => failed.push(String::from_utf8_lossy(&out.stderr).into_owned()),
                    }
                }
                (ok, failed)
            })
        };
        let out = restore_db(&repo, &[&format!("{name}:latest"), "--sqlite", f, "--drop-previous"]);
        stop.store(true, Ordering::SeqCst);
        let (served, failed) = client.join().unwrap();
        assert!(served > 0 && failed.is_empty(), "{name}: a reader throughout is always served: {failed:?}");
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(sql("SELECT count(*) FROM notes"), "3000", "{name}");
        assert!(restore_db(&repo, &["--rollback", "--sqlite", f]).status.success());
        assert_eq!(sql("SELECT count(*) FROM notes"), "7", "{name}: rolled back");
    }
    // A file under silo's rollback name that silo did not make is never removed.
    let prev = dir.path().join("app.db.silo-prev");
    let before_rows = sql("SELECT count(*) FROM notes");
    std::fs::remove_file(&prev).unwrap();
    std::fs::write(&prev, b"not silo's").unwrap();
    let out = restore_db(&repo, &["dump:latest", "--sqlite", f, "--drop-previous"]);
    assert_eq!(out.status.code(), Some(util::EXIT_USAGE), "{}", stderr(&out));
    assert_eq!(std::fs::read(&prev).unwrap(), b"not silo's");
    assert_eq!(sql("SELECT count(*) FROM notes"), before_rows);
    std::fs::remove_file(&prev).unwrap();

    let mut state = 0xbeef_u64;
    for round in 0..10 {
        let mut c = repo.cmd(&["restore-database", "dump:latest", "--sqlite", f, "--drop-previous"]);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(util::xorshift(&mut state) % 800));
        let _ = child.kill();
        let _ = child.wait();
        let rows = sql("SELECT count(*) FROM notes");
        assert!(rows == "7" || rows == "3000", "round {round}: {rows}");
        assert_eq!(sql("PRAGMA integrity_check"), "ok");
    }
}

/// I18: a second restore-database never drops the database the first one replaced (the original, live
/// before silo's first swap) unless told to with --drop-previous.
#[test]
fn postgres_a_second_restore_keeps_the_database_the_first_replaced() {
    if !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb_second";
    let prev = "silo_t_rdb_second__silo_prev";
    for d in [DB, "silo_t_rdb_second__silo_new", prev] {
        services::pg_drop(d);
    }
    services::pg_fresh(DB);
    services::psql(DB, "CREATE TABLE orders AS SELECT generate_series(1, 5) AS id");
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "s", "--", "pg_dump", "--no-password", DB]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    // Production moves on: these 9 rows are the original that must never be lost.
    services::psql(DB, "INSERT INTO orders SELECT generate_series(6, 9)");
    assert!(restore_db(&repo, &["s:latest", "--postgres", DB]).status.success());
    assert_eq!((count(DB, "orders"), count(prev, "orders")), ("5".into(), "9".into()));
    // The same command again (the "right" snapshot after the wrong one): refused, nothing changed.
    let out = restore_db(&repo, &["s:latest", "--postgres", DB]);
    assert_eq!(out.status.code(), Some(util::EXIT_USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("--drop-previous") && stderr(&out).contains(prev), "{}", stderr(&out));
    assert_eq!((count(DB, "orders"), count(prev, "orders")), ("5".into(), "9".into()));
    assert!(!pg_exists("silo_t_rdb_second__silo_new"), "refused before any work");
    // After a rollback the original is live; a restore told to drop the previous one drops only the restored.
    assert!(restore_db(&repo, &["--rollback", "--postgres", DB]).status.success());
    assert_eq!(count(DB, "orders"), "9");
    let out = restore_db(&repo, &["s:latest", "--postgres", DB, "--drop-previous"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!((count(DB, "orders"), count(prev, "orders")), ("5".into(), "9".into()));
    for d in [DB, prev] {
        services::pg_drop(d);
    }
}

/// I22: a database name that libpq would read as a connection string (`dbname=... application_name=...`)
/// is passed as a name: the dump goes into the scratch of that very database, not into the one it names.
#[test]
fn postgres_a_name_that_parses_as_a_connection_string_is_only_a_name() {
    if !services::postgres() {
        return;
    }
    const VICTIM: &str = "silo_t_rdb_victim";
    const SOURCE: &str = "silo_t_rdb_cs_source";
    let live = "dbname=silo_t_rdb_victim application_name=x";
    for d in [VICTIM, SOURCE, live, &format!("{live}__silo_new"), &format!("{live}__silo_prev")] {
        services::pg_drop(d);
    }
    services::pg_fresh(SOURCE);
    services::psql(SOURCE, "CREATE TABLE orders AS SELECT generate_series(1, 42) AS id");
    services::pg_fresh(VICTIM);
    services::psql(VICTIM, "CREATE TABLE mine (x int); INSERT INTO mine VALUES (1)");
    services::psql("postgres", &format!("CREATE DATABASE \"{live}\""));
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "cs", "--", "pg_dump", "--no-password", SOURCE]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    let out = restore_db(&repo, &["cs:latest", "--postgres", live]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tables = services::psql(VICTIM, "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'");
    assert_eq!(tables, "mine", "nothing was loaded into the database the name spells");
    let mut c = services::pg("psql");
    c.args(["-X", "-A", "-t", "-c", "SELECT count(*) FROM orders"]).arg(format!("--dbname=dbname='{live}'"));
    let n = c.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&n.stdout).trim(), "42", "{}", stderr(&n));
    for d in [VICTIM, SOURCE, live, &format!("{live}__silo_prev")] {
        services::pg_drop(d);
    }
}

fn sqlite_sql(file: &std::path::Path, q: &str) -> String {
    let out = Command::new("sqlite3").arg(file).arg(q).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// I15: a SQLite file another process holds open for writing (an application in WAL mode) is not swapped
/// (its later writes would land in the replaced file); a symlinked live path stays a link to the restored
/// file, and --rollback works through it.
#[test]
fn sqlite_refuses_a_file_held_open_and_keeps_a_symlink() {
    if !services::sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.db");
    sqlite_sql(&real, "PRAGMA journal_mode=WAL; CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2), (3);");
    let repo = TestRepo::init();
    let f = real.to_str().unwrap();
    let c = repo.cmd(&["snapshot", "create", "--name", "lite", "--", "sqlite3", f, ".dump"]);
    assert!(util::run_with_input(c, b"").status.success());
    sqlite_sql(&real, "INSERT INTO t VALUES (4)");

    // An application holding the database open (a writer's connection, as Python's sqlite3 opens it).
    let mut app = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('select count(*) from t').fetchall(); print('open', flush=True); sys.stdin.read()", f])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(app.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "open");
    let out = restore_db(&repo, &["lite:latest", "--sqlite", f]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("pid {}", app.id())), "{}", stderr(&out));
    assert_eq!(sqlite_sql(&real, "SELECT count(*) FROM t"), "4", "nothing was swapped");
    drop(app.stdin.take());
    app.wait().unwrap();

    // Through a symlink: the link stays a link, to the restored file; rollback through it too.
    let link = dir.path().join("app.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = restore_db(&repo, &["lite:latest", "--sqlite", link.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(sqlite_sql(&link, "SELECT count(*) FROM t"), "3");
    let out = restore_db(&repo, &["--rollback", "--sqlite", link.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sqlite_sql(&link, "SELECT count(*) FROM t"), "4");
}

/// I18 as a model: random sequences of restore-database (of several snapshots, some failing verification)
/// and --rollback on one SQLite database; after every step the database as it was before silo's first
/// swap is either live or the rollback target, whole.
#[test]
fn sqlite_random_restores_and_rollbacks_never_lose_the_original() {
    if !services::sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.db");
    let f = file.to_str().unwrap().to_string();
    let repo = TestRepo::init();
    for n in [10, 20, 30] {
        std::fs::remove_file(&file).ok();
        sqlite_sql(&file, &format!("CREATE TABLE t (x int); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) INSERT INTO t SELECT i FROM n;"));
        let c = repo.cmd(&["snapshot", "create", "--name", &format!("s{n}"), "--", "sqlite3", &f, ".dump"]);
        assert!(util::run_with_input(c, b"").status.success());
    }
    // The original: 7 rows, a table of its own.
    std::fs::remove_file(&file).unwrap();
    sqlite_sql(
        &file,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1),(2),(3),(4),(5),(6),(7); CREATE TABLE original (y int);",
    );
    let prev = dir.path().join("model.db.silo-prev");
    let is_original = |p: &std::path::Path| {
        p.exists()
            && sqlite_sql(p, "SELECT count(*) FROM sqlite_master WHERE name = 'original'") == "1"
            && sqlite_sql(p, "SELECT count(*) FROM t") == "7"
    };
    let mut rng = 0x0d15_ea5e_u64 ^ u64::from(std::process::id());
    eprintln!("seed {rng:#x}");
    for step in 0..30 {
        let r = util::xorshift(&mut rng);
        let snap = format!("s{}:latest", [10, 20, 30][(r >> 8) as usize % 3]);
        let original_is_live = is_original(&file);
        let mut args: Vec<&str> = match r % 4 {
            0 => vec!["--rollback", "--sqlite", &f],
            1 => vec![&snap, "--sqlite", &f, "--check-command", "exit 1"],
            _ => vec![&snap, "--sqlite", &f],
        };
        // Told to drop the previous database only while it is not the original (the user's own choice).
        if r & (1 << 20) != 0 && original_is_live && !r.is_multiple_of(4) {
            args.push("--drop-previous");
        }
        let out = restore_db(&repo, &args);
        assert!(
            is_original(&file) || is_original(&prev),
            "step {step} ({args:?}, exit {:?}): the original is gone: {}",
            out.status.code(),
            stderr(&out)
        );
    }
}

/// I18, found by an adversarial pass: an interrupt during `restore-database --drop-previous` never leaves the
/// previous database dropped without the swap it was dropped for: the run either finishes (exit 0, the new
/// database live, the one it replaced kept as the rollback target) or changes nothing (exit 130).
#[test]
fn postgres_an_interrupt_never_drops_the_previous_database_without_the_swap() {
    if !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb_int";
    let (prev, new) = ("silo_t_rdb_int__silo_prev", "silo_t_rdb_int__silo_new");
    for d in [DB, prev, new] {
        services::pg_drop(d);
    }
    services::pg_fresh(DB);
    services::psql(DB, "CREATE TABLE t AS SELECT generate_series(1, 20000) AS id");
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "i", "--", "pg_dump", "--no-password", DB]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    services::psql(DB, "INSERT INTO t VALUES (0)"); // the original: 20001 rows
    assert!(restore_db(&repo, &["i:latest", "--postgres", DB]).status.success());
    for delay in ["0", "0.05", "0.1", "0.15", "0.2", "0.3", "0.5", "0.8"] {
        let before = (count(DB, "t"), count(prev, "t"));
        // Marks the live database so a swap is visible, whatever the counts.
        let stop = format!("(sleep {delay}; kill -INT $PPID) >/dev/null 2>&1 & exit 0");
        let out = restore_db(&repo, &["i:latest", "--postgres", DB, "--drop-previous", "--stop-command", &stop]);
        let after_live = count(DB, "t");
        assert!(pg_exists(prev), "delay {delay}: exit {:?}: the previous database is gone", out.status.code());
        match out.status.code() {
            Some(0) => {
                assert_eq!((after_live.as_str(), count(prev, "t")), ("20000", before.0.clone()), "delay {delay}")
            }
            Some(130) => {
                assert_eq!((after_live, count(prev, "t")), before, "delay {delay}: interrupted, nothing changed")
            }
            other => panic!("delay {delay}: exit {other:?}: {}", stderr(&out)),
        }
        assert!(!pg_exists(new), "delay {delay}: the scratch database was removed");
    }
    for d in [DB, prev, new] {
        services::pg_drop(d);
    }
}

/// Issue 29: dumps that load fine verify — table inheritance (a parent counted without its children), one
/// INSERT of many rows (`--rows-per-insert`), a trigger function whose body has `INSERT INTO log VALUES` at
/// column 0, an SQL function body with `COPY ... FROM`, a COPY row that begins `CREATE DATABASE ` — and a
/// failing `--check-sql` says psql's ERROR line, not its caret.
#[test]
fn postgres_dumps_that_load_fine_verify() {
    if !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb29";
    let targets = ["silo_t_rdb29_plain", "silo_t_rdb29_rows", "silo_t_rdb29_check"];
    for t in targets {
        for suffix in ["", "__silo_new", "__silo_prev"] {
            services::pg_drop(&format!("{t}{suffix}"));
        }
    }
    services::pg_fresh(DB);
    services::psql(
        DB,
        "CREATE TABLE events (id int, what text);
         CREATE TABLE events_2026 () INHERITS (events);
         INSERT INTO events VALUES (1, 'parent');
         INSERT INTO events_2026 VALUES (2, 'child'), (3, 'child');
         CREATE TABLE log (x text);
         CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO log VALUES ('fired');
RETURN NEW;
END $$;
         CREATE TRIGGER t AFTER INSERT ON events_2026 FOR EACH ROW EXECUTE FUNCTION log_it();
         CREATE TABLE audit (what text);
         INSERT INTO audit VALUES (E'CREATE DATABASE evil\\tby admin'), ('x');
         SET check_function_bodies = off;
         CREATE FUNCTION reload() RETURNS void LANGUAGE sql AS $$
COPY audit FROM '/dev/null';
$$;",
    );
    let repo = TestRepo::init();
    for (name, extra) in [("plain", None), ("rows", Some("--rows-per-insert=100"))] {
        let mut args = vec!["snapshot", "create", "--name", name, "--", "pg_dump", "--no-password"];
        args.extend(extra);
        args.push(DB);
        let mut create = repo.cmd(&args);
        create.envs(services::PG_ENV);
        let out = util::run_with_input(create, b"");
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }
    for (name, target) in [("plain", targets[0]), ("rows", targets[1])] {
        let out = restore_db(&repo, &["--json", &format!("{name}:latest"), "--postgres", target]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(count(target, "ONLY events"), "1", "{name}");
        assert_eq!(count(target, "events"), "3", "{name}");
        assert_eq!(count(target, "audit"), "2", "{name}");
        assert_eq!(count(target, "log"), "0", "{name}");
    }
    let out =
        restore_db(&repo, &["plain:latest", "--postgres", targets[2], "--check-sql", "SELECT nosuch FROM events"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ERROR:") && err.contains("nosuch"), "the error line is shown: {err}");
    assert!(!pg_exists(targets[2]), "a failed verification restores nothing");
    for t in [DB, targets[0], targets[1]] {
        services::pg_drop(t);
    }
}

/// Issue 29: one restore-database per database, however the server is named: `--host 127.0.0.1` and
/// `PGHOST=127.0.0.1` take the same lock.
#[test]
fn postgres_two_spellings_of_one_server_take_one_lock() {
    if !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb29_lock";
    for suffix in ["", "__silo_new", "__silo_prev"] {
        services::pg_drop(&format!("{DB}{suffix}"));
    }
    services::pg_fresh(DB);
    services::psql(DB, "CREATE TABLE t AS SELECT 1 AS x");
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "l", "--", "pg_dump", "--no-password", DB]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    let target = "silo_t_rdb29_lock_to";
    for suffix in ["", "__silo_new", "__silo_prev"] {
        services::pg_drop(&format!("{target}{suffix}"));
    }
    let mut first = repo.cmd(&["restore-database", "l:latest", "--postgres", target, "--host", "127.0.0.1"]);
    first.args(["--stop-command", "sleep 4"]).envs(services::PG_ENV).env_remove("PGHOST");
    let first = first.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // The second run names the server through PGHOST only.
    let second = restore_db(&repo, &["l:latest", "--postgres", target]);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(second.status.code(), Some(6), "the second run waits for the first: {}", stderr(&second));
    assert!(stderr(&second).contains("another restore-database"), "{}", stderr(&second));
    for d in [DB, target] {
        services::pg_drop(d);
    }
}

/// Issue 29: a MariaDB table whose name needs backquotes is recorded and counted by its whole name.
#[test]
fn mariadb_a_table_named_with_a_space_verifies() {
    if !services::mariadb() {
        return;
    }
    const DB: &str = "silo_t_rdb29_my";
    for d in [DB, "silo_t_rdb29_my__silo_new", "silo_t_rdb29_my__silo_prev", "silo_t_rdb29_my__silo_swap"] {
        services::my_drop(d);
    }
    services::my_fresh(DB);
    services::mysql(
        Some(DB),
        "CREATE TABLE `my table` (a text); INSERT INTO `my table` VALUES ('x\\nUSE `y`;'), ('z');",
    );
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "my", "--", "mysqldump", "-uroot", DB]);
    create.envs(services::MY_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    let shown = repo.json(&["snapshot", "show", "my:latest"]);
    let tables = &shown["streams"][0]["dump"]["tables"];
    assert!(
        tables.as_array().unwrap().iter().any(|t| t["name"] == format!("{DB}.my table") || t["name"] == "my table"),
        "{tables}"
    );
    services::mysql(Some(DB), "DELETE FROM `my table`");
    let out = restore_db(&repo, &["my:latest", "--mariadb", DB]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(services::mysql(Some(DB), "SELECT COUNT(*) FROM `my table`"), "2");
    for d in [DB, "silo_t_rdb29_my__silo_prev"] {
        services::my_drop(d);
    }
}

/// Issue 29: an SQLite trigger whose body has `INSERT INTO log VALUES` at column 0 is no row of `log`.
#[test]
fn sqlite_a_trigger_body_is_not_a_row() {
    if !services::sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.db");
    let out = Command::new("sqlite3")
        .arg(&file)
        .arg("CREATE TABLE t (a); CREATE TABLE log (x); INSERT INTO t VALUES (1), (2);\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN\nINSERT INTO log VALUES (new.a);\nEND;")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let repo = TestRepo::init();
    let f = file.to_str().unwrap();
    let c = repo.cmd(&["snapshot", "create", "--name", "d", "--", "sqlite3", f, ".dump"]);
    assert!(util::run_with_input(c, b"").status.success());
    let out = restore_db(&repo, &["d:latest", "--sqlite", f]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sqlite_sql(&file, "SELECT count(*) FROM log"), "0");
}

/// Issue 29: a failing `--stop-command` changes nothing and exits 7 (docs/operations.md "Exit codes").
#[test]
fn sqlite_a_failing_stop_command_exits_7_and_changes_nothing() {
    if !services::sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.db");
    let f = file.to_str().unwrap();
    let out = Command::new("sqlite3").arg(&file).arg("CREATE TABLE t (a); INSERT INTO t VALUES (1), (2);").output();
    assert!(out.unwrap().status.success());
    let repo = TestRepo::init();
    let c = repo.cmd(&["snapshot", "create", "--name", "d", "--", "sqlite3", f, ".dump"]);
    assert!(util::run_with_input(c, b"").status.success());
    let live = Command::new("sqlite3").arg(&file).arg("DELETE FROM t WHERE a = 2").output();
    assert!(live.unwrap().status.success());
    let out = restore_db(&repo, &["d:latest", "--sqlite", f, "--stop-command", "exit 3"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("stop command"), "{}", stderr(&out));
    assert_eq!(sqlite_sql(&file, "SELECT count(*) FROM t"), "1", "the live database is unchanged");
}

/// Issue 29: a dump that switches database (`pg_dump --create`) is stopped before the statement reaches the
/// loader: exit 11 with the statement named, the live database unchanged.
#[test]
fn postgres_a_dump_that_switches_database_is_stopped() {
    if !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb29_create";
    let target = "silo_t_rdb29_create_to";
    for d in [DB, target, "silo_t_rdb29_create_to__silo_new", "silo_t_rdb29_create_to__silo_prev"] {
        services::pg_drop(d);
    }
    services::pg_fresh(DB);
    services::psql(DB, "CREATE TABLE t AS SELECT 1 AS x");
    services::pg_fresh(target);
    services::psql(target, "CREATE TABLE live AS SELECT 1 AS y");
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "c", "--", "pg_dump", "--no-password", "--create", DB]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    let out = restore_db(&repo, &["c:latest", "--postgres", target]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(stderr(&out).contains("switches to another database (CREATE DATABASE"), "{}", stderr(&out));
    assert_eq!(count(target, "live"), "1", "the live database is unchanged");
    assert!(!pg_exists("silo_t_rdb29_create_to__silo_new"), "the scratch database was removed");
    for d in [DB, target] {
        services::pg_drop(d);
    }
}

/// Issue 30 (I9): Ctrl-C while restore-database loads a PostgreSQL dump removes the scratch database and says
/// so on stderr, naming it; the live database is unchanged. The load is held in the middle by a psql that
/// pauses (the test's own, first on PATH) until the test has interrupted silo. Without a terminal on stderr
/// there is no progress line.
#[test]
fn postgres_ctrl_c_during_the_load_removes_the_scratch_database_and_says_so() {
    if !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb_sigint";
    let new = "silo_t_rdb_sigint__silo_new";
    for d in [DB, new, "silo_t_rdb_sigint__silo_prev"] {
        services::pg_drop(d);
    }
    services::pg_fresh(DB);
    services::psql(DB, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g");
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "s", "--", "pg_dump", "--no-password", DB]);
    create.envs(services::PG_ENV);
    assert!(util::run_with_input(create, b"").status.success());
    services::psql(DB, "DELETE FROM t WHERE id > 10");

    let dir = tempfile::tempdir().unwrap();
    let (bin, paused, go) = services::slow_psql(dir.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = repo.cmd(&["restore-database", "s:latest", "--postgres", DB]);
    c.envs(services::PG_ENV).env("PATH", &path).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    util::wait_until("the load to pause half way", || paused.exists());
    assert!(pg_exists(new), "the scratch database is being loaded");
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    std::fs::write(&go, "").unwrap(); // lets the paused psql end
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains(&format!("removed the scratch database {new}")), "{err}");
    assert!(!err.contains("loading"), "no progress line without a terminal: {err}");
    assert!(!pg_exists(new), "the scratch database is gone");
    assert_eq!(count(DB, "t"), "10", "the live database is unchanged");
    services::pg_drop(DB);
}
