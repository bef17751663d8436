//! `silo restore-database`: a snapshot's dump into a live PostgreSQL, MariaDB or SQLite database without
//! gambling (issue 17 part 3; design.md "Restoring into a live database"). The stream is loaded into a
//! scratch database, verified (the loader's exit status, row counts against those recorded at create, the
//! user's check query or command), and only then swapped in by one atomic step; the database it replaced is
//! kept as the rollback target that `--rollback` swaps back. The decisions are dumps::swap (pure); this file
//! runs the clients (psql, pg_restore, mysql, sqlite3) and the hooks.
//!
//! Upholds: nothing is dropped before the new database is verified (the scratch and an older rollback
//! target are the only things dropped, and only they); a kill at any point leaves the live name holding the
//! old or the new database, never neither; one restore-database per target at a time (a lock file).

use super::context::Invocation;
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;
use silo::dumps::swap::{self, Engine, Loader, Names};
use silo::repo::snapshots::{Snapshot, SnapshotSpec};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["postgres", "mariadb", "sqlite"])))]
pub struct Args {
    /// ID, ID prefix, NAME:latest or NAME:latest~N, optionally :STREAM (not with --rollback).
    #[arg(required_unless_present = "rollback", conflicts_with = "rollback")]
    snapshot: Option<String>,
    /// The PostgreSQL database to replace (connection from PGHOST/PGPORT/PGUSER, ~/.pgpass, or --host...).
    #[arg(long, value_name = "DATABASE")]
    postgres: Option<String>,
    /// The MariaDB/MySQL database to replace (connection from ~/.my.cnf, or --host...).
    #[arg(long, value_name = "DATABASE")]
    mariadb: Option<String>,
    /// The SQLite database file to replace.
    #[arg(long, value_name = "FILE")]
    sqlite: Option<PathBuf>,
    /// Database server host.
    #[arg(long)]
    host: Option<String>,
    /// Database server port.
    #[arg(long)]
    port: Option<u16>,
    /// Database user.
    #[arg(long)]
    user: Option<String>,
    /// A query run in the restored database before it is swapped in; it must return a row whose first value
    /// is not false, 0 or NULL (repeatable).
    #[arg(long = "check-sql", value_name = "SQL")]
    check_sql: Vec<String>,
    /// A shell command run before the swap with SILO_RESTORE_DATABASE set to the restored database (or file);
    /// it must exit 0.
    #[arg(long, value_name = "COMMAND")]
    check_command: Option<String>,
    /// A shell command run just before the swap (e.g. stop the application); if it fails, nothing is swapped.
    #[arg(long, value_name = "COMMAND")]
    stop_command: Option<String>,
    /// A shell command run after the swap (e.g. start the application); if it fails, the previous database is
    /// swapped back, the command is run again, and silo exits 12.
    #[arg(long, value_name = "COMMAND")]
    start_command: Option<String>,
    /// When the snapshot cannot be read or does not verify, try older snapshots of the same name, newest
    /// first, until one restores and verifies.
    #[arg(long)]
    fallback: bool,
    /// Swap the live database and the one the last restore-database replaced (run again, it undoes itself).
    #[arg(long)]
    rollback: bool,
    /// Drop the database an earlier restore-database replaced (DB__silo_prev, maybe your original) once the
    /// new one is verified. Without it, silo refuses while one exists: it never drops a database it replaced
    /// unless told to.
    #[arg(long, conflicts_with = "rollback")]
    drop_previous: bool,
}

use super::exit::{ROLLED_BACK, VERIFY_FAILED};

#[derive(Serialize)]
struct Restored {
    engine: &'static str,
    target: String,
    /// The snapshot now in place (None for --rollback).
    snapshot: Option<String>,
    stream: Option<String>,
    /// Snapshots tried before it that failed (with --fallback), and why.
    skipped: Vec<Skipped>,
    tables_verified: usize,
    /// Where the replaced database is kept for --rollback (None when there was none).
    previous: Option<String>,
    action: &'static str,
}

#[derive(Serialize)]
struct Skipped {
    snapshot: String,
    reason: String,
}

impl Report for Restored {
    fn human(&self) -> Result<()> {
        for s in &self.skipped {
            note!("silo: snapshot {} was not used: {}", s.snapshot, s.reason);
        }
        match &self.snapshot {
            Some(id) => note!(
                "{} {}: snapshot {id} restored, {} tables verified by row count, swapped in{}",
                self.engine,
                self.target,
                self.tables_verified,
                self.previous
                    .as_ref()
                    .map_or(String::new(), |p| format!("; the replaced database is {p} (--rollback)"))
            ),
            None => note!(
                "{} {}: swapped with {} (run --rollback again to undo)",
                self.engine,
                self.target,
                self.previous.as_deref().unwrap_or("?")
            ),
        }
        Ok(())
    }
}

