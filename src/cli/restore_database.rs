//! `silo restore-database`: its arguments and its report; the work is the library's `restore` module
//! (design.md "Restoring into a live database"; I15, I18, I21, I22). This file maps its failures to the exit
//! codes of docs/operations.md.

use super::context::Invocation;
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;
use silo::repo::snapshots::{Snapshot, SnapshotSpec};
use silo::restore::{Connection, Failure, Options, RestoreError, Target};
use std::path::PathBuf;

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

/// A library failure as this command's error: the same message, the exit code of its kind; the repository's
/// errors keep theirs (exit::exit_code).
fn cli_error(e: RestoreError) -> anyhow::Error {
    use super::exit;
    match e {
        RestoreError::Failed { failure, message } => fail(
            match failure {
                Failure::Failed => exit::FAILURE,
                Failure::Usage => exit::USAGE,
                Failure::Busy => exit::BUSY,
                Failure::CommandFailed => exit::COMMAND_FAILED,
                Failure::VerifyFailed => exit::VERIFY_FAILED,
                Failure::RolledBack => exit::ROLLED_BACK,
                Failure::Interrupted => 130,
            },
            message,
        ),
        RestoreError::Repo(e) => e.into(),
        RestoreError::Context { context, inner } => cli_error(*inner).context(context),
    }
}

fn options(a: &Args) -> Options {
    Options {
        connection: Connection { host: a.host.clone(), port: a.port, user: a.user.clone() },
        check_sql: a.check_sql.clone(),
        check_command: a.check_command.clone(),
        stop_command: a.stop_command.clone(),
        start_command: a.start_command.clone(),
        drop_previous: a.drop_previous,
        progress: Default::default(),
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    use silo::restore::Kind;
    let db = match (&a.postgres, &a.mariadb, &a.sqlite) {
        (Some(db), _, _) => Target::database(Kind::Postgres, db, options(a)),
        (_, Some(db), _) => Target::database(Kind::Mariadb, db, options(a)),
        (_, _, Some(file)) => Target::sqlite(file, options(a)),
        _ => return Err(fail(super::exit::USAGE, "give --postgres, --mariadb or --sqlite")),
    }
    .map_err(cli_error)?;
    let _lock = db.lock().map_err(cli_error)?;
    db.preflight().map_err(cli_error)?;
    if !a.rollback {
        db.refuse_to_drop_previous().map_err(cli_error)?;
        // With a stop command the holder may be the application it stops: checked again at the swap.
        if a.stop_command.is_none() {
            db.refuse_while_held_open().map_err(cli_error)?;
        }
    }
    if a.rollback {
        db.refuse_while_held_open().map_err(cli_error)?;
        db.rollback().map_err(cli_error)?;
        return emit(&report(&db, None, Vec::new(), 0, true), ctx.json());
    }
    let repo = ctx.open()?;
    if let Some(file) = &a.sqlite {
        super::files::refuse_inside_repository("--sqlite", file, &silo::backend::ReadBackend::location(&repo.backend))?;
    }
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
    // Its phase on stderr when that is a terminal (loading N%, verifying, swapping); stopped and cleared
    // before the report.
    let shown = super::progress::Progress::restore(db.names.live.clone(), db.progress());
    for snap in &candidates {
        match db.restore_and_verify(ctx.rt.handle(), &repo, snap, &spec.stream).map_err(cli_error) {
            Ok(verified) => {
                let previous = db.swap_in().map_err(cli_error);
                drop(shown);
                let previous = previous?;
                let restored = Some((snap, snap.stream(&spec.stream).ok().map(|s| s.name.clone())));
                return emit(&report(&db, restored, skipped, verified, previous), ctx.json());
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

/// The report of a restore (`restored`: the snapshot and stream now in place) or of a rollback (None).
fn report(
    db: &Target,
    restored: Option<(&Snapshot, Option<String>)>,
    skipped: Vec<Skipped>,
    tables_verified: usize,
    previous: bool,
) -> Restored {
    let (snapshot, stream) = match restored {
        Some((snap, stream)) => (Some(snap.id.to_hex()), stream),
        None => (None, None),
    };
    Restored {
        engine: db.kind().name(),
        target: db.names.live.clone(),
        action: if snapshot.is_some() { "restore" } else { "rollback" },
        snapshot,
        stream,
        skipped,
        tables_verified,
        previous: previous.then(|| db.names.prev.clone()),
    }
}
