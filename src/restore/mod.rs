//! Restoring a snapshot's dump into a live database without gambling (`silo restore-database`; design.md
//! "Restoring into a live database"). The stream is loaded into a scratch database, verified (the loader's exit
//! status, row counts against those recorded at create, the user's check query or command), and only then
//! swapped in by one atomic step; the database it replaced is kept as the rollback target `rollback` swaps back.
//! The decisions are dumps::swap (pure); this module runs the clients and the hooks, one file per engine
//! (`postgres.rs`, `mariadb.rs`, `sqlite.rs`, each an [`Engine`]): adding an engine is one file.
//!
//! Upholds I15 (nothing is dropped before the new database is verified; a kill at any point leaves the live
//! name holding the old or the new database, never neither), I18 (a database silo replaced is dropped only
//! with `drop_previous`; only what carries silo's mark is dropped), I21 (clients get an allow-listed
//! environment) and I22 (names reach a client behind `--dbname=`/`--database=`, never as options). One
//! restore-database per target at a time (a lock file).

mod guard;
mod mariadb;
mod postgres;
mod sqlite;

use crate::dumps::swap::{self, Loader, Names};
use crate::inputs::process::ChildEnv;
use crate::repo::snapshots::Snapshot;
use crate::repo::Repository;
use guard::Guard;
use silo_format::manifest::{DumpRecord, StreamManifest};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

pub use crate::dumps::swap::Engine as Kind;

/// What went wrong, by the exit code the CLI gives it (docs/operations.md "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Anything else (1).
    Failed,
    /// A refusal before any work, or a wrong target (2).
    Usage,
    /// Another restore-database, or a process holding the target (6).
    Busy,
    /// A client or a hook could not start or failed (7).
    CommandFailed,
    /// The restored database did not verify; the live one is unchanged (11).
    VerifyFailed,
    /// Swapped in, the start command failed, the previous database was put back (12).
    RolledBack,
    /// Interrupted before the swap (130).
    Interrupted,
}

/// The errors of restore-database: a failure with its message, the repository's own error, or either with
/// what it meant for the restore in front.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{message}")]
    Failed { failure: Failure, message: String },
    #[error(transparent)]
    Repo(#[from] crate::Error),
    #[error("{context}: {inner}")]
    Context { context: String, inner: Box<RestoreError> },
}

impl RestoreError {
    pub fn context(self, context: impl Into<String>) -> Self {
        RestoreError::Context { context: context.into(), inner: Box::new(self) }
    }
}

pub type Result<T, E = RestoreError> = std::result::Result<T, E>;

fn fail(failure: Failure, message: impl Into<String>) -> RestoreError {
    RestoreError::Failed { failure, message: message.into() }
}

/// A line on stderr (a message, never the answer); errors writing it are ignored.
fn note(args: std::fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|_| err.write_all(b"\n"));
}

/// How to reach the server (unset: the client's environment and defaults).
#[derive(Clone, Debug, Default)]
pub struct Connection {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
}

/// A restore's phase, for a progress line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Creating the scratch database and streaming the dump into it (`Progress::loaded` of `total` bytes).
    Loading,
    /// Row counts, the engine's own check, the user's checks.
    Verifying,
    /// The stop hook, the atomic swap, the start hook.
    Swapping,
}

/// Where a restore is, shared with whoever shows it (the CLI draws a line when stderr is a terminal).
#[derive(Debug, Default)]
pub struct Progress {
    /// 0: not started; 1 + the `Phase` as listed.
    phase: std::sync::atomic::AtomicU8,
    /// Bytes of the stream loaded so far.
    pub loaded: std::sync::atomic::AtomicU64,
    /// The stream's size (0 until known).
    pub total: std::sync::atomic::AtomicU64,
}