/// The one error type of this command: the message and its exit code.
fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    super::exit::RunFailed { code, message: message.into() }.into()
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let (engine, target) = match (&a.postgres, &a.mariadb, &a.sqlite) {
        (Some(db), _, _) => (Engine::Postgres, db.clone()),
        (_, Some(db), _) => (Engine::Mariadb, db.clone()),
        (_, _, Some(file)) => (Engine::Sqlite, sqlite_target(file)?),
        _ => return Err(fail(super::exit::USAGE, "give --postgres, --mariadb or --sqlite")),
    };
    let names = swap::names(engine, &target).map_err(|m| fail(super::exit::USAGE, m))?;
    let db = Db { engine, a, names };
    let _lock = db.lock()?;
    db.preflight()?;
    if !a.rollback {
        db.refuse_to_drop_previous()?;
        // With a stop command the holder may be the application it stops: checked again at the swap.
        if a.stop_command.is_none() {
            db.refuse_while_held_open()?;
        }
    }
    if a.rollback {
        db.refuse_while_held_open()?;
        db.rollback()?;
        let report = Restored {
            engine: engine.name(),
            target,
            snapshot: None,
            stream: None,
            skipped: Vec::new(),
            tables_verified: 0,
            previous: Some(db.names.prev.clone()),
            action: "rollback",
        };
        return emit(&report, ctx.json());
    }
    let repo = ctx.open()?;
    let spec = SnapshotSpec::parse(a.snapshot.as_deref().unwrap_or_default())?;
    let first = ctx.rt.block_on(repo.resolve(&spec))?;
    let candidates: Vec<Snapshot> = if a.fallback {
        let mut older: Vec<Snapshot> = ctx
            .rt
            .block_on(repo.list_snapshots())?
            .into_iter()
            .filter(|s| s.manifest.name == first.manifest.name && s.manifest.finished < first.manifest.finished)
            .collect();
        older.reverse();
        std::iter::once(first).chain(older).collect()
    } else {
        vec![first]
    };
    let mut skipped = Vec::new();
    let mut last_error = None;
    // Ctrl-C or SIGTERM while loading or verifying removes the scratch database (I9); after the swap there is
    // none left to remove.
    let _scratch = db.remove_scratch_on_interrupt();
    for snap in &candidates {
        match db.restore_and_verify(ctx, &repo, snap, &spec.stream) {
            Ok(verified) => {
                let previous = db.swap_in()?;
                let report = Restored {
                    engine: engine.name(),
                    target,
                    snapshot: Some(snap.id.to_hex()),
                    stream: snap.stream(&spec.stream).ok().map(|s| s.name.clone()),
                    skipped,
                    tables_verified: verified,
                    previous: previous.then(|| db.names.prev.clone()),
                    action: "restore",
                };
                return emit(&report, ctx.json());
            }
            Err(e) => {
                db.drop_scratch();
                let text = format!("{e:#}");
                if !a.fallback {
                    return Err(e);
                }
                note!("silo: snapshot {} did not restore and verify: {text}", snap.id.short());
                skipped.push(Skipped { snapshot: snap.id.to_hex(), reason: text });
                last_error = Some(e);
            }
        }
    }
    let tried = skipped.len();
    match last_error {
        Some(e) => Err(e.context(format!("none of the {tried} snapshots tried restored and verified"))),
        None => Err(fail(super::exit::USAGE, "no snapshot to restore")),
    }
}

struct Db<'a> {
    engine: Engine,
    a: &'a Args,
    names: Names,
}

