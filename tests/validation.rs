//! Issue 17 part 1: every stream is recognised by its first bytes and checked while it is stored. Real dumps
//! from the servers on this machine — pg_dump plain, custom and tar, pg_dumpall, mysqldump, sqlite3 `.dump`
//! and a database file, a Redis RDB, slapcat's LDIF — are committed whole and refused when cut at any of many
//! offsets; `--accept-invalid` commits one marked invalid, `--no-validate` stores it unjudged.

mod util;

use std::io::Read;
use std::process::{Command, Stdio};
use util::{services, stderr, TestRepo};

fn output(mut cmd: Command, what: &str) -> Vec<u8> {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    out.stdout
}

/// Offsets to cut `len` bytes at: spread over the whole stream, dense at both ends, and none in the last
/// `keep` bytes (where a cut may leave a dump that is whole: its final newlines).
fn cuts(len: usize, keep: usize, from: usize) -> Vec<usize> {
    let last = len - keep;
    // Shorter than `from`, a stream identifies no tool (`--`, `RE`): it is stored unjudged with a note.
    let mut at: Vec<usize> = vec![from, from + 1, 17, 100, 511, 512, 513, 4096, last - 1, last - 7, last - 100];
    for i in 1..24 {
        at.push(len * i / 24);
    }
    at.retain(|&c| c >= from && c < last);
    at.sort_unstable();
    at.dedup();
    at
}

/// Commits `dump` whole (checking what it was recognised as), then refuses every cut of it.
fn whole_passes_and_every_cut_is_refused(repo: &TestRepo, label: &str, dump: &[u8], format: &str, keep: usize) {
    let created = repo.create_json(label, dump);
    let rec = &created["streams"][0]["dump"];
    assert_eq!(rec["format"], format, "{label}: {created}");
    assert_eq!(rec["valid"], true, "{label}: {created}");
    // The first length at which the dump names its tool; a shorter cut is stored unjudged with a note.
    let identified = |n: usize| {
        let mut i = silo::dumps::inspect::Inspector::default();
        i.feed(&dump[..n]);
        i.conclude().0.is_some()
    };
    let from = (2..dump.len().min(8192)).find(|&n| identified(n)).expect("identified within 8 KiB");
    if from > 2 {
        let out = repo.ok(&["snapshot", "create", "--name", &format!("{label}-tiny")], &dump[..2]);
        assert!(stderr(&out).contains("stored unjudged"), "{label} cut at 2: {}", stderr(&out));
    }
    let before = repo.snapshot_count();
    for cut in cuts(dump.len(), keep, from) {
        let out = repo.run(&["snapshot", "create", "--name", label], &dump[..cut]);
        assert_eq!(out.status.code(), Some(util::EXIT_COMMAND_FAILED), "{label} cut at {cut} of {}", dump.len());
        let err = stderr(&out);
        // Cut in its first bytes, a dump may be named after another format with the same opening ("--").
        let named = if cut < 48 { "that is not whole".to_string() } else { format!("is a {format} that is not whole") };
        assert!(err.contains(&named) && err.contains("nothing was committed"), "{label} cut at {cut}: {err}");
    }
    assert_eq!(repo.snapshot_count(), before, "{label}: no cut dump was committed");
}