impl Progress {
    pub fn set(&self, phase: Phase) {
        let n = match phase {
            Phase::Loading => 1,
            Phase::Verifying => 2,
            Phase::Swapping => 3,
        };
        self.phase.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn phase(&self) -> Option<Phase> {
        match self.phase.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Some(Phase::Loading),
            2 => Some(Phase::Verifying),
            3 => Some(Phase::Swapping),
            _ => None,
        }
    }
}

/// What the user asked of a restore besides the target.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub connection: Connection,
    /// Queries that must return a first value that is not false, 0 or NULL.
    pub check_sql: Vec<String>,
    /// A shell command run before the swap; it must exit 0.
    pub check_command: Option<String>,
    /// A shell command run just before the swap.
    pub stop_command: Option<String>,
    /// A shell command run after the swap; if it fails, the previous database is swapped back.
    pub start_command: Option<String>,
    /// Drop the database an earlier restore-database replaced once the new one is verified (I18).
    pub drop_previous: bool,
    /// Where the restore is (shared: the caller may show it).
    pub progress: std::sync::Arc<Progress>,
}

/// What differs between database engines; the order of the steps and every safety check are the
/// [`Target`]'s. Each engine is a unit struct in its own file.
trait Engine: Sync {
    fn kind(&self) -> Kind;
    /// The client's allow-listed environment (I21).
    fn env(&self) -> ChildEnv;
    /// The connection options on a client's command line.
    fn connect(&self, c: &mut Command, conn: &Connection);
    /// Host and port as the client would take them from the options or its environment (for the lock).
    fn endpoint(&self, conn: &Connection) -> (Option<String>, String);
    /// A client that runs SQL from stdin against `database` and prints rows tab-separated, no headers.
    fn sql_client(&self, t: &Target, database: &str) -> Command;
    fn exists(&self, t: &Target, name: &str) -> Result<bool>;
    /// Whether `name` is absent or carries restore-database's mark.
    fn ours(&self, t: &Target, name: &str) -> Result<bool>;
    /// Drops `name`, which the caller checked is silo's.
    fn drop(&self, t: &Target, name: &str) -> Result<()>;
    /// Creates the empty scratch database like the live one, marked as silo's.
    fn create_scratch(&self, t: &Target) -> Result<()>;
    /// The client that reads the stream into the scratch database.
    fn loader(&self, t: &Target, loader: Loader) -> Command;
    /// The engine's own check of the loaded database, before the row counts.
    fn check_integrity(&self, _t: &Target) -> Result<()> {
        Ok(())
    }
    /// Refuses while another process could still write into the file about to be replaced.
    fn refuse_while_held_open(&self, _t: &Target) -> Result<()> {
        Ok(())
    }
    /// Extra environment for a user's hook.
    fn hook_env(&self, _c: &mut Command, _database: &str) {}
    /// The atomic step: the scratch becomes the live database, the live one (if any) the rollback target.
    fn exchange_in(&self, t: &Target, live_exists: bool) -> Result<()>;
    /// Exchanges the live database and the rollback target (which exists).
    fn exchange_back(&self, t: &Target) -> Result<()>;
}

fn engine(kind: Kind) -> &'static dyn Engine {
    match kind {
        Kind::Postgres => &postgres::Postgres,
        Kind::Mariadb => &mariadb::Mariadb,
        Kind::Sqlite => &sqlite::Sqlite,
    }
}

/// One database to replace: its engine, names and what the user asked.
#[derive(Clone)]
pub struct Target {
    engine: &'static dyn Engine,
    pub names: Names,
    options: Options,
}