impl Db<'_> {
    /// One restore-database per target on this machine (flock below the temp dir, or beside the SQLite file).
    fn lock(&self) -> Result<std::fs::File> {
        use std::os::fd::AsRawFd;
        let key = blake3::hash(self.lock_key().as_bytes()).to_hex();
        let path = std::env::temp_dir().join(format!("silo-restore-database-{}.lock", &key.as_str()[..16]));
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| fail(super::exit::FAILURE, format!("lock {}: {e}", path.display())))?;
        // SAFETY: flock(2) on a descriptor this function owns; released when the file is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(fail(
                super::exit::BUSY,
                format!(
                    "another restore-database of {} is running (lock {}); nothing was done",
                    self.names.live,
                    path.display()
                ),
            ));
        }
        Ok(file)
    }

    /// The target as the server sees it, the same however it was spelt: host and port from the options, else
    /// the client's environment (PG*, MYSQL_*), else the client's default; every local spelling (a socket
    /// directory, localhost, 127.0.0.1, ::1) is one host. SQLite paths are canonical already.
    fn lock_key(&self) -> String {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (host, port) = match self.engine {
            Engine::Postgres => (
                self.a.host.clone().or_else(|| env("PGHOST")),
                self.a.port.map(|p| p.to_string()).or_else(|| env("PGPORT")).unwrap_or_else(|| "5432".into()),
            ),
            Engine::Mariadb => (
                self.a.host.clone().or_else(|| env("MYSQL_HOST")),
                self.a.port.map(|p| p.to_string()).or_else(|| env("MYSQL_TCP_PORT")).unwrap_or_else(|| "3306".into()),
            ),
            Engine::Sqlite => (None, String::new()),
        };
        let host = match host.as_deref().map(|h| h.trim_end_matches('/')) {
            None | Some("" | "localhost" | "127.0.0.1" | "::1" | "[::1]") => "local".to_string(),
            Some(h) if h.starts_with('/') => "local".to_string(),
            Some(h) => h.to_ascii_lowercase(),
        };
        format!("{:?}\0{host}\0{port}\0{}", self.engine, self.names.live)
    }

    /// A client program with the connection options and an allow-listed environment (I21: the database
    /// tool's own variables, never silo's).
    fn client(&self, program: &str) -> Command {
        use silo::inputs::process::ChildEnv;
        let env = match self.engine {
            Engine::Postgres => ChildEnv::base().postgres(),
            Engine::Mariadb => ChildEnv::base().mariadb(),
            Engine::Sqlite => ChildEnv::base(),
        };
        let mut c = silo::inputs::process::command_with(program, &env);
        let a = self.a;
        match self.engine {
            Engine::Postgres => {
                c.args(a.host.iter().flat_map(|h| ["-h".to_string(), h.clone()]));
                c.args(a.port.iter().flat_map(|p| ["-p".to_string(), p.to_string()]));
                c.args(a.user.iter().flat_map(|u| ["-U".to_string(), u.clone()]));
                c.arg("--no-password");
            }
            Engine::Mariadb => {
                c.args(a.host.iter().map(|h| format!("--host={h}")));
                c.args(a.port.iter().map(|p| format!("--port={p}")));
                c.args(a.user.iter().map(|u| format!("--user={u}")));
            }
            Engine::Sqlite => {}
        }
        c
    }

    /// Runs SQL against `database` and returns its output (tab-separated, no headers).
    fn sql(&self, database: &str, sql: &str) -> Result<String> {
        let mut c = match self.engine {
            Engine::Postgres => {
                let mut c = self.client("psql");
                c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
                c.arg(format!("--dbname={}", swap::pg_conninfo(database)));
                c
            }
            Engine::Mariadb => {
                let mut c = self.client("mysql");
                c.args(["-N", "-B"]);
                if !database.is_empty() {
                    c.arg(format!("--database={database}"));
                }
                c
            }
            Engine::Sqlite => {
                let mut c = self.client("sqlite3");
                c.args(["-bail", "-batch", database]);
                c
            }
        };
        let out = run_with_input(&mut c, sql.as_bytes())?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(fail(
                super::exit::COMMAND_FAILED,
                format!("{} on {database}: {}", self.engine.name(), error_line(&err)),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The maintenance database commands about other databases run in.
    fn admin(&self) -> &'static str {
        match self.engine {
            Engine::Postgres => "postgres",
            _ => "",
        }
    }

    fn exists(&self, name: &str) -> Result<bool> {
        Ok(match self.engine {
            Engine::Postgres => !self
                .sql("postgres", &format!("SELECT 1 FROM pg_database WHERE datname = {}", swap::literal(name)))?
                .is_empty(),
            Engine::Mariadb => !self
                .sql(
                    "",
                    &format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}", swap::literal(name)),
                )?
                .is_empty(),
            Engine::Sqlite => Path::new(name).exists(),
        })
    }

    /// Whether `name` is absent or carries restore-database's mark (a database silo created or kept aside).
    fn ours(&self, name: &str) -> Result<bool> {
        let comment = match self.engine {
            Engine::Postgres => self.sql(
                "postgres",
                &format!(
                    "SELECT 'x' || coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE \
                     datname = {}",
                    swap::literal(name)
                ),
            )?,
            Engine::Mariadb => self.sql(
                "",
                &format!(
                    "SELECT CONCAT('x', SCHEMA_COMMENT) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
                    swap::literal(name)
                ),
            )?,
            Engine::Sqlite => return Ok(self.sqlite_ours(Path::new(name))),
        };
        Ok(match comment.strip_prefix('x') {
            None => true,
            Some(c) if swap::is_marked(c) => true,
            // The scratch is created, then marked: a kill in between leaves it unmarked but empty.
            Some(_) if name == self.names.new => self.holds_no_tables(name)?,
            Some(_) => false,
        })
    }

    fn holds_no_tables(&self, name: &str) -> Result<bool> {
        let n = match self.engine {
            Engine::Postgres => self.sql(
                name,
                "SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname NOT \
                 IN ('pg_catalog', 'information_schema', 'pg_toast')",
            )?,
            _ => self.sql(
                "",
                &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {}", swap::literal(name)),
            )?,
        };
        Ok(n.trim() == "0")
    }

    /// Refuses, before any work, when a scratch, rollback or swap name holds a database silo did not make.
    fn preflight(&self) -> Result<()> {
        let n = &self.names;
        for name in [&n.new, &n.prev, &n.swap] {
            if !self.ours(name)? {
                return Err(not_ours(name));
            }
        }
        Ok(())
    }

    /// I18: a database an earlier restore-database replaced is dropped only with --drop-previous.
    fn refuse_to_drop_previous(&self) -> Result<()> {
        let prev = &self.names.prev;
        if self.a.drop_previous || !self.exists(prev)? {
            return Ok(());
        }
        Err(fail(
            super::exit::USAGE,
            format!(
                "{prev} holds the database an earlier restore-database replaced (it may be your original): nothing \
                 was done; keep it under another name, or pass --drop-previous to drop it once the new one is \
                 verified"
            ),
        ))
    }

    /// SQLite: refuses while another process holds the live file (or its -wal/-shm) open: its later writes
    /// would land in the pages of whichever file it has open, not in the live name (I15).
    fn refuse_while_held_open(&self) -> Result<()> {
        if self.engine != Engine::Sqlite {
            return Ok(());
        }
        let live = &self.names.live;
        let paths = [live.clone(), format!("{live}-wal"), format!("{live}-shm"), format!("{live}-journal")];
        let holders = holders_of(&paths.iter().map(PathBuf::from).collect::<Vec<_>>());
        if holders.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = holders.iter().map(|(pid, comm)| format!("{comm} (pid {pid})")).collect();
        Err(fail(
            super::exit::BUSY,
            format!(
                "{live} is open in {}: stop it first (--stop-command) so no write lands in the replaced file; \
                 nothing was swapped",
                shown.join(", ")
            ),
        ))
    }

    /// SQLite: the file beside the live one where restore-database lists the files (device and inode) it
    /// created or moved aside; a file at a scratch or rollback path is silo's only when it is listed.
    fn sqlite_marks_path(&self) -> PathBuf {
        PathBuf::from(format!("{}.silo-restore-database", self.names.live))
    }

    /// Listed files: device, inode, size, modification time (ns).
    fn sqlite_marks(&self) -> Vec<[i128; 4]> {
        let text = std::fs::read_to_string(self.sqlite_marks_path()).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let v: Vec<i128> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
                v.try_into().ok()
            })
            .collect()
    }

    /// A file's identity as listed. The rollback file is never written after it is moved aside, so its size
    /// and time are part of it (an inode number alone may be reused by a file someone else makes there).
    fn identity(path: &Path) -> Option<[i128; 4]> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
        let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        Some([i128::from(m.dev()), i128::from(m.ino()), i128::from(m.size()), mtime])
    }

    fn sqlite_ours(&self, path: &Path) -> bool {
        if std::fs::symlink_metadata(path).is_err() {
            return true;
        }
        let Some(id) = Self::identity(path) else { return false };
        let marks = self.sqlite_marks();
        if path == Path::new(&self.names.new) {
            // The scratch is written after it is listed: device and inode identify it.
            marks.iter().any(|m| m[..2] == id[..2])
        } else {
            marks.contains(&id)
        }
    }

    /// Adds `path`'s file to the list, keeping only entries still found at one of the four paths.
    fn sqlite_mark(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let n = &self.names;
        let present: Vec<[i128; 4]> =
            [&n.live, &n.new, &n.prev, &n.swap].iter().filter_map(|p| Self::identity(Path::new(p))).collect();
        let mut marks: Vec<[i128; 4]> =
            self.sqlite_marks().into_iter().filter(|m| present.iter().any(|p| p[..2] == m[..2])).collect();
        marks.extend(Self::identity(path));
        marks.sort_unstable();
        marks.dedup();
        let text: String = marks.iter().map(|m| format!("{} {} {} {}\n", m[0], m[1], m[2], m[3])).collect();
        let target = self.sqlite_marks_path();
        let tmp = PathBuf::from(format!("{}.tmp-{}", target.display(), std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &target));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(super::exit::FAILURE, format!("recording silo's files in {}: {e}", target.display()))
        })
    }

    /// Drops `name` — only when it is silo's (absent, or marked); otherwise refuses and changes nothing.
    fn drop_database(&self, name: &str) -> Result<()> {
        if !self.ours(name)? {
            return Err(not_ours(name));
        }
        match self.engine {
            Engine::Postgres => {
                self.sql("postgres", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", swap::pg_ident(name)))?;
            }
            Engine::Mariadb => {
                self.sql("", &format!("DROP DATABASE IF EXISTS {}", swap::my_ident(name)))?;
            }
            Engine::Sqlite => {
                // With its journal and WAL files: a stale hot journal would be played into the next file.
                for path in [name.to_string(), format!("{name}-journal"), format!("{name}-wal"), format!("{name}-shm")]
                {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(fail(super::exit::FAILURE, format!("removing {path}: {e}"))),
                    }
                }
            }
        }
        Ok(())
    }

    /// Registers the removal of the scratch database for an interrupt (the clean-up runs on the interrupt
    /// watcher, so it owns what it needs: the arguments are leaked once per run).
    fn remove_scratch_on_interrupt(&self) -> silo::interrupt::Registration {
        let a: &'static Args = Box::leak(Box::new(self.a.clone()));
        let db = Db { engine: self.engine, a, names: self.names.clone() };
        silo::interrupt::on_interrupt(move || db.drop_scratch())
    }

    /// Drops the scratch database after a failed restore or verification (it is silo's by its name).
    fn drop_scratch(&self) {
        if let Err(e) = self.drop_database(&self.names.new) {
            note!("silo: warning: could not drop the scratch database {}: {e:#}", self.names.new);
        }
    }

    /// Creates the scratch database like the live one (encoding, collation), loads the stream into it and
    /// verifies it. Returns how many tables' row counts were compared.
    fn restore_and_verify(
        &self,
        ctx: &Invocation,
        repo: &silo::repo::Repository,
        snap: &Snapshot,
        stream: &Option<String>,
    ) -> Result<usize> {
        let st = snap.stream(stream)?;
        let loader = swap::loader(self.engine, st.dump.as_ref()).map_err(|m| fail(VERIFY_FAILED, m))?;
        let (live, new) = (&self.names.live, &self.names.new);
        self.drop_database(new)?;
        match self.engine {
            Engine::Postgres => {
                let like = self.sql(
                    "postgres",
                    &format!(
                        "SELECT 'ENCODING ' || quote_literal(pg_encoding_to_char(encoding)) || ' LC_COLLATE ' || \
                         quote_literal(datcollate) || ' LC_CTYPE ' || quote_literal(datctype) FROM pg_database \
                         WHERE datname = {}",
                        swap::literal(live)
                    ),
                )?;
                self.sql("postgres", &format!("CREATE DATABASE {} TEMPLATE template0 {like}", swap::pg_ident(new)))?;
                let mark = swap::literal(&format!("{}: scratch", swap::MARK));
                self.sql("postgres", &format!("COMMENT ON DATABASE {} IS {mark}", swap::pg_ident(new)))?;
            }
            Engine::Mariadb => {
                let like = self.sql(
                    "",
                    &format!(
                        "SELECT CONCAT('CHARACTER SET ', DEFAULT_CHARACTER_SET_NAME, ' COLLATE ', \
                         DEFAULT_COLLATION_NAME) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
                        swap::literal(live)
                    ),
                )?;
                self.sql("", &format!("CREATE DATABASE {} {like} {}", swap::my_ident(new), my_mark("scratch")))?;
            }
            Engine::Sqlite => {}
        }
        self.load(ctx, repo, snap, st, loader)?;
        self.verify(st.dump.as_ref())
    }

    /// Streams the snapshot's stream into the loader, which writes the scratch database.
    fn load(
        &self,
        ctx: &Invocation,
        repo: &silo::repo::Repository,
        snap: &Snapshot,
        st: &silo_format::manifest::StreamManifest,
        loader: Loader,
    ) -> Result<()> {
        let new = &self.names.new;
        let progress = std::sync::atomic::AtomicU64::new(0);
        if self.engine == Engine::Sqlite {
            // The scratch file is created empty and listed as silo's before anything is written to it: a kill
            // mid-load leaves a file the next run may remove.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(new)
                .map_err(|e| fail(super::exit::FAILURE, format!("creating {new}: {e}")))?;
            self.sqlite_mark(Path::new(new))?;
        }
        if loader == Loader::SqliteFile {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(new)
                .map_err(|e| fail(super::exit::FAILURE, format!("opening {new}: {e}")))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut file);
            repo.restore_stream(ctx.rt.handle(), snap, st, &mut out, &progress)?;
            out.flush().map_err(|e| fail(super::exit::FAILURE, format!("writing {new}: {e}")))?;
            drop(out);
            file.sync_all().map_err(|e| fail(super::exit::FAILURE, format!("syncing {new}: {e}")))?;
            return Ok(());
        }
        let mut c = match loader {
            Loader::Psql => {
                let mut c = self.client("psql");
                c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
                c.arg(format!("--dbname={}", swap::pg_conninfo(new)));
                c
            }
            Loader::PgRestore => {
                let mut c = self.client("pg_restore");
                c.arg("--exit-on-error");
                c.arg(format!("--dbname={}", swap::pg_conninfo(new)));
                c
            }
            Loader::Mysql => {
                let mut c = self.client("mysql");
                c.arg(format!("--database={new}"));
                c
            }
            _ => {
                let mut c = self.client("sqlite3");
                c.args(["-bail", "-batch", new]);
                c
            }
        };
        let shown = format!("{:?}", c.get_program());
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(super::exit::COMMAND_FAILED, format!("starting {shown}: {e}")))?;
        let tail = child.stderr.take().map(silo::inputs::process::StderrTail::forward);
        let restored = {
            let stdin = child.stdin.take().ok_or_else(|| fail(super::exit::FAILURE, "loader has no stdin"))?;
            let mut out = Guard::new(std::io::BufWriter::with_capacity(1 << 20, stdin), loader);
            let r = repo.restore_stream(ctx.rt.handle(), snap, st, &mut out, &progress);
            if let Some(why) = out.refused.take() {
                // Killed, not sent end-of-input: psql and mysql run a statement left unterminated at EOF.
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(VERIFY_FAILED, why));
            }
            let flushed = out.inner.flush();
            r.map_err(anyhow::Error::from)
                .and_then(|_| flushed.map_err(|e| fail(VERIFY_FAILED, format!("{shown} stopped reading: {e}"))))
        };
        let status = child.wait().map_err(|e| fail(super::exit::FAILURE, format!("waiting for {shown}: {e}")))?;
        let tail = tail.map(|t| t.finish()).unwrap_or_default();
        if !status.success() {
            return Err(fail(
                VERIFY_FAILED,
                format!(
                    "{shown} {} loading snapshot {}: {}",
                    silo::inputs::process::describe_status(&status),
                    snap.id.short(),
                    tail.trim().lines().last().unwrap_or("")
                ),
            ));
        }
        restored
    }

    /// Row counts against the dump's, then the user's checks. Returns the tables compared.
    fn verify(&self, dump: Option<&silo_format::manifest::DumpRecord>) -> Result<usize> {
        let new = &self.names.new;
        if self.engine == Engine::Sqlite {
            let ok = self.sql(new, "PRAGMA integrity_check;")?;
            if ok != "ok" {
                return Err(fail(VERIFY_FAILED, format!("PRAGMA integrity_check on {new}: {ok}")));
            }
        }
        let expected = dump.map(swap::counted_tables).unwrap_or_default();
        let mut found = HashMap::new();
        for batch in expected.chunks(200) {
            let query: String =
                batch.iter().map(|(name, _)| format!("{}\n", swap::count_sql(self.engine, name))).collect();
            // A table that is missing fails the whole batch: then count one by one to name it.
            match self.sql(new, &query) {
                Ok(out) => {
                    for ((name, _), n) in batch.iter().zip(out.lines()) {
                        found.insert(name.clone(), n.trim().parse().unwrap_or(u64::MAX));
                    }
                }
                Err(_) => {
                    for (name, _) in batch {
                        let q = swap::count_sql(self.engine, name);
                        if let Ok(n) = self.sql(new, &q) {
                            found.insert(name.clone(), n.trim().parse().unwrap_or(u64::MAX));
                        }
                    }
                }
            }
        }
        swap::verify_counts(&expected, &found).map_err(|m| fail(VERIFY_FAILED, m))?;
        for q in &self.a.check_sql {
            let out = self.sql(new, q).map_err(|e| fail(VERIFY_FAILED, format!("check query {q:?}: {e:#}")))?;
            if !swap::check_passed(&out) {
                return Err(fail(
                    VERIFY_FAILED,
                    format!("check query {q:?} returned {:?}", out.lines().next().unwrap_or("")),
                ));
            }
        }
        if let Some(cmd) = &self.a.check_command {
            self.hook("check command", cmd, new).map_err(|e| fail(VERIFY_FAILED, format!("{e:#}")))?;
        }
        Ok(expected.len())
    }

    /// Runs a user's shell command with SILO_RESTORE_DATABASE (and PGDATABASE for PostgreSQL) set.
    fn hook(&self, what: &str, cmd: &str, database: &str) -> Result<()> {
        let mut c = silo::inputs::process::command("sh");
        c.args(["-c", cmd]).env("SILO_RESTORE_DATABASE", database).stdin(Stdio::null());
        if self.engine == Engine::Postgres {
            c.env("PGDATABASE", database);
        }
        // Its output is for the user, on stderr: stdout carries silo's answer.
        let to_stderr = {
            use std::os::fd::AsFd;
            std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| fail(super::exit::FAILURE, e.to_string()))?
        };
        let status = c
            .stdout(Stdio::from(to_stderr))
            .status()
            .map_err(|e| fail(super::exit::COMMAND_FAILED, format!("starting the {what} `{cmd}`: {e}")))?;
        if !status.success() {
            return Err(fail(
                super::exit::COMMAND_FAILED,
                format!("the {what} `{cmd}` {}", silo::inputs::process::describe_status(&status)),
            ));
        }
        Ok(())
    }

    /// Stop hook, the atomic swap, start hook (rolled back if it fails). Returns whether a previous
    /// database was kept. Dropping an older rollback target (with --drop-previous) and the swap are one
    /// commit (crate interrupt): an interrupt comes before both (nothing dropped, the scratch removed) or
    /// after both (the restore finishes); never the previous database dropped without the swap it was for.
    fn swap_in(&self) -> Result<bool> {
        let n = &self.names;
        if let Some(cmd) = &self.a.stop_command {
            if let Err(e) = self.hook("stop command", cmd, &n.live) {
                self.drop_scratch();
                return Err(e.context("nothing was swapped; the live database is unchanged"));
            }
        }
        let live_exists = self.exists(&n.live)?;
        if live_exists {
            // Only when told to (I18), and only now that the new database is verified.
            if let Err(e) = self.refuse_to_drop_previous().and_then(|()| self.refuse_while_held_open()) {
                self.drop_scratch();
                return Err(e);
            }
        }
        let committed = silo::interrupt::commit(|| {
            if live_exists {
                if let Err(e) = self.drop_database(&n.prev) {
                    self.drop_scratch();
                    return Err(e);
                }
            }
            self.exchange_in(live_exists)
        });
        committed.ok_or_else(|| fail(130, "interrupted before the swap; nothing was swapped"))??;
        if let Some(cmd) = &self.a.start_command {
            if let Err(e) = self.hook("start command", cmd, &n.live) {
                if !live_exists {
                    return Err(e.context("there was no previous database to put back"));
                }
                self.rollback()?;
                let again = self
                    .hook("start command", cmd, &n.live)
                    .err()
                    .map_or(String::new(), |e| format!("; run again: {e:#}"));
                return Err(fail(
                    ROLLED_BACK,
                    format!(
                        "{e:#}: the previous database was put back in place (the restored one is {}){again}",
                        n.prev
                    ),
                ));
            }
        }
        Ok(live_exists)
    }

    /// The atomic step: the scratch becomes the live database, the live one (if any) the rollback target.
    fn exchange_in(&self, live_exists: bool) -> Result<()> {
        let n = &self.names;
        match self.engine {
            Engine::Postgres => {
                if live_exists {
                    let owner = self.sql(
                        "postgres",
                        &format!(
                            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {}",
                            swap::literal(&n.live)
                        ),
                    )?;
                    if !owner.is_empty() {
                        self.sql(
                            "postgres",
                            &format!("ALTER DATABASE {} OWNER TO {}", swap::pg_ident(&n.new), swap::pg_ident(&owner)),
                        )?;
                    }
                }
                self.pg_renames(&swap::pg_swap_in(n, live_exists), &[&n.live])?;
            }
            Engine::Mariadb => {
                self.my_refuse_non_tables()?;
                let old_tables = if live_exists { self.my_tables(&n.live)? } else { Vec::new() };
                let new_tables = self.my_tables(&n.new)?;
                if live_exists {
                    self.sql(
                        "",
                        &format!(
                            "CREATE DATABASE {} {} {}",
                            swap::my_ident(&n.prev),
                            self.my_charset(&n.live)?,
                            my_mark("replaced")
                        ),
                    )?;
                } else {
                    self.sql("", &format!("CREATE DATABASE {} {}", swap::my_ident(&n.live), self.my_charset(&n.new)?))?;
                }
                if let Some(sql) = swap::my_rename(&[(&n.live, &n.prev, &old_tables), (&n.new, &n.live, &new_tables)]) {
                    self.sql("", &sql)?;
                }
                // A table a client created between the listing and the rename stayed behind in the live
                // database: it belongs with the database replaced, so it follows it (the table set is read
                // again after the swap).
                let strays = swap::strays(&new_tables, &self.my_tables(&n.live)?);
                if !strays.is_empty() && live_exists {
                    if let Some(sql) = swap::my_rename(&[(&n.live, &n.prev, &strays)]) {
                        self.sql("", &sql)?;
                    }
                    note!(
                        "silo: {} table(s) created in {} during the swap moved to {}: {}",
                        strays.len(),
                        n.live,
                        n.prev,
                        strays.join(", ")
                    );
                }
                self.drop_database(&n.new)?;
            }
            Engine::Sqlite => {
                if live_exists {
                    let wal = format!("{}-wal", n.live);
                    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                        self.drop_scratch();
                        return Err(fail(
                            super::exit::BUSY,
                            format!(
                                "{wal} holds changes not yet in {}: stop the application (--stop-command) so SQLite \
                                 checkpoints it; nothing was swapped",
                                n.live
                            ),
                        ));
                    }
                    copy_mode(Path::new(&n.live), Path::new(&n.new))?;
                    // The live file becomes silo's rollback target: listed before it moves.
                    self.sqlite_mark(Path::new(&n.live))?;
                    exchange(Path::new(&n.live), Path::new(&n.new))?;
                    rename(Path::new(&n.new), Path::new(&n.prev))?;
                } else {
                    rename(Path::new(&n.new), Path::new(&n.live))?;
                }
            }
        }
        Ok(())
    }

    /// Exchanges the live database and the rollback target.
    fn rollback(&self) -> Result<()> {
        let n = &self.names;
        if !self.exists(&n.prev)? {
            return Err(fail(super::exit::USAGE, format!("there is no {} to roll back to", n.prev)));
        }
        match self.engine {
            Engine::Postgres => self.pg_renames(&swap::pg_exchange(n), &[&n.live, &n.prev]),
            Engine::Mariadb => {
                self.my_refuse_non_tables()?;
                let live = self.my_tables(&n.live)?;
                let prev = self.my_tables(&n.prev)?;
                self.drop_database(&n.swap)?;
                self.sql("", &format!("CREATE DATABASE {} {}", swap::my_ident(&n.swap), my_mark("swap")))?;
                let moves = [
                    (n.live.as_str(), n.swap.as_str(), &live[..]),
                    (&n.prev, &n.live, &prev),
                    (&n.swap, &n.prev, &live),
                ];
                if let Some(sql) = swap::my_rename(&moves) {
                    self.sql("", &sql)?;
                }
                self.drop_database(&n.swap)
            }
            Engine::Sqlite => {
                // The live file becomes the rollback target: listed (as it is now) before it moves.
                self.sqlite_mark(Path::new(&n.live))?;
                exchange(Path::new(&n.live), Path::new(&n.prev))
            }
        }
    }

    /// Runs a rename transaction, first ending other sessions on the databases it renames (PostgreSQL
    /// refuses to rename a database in use); retried when a client reconnects in between.
    fn pg_renames(&self, sql: &str, in_use: &[&str]) -> Result<()> {
        let list: Vec<String> = in_use.iter().map(|d| swap::literal(d)).collect();
        let terminate = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ({}) AND pid <> \
             pg_backend_pid()",
            list.join(", ")
        );
        let mut last = None;
        for _ in 0..50 {
            self.sql(self.admin(), &terminate)?;
            match self.sql(self.admin(), sql) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        Err(last
            .unwrap_or_else(|| fail(super::exit::FAILURE, "rename failed"))
            .context("the swap did not happen; the live database is unchanged"))
    }

    fn my_tables(&self, database: &str) -> Result<Vec<String>> {
        let out = self.sql(
            "",
            &format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} ORDER BY TABLE_NAME",
                swap::literal(database)
            ),
        )?;
        Ok(out.lines().filter(|l| !l.is_empty()).map(String::from).collect())
    }

    fn my_charset(&self, database: &str) -> Result<String> {
        self.sql(
            "",
            &format!(
                "SELECT CONCAT('CHARACTER SET ', DEFAULT_CHARACTER_SET_NAME, ' COLLATE ', DEFAULT_COLLATION_NAME) \
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
                swap::literal(database)
            ),
        )
    }

    /// MariaDB moves tables atomically with RENAME TABLE; views, triggers, routines and events do not move
    /// with it, so a database that has them is refused before anything changes.
    fn my_refuse_non_tables(&self) -> Result<()> {
        let n = &self.names;
        let dbs = [&n.live, &n.new, &n.prev].map(|d| swap::literal(d)).join(", ");
        let count = self.sql(
            "",
            &format!(
                "SELECT (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN ({dbs})) + (SELECT \
                 COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({dbs})) + (SELECT COUNT(*) FROM \
                 information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({dbs})) + (SELECT COUNT(*) FROM \
                 information_schema.EVENTS WHERE EVENT_SCHEMA IN ({dbs}))"
            ),
        )?;
        if count.trim() != "0" {
            self.drop_scratch();
            return Err(fail(
                VERIFY_FAILED,
                format!(
                    "{} has views, triggers, routines or events ({count}); restore-database swaps MariaDB databases \
                     with one atomic RENAME TABLE, which cannot move them. Nothing was swapped; restore with \
                     `silo snapshot restore ... | mysql` into a database you switch yourself",
                    n.live
                ),
            ));
        }
        Ok(())
    }
}

