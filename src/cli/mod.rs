//! The command line: parses, calls the library, prints. One file per command (its clap arguments and its
//! `run`); this file is the command enum and the dispatch. Human output on stdout only when it is the answer
//! (or the data, for restore); `--json` gives every listing and report as one JSON document, both through
//! `output::emit` from one `Serialize` report.

/// A line of the answer on stdout; `?`s an `OutputFailed` out of the calling function.
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::output::say_line(format_args!($($arg)*))? };
}

/// A line on stderr (messages, never the answer); errors writing it are ignored.
macro_rules! note {
    ($($arg:tt)*) => { $crate::cli::output::note_line(format_args!($($arg)*)) };
}

mod check;
mod context;
mod copy;
mod doctor;
mod drill;
pub mod exit;
mod files;
mod forget;
mod gc;
mod help;
mod init;
mod jobs_file;
mod key;
mod notify;
pub mod output;
mod password;
mod policy;
mod progress;
mod record;
mod repair;
mod restore_database;
mod run;
mod schedule;
mod serve;
mod shell;
mod snapshot;
mod stats;
mod status;
mod unlock;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub use exit::exit_code;
pub use help::command;
pub use output::CLOSED_AT_START;

#[derive(Parser, Debug)]
#[command(name = "silo", version, about = "Deduplicating, encrypted backups of database dumps and other streams")]
pub struct Cli {
    /// Repository location: a local directory, or s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX] (credentials from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
    #[arg(long, global = true, env = "SILO_REPO", help_heading = "Global options")]
    repo: Option<String>,
    /// Read the password from this file (first line; must not be empty). Or set SILO_PASSWORD; without
    /// either, silo asks on the terminal.
    #[arg(long, global = true, env = "SILO_PASSWORD_FILE", help_heading = "Global options")]
    password_file: Option<PathBuf>,
    /// Use the repository of this job of the jobs file, with the password the file names for it (with
    /// --offsite: the job's offsite repository). For the commands that open a repository.
    #[arg(long, global = true, value_name = "NAME", help_heading = "Global options")]
    job: Option<String>,
    /// Use the jobs file's [offsite] repository, with the password the file names for it.
    #[arg(long, global = true, help_heading = "Global options")]
    offsite: bool,
    /// Index cache directory (default: $SILO_CACHE_DIR, $XDG_CACHE_HOME/silo or ~/.cache/silo). silo keeps
    /// each repository's cache in a subdirectory it marks with CACHEDIR.TAG, and touches nothing else there.
    #[arg(long, global = true, help_heading = "Global options")]
    cache_dir: Option<PathBuf>,
    /// The jobs file for `run` and `status` (default: $SILO_CONFIG, /etc/silo/silo.toml,
    /// $XDG_CONFIG_HOME/silo/silo.toml).
    #[arg(long, global = true, env = "SILO_CONFIG", help_heading = "Global options")]
    config: Option<PathBuf>,
    /// Print listings and reports as JSON.
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
    /// Give up after this long overall (e.g. 2h, 30min): clean up as on Ctrl-C and exit 3.
    #[arg(long, global = true, env = "SILO_DEADLINE", help_heading = "Global options")]
    deadline: Option<String>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new repository.
    Init(init::Args),
    /// Create, list, show and restore snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::Command),
    /// Logical and stored sizes, dedup and compression.
    Stats,
    /// Remove snapshots by retention policy (flags, or each name's stored policy). Data is reclaimed by gc.
    Forget(forget::Args),
    /// Store, show or clear a snapshot name's retention policy.
    #[command(subcommand)]
    Policy(policy::Command),
    /// Reclaim the space of data no snapshot references (safe while other clients write).
    Gc(gc::Args),
    /// forget by the stored policies, then gc.
    Prune(gc::Args),
    /// Verify the repository: structure, optionally data, optionally freshness.
    Check(check::Args),
    /// Rebuild what can be rebuilt.
    #[command(subcommand)]
    Repair(repair::Command),
    /// Not a command (hidden): says which of `snapshot restore` and `restore-database` is meant.
    #[command(hide = true)]
    Restore {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Remove the gc lease a dead gc or repair left (on this host: only when its process is gone).
    Unlock(unlock::Args),
    /// Copy snapshots into another repository (other keys), uploading only chunks it does not have.
    Copy(copy::Args),
    /// Restore a snapshot into a command (e.g. `psql -d scratch`), timed and recorded in the repository.
    Drill(drill::Args),
    /// Replace a live PostgreSQL, MariaDB or SQLite database with a snapshot's dump: restored into a scratch
    /// database, verified (row counts, your checks), swapped in atomically; `--rollback` swaps back.
    RestoreDatabase(restore_database::Args),
    /// List, add, change and remove the passwords (key files) that open the repository.
    #[command(subcommand)]
    Key(key::Command),
    /// Run jobs of the jobs file: create, offsite copy, forget; every run recorded, failed ones too.
    Run(run::Args),
    /// Each job's state: last success and failure, freshness, size change, damage, drills.
    Status(status::Args),
    /// A web dashboard of the jobs and their history, with a JSON API and /metrics (loopback only).
    Serve(serve::Args),
    /// Install, remove or list systemd timers (or cron.d files) for the jobs' schedules.
    #[command(subcommand)]
    Schedule(schedule::Command),
    /// Check what a `silo run` needs: passwords, repositories, dump tools, database servers, notify targets.
    Doctor(doctor::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(shell::CompletionsArgs),
    /// Print the manual page (roff): `silo man | man -l -`.
    Man,
}

pub fn run(cli: Cli) -> Result<()> {
    if let Some(text) = &cli.deadline {
        silo::interrupt::deadline(std::time::Duration::from_secs(context::duration_arg("--deadline", text)?));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let ctx = context::Invocation { cli, rt, opened: Default::default(), details: Default::default() };
    let started = silo::time::now_micros();
    let result = dispatch(&ctx);
    if let Some(kind) = record::kind_of(&ctx.cli.command) {
        record::command(&ctx, kind, started, &result);
    }
    result
}

impl Command {
    /// Whether the command opens the repository by `ctx.open()`'s rule (so `--job` and `--offsite` mean
    /// something to it).
    fn opens_repository(&self) -> bool {
        !matches!(
            self,
            Command::Init(_)
                | Command::Copy(_)
                | Command::Run(_)
                | Command::Status(_)
                | Command::Schedule(_)
                | Command::Doctor(_)
                | Command::Completions(_)
                | Command::Man
                | Command::Restore { .. }
        )
    }
}

fn dispatch(ctx: &context::Invocation) -> Result<()> {
    if (ctx.cli.job.is_some() || ctx.cli.offsite) && !ctx.cli.command.opens_repository() {
        return Err(silo::Error::Input {
            what: if ctx.cli.offsite { "--offsite".into() } else { "--job".into() },
            message: "picks the repository of a command that opens one (snapshot, check, stats, forget, gc, key, \
                      restore-database, ...); `silo run`, `status` and `doctor` take job names as arguments"
                .into(),
        }
        .into());
    }
    match &ctx.cli.command {
        Command::Init(a) => init::run(ctx, a),
        Command::Completions(a) => shell::completions(a),
        Command::Man => shell::man(),
        Command::Doctor(a) => doctor::run(ctx, a),
        Command::Snapshot(c) => snapshot::run(ctx, c),
        Command::Stats => stats::run(ctx),
        Command::Forget(a) => forget::run(ctx, a),
        Command::Policy(c) => policy::run(ctx, c),
        Command::Gc(a) => gc::run(ctx, a),
        Command::Prune(a) => gc::prune(ctx, a),
        Command::Check(a) => check::run(ctx, a),
        Command::Repair(c) => repair::run(ctx, c),
        Command::Copy(a) => copy::run(ctx, a),
        Command::Unlock(a) => unlock::run(ctx, a),
        Command::Restore { .. } => Err(exit::RunFailed {
            code: exit::USAGE,
            message: "there is no `silo restore`: to write a snapshot to a pipe or a file, `silo snapshot restore \
                      SNAP [--output FILE]`; to replace a live database with one, `silo restore-database SNAP \
                      --postgres DB`"
                .into(),
        }
        .into()),
        Command::Drill(a) => drill::run(ctx, a),
        Command::RestoreDatabase(a) => restore_database::run(ctx, a),
        Command::Key(c) => key::run(ctx, c),
        Command::Run(a) => run::run(ctx, a),
        Command::Status(a) => status::run(ctx, a),
        Command::Serve(a) => serve::run(ctx, a),
        Command::Schedule(c) => schedule::run(ctx, c),
    }
}