#[test]
fn postgres_dumps_in_every_format_pass_whole_and_are_refused_cut() {
    if !services::postgres() {
        return;
    }
    let db = "silo_t_valid_pg";
    services::pg_fresh(db);
    services::psql(
        db,
        "CREATE TABLE orders (id serial PRIMARY KEY, note text);
         INSERT INTO orders (note) SELECT 'order ' || g || E'\\twith a tab' FROM generate_series(1, 20000) g;
         CREATE TABLE \"Empty Table\" (x int);
         SELECT lo_from_bytea(0, 'a large object');",
    );
    let repo = TestRepo::init();
    let dump = |format: &str| {
        let mut c = services::pg("pg_dump");
        c.args([format, "-d", db]);
        output(c, &format!("pg_dump {format}"))
    };
    let plain = dump("-Fp");
    whole_passes_and_every_cut_is_refused(&repo, "plain", &plain, "pg_dump (plain SQL)", 3);
    let shown = repo.json(&["snapshot", "show", "plain:latest"]);
    let rec = &shown["streams"][0]["dump"];
    assert!(rec["tool_version"].as_str().unwrap().starts_with("15.") || rec["tool_version"] != "", "{rec}");
    let tables = rec["tables"].as_array().unwrap();
    let orders = tables.iter().find(|t| t["name"] == "public.orders").expect("orders listed");
    assert_eq!(orders["rows"], 20000);
    let empty = tables.iter().find(|t| t["name"] == "public.\"Empty Table\"").expect("the empty table listed");
    assert_eq!(empty["rows"], 0);

    let custom = dump("-Fc");
    whole_passes_and_every_cut_is_refused(&repo, "custom", &custom, "pg_dump (custom archive)", 1);
    // One data block cut short inside the archive (the bytes after it still there).
    let toc_end = custom.windows(b"orders".len()).rposition(|w| w == b"orders").unwrap();
    let middle = toc_end + (custom.len() - toc_end) / 2;
    let mut holed = custom[..middle].to_vec();
    holed.extend_from_slice(&custom[middle + 100..]);
    let out = repo.run(&["snapshot", "create", "--name", "custom"], &holed);
    assert_eq!(out.status.code(), Some(util::EXIT_COMMAND_FAILED), "{}", stderr(&out));

    // Uncompressed (-Z0, as silo advises): the rows of each table are counted in the archive too.
    let mut c = services::pg("pg_dump");
    c.args(["-Fc", "-Z0", "-d", db]);
    let z0 = output(c, "pg_dump -Fc -Z0");
    let created = repo.create_json("z0", &z0);
    let tables = created["streams"][0]["dump"]["tables"].as_array().unwrap().clone();
    assert_eq!(tables.iter().find(|t| t["name"] == "public.orders").unwrap()["rows"], 20000, "{tables:?}");

    let tar = dump("-Ft");
    whole_passes_and_every_cut_is_refused(&repo, "tar", &tar, "pg_dump (tar archive)", 1);
    let shown = repo.json(&["snapshot", "show", "tar:latest"]);
    let tables = shown["streams"][0]["dump"]["tables"].as_array().unwrap().clone();
    assert_eq!(tables.iter().find(|t| t["name"] == "public.orders").unwrap()["rows"], 20000, "{tables:?}");

    let mut all = services::pg("pg_dumpall");
    // Other tests' databases come and go while this runs: pg_dumpall must not list one that is then dropped.
    all.args(["--exclude-database=silo_t_*", "--exclude-database=test*", "--exclude-database=zz29_*"]);
    let all = output(all, "pg_dumpall");
    whole_passes_and_every_cut_is_refused(&repo, "all", &all, "pg_dumpall", 3);

    // Each restores: validation changes nothing in what is stored.
    assert_eq!(repo.restore("custom:latest"), custom);
    services::pg_drop(db);
}