/// Refuses, while the stream is written into the loader, SQL that would leave the scratch database:
/// `\connect` (pg_dump --create, pg_dumpall), `CREATE DATABASE`, `USE` (mysqldump --databases) — as
/// statements and client commands only (dumps::inspect::SwitchWatch follows the dialect's quoting), never data
/// such as a COPY row that begins `CREATE DATABASE `. The piece that completes one is not passed on.
struct Guard<W: Write> {
    inner: W,
    watch: Option<silo::dumps::inspect::SwitchWatch>,
    refused: Option<String>,
}

impl<W: Write> Guard<W> {
    fn new(inner: W, loader: Loader) -> Self {
        use silo::dumps::inspect::{Dialect, SwitchWatch};
        let watch = match loader {
            Loader::Psql => Some(SwitchWatch::new(Dialect::Postgres)),
            Loader::Mysql => Some(SwitchWatch::new(Dialect::Mysql)),
            _ => None,
        };
        Guard { inner, watch, refused: None }
    }
}

impl<W: Write> Write for Guard<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(found) = self.watch.as_mut().and_then(|w| w.feed(buf)) {
            let why = format!(
                "the dump switches to another database ({found}: pg_dump --create, pg_dumpall or mysqldump \
                 --databases); restore-database loads one database's dump into its scratch database and was \
                 stopped. Dump the one database without those options"
            );
            self.refused = Some(why.clone());
            return Err(std::io::Error::other(why));
        }
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The processes (pid, name) other than this one with one of `paths` open for writing, from /proc/*/fd and
/// fdinfo (a reader that opened it read-only can never write into the replaced file). Processes of other
/// users are visible only to root; what cannot be read is passed over.
fn holders_of(paths: &[PathBuf]) -> Vec<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let wanted: Vec<(u64, u64)> =
        paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| (m.dev(), m.ino())).collect();
    let mut out = Vec::new();
    if wanted.is_empty() {
        return out;
    }
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::metadata(fd.path()).is_ok_and(|m| wanted.contains(&(m.dev(), m.ino())))
                && opened_for_writing(&entry.path().join("fdinfo").join(fd.file_name()))
        });
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

/// Whether an fdinfo file says its descriptor was opened for writing (unreadable: assumed so).
fn opened_for_writing(fdinfo: &Path) -> bool {
    let text = std::fs::read_to_string(fdinfo).unwrap_or_default();
    let flags = text.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok());
    flags.is_none_or(|f| f & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32)
}

/// The SQLite target as an absolute path through any symlink (the swap replaces the file the link points
/// to, so the link stays), so two spellings of one file take one lock and no path reads as an option.
fn sqlite_target(file: &Path) -> Result<String> {
    let resolved = match std::fs::canonicalize(file) {
        Ok(p) => p,
        Err(_) => {
            let name = file
                .file_name()
                .ok_or_else(|| fail(super::exit::USAGE, format!("{}: not a file name", file.display())))?;
            let parent = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            std::fs::canonicalize(parent)
                .map_err(|e| fail(super::exit::USAGE, format!("{}: {e}", parent.display())))?
                .join(name)
        }
    };
    resolved
        .to_str()
        .map(String::from)
        .ok_or_else(|| fail(super::exit::USAGE, format!("{}: not UTF-8", file.display())))
}

/// The line of a client's stderr that says what went wrong: psql's `ERROR:` line (not the `LINE 1:` and
/// caret lines after it), mysql's `ERROR 1064 ...`, sqlite3's `Error: ...`; else the last line.
fn error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.trim().lines().collect();
    lines
        .iter()
        .find(|l| l.contains("ERROR:") || l.starts_with("ERROR ") || l.contains("FATAL:") || l.contains("Error:"))
        .or(lines.last())
        .map_or("failed", |l| l.trim())
}

fn not_ours(name: &str) -> anyhow::Error {
    fail(
        super::exit::USAGE,
        format!(
            "{name} exists and was not made by silo restore-database (it lacks silo's mark), so silo will not drop \
             or replace it; rename or remove it yourself. Nothing was changed"
        ),
    )
}

/// The schema comment that marks a MariaDB database as restore-database's.
fn my_mark(what: &str) -> String {
    format!("COMMENT {}", swap::literal(&format!("{}: {what}", swap::MARK)))
}

fn run_with_input(c: &mut Command, input: &[u8]) -> Result<std::process::Output> {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(super::exit::COMMAND_FAILED, format!("starting {:?}: {e}", c.get_program())))?;
    let mut stdin = child.stdin.take().ok_or_else(|| fail(super::exit::FAILURE, "no stdin"))?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| fail(super::exit::FAILURE, e.to_string()))?;
    let _ = writer.join();
    Ok(out)
}

/// Atomically exchanges two paths (renameat2 RENAME_EXCHANGE): at every instant each name holds one file.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(|e| fail(super::exit::USAGE, e.to_string()))?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(|e| fail(super::exit::USAGE, e.to_string()))?;
    // SAFETY: renameat2(2) with two NUL-terminated paths this function owns.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(fail(
            super::exit::FAILURE,
            format!("exchanging {} and {}: {e}; nothing was swapped", a.display(), b.display()),
        ));
    }
    sync_dir(a)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .map_err(|e| fail(super::exit::FAILURE, format!("renaming {} to {}: {e}", from.display(), to.display())))?;
    sync_dir(to)
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail(super::exit::FAILURE, format!("syncing {}: {e}", dir.display())))
}

/// The restored file gets the live file's permissions and owner.
fn copy_mode(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(from).map_err(|e| fail(super::exit::FAILURE, format!("{}: {e}", from.display())))?;
    std::fs::set_permissions(to, m.permissions())
        .map_err(|e| fail(super::exit::FAILURE, format!("{}: {e}", to.display())))?;
    // Only root may give a file away; as the owner this is a no-op.
    let _ = std::os::unix::fs::chown(to, Some(m.uid()), Some(m.gid()));
    Ok(())
}