/// Holds restore-database's lock on a target; released when dropped.
pub struct Lock(#[allow(dead_code)] std::fs::File);

impl Target {
    /// The PostgreSQL or MariaDB database `name`.
    pub fn database(kind: Kind, name: &str, options: Options) -> Result<Target> {
        Target::named(kind, name, options)
    }

    /// The SQLite database `file`, made absolute through any symlink (the swap replaces the file the link
    /// points to, so the link stays), so two spellings of one file take one lock and no path reads as an option.
    /// A live file that exists must be an SQLite database (or empty): restore-database replaces databases,
    /// never some other file a mistyped or hostile path names.
    pub fn sqlite(file: &std::path::Path, options: Options) -> Result<Target> {
        let target = sqlite::target(file)?;
        if let Some(why) = sqlite::not_a_database(std::path::Path::new(&target)) {
            return Err(fail(Failure::Usage, format!("--sqlite {}: {why}; nothing was changed", file.display())));
        }
        Target::named(Kind::Sqlite, &target, options)
    }

    fn named(kind: Kind, target: &str, options: Options) -> Result<Target> {
        let names = swap::names(kind, target).map_err(|m| fail(Failure::Usage, m))?;
        Ok(Target { engine: engine(kind), names, options })
    }

    pub fn kind(&self) -> Kind {
        self.engine.kind()
    }

    /// Where the restore is (its phase and bytes loaded), for a progress line.
    pub fn progress(&self) -> std::sync::Arc<Progress> {
        self.options.progress.clone()
    }

    /// One restore-database per target on this machine (flock below the temp dir, or beside the SQLite file).
    pub fn lock(&self) -> Result<Lock> {
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
            .map_err(|e| fail(Failure::Failed, format!("lock {}: {e}", path.display())))?;
        // SAFETY: flock(2) on a descriptor this function owns; released when the file is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(fail(
                Failure::Busy,
                format!(
                    "another restore-database of {} is running (lock {}); nothing was done",
                    self.names.live,
                    path.display()
                ),
            ));
        }
        Ok(Lock(file))
    }

    /// The target as the server sees it, the same however it was spelt: host and port from the options, else
    /// the client's environment (PG*, MYSQL_*), else the client's default; every local spelling (a socket
    /// directory, localhost, 127.0.0.1, ::1) is one host. SQLite paths are canonical already.
    fn lock_key(&self) -> String {
        let (host, port) = self.engine.endpoint(&self.options.connection);
        let host = match host.as_deref().map(|h| h.trim_end_matches('/')) {
            None | Some("" | "localhost" | "127.0.0.1" | "::1" | "[::1]") => "local".to_string(),
            Some(h) if h.starts_with('/') => "local".to_string(),
            Some(h) => h.to_ascii_lowercase(),
        };
        format!("{:?}\0{host}\0{port}\0{}", self.kind(), self.names.live)
    }

    /// A client program with the connection options and an allow-listed environment (I21: the database
    /// tool's own variables, never silo's).
    fn client(&self, program: &str) -> Command {
        let mut c = crate::inputs::process::command_with(program, &self.engine.env());
        self.engine.connect(&mut c, &self.options.connection);
        c
    }

    /// Runs SQL against `database` and returns its output (tab-separated, no headers).
    fn sql(&self, database: &str, sql: &str) -> Result<String> {
        let mut c = self.engine.sql_client(self, database);
        let out = run_with_input(&mut c, sql.as_bytes())?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(fail(
                Failure::CommandFailed,
                format!("{} on {database}: {}", self.kind().name(), error_line(&err)),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Whether a database whose comment query printed `comment` (`x` and the comment; nothing when absent) is
    /// silo's: absent, marked, or the scratch left unmarked but empty.
    fn ours_by_comment(
        &self,
        name: &str,
        comment: &str,
        holds_no_tables: impl FnOnce() -> Result<bool>,
    ) -> Result<bool> {
        Ok(match comment.strip_prefix('x') {
            None => true,
            Some(c) if swap::is_marked(c) => true,
            // The scratch is created, then marked: a kill in between leaves it unmarked but empty.
            Some(_) if name == self.names.new => holds_no_tables()?,
            Some(_) => false,
        })
    }

    /// Refuses, before any work, when a scratch, rollback or swap name holds a database silo did not make.
    pub fn preflight(&self) -> Result<()> {
        let n = &self.names;
        for name in [&n.new, &n.prev, &n.swap] {
            if !self.engine.ours(self, name)? {
                return Err(not_ours(name));
            }
        }
        Ok(())
    }

    /// I18: a database an earlier restore-database replaced is dropped only with --drop-previous.
    pub fn refuse_to_drop_previous(&self) -> Result<()> {
        let prev = &self.names.prev;
        if self.options.drop_previous || !self.engine.exists(self, prev)? {
            return Ok(());
        }
        Err(fail(
            Failure::Usage,
            format!(
                "{prev} holds the database an earlier restore-database replaced (it may be your original): nothing \
                 was done; keep it under another name, or pass --drop-previous to drop it once the new one is \
                 verified"
            ),
        ))
    }

    /// SQLite: refuses while another process holds the live file (or its -wal/-shm) open: its later writes
    /// would land in the pages of whichever file it has open, not in the live name (I15).
    pub fn refuse_while_held_open(&self) -> Result<()> {
        self.engine.refuse_while_held_open(self)
    }

    /// Drops `name` — only when it is silo's (absent, or marked); otherwise refuses and changes nothing.
    fn drop_database(&self, name: &str) -> Result<()> {
        if !self.engine.ours(self, name)? {
            return Err(not_ours(name));
        }
        self.engine.drop(self, name)
    }

    /// Registers the removal of the scratch database for an interrupt (the clean-up runs on the interrupt
    /// watcher, so it owns a copy of the target), saying on stderr what it removed — or that there was none
    /// yet, or that it could not and the user must.
    pub fn remove_scratch_on_interrupt(&self) -> crate::interrupt::Registration {
        let target = self.clone();
        crate::interrupt::on_interrupt(move || {
            let (new, live) = (&target.names.new, &target.names.live);
            match target.engine.exists(&target, new).and_then(|there| {
                if there {
                    target.drop_database(new)?;
                }
                Ok(there)
            }) {
                Ok(true) => note(format_args!(
                    "silo: interrupted: removed the scratch database {new}; nothing was swapped, {live} is unchanged"
                )),
                Ok(false) => note(format_args!(
                    "silo: interrupted: no scratch database {new} had been made; {live} is unchanged"
                )),
                Err(e) => note(format_args!(
                    "silo: interrupted: could not remove the scratch database {new} ({e}); {live} is unchanged; \
                     drop {new} yourself, or the next restore-database of {live} does"
                )),
            }
        })
    }

    /// Drops the scratch database after a failed restore or verification (it is silo's by its name).
    pub fn drop_scratch(&self) {
        if let Err(e) = self.drop_database(&self.names.new) {
            note(format_args!("silo: warning: could not drop the scratch database {}: {e:#}", self.names.new));
        }
    }

    /// Creates the scratch database like the live one (encoding, collation), loads the stream into it and
    /// verifies it. Returns how many tables' row counts were compared.
    pub fn restore_and_verify(
        &self,
        rt: &tokio::runtime::Handle,
        repo: &Repository,
        snap: &Snapshot,
        stream: &Option<String>,
    ) -> Result<usize> {
        let st = snap.stream(stream)?;
        let loader = swap::loader(self.kind(), st.dump.as_ref()).map_err(|m| fail(Failure::VerifyFailed, m))?;
        let progress = &self.options.progress;
        progress.loaded.store(0, std::sync::atomic::Ordering::Relaxed);
        progress.total.store(st.size, std::sync::atomic::Ordering::Relaxed);
        progress.set(Phase::Loading);
        self.drop_database(&self.names.new)?;
        self.engine.create_scratch(self)?;
        if loader == Loader::SqliteFile {
            sqlite::write_file(self, rt, repo, snap, st)?;
        } else {
            self.load(rt, repo, snap, st, loader)?;
        }
        progress.set(Phase::Verifying);
        self.verify(st.dump.as_ref())
    }

    /// Streams the snapshot's stream into the loader, which writes the scratch database.
    fn load(
        &self,
        rt: &tokio::runtime::Handle,
        repo: &Repository,
        snap: &Snapshot,
        st: &StreamManifest,
        loader: Loader,
    ) -> Result<()> {
        let progress = &self.options.progress.loaded;
        let mut c = self.engine.loader(self, loader);
        let shown = format!("{:?}", c.get_program());
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(Failure::CommandFailed, format!("starting {shown}: {e}")))?;
        let tail = child.stderr.take().map(crate::inputs::process::StderrTail::forward);
        let restored = {
            let stdin = child.stdin.take().ok_or_else(|| fail(Failure::Failed, "loader has no stdin"))?;
            let mut out = Guard::new(std::io::BufWriter::with_capacity(1 << 20, stdin), loader);
            let r = repo.restore_stream(rt, snap, st, &mut out, progress);
            if let Some(why) = out.refused.take() {
                // Killed, not sent end-of-input: psql and mysql run a statement left unterminated at EOF.
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(Failure::VerifyFailed, why));
            }
            let flushed = out.inner.flush();
            r.map_err(RestoreError::from)
                .and_then(|_| flushed.map_err(|e| fail(Failure::VerifyFailed, format!("{shown} stopped reading: {e}"))))
        };
        let status = child.wait().map_err(|e| fail(Failure::Failed, format!("waiting for {shown}: {e}")))?;
        let tail = tail.map(|t| t.finish()).unwrap_or_default();
        if !status.success() {
            return Err(fail(
                Failure::VerifyFailed,
                format!(
                    "{shown} {} loading snapshot {}: {}",
                    crate::inputs::process::describe_status(&status),
                    snap.id.short(),
                    tail.trim().lines().last().unwrap_or("")
                ),
            ));
        }
        restored
    }

    /// Row counts against the dump's, then the user's checks. Returns the tables compared.
    fn verify(&self, dump: Option<&DumpRecord>) -> Result<usize> {
        let new = &self.names.new;
        self.engine.check_integrity(self)?;
        let expected = dump.map(swap::counted_tables).unwrap_or_default();
        let mut found = HashMap::new();
        for batch in expected.chunks(200) {
            let query: String =
                batch.iter().map(|(name, _)| format!("{}\n", swap::count_sql(self.kind(), name))).collect();
            // A table that is missing fails the whole batch: then count one by one to name it.
            match self.sql(new, &query) {
                Ok(out) => {
                    for ((name, _), n) in batch.iter().zip(out.lines()) {
                        found.insert(name.clone(), n.trim().parse().unwrap_or(u64::MAX));
                    }
                }
                Err(_) => {
                    for (name, _) in batch {
                        let q = swap::count_sql(self.kind(), name);
                        if let Ok(n) = self.sql(new, &q) {
                            found.insert(name.clone(), n.trim().parse().unwrap_or(u64::MAX));
                        }
                    }
                }
            }
        }
        swap::verify_counts(&expected, &found).map_err(|m| fail(Failure::VerifyFailed, m))?;
        for q in &self.options.check_sql {
            let out = self.sql(new, q).map_err(|e| fail(Failure::VerifyFailed, format!("check query {q:?}: {e:#}")))?;
            if !swap::check_passed(&out) {
                return Err(fail(
                    Failure::VerifyFailed,
                    format!("check query {q:?} returned {:?}", out.lines().next().unwrap_or("")),
                ));
            }
        }
        if let Some(cmd) = &self.options.check_command {
            self.hook("check command", cmd, new).map_err(|e| fail(Failure::VerifyFailed, format!("{e:#}")))?;
        }
        Ok(expected.len())
    }

    /// Runs a user's shell command with SILO_RESTORE_DATABASE (and PGDATABASE for PostgreSQL) set.
    fn hook(&self, what: &str, cmd: &str, database: &str) -> Result<()> {
        let mut c = crate::inputs::process::command("sh");
        c.args(["-c", cmd]).env("SILO_RESTORE_DATABASE", database).stdin(Stdio::null());
        self.engine.hook_env(&mut c, database);
        // Its output is for the user, on stderr: stdout carries silo's answer.
        let to_stderr = {
            use std::os::fd::AsFd;
            std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| fail(Failure::Failed, e.to_string()))?
        };
        let status = c
            .stdout(Stdio::from(to_stderr))
            .status()
            .map_err(|e| fail(Failure::CommandFailed, format!("starting the {what} `{cmd}`: {e}")))?;
        if !status.success() {
            return Err(fail(
                Failure::CommandFailed,
                format!("the {what} `{cmd}` {}", crate::inputs::process::describe_status(&status)),
            ));
        }
        Ok(())
    }

    /// Stop hook, the atomic swap, start hook (rolled back if it fails). Returns whether a previous
    /// database was kept. Dropping an older rollback target (with --drop-previous) and the swap are one
    /// commit (crate interrupt): an interrupt comes before both (nothing dropped, the scratch removed) or
    /// after both (the restore finishes); never the previous database dropped without the swap it was for.
    pub fn swap_in(&self) -> Result<bool> {
        let n = &self.names;
        self.options.progress.set(Phase::Swapping);
        if let Some(cmd) = &self.options.stop_command {
            if let Err(e) = self.hook("stop command", cmd, &n.live) {
                self.drop_scratch();
                return Err(e.context("nothing was swapped; the live database is unchanged"));
            }
        }
        let live_exists = self.engine.exists(self, &n.live)?;
        if live_exists {
            // Only when told to (I18), and only now that the new database is verified.
            if let Err(e) = self.refuse_to_drop_previous().and_then(|()| self.refuse_while_held_open()) {
                self.drop_scratch();
                return Err(e);
            }
        }
        let committed = crate::interrupt::commit(|| {
            if live_exists {
                if let Err(e) = self.drop_database(&n.prev) {
                    self.drop_scratch();
                    return Err(e);
                }
            }
            self.engine.exchange_in(self, live_exists)
        });
        committed.ok_or_else(|| fail(Failure::Interrupted, "interrupted before the swap; nothing was swapped"))??;
        if let Some(cmd) = &self.options.start_command {
            if let Err(e) = self.hook("start command", cmd, &n.live) {
                return Err(self.start_failed(e, cmd, live_exists));
            }
        }
        Ok(live_exists)
    }

    /// The start command failed after the swap: the previous database is put back and the command run again.
    fn start_failed(&self, e: RestoreError, cmd: &str, live_existed: bool) -> RestoreError {
        let n = &self.names;
        if !live_existed {
            return e.context("there was no previous database to put back");
        }
        if let Err(back) = self.rollback() {
            return back;
        }
        let again =
            self.hook("start command", cmd, &n.live).err().map_or(String::new(), |e| format!("; run again: {e:#}"));
        fail(
            Failure::RolledBack,
            format!("{e:#}: the previous database was put back in place (the restored one is {}){again}", n.prev),
        )
    }

    /// Exchanges the live database and the rollback target.
    pub fn rollback(&self) -> Result<()> {
        let n = &self.names;
        if !self.engine.exists(self, &n.prev)? {
            return Err(fail(Failure::Usage, format!("there is no {} to roll back to", n.prev)));
        }
        self.engine.exchange_back(self)
    }
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

fn not_ours(name: &str) -> RestoreError {
    fail(
        Failure::Usage,
        format!(
            "{name} exists and was not made by silo restore-database (it lacks silo's mark), so silo will not drop \
             or replace it; rename or remove it yourself. Nothing was changed"
        ),
    )
}

fn run_with_input(c: &mut Command, input: &[u8]) -> Result<std::process::Output> {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(Failure::CommandFailed, format!("starting {:?}: {e}", c.get_program())))?;
    let mut stdin = child.stdin.take().ok_or_else(|| fail(Failure::Failed, "no stdin"))?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| fail(Failure::Failed, e.to_string()))?;
    let _ = writer.join();
    Ok(out)
}