#[test]
fn a_dump_whose_server_connection_is_killed_mid_copy_is_refused() {
    if !services::postgres() {
        return;
    }
    let db = "silo_t_valid_kill";
    services::pg_fresh(db);
    services::psql(db, "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 400000) g");
    let mut c = services::pg("pg_dump");
    c.args(["-d", db]).env("PGAPPNAME", "silo_t_valid_kill").stdin(Stdio::null()).stdout(Stdio::piped());
    let mut child = c.spawn().expect("pg_dump");
    let mut stdout = child.stdout.take().unwrap();
    // Read until the big table's data is flowing: pg_dump is then inside its COPY, blocked on this pipe.
    let mut dump = vec![0u8; 1 << 20];
    stdout.read_exact(&mut dump).unwrap();
    assert!(String::from_utf8_lossy(&dump).contains("COPY public.big"), "inside the COPY");
    let killed = services::psql(
        "postgres",
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'silo_t_valid_kill'",
    );
    assert_eq!(killed, "1");
    stdout.read_to_end(&mut dump).unwrap();
    assert!(!child.wait().unwrap().success(), "pg_dump reports the lost connection");

    // What `pg_dump | silo` would have been given: a pipe cannot pass on pg_dump's exit status.
    let repo = TestRepo::init();
    let out = repo.run(&["snapshot", "create", "--name", "big"], &dump);
    assert_eq!(out.status.code(), Some(util::EXIT_COMMAND_FAILED), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a pg_dump (plain SQL) that is not whole"), "{}", stderr(&out));
    assert_eq!(repo.snapshot_count(), 0);
    services::pg_drop(db);
}

#[test]
fn mariadb_dumps_pass_whole_and_are_refused_cut() {
    if !services::mariadb() {
        return;
    }
    let db = "silo_t_valid_my";
    services::my_fresh(db);
    services::mysql(
        Some(db),
        "CREATE TABLE t (id int PRIMARY KEY, s text);
         INSERT INTO t SELECT seq, CONCAT('row (', seq, '), ''quoted'';') FROM seq_1_to_30000;
         CREATE TABLE e (x int);
         CREATE TABLE long_rows (id int PRIMARY KEY, body mediumtext);
         INSERT INTO long_rows SELECT seq, REPEAT(CONCAT('line ', seq, ' (', CHAR(10), ');'), 900) FROM seq_1_to_40;",
    );
    let mut c = services::my("mysqldump");
    c.args(["--single-transaction", db]);
    let dump = output(c, "mysqldump");
    let repo = TestRepo::init();
    // The last line is "-- Dump completed on DATE": cut inside its date, the dump is whole.
    whole_passes_and_every_cut_is_refused(&repo, "my", &dump, "mysqldump", 40);
    let rec = &repo.json(&["snapshot", "show", "my:latest"])["streams"][0]["dump"];
    let t: Vec<_> = rec["tables"].as_array().unwrap().iter().map(|t| (t["name"].clone(), t["rows"].clone())).collect();
    // Rows far longer than a line head (mysqldump writes each on one line) are counted whole.
    assert_eq!(
        t,
        [("e".into(), 0.into()), ("long_rows".into(), 40.into()), ("t".into(), 30000.into())],
        "in dump order: {rec}"
    );
    assert!(rec["tool_version"].as_str().unwrap().contains("MariaDB"), "{rec}");
    services::my_drop(db);
}

#[test]
fn sqlite_dumps_and_files_pass_whole_and_are_refused_cut() {
    if !services::sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.db");
    let mut c = Command::new("sqlite3");
    c.arg(&file).arg(
        "CREATE TABLE notes (id integer primary key, body text);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO notes SELECT i, 'note ' || i || char(10) || 'second line' FROM n;",
    );
    output(c, "sqlite3");
    let mut c = Command::new("sqlite3");
    c.arg(&file).arg(".dump");
    let dump = output(c, "sqlite3 .dump");
    let repo = TestRepo::init();
    whole_passes_and_every_cut_is_refused(&repo, "dump", &dump, "sqlite3 .dump", 1);
    let rec = &repo.json(&["snapshot", "show", "dump:latest"])["streams"][0]["dump"];
    assert_eq!(rec["tables"][0]["rows"], 5000, "{rec}");

    let bytes = std::fs::read(&file).unwrap();
    whole_passes_and_every_cut_is_refused(&repo, "file", &bytes, "SQLite database file", 0);

    // On request, PRAGMA integrity_check: a damaged page inside a file of the right size is caught.
    let out = repo.run(&["snapshot", "create", "--name", "file", "--sqlite-integrity-check"], &bytes);
    assert!(out.status.success(), "a sound file passes: {}", stderr(&out));
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    let mut damaged = bytes.clone();
    for b in &mut damaged[2 * page..2 * page + 12] {
        *b = 0xa5;
    }
    let out = repo.run(&["snapshot", "create", "--name", "file"], &damaged);
    assert!(out.status.success(), "without the check, size and header are all that is judged");
    let out = repo.run(&["snapshot", "create", "--name", "file", "--sqlite-integrity-check"], &damaged);
    assert_eq!(out.status.code(), Some(util::EXIT_COMMAND_FAILED), "{}", stderr(&out));
    assert!(stderr(&out).contains("PRAGMA integrity_check failed"), "{}", stderr(&out));
    // Other streams are not written aside.
    let out = repo.run(&["snapshot", "create", "--name", "dump", "--sqlite-integrity-check"], &dump);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn redis_rdb_and_ldif_pass_whole_and_are_refused_cut() {
    let redis = services::tool("redis-cli", "--version").and_then(|()| {
        let ping = Command::new("redis-cli").args(["-h", "127.0.0.1", "ping"]).output().map_err(|e| e.to_string())?;
        if ping.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&ping.stderr).into_owned())
        }
    });
    let repo = TestRepo::init();
    if services::require("Redis at 127.0.0.1:6379", redis) {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "set", "silo_t_valid", "value"]);
        output(c, "redis-cli set");
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "--rdb", "-"]);
        let rdb = output(c, "redis-cli --rdb");
        // redis-cli leaves a diskless transfer's 40-byte end mark after the RDB: without it the RDB is whole.
        let keep = if rdb.len() > 49 && rdb[rdb.len() - 40..].iter().all(u8::is_ascii_alphanumeric) { 41 } else { 0 };
        whole_passes_and_every_cut_is_refused(&repo, "rdb", &rdb, "Redis RDB", keep);
        let mut flipped = rdb.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x01;
        let out = repo.run(&["snapshot", "create", "--name", "rdb"], &flipped);
        assert_eq!(out.status.code(), Some(util::EXIT_COMMAND_FAILED), "a flipped byte fails the CRC");
    }
    let dir = tempfile::tempdir().unwrap();
    if let Some(slapd) = util::ldap::Slapd::start(dir.path()) {
        let ldif = slapd.slapcat();
        let created = repo.create_json("ldif", &ldif);
        assert_eq!(created["streams"][0]["dump"]["format"], "LDIF", "{created}");
        // Cuts inside an entry (LDIF has no trailer: a cut exactly between entries cannot be told apart).
        let text = String::from_utf8_lossy(&ldif).into_owned();
        // Identified as slapcat's from its first operational attribute on (before it: stored unjudged).
        let attr = text.find("\nstructuralObjectClass:").expect("slapcat's operational attributes");
        let known = attr + 2 + text[attr + 1..].find('\n').unwrap();
        let out = repo.ok(&["snapshot", "create", "--name", "ldif-early"], &ldif[..attr / 2]);
        assert!(stderr(&out).contains("stored unjudged"), "{}", stderr(&out));
        for cut in [known + 3, text.len() / 3, text.len() / 2, text.len() - 3] {
            if text[..cut].ends_with("\n\n") {
                continue;
            }
            let out = repo.run(&["snapshot", "create", "--name", "ldif"], &ldif[..cut]);
            assert_eq!(out.status.code(), Some(util::EXIT_COMMAND_FAILED), "cut at {cut}: {}", stderr(&out));
        }
    }
}

