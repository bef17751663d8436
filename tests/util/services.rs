//! The database servers the pipeline tests drive. A test asks `require(...)`: with the server reachable it
//! runs; without, it prints why and skips, unless SILO_REQUIRE_SERVICES=1 (CI), where a missing server fails.

use std::process::{Command, Output, Stdio};

/// True when the service answered `probe`; otherwise prints the reason and returns false, or panics when
/// SILO_REQUIRE_SERVICES=1.
pub fn require(service: &str, probe: Result<(), String>) -> bool {
    match probe {
        Ok(()) => true,
        Err(reason) if std::env::var("SILO_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{service} is required (SILO_REQUIRE_SERVICES=1) but not usable: {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED: {service} not usable ({reason}); set SILO_REQUIRE_SERVICES=1 to make this a failure");
            false
        }
    }
}

fn probe(mut cmd: Command) -> Result<(), String> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("{:?}: {e}", cmd.get_program())),
    }
}

/// Environment that points the PostgreSQL client tools (psql, pg_dump, pg_restore) at the local server.
pub const PG_ENV: [(&str, &str); 3] = [("PGHOST", "127.0.0.1"), ("PGPORT", "5432"), ("PGUSER", "postgres")];
/// ... and the MariaDB client tools (mysql, mysqldump) as root with an empty password.
pub const MY_ENV: [(&str, &str); 3] = [("MYSQL_HOST", "127.0.0.1"), ("MYSQL_TCP_PORT", "3306"), ("USER", "root")];

pub fn pg(program: &str) -> Command {
    let mut c = Command::new(program);
    c.envs(PG_ENV);
    c
}

pub fn my(program: &str) -> Command {
    let mut c = Command::new(program);
    c.envs(MY_ENV).arg("-uroot");
    c
}

pub fn postgres() -> bool {
    let mut c = pg("psql");
    c.args(["-X", "-d", "postgres", "-c", "select 1"]);
    let tools = ["pg_dump", "pg_restore", "pg_dumpall"]
        .iter()
        .find(|t| Command::new(t).arg("--version").output().is_err())
        .map_or(Ok(()), |t| Err(format!("{t} is not installed (scripts/setup.sh installs it)")));
    require("PostgreSQL at 127.0.0.1:5432", tools.and_then(|_| probe(c)))
}

pub fn mariadb() -> bool {
    let mut c = my("mysql");
    c.args(["-e", "select 1"]);
    let dump = if Command::new("mysqldump").arg("--version").output().is_err() {
        Err("mysqldump is not installed (scripts/setup.sh installs it)".into())
    } else {
        Ok(())
    };
    require("MariaDB at 127.0.0.1:3306", dump.and_then(|_| probe(c)))
}

/// Whether `program arg` runs and succeeds (a tool is installed), as a `require` probe.
pub fn tool(program: &str, arg: &str) -> Result<(), String> {
    let mut c = Command::new(program);
    c.arg(arg);
    probe(c).map_err(|e| format!("{e} (scripts/setup.sh installs it)"))
}

pub fn sqlite() -> bool {
    let mut c = Command::new("sqlite3");
    c.arg("-version");
    require("sqlite3", probe(c))
}

fn checked(mut cmd: Command, what: &str) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs SQL in database `db` (stops at the first error) and returns psql's unaligned output.
pub fn psql(db: &str, sql: &str) -> String {
    let mut c = pg("psql");
    c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]);
    String::from_utf8_lossy(&checked(c, &format!("psql -d {db}")).stdout).trim().to_string()
}

/// A new empty PostgreSQL database (dropped first if a previous run left it).
pub fn pg_fresh(db: &str) {
    psql("postgres", &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    psql("postgres", &format!("CREATE DATABASE {db}"));
}

pub fn pg_drop(db: &str) {
    psql("postgres", &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", db.replace('"', "\"\"")));
}

/// Runs SQL against MariaDB (in `db` if given) and returns the batch output.
pub fn mysql(db: Option<&str>, sql: &str) -> String {
    let mut c = my("mysql");
    c.args(["-N", "-B"]);
    if let Some(db) = db {
        c.arg(db);
    }
    c.args(["-e", sql]);
    String::from_utf8_lossy(&checked(c, "mysql").stdout).trim().to_string()
}

pub fn my_fresh(db: &str) {
    mysql(None, &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"));
}

pub fn my_drop(db: &str) {
    mysql(None, &format!("DROP DATABASE IF EXISTS {db}"));
}

/// The lines of a dump that describe data and schema: without the per-run noise (pg_dump's random
/// `\restrict` keys, mysqldump's host/database header and completion time).
pub fn comparable(dump: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dump.len());
    for line in dump.split(|&b| b == b'\n') {
        let noisy = line.starts_with(b"\\restrict")
            || line.starts_with(b"\\unrestrict")
            || line.starts_with(b"-- Host:")
            || line.starts_with(b"-- Dump completed")
            || line.starts_with(b"-- Server version");
        if !noisy {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    out
}

/// `pg_dump` (plain) of `db` with its lines sorted, for comparing the data of two databases: COPY writes rows
/// in physical order, which after updates and deletes differs between a database and its restored copy, while
/// the rows (lines) are the same.
pub fn pg_dump(db: &str) -> Vec<u8> {
    let mut c = pg("pg_dump");
    c.args(["--no-owner", "-d", db]);
    let dump = comparable(&checked(c, &format!("pg_dump {db}")).stdout);
    let mut lines: Vec<&[u8]> = dump.split(|&b| b == b'\n').collect();
    lines.sort_unstable();
    lines.join(&b'\n')
}

pub fn mysqldump(db: &str) -> Vec<u8> {
    let mut c = my("mysqldump");
    c.args(["--skip-dump-date", "--single-transaction", db]);
    comparable(&checked(c, &format!("mysqldump {db}")).stdout)
}

/// A directory holding a `psql` that loads slowly: a restore-database loader (psql without `-A`) passes on
/// the first 64 KiB of the dump, creates `paused`, and passes on the rest only once `go` exists; every other
/// psql (silo's queries, the test's) is the real one. Put the directory first on silo's PATH. Returns the
/// directory, `paused` and `go`.
pub fn slow_psql(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let real = Command::new("sh").args(["-c", "command -v psql"]).output().expect("sh");
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    assert!(!real.is_empty(), "psql is on PATH");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let (paused, go) = (dir.join("paused"), dir.join("go"));
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in *\" -A \"*) exec {real} \"$@\";; esac\n\
         {{ head -c 65536; : > {paused}; while [ ! -e {go} ]; do sleep 0.05; done; cat; }} | exec {real} \"$@\"\n",
        paused = paused.display(),
        go = go.display()
    );
    let psql = bin.join("psql");
    std::fs::write(&psql, script).expect("write");
    std::fs::set_permissions(&psql, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    (bin, paused, go)
}