#[test]
fn accept_invalid_commits_it_marked_and_no_validate_stores_it_unjudged() {
    let dump = b"--\n-- PostgreSQL database dump\n--\n\nCOPY public.t (a) FROM stdin;\n1\n2\n";
    let repo = TestRepo::init();
    let out = repo.run(&["snapshot", "create", "--name", "t"], dump);
    assert_eq!(out.status.code(), Some(util::EXIT_COMMAND_FAILED));
    assert!(stderr(&out).contains("public.t ends without its \\. line"), "{}", stderr(&out));

    let out = repo.run(&["snapshot", "create", "--name", "t", "--accept-invalid"], dump);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("failed validation and was committed"), "{}", stderr(&out));
    let rec = &repo.json(&["snapshot", "show", "t:latest"])["streams"][0]["dump"];
    assert_eq!((rec["valid"].as_bool(), rec["tables"][0]["rows"].as_u64()), (Some(false), Some(2)), "{rec}");
    assert!(rec["problem"].as_str().unwrap().contains("cut short"));
    let human = repo.ok(&["snapshot", "show", "t:latest"], b"");
    assert!(String::from_utf8_lossy(&human.stdout).contains("INVALID"), "show says so");
    assert_eq!(repo.restore("t:latest"), dump, "stored as given");

    let out = repo.run(&["snapshot", "create", "--name", "t", "--no-validate"], dump);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(repo.json(&["snapshot", "show", "t:latest"])["streams"][0].get("dump").is_none());
    let typo = repo.run(&["snapshot", "create", "--name", "t", "--no-validate", "dta"], dump);
    assert_eq!(typo.status.code(), Some(util::EXIT_USAGE), "an unknown stream name is refused");
    let named = repo.run(&["snapshot", "create", "--name", "t", "--no-validate", "data"], dump);
    assert!(named.status.success(), "{}", stderr(&named));

    // Streams that are not dumps are stored unjudged, as before.
    let created = repo.create_json("other", &util::dump(100_000, 3));
    assert!(created["streams"][0].get("dump").is_none(), "{created}");
    // A copy keeps the record as it was, invalid mark included.
    let target = TestRepo::init();
    let mut copy = repo.cmd(&["copy", "--to", &target.location, "t:latest~2"]);
    copy.env("SILO_TO_PASSWORD", util::PASSWORD);
    let copied = util::run_with_input(copy, b"");
    assert!(copied.status.success(), "{}", stderr(&copied));
    let rec = &target.json(&["snapshot", "show", "t:latest"])["streams"][0]["dump"];
    assert_eq!(rec["valid"], false, "the copy keeps the invalid mark: {rec}");
}

/// Issue 29: whole dumps from the real tools whose data or function bodies hold lines that look like
/// structure (a COPY header, a `\restrict` line, pg_dumpall's opening comment, `COPY ... FROM` in a body) are
/// committed, with their rows counted as the dump holds them.
#[test]
fn postgres_data_and_bodies_that_look_like_structure_are_not_refused() {
    if !services::postgres() {
        return;
    }
    let db = "zz29_valid_pg";
    services::pg_fresh(db);
    services::psql(
        db,
        "CREATE TABLE notes (id int, body text);
         INSERT INTO notes VALUES
           (1, E'how to load:\\nCOPY public.notes (id, body) FROM stdin;\\n\\\\restrict abc\\n\\\\.\\n'),
           (2, E'--\\n-- PostgreSQL database dump\\n--\\n'),
           (3, E'it''s a \\\\ backslash\\n-- PostgreSQL database dump complete\\n--\\n');
         SET check_function_bodies = off;
         CREATE FUNCTION reload() RETURNS void LANGUAGE sql AS $$
COPY notes FROM '/dev/null';
$$;",
    );
    let repo = TestRepo::init();
    for flags in [&["--inserts"][..], &["--rows-per-insert=2"], &["--column-inserts"], &["--schema-only"], &[]] {
        let mut c = services::pg("pg_dump");
        c.args(flags).args(["-d", db]);
        let dump = output(c, "pg_dump");
        let out = repo.run(&["--json", "snapshot", "create", "--name", "pg"], &dump);
        assert!(out.status.success(), "pg_dump {flags:?}: {}", stderr(&out));
        let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rec = &created["streams"][0]["dump"];
        assert_eq!((&rec["format"], &rec["valid"]), (&"pg_dump (plain SQL)".into(), &true.into()), "{flags:?}");
        if flags != ["--schema-only"] {
            let shown = repo.json(&["snapshot", "show", "pg:latest"]);
            let tables = shown["streams"][0]["dump"]["tables"].as_array().unwrap().clone();
            let notes = tables.iter().find(|t| t["name"] == "public.notes").expect("notes listed");
            assert_eq!(notes["rows"], 3, "pg_dump {flags:?}: {tables:?}");
            assert_eq!(tables.len(), 1, "pg_dump {flags:?}: {tables:?}");
        }
    }
    // pg_dumpall --inserts, the other test databases left out.
    let mut c = services::pg("pg_dumpall");
    c.args([
        "--inserts",
        "--exclude-database=silo*",
        "--exclude-database=zz29_valid_gz",
        "--exclude-database=zz29_valid_my",
    ]);
    let all = output(c, "pg_dumpall");
    let out = repo.run(&["snapshot", "create", "--name", "all"], &all);
    assert!(out.status.success(), "pg_dumpall --inserts: {}", stderr(&out));
    services::pg_drop(db);
}

/// Issue 29: an SQLite file grown in chunks (`.filectrl chunk_size 65536`) is longer than its pages and whole.
#[test]
fn sqlite_a_file_grown_in_chunks_is_whole() {
    if !services::sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chunked.db");
    let mut c = Command::new("sqlite3");
    c.arg(&file).args([".filectrl chunk_size 65536", "CREATE TABLE t (a); INSERT INTO t VALUES (randomblob(3000));"]);
    output(c, "sqlite3");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes.len() % 65536, 0, "the file is grown in chunks");
    let repo = TestRepo::init();
    let created = repo.create_json("chunked", &bytes);
    assert_eq!(created["streams"][0]["dump"]["valid"], true, "{created}");
}

/// Issue 29: a stream silo cannot identify as one tool's dump is stored unjudged with a note, never refused.
#[test]
fn tiny_and_look_alike_streams_are_stored_unjudged_with_a_note() {
    let repo = TestRepo::init();
    let mut redis_text = b"REDIS0011 is what an RDB file begins with; this is a note about it.\n".to_vec();
    redis_text.extend(std::iter::repeat_n(b'x', 600));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dashes", b"--\n".to_vec()),
        ("re", b"RE".to_vec()),
        ("redis-text", redis_text),
        ("mysql-by-hand", b"-- MySQL dump\nCREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n".to_vec()),
        ("ldif-crlf", b"dn: dc=example,dc=org\r\ndc: example\r\n\r\n".to_vec()),
        ("ldif-no-blank", b"dn: dc=example,dc=org\ndc: example\n".to_vec()),
    ];
    for (name, data) in cases {
        let out = repo.run(&["snapshot", "create", "--name", name], &data);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains("stored unjudged"), "{name}: {}", stderr(&out));
    }
}

/// Issue 29: `pg_dump | gzip | silo` (and zstd) is judged through the decompression: a whole one is committed
/// (with a note that restore-database cannot load it), a cut one refused.
#[test]
fn compressed_dumps_are_judged_through_the_compression() {
    if !services::postgres() {
        return;
    }
    let db = "zz29_valid_gz";
    services::pg_fresh(db);
    services::psql(db, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g");
    let mut c = services::pg("pg_dump");
    c.args(["-d", db]);
    let dump = output(c, "pg_dump");
    let repo = TestRepo::init();
    for (tool, args) in [("gzip", &["-c"][..]), ("zstd", &["-c", "-q"])] {
        if Command::new(tool).arg("--version").output().is_err() {
            println!("{tool}: not installed, not tested");
            continue;
        }
        let mut child = Command::new(tool).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        let d = dump.clone();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut input, &d));
        let mut packed = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut packed).unwrap();
        writer.join().unwrap().unwrap();
        assert!(child.wait().unwrap().success());
        let out = repo.run(&["snapshot", "create", "--name", tool], &packed);
        assert!(out.status.success(), "{tool}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("inside {tool}")), "{tool}: {}", stderr(&out));
        for cut in [packed.len() / 3, packed.len() / 2, packed.len() - 9, packed.len() - 1] {
            let out = repo.run(&["snapshot", "create", "--name", tool], &packed[..cut]);
            assert_eq!(out.status.code(), Some(util::EXIT_COMMAND_FAILED), "{tool} cut at {cut}: {}", stderr(&out));
            assert!(stderr(&out).contains(&format!("{tool}-compressed")), "{tool} cut at {cut}: {}", stderr(&out));
        }
    }
    services::pg_drop(db);
}

/// Issue 29: mysqldump --compact / --skip-comments (no header, no trailer) is stored with a note saying it
/// cannot be checked or loaded by restore-database.
#[test]
fn mysqldump_without_its_header_is_stored_with_a_note() {
    if !services::mariadb() {
        return;
    }
    let db = "zz29_valid_my";
    services::my_fresh(db);
    services::mysql(Some(db), "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2);");
    let repo = TestRepo::init();
    for flag in ["--compact", "--skip-comments"] {
        let mut c = services::my("mysqldump");
        c.args([flag, db]);
        let dump = output(c, "mysqldump");
        let out = repo.run(&["snapshot", "create", "--name", "my"], &dump);
        assert!(out.status.success(), "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains("--compact or --skip-comments"), "{flag}: {}", stderr(&out));
    }
    services::my_drop(db);
}
