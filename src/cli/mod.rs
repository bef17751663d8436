//! The command line: parses, calls the library, prints. Human output on stdout only when it is the answer
//! (or the data, for restore); `--json` gives every listing and report as one JSON document.

/// A line of the answer on stdout; `?`s an `OutputFailed` out of the calling function.
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::output::say_line(format_args!($($arg)*))? };
}

/// A line on stderr (messages, never the answer); errors writing it are ignored.
macro_rules! note {
    ($($arg:tt)*) => { $crate::cli::output::note_line(format_args!($($arg)*)) };
}

pub mod output;
mod progress;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use silo::backend::Backend;
use silo::format::chunker::ChunkerParams;
use silo::format::keyfile::KdfParams;
use silo::repo::snapshots::{validate_name, SnapshotSpec};
use silo::repo::write::{CreateOptions, Source, StreamSpec};
use silo::repo::{hostname, InitOptions, Repository};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::runtime::Runtime;

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
    /// Index cache directory (default: $SILO_CACHE_DIR, $XDG_CACHE_HOME/silo or ~/.cache/silo). silo keeps
    /// each repository's cache in a subdirectory it marks with CACHEDIR.TAG, and touches nothing else there.
    #[arg(long, global = true, help_heading = "Global options")]
    cache_dir: Option<PathBuf>,
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
    Init(InitArgs),
    /// Create, list, show and restore snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Logical and stored sizes, dedup and compression.
    Stats,
    /// Remove snapshots by retention policy (flags, or each name's stored policy). Data is reclaimed by gc.
    Forget(ForgetArgs),
    /// Store, show or clear a snapshot name's retention policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Reclaim the space of data no snapshot references (safe while other clients write).
    Gc(GcArgs),
    /// forget by the stored policies, then gc.
    Prune(GcArgs),
    /// Verify the repository: structure, optionally data, optionally freshness.
    Check(CheckArgs),
    /// Rebuild what can be rebuilt.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Copy snapshots into another repository (other keys), uploading only chunks it does not have.
    Copy(CopyArgs),
    /// Restore a snapshot into a command (e.g. `psql -d scratch`), timed and recorded in the repository.
    Drill {
        /// ID, ID prefix, NAME:latest or NAME:latest~N, optionally followed by :STREAM.
        snapshot: String,
        /// The command that consumes the restored stream on its standard input.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct CopyArgs {
    /// Source repository (default: --repo / SILO_REPO).
    #[arg(long)]
    from: Option<String>,
    /// Target repository.
    #[arg(long)]
    to: String,
    /// Password file of the source (default: --password-file / SILO_FROM_PASSWORD[_FILE] / SILO_PASSWORD[_FILE]).
    #[arg(long, env = "SILO_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// Password file of the target (default: SILO_TO_PASSWORD, else the source's password).
    #[arg(long, env = "SILO_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    /// Only snapshots of this name.
    #[arg(long)]
    name: Option<String>,
    /// Snapshots to copy (ID, ID prefix, NAME:latest[~N]); default: every snapshot (of --name).
    snapshots: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum RepairCommand {
    /// Rebuild index segments from the packs' own trailers (unindexed packs, damaged segments).
    Index {
        /// Report what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Mark snapshots whose data is gone (they are never deleted; `forget` them if you wish).
    Snapshots {
        /// Also verify every chunk's data, not only the structure.
        #[arg(long)]
        read_data: bool,
        /// Report what would be marked; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Decrypt, decompress and re-hash every chunk of every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Verify the data of a sample of packs: `5%` (random) or `N/M` (slice N of M, by pack id).
    #[arg(long)]
    read_data_subset: Option<String>,
    /// Check only this snapshot's data path.
    #[arg(long)]
    snapshot: Option<String>,
    /// Exit 8 when the newest snapshot (of --name) is older than this (e.g. 26h).
    #[arg(long)]
    max_age: Option<String>,
    /// With --max-age: the snapshot name to watch.
    #[arg(long, requires = "max_age")]
    name: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
struct KeepArgs {
    /// Keep the N newest snapshots.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(long)]
    keep_hourly: Option<u32>,
    /// ... of each of the N newest days (UTC).
    #[arg(long)]
    keep_daily: Option<u32>,
    /// ... of each of the N newest ISO weeks.
    #[arg(long)]
    keep_weekly: Option<u32>,
    /// ... of each of the N newest months.
    #[arg(long)]
    keep_monthly: Option<u32>,
    /// ... of each of the N newest years.
    #[arg(long)]
    keep_yearly: Option<u32>,
    /// Keep every snapshot within this long of the newest one, e.g. 7d, 36h, 1y6mo.
    #[arg(long)]
    keep_within: Option<String>,
}

/// Seconds from a duration flag such as `7d`, `36h` or `1y6m`.
fn duration_arg(flag: &str, text: &str) -> Result<u64, silo::Error> {
    silo::retention::parse_duration(text).map_err(|why| silo::Error::Input {
        what: format!("{flag} {text:?}"),
        message: format!("{why}; expected a duration like 7d, 36h, 30min or 1y6mo (units y mo w d h min s)"),
    })
}

impl KeepArgs {
    fn policy(&self) -> Result<silo::retention::Policy> {
        let within = self.keep_within.as_deref().map(|t| duration_arg("--keep-within", t)).transpose()?;
        Ok(silo::retention::Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within,
        })
    }
}

#[derive(Args, Debug)]
struct ForgetArgs {
    /// Forget exactly these snapshots (ID, ID prefix, NAME:latest[~N]) instead of applying a policy.
    #[arg(conflicts_with_all = ["name", "host", "tag", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"])]
    snapshots: Vec<String>,
    /// Only snapshots of this name.
    #[arg(long)]
    name: Option<String>,
    /// Only snapshots from this host.
    #[arg(long)]
    host: Option<String>,
    /// Only snapshots with this tag.
    #[arg(long)]
    tag: Option<String>,
    #[command(flatten)]
    keep: KeepArgs,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Store the policy `forget` (without flags) and `prune` apply to NAME; no flags clears it.
    Set {
        /// The snapshot name the policy applies to.
        name: String,
        #[command(flatten)]
        keep: KeepArgs,
    },
    /// Show the stored policies.
    Show,
}

#[derive(Args, Debug)]
struct GcArgs {
    /// Report what would be reclaimed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// `full`: safety age and grace period from the config (safe with concurrent writers). `none`: reclaim at
    /// once — only safe when nothing else uses the repository.
    #[arg(long, default_value = "full", value_parser = ["full", "none"])]
    safety: String,
    /// Seconds the gc lease is valid; gc stops before deleting anything once it has passed.
    #[arg(long, default_value_t = 3600)]
    lease_seconds: u64,
    /// Repack packs with at least this fraction of dead bytes.
    #[arg(long, default_value_t = 0.2)]
    repack_threshold: f64,
}

impl GcArgs {
    fn options(&self) -> silo::repo::gc::GcOptions {
        silo::repo::gc::GcOptions {
            dry_run: self.dry_run,
            safety: if self.safety == "none" { silo::repo::gc::Safety::None } else { silo::repo::gc::Safety::Full },
            lease_seconds: self.lease_seconds,
            repack_threshold: self.repack_threshold,
            progress: Default::default(),
        }
    }
}

#[derive(Args, Debug)]
struct InitArgs {
    /// argon2id memory in KiB.
    #[arg(long, default_value_t = KdfParams::DEFAULT.memory_kib)]
    kdf_memory: u32,
    /// argon2id passes.
    #[arg(long, default_value_t = KdfParams::DEFAULT.iterations)]
    kdf_iterations: u32,
    /// argon2id lanes (computed in parallel on the machine's cores).
    #[arg(long, default_value_t = KdfParams::DEFAULT.parallelism)]
    kdf_parallelism: u32,
    /// Minimum chunk size in bytes.
    #[arg(long, default_value_t = ChunkerParams::DEFAULT.min_size)]
    chunk_min: u32,
    /// Average chunk size in bytes.
    #[arg(long, default_value_t = ChunkerParams::DEFAULT.avg_size)]
    chunk_avg: u32,
    /// Maximum chunk size in bytes.
    #[arg(long, default_value_t = ChunkerParams::DEFAULT.max_size)]
    chunk_max: u32,
    /// Pack size a writer aims for, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pack_size: u32,
    /// zstd level for chunks (1-22). 1 measured smaller and faster than 3 on SQL dumps (benches/sweep.sh).
    #[arg(long, default_value_t = 1)]
    compression: i32,
    /// gc never touches a pack younger than this many seconds.
    #[arg(long, default_value_t = 86_400)]
    gc_safety_age: u64,
    /// Seconds between gc marking a pack deleted and deleting it.
    #[arg(long, default_value_t = 86_400)]
    gc_grace_period: u64,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Store standard input (or the output of the command after `--`) as a new snapshot.
    Create(CreateArgs),
    /// List snapshots, oldest first.
    List {
        /// Only snapshots of this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show one snapshot: times, command, streams, sizes, hashes.
    Show {
        /// ID, ID prefix, NAME:latest or NAME:latest~N.
        snapshot: String,
    },
    /// Write a snapshot's stream to stdout (or --output), verifying every byte.
    Restore {
        /// ID, ID prefix, NAME:latest or NAME:latest~N, optionally followed by :STREAM.
        snapshot: String,
        /// Write to this file instead of stdout: a regular file is written under a temporary name and renamed
        /// (complete or absent, 0600 or the existing file's mode); a device or FIFO is written through.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// With NAME:latest[~N]: if that snapshot cannot be restored intact, fall back to the next older one
        /// of the same name (each candidate is verified before a byte is written; says which on stderr).
        #[arg(long)]
        fallback: bool,
    },
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Snapshot name, e.g. the database name.
    #[arg(long)]
    name: String,
    /// Tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Host recorded in the snapshot (default: this machine's hostname).
    #[arg(long)]
    host: Option<String>,
    /// A named stream: the output of a shell command, e.g. `--stream shop='pg_dump shop'`. Repeatable: the
    /// commands run in parallel and the snapshot is committed only if every one exits 0. Restore one stream
    /// with `silo snapshot restore NAME:latest:STREAM`.
    #[arg(long = "stream", value_name = "NAME=COMMAND", conflicts_with = "command")]
    streams: Vec<String>,
    /// Commit a stream of zero bytes (refused by default: it is what a dump that failed inside a pipe gives).
    #[arg(long)]
    allow_empty: bool,
    /// Command whose standard output is stored; the snapshot is committed only if it exits 0.
    #[arg(last = true)]
    command: Vec<String>,
}

/// `--stream NAME=COMMAND` values as stream specs (names valid and distinct; commands run by `sh -c`).
fn named_streams(values: &[String]) -> Result<Vec<StreamSpec>, silo::Error> {
    let mut specs: Vec<StreamSpec> = Vec::with_capacity(values.len());
    for v in values {
        let bad = |message: &str| silo::Error::Input { what: format!("--stream {v:?}"), message: message.into() };
        let (name, command) =
            v.split_once('=').ok_or_else(|| bad("expected NAME=COMMAND, e.g. shop='pg_dump shop'"))?;
        validate_name("stream name", name)?;
        if command.trim().is_empty() {
            return Err(bad("the command is empty"));
        }
        if specs.iter().any(|s| s.name == name) {
            return Err(bad("two streams have this name"));
        }
        let argv = vec!["sh".to_string(), "-c".to_string(), command.to_string()];
        specs.push(StreamSpec { name: name.to_string(), source: Source::Command(argv) });
    }
    Ok(specs)
}

/// Documented exit codes (README "Exit codes").
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const AUTH: u8 = 4;
    pub const DAMAGED: u8 = 5;
    pub const BUSY: u8 = 6;
    pub const COMMAND_FAILED: u8 = 7;
    pub const STALE: u8 = 8;
    /// The work is done (a snapshot committed, a report made) but the answer could not be written to stdout.
    pub const OUTPUT_FAILED: u8 = 9;
    /// The reader of stdout went away (`| head`): silo stopped quietly, as a process killed by SIGPIPE.
    pub const BROKEN_PIPE: u8 = 141;
}

/// Bit `fd` is set when standard descriptor `fd` was closed when silo started (main.rs).
pub static CLOSED_AT_START: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

pub fn exit_code(err: &anyhow::Error) -> u8 {
    use silo::backend::BackendError as B;
    use silo::Error as E;
    if err.downcast_ref::<output::OutputFailed>().is_some() {
        return exit::OUTPUT_FAILED;
    }
    let backend = err.downcast_ref::<B>().or(match err.downcast_ref::<silo::Error>() {
        Some(E::Backend(b)) => Some(b),
        _ => None,
    });
    match backend {
        Some(B::Location { .. }) => return exit::USAGE,
        Some(B::GaveUp { .. }) => return exit::UNREACHABLE,
        _ => {}
    }
    match err.downcast_ref::<silo::Error>() {
        Some(E::NotARepository { .. } | E::ForeignRepository { .. } | E::UnsupportedFormat { .. }) => exit::UNREACHABLE,
        Some(E::WrongPassword | E::NoPassword) => exit::AUTH,
        Some(E::Damaged { .. } | E::Inconsistent { .. } | E::NewerManifestUnreadable { .. }) => exit::DAMAGED,
        Some(E::CommandFailed { .. }) => exit::COMMAND_FAILED,
        Some(E::CheckDamaged { .. }) => exit::DAMAGED,
        Some(E::Stale { .. }) => exit::STALE,
        Some(E::Input { .. } | E::SnapshotNotFound { .. } | E::AmbiguousSnapshot { .. }) => exit::USAGE,
        Some(E::EmptyStream { .. }) => exit::COMMAND_FAILED,
        Some(E::GcBusy { .. } | E::LeaseLost { .. } | E::ClockSkew { .. } | E::SessionExpired { .. }) => exit::BUSY,
        _ => exit::FAILURE,
    }
}

struct Invocation {
    cli: Cli,
    rt: Runtime,
}

impl Invocation {
    /// For `init`, which creates the repository rather than opening it.
    fn backend(&self) -> Result<Arc<dyn Backend>> {
        Ok(silo::backend::open(self.location()?)?)
    }

    fn password(&self, confirm: bool) -> Result<Vec<u8>> {
        if let Some(file) = &self.cli.password_file {
            return read_password_file(file);
        }
        if let Some(p) = env_bytes("SILO_PASSWORD") {
            return Ok(p);
        }
        if std::io::stderr().is_terminal() {
            let p =
                rpassword::prompt_password("repository password: ").context("reading password from the terminal")?;
            if confirm && rpassword::prompt_password("repeat password: ").context("reading password")? != p {
                anyhow::bail!("passwords do not match");
            }
            return Ok(p.into_bytes());
        }
        Err(silo::Error::NoPassword.into())
    }

    fn open(&self) -> Result<Repository> {
        let location = self.location()?;
        self.open_at(location, &self.password(false)?)
    }

    fn location(&self) -> Result<&str, silo::Error> {
        self.cli.repo.as_deref().ok_or_else(|| silo::Error::Input {
            what: "no repository given".into(),
            message: "pass --repo DIR (or s3:http[s]://HOST/BUCKET) or set SILO_REPO".into(),
        })
    }

    fn open_at(&self, location: &str, password: &[u8]) -> Result<Repository> {
        let backend = silo::backend::open(location)?;
        Ok(self.rt.block_on(Repository::open(backend, password, self.cli.cache_dir.clone()))?)
    }
}

/// An environment variable's bytes as they are (a password need not be UTF-8).
fn env_bytes(name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::env::var_os(name).map(OsStringExt::into_vec)
}

/// The first line of a password file, without its line ending (LF or CRLF); bytes as they are.
fn read_password_file(file: &std::path::Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading password file {}", file.display()))?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(silo::Error::Input {
            what: format!("password file {}", file.display()),
            message: "its first line is empty; put the password on the first line".into(),
        }
        .into());
    }
    Ok(line.to_vec())
}

fn copy(ctx: &Invocation, a: &CopyArgs) -> Result<()> {
    use silo::repo::copy::CopyOutcome;
    let from = a.from.as_deref().or(ctx.cli.repo.as_deref()).context("no source: pass --from or --repo")?;
    let from_password = match (&a.from_password_file, env_bytes("SILO_FROM_PASSWORD")) {
        (Some(f), _) => read_password_file(f)?,
        (None, Some(p)) => p,
        (None, None) => ctx.password(false)?,
    };
    let to_password = match (&a.to_password_file, env_bytes("SILO_TO_PASSWORD")) {
        (Some(f), _) => read_password_file(f)?,
        (None, Some(p)) => p,
        (None, None) => from_password.clone(),
    };
    let source = ctx.open_at(from, &from_password).with_context(|| format!("source {from}"))?;
    let target = ctx.open_at(&a.to, &to_password).with_context(|| format!("target {}", a.to))?;
    if source.repo_id == target.repo_id {
        anyhow::bail!("--from and --to are the same repository ({})", a.to);
    }
    let mut chosen = if a.snapshots.is_empty() {
        ctx.rt.block_on(source.list_snapshots())?
    } else {
        let mut v = Vec::new();
        for spec in &a.snapshots {
            v.push(ctx.rt.block_on(source.resolve(&SnapshotSpec::parse(spec)?))?);
        }
        v.sort_by_key(|s| (s.manifest.finished, s.id));
        v.dedup_by_key(|s| s.id);
        v
    };
    if let Some(n) = &a.name {
        chosen.retain(|s| &s.manifest.name == n);
    }
    let mut existing = ctx.rt.block_on(target.list_snapshots())?;
    let mut results = Vec::with_capacity(chosen.len());
    for snap in &chosen {
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let shown = progress::Progress::start("copied", counter.clone(), Some(snap.manifest.total_size()));
        let outcome = target.copy_from(ctx.rt.handle(), &source, snap, &existing, counter);
        drop(shown);
        let outcome = outcome?;
        if let CopyOutcome::Copied { report, .. } = &outcome {
            existing.push(ctx.rt.block_on(target.load_snapshot(report.id))?);
        }
        output::copied(snap, &outcome, ctx.cli.json);
        results.push((snap, outcome));
    }
    output::copy_summary(&results, ctx.cli.json)
}

pub fn run(cli: Cli) -> Result<()> {
    if let Some(text) = &cli.deadline {
        silo::interrupt::deadline(std::time::Duration::from_secs(duration_arg("--deadline", text)?));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    let ctx = Invocation { cli, rt };
    match &ctx.cli.command {
        Command::Init(a) => init(&ctx, a),
        Command::Snapshot(SnapshotCommand::Create(a)) => create(&ctx, a),
        Command::Snapshot(SnapshotCommand::List { name }) => {
            let repo = ctx.open()?;
            let mut scan = ctx.rt.block_on(repo.scan_snapshots())?;
            if let Some(n) = name {
                scan.snapshots.retain(|s| &s.manifest.name == n);
            }
            let damaged = ctx.rt.block_on(repo.damage_marks())?;
            output::snapshot_list(&scan.snapshots, &scan.unreadable, &damaged, ctx.cli.json)
        }
        Command::Snapshot(SnapshotCommand::Show { snapshot }) => {
            let repo = ctx.open()?;
            let spec = SnapshotSpec::parse(snapshot)?;
            let snap = ctx.rt.block_on(repo.resolve(&spec))?;
            let damage = ctx.rt.block_on(repo.damage_marks())?.remove(&snap.id);
            let drills = ctx.rt.block_on(repo.drills(&snap.id))?;
            output::snapshot_show(&snap, damage.as_ref(), &drills, ctx.cli.json)
        }
        Command::Snapshot(SnapshotCommand::Restore { snapshot, output, fallback }) => {
            restore(&ctx, snapshot, output.as_deref(), *fallback)
        }
        Command::Forget(a) => {
            let specs = a.snapshots.iter().map(|s| SnapshotSpec::parse(s)).collect::<Result<Vec<_>, _>>()?;
            let policy = a.keep.policy()?;
            let repo = ctx.open()?;
            let plan = if specs.is_empty() {
                let filter =
                    silo::repo::forget::Filter { name: a.name.clone(), host: a.host.clone(), tag: a.tag.clone() };
                use silo::retention::Evaluate;
                ctx.rt.block_on(repo.plan_forget(&filter, (!policy.is_empty()).then_some(&policy)))?
            } else {
                ctx.rt.block_on(repo.plan_forget_ids(&specs))?
            };
            if !a.dry_run {
                ctx.rt.block_on(repo.forget(&plan))?;
            }
            output::forget(&plan, a.dry_run, ctx.cli.json)
        }
        Command::Policy(PolicyCommand::Set { name, keep }) => {
            validate_name("snapshot name", name)?;
            let repo = ctx.open()?;
            ctx.rt.block_on(repo.set_policy(name, keep.policy()?))?;
            output::policies(&ctx.rt.block_on(repo.policies())?, ctx.cli.json)
        }
        Command::Policy(PolicyCommand::Show) => {
            let repo = ctx.open()?;
            output::policies(&ctx.rt.block_on(repo.policies())?, ctx.cli.json)
        }
        Command::Gc(a) => {
            let repo = ctx.open()?;
            let options = a.options();
            let shown = progress::Progress::start("examined", options.progress.clone(), None);
            let report = ctx.rt.block_on(repo.gc(&options));
            drop(shown);
            output::gc(&report?, ctx.cli.json)
        }
        Command::Prune(a) => {
            let repo = ctx.open()?;
            let plan = ctx.rt.block_on(repo.plan_forget(&Default::default(), None))?;
            if !a.dry_run {
                ctx.rt.block_on(repo.forget(&plan))?;
            }
            let report = ctx.rt.block_on(repo.gc(&a.options()))?;
            output::prune(&plan, &report, ctx.cli.json)
        }
        Command::Check(a) => check(&ctx, a),
        Command::Copy(a) => copy(&ctx, a),
        Command::Repair(RepairCommand::Snapshots { read_data, dry_run }) => {
            let repo = ctx.open()?;
            let marks = ctx.rt.block_on(repo.repair_snapshots(*read_data, *dry_run))?;
            output::damage_marks(&marks, *dry_run, ctx.cli.json)
        }
        Command::Drill { snapshot, command } => {
            let repo = ctx.open()?;
            let spec = SnapshotSpec::parse(snapshot)?;
            let snap = ctx.rt.block_on(repo.resolve(&spec))?;
            let stream = select_stream(&snap, &spec.stream)?;
            let (record, restore_error) = repo.drill(ctx.rt.handle(), &snap, stream, command)?;
            output::drill(&record, ctx.cli.json)?;
            match restore_error {
                Some(e) => Err(e.into()),
                None if !record.ok => Err(silo::Error::CommandFailed {
                    command: command.join(" "),
                    status: format!("exited with status {}", record.exit_status.map_or("?".into(), |c| c.to_string())),
                    outcome: "the drill failed and was recorded",
                    stderr_tail: String::new(),
                }
                .into()),
                None => Ok(()),
            }
        }
        Command::Repair(RepairCommand::Index { dry_run }) => {
            let repo = ctx.open()?;
            let report = ctx.rt.block_on(repo.repair_index(*dry_run))?;
            output::repair(&report, ctx.cli.json)
        }
        Command::Stats => {
            let repo = ctx.open()?;
            let stats = ctx.rt.block_on(silo::repo::stats::collect(&repo))?;
            output::stats(&stats, ctx.cli.json)
        }
    }
}

fn check(ctx: &Invocation, a: &CheckArgs) -> Result<()> {
    use silo::repo::check::{CheckOptions, DataCheck};
    let data = match (&a.read_data_subset, a.read_data) {
        (Some(t), _) => DataCheck::parse_subset(t).ok_or_else(|| silo::Error::Input {
            what: format!("--read-data-subset {t:?}"),
            message: "expected a percentage like 5% or a slice like 2/7".into(),
        })?,
        (None, true) => DataCheck::All,
        (None, false) => DataCheck::None,
    };
    let max_age = a.max_age.as_deref().map(|t| duration_arg("--max-age", t)).transpose()?;
    let snapshot = a.snapshot.as_deref().map(SnapshotSpec::parse).transpose()?;
    let repo = ctx.open()?;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let shown = (data != DataCheck::None).then(|| progress::Progress::start("verified", progress.clone(), None));
    let options = CheckOptions { data, snapshot, max_age, max_age_name: a.name.clone(), progress };
    let report = ctx.rt.block_on(repo.check(&options));
    drop(shown);
    let report = report?;
    output::check(&report, ctx.cli.json)?;
    if report.is_damaged() {
        return Err(silo::Error::CheckDamaged {
            objects: report.damaged.len(),
            snapshots: report.affected_snapshots.len(),
        }
        .into());
    }
    if let Some(what) = report.stale {
        return Err(silo::Error::Stale { what }.into());
    }
    Ok(())
}

fn init(ctx: &Invocation, a: &InitArgs) -> Result<()> {
    let backend = ctx.backend()?;
    let password = ctx.password(true)?;
    if password.is_empty() {
        anyhow::bail!("refusing an empty password");
    }
    let options = InitOptions {
        kdf: KdfParams { memory_kib: a.kdf_memory, iterations: a.kdf_iterations, parallelism: a.kdf_parallelism },
        chunker: ChunkerParams { min_size: a.chunk_min, avg_size: a.chunk_avg, max_size: a.chunk_max },
        pack_target_size: a.pack_size,
        compression_level: a.compression,
        gc_safety_age: a.gc_safety_age,
        gc_grace_period: a.gc_grace_period,
    };
    let id = ctx.rt.block_on(Repository::init(backend.clone(), &password, &options))?;
    output::init(&backend.location(), &id.to_hex(), ctx.cli.json)
}

fn create(ctx: &Invocation, a: &CreateArgs) -> Result<()> {
    validate_name("snapshot name", &a.name)?;
    for t in &a.tags {
        validate_name("tag", t)?;
    }
    if let Some(h) = &a.host {
        validate_name("host", h)?;
    }
    let streams = if !a.streams.is_empty() {
        named_streams(&a.streams)?
    } else if !a.command.is_empty() {
        vec![StreamSpec { name: "data".into(), source: Source::Command(a.command.clone()) }]
    } else if std::io::stdin().is_terminal() {
        return Err(silo::Error::Input {
            what: "standard input".into(),
            message: "is a terminal: pipe a dump into silo, give the command after `--`, or --stream".into(),
        }
        .into());
    } else {
        vec![StreamSpec { name: "data".into(), source: Source::Stdin }]
    };
    let repo = ctx.open()?;
    let options = CreateOptions {
        name: a.name.clone(),
        host: a.host.clone().unwrap_or_else(hostname),
        tags: a.tags.clone(),
        streams,
        progress: Default::default(),
        warn: |text| note!("silo: warning: {text}"),
        times: None,
        allow_empty: a.allow_empty,
    };
    let total = match &options.streams[..] {
        [StreamSpec { source: Source::Stdin, .. }] => stdin_remaining(),
        _ => None,
    };
    let _shown = progress::Progress::start("read", options.progress.clone(), total);
    let report = repo.create_snapshot(ctx.rt.handle(), &options)?;
    drop(_shown);
    output::create(&report, ctx.cli.json)
        .and_then(|()| Ok(output::flush()?))
        .with_context(|| format!("snapshot {} was committed (do not run create again for it)", report.id.to_hex()))
}

/// Bytes left to read when standard input is a regular file (its size past the current offset).
fn stdin_remaining() -> Option<u64> {
    use std::io::Seek;
    use std::os::fd::AsFd;
    // A duplicate shares the offset: asking where it is moves nothing.
    let mut file = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok().filter(|m| m.is_file())?;
    let at = file.stream_position().ok()?;
    Some(meta.len().saturating_sub(at))
}

/// With --fallback: the newest snapshot at or after `spec` (NAME:latest~N, N, N+1, ...) whose selected stream
/// restores intact, verified by a full read into nothing. Says on stderr what it passed over and why.
fn choose_intact(ctx: &Invocation, repo: &Repository, spec: &SnapshotSpec) -> Result<silo::repo::snapshots::Snapshot> {
    use silo::repo::snapshots::Selector;
    let Selector::Latest { name, back } = &spec.selector else {
        return Err(silo::Error::Input {
            what: "--fallback".into(),
            message: "needs a NAME:latest[~N] selector (an id names exactly one snapshot)".into(),
        }
        .into());
    };
    for n in *back.. {
        let candidate_spec =
            SnapshotSpec { selector: Selector::Latest { name: name.clone(), back: n }, stream: spec.stream.clone() };
        let (snap, unreadable) = match ctx.rt.block_on(repo.resolve_past_damage(&candidate_spec)) {
            Ok(found) => found,
            Err(silo::Error::SnapshotNotFound { .. } | silo::Error::NewerManifestUnreadable { .. }) if n > *back => {
                return Err(silo::Error::Inconsistent {
                    object: format!("{name}:latest~{back} and every older snapshot of {name}"),
                    reason: "none can be restored intact".into(),
                }
                .into())
            }
            Err(e) => return Err(e.into()),
        };
        if n == *back {
            for u in &unreadable {
                note!(
                    "silo: snapshots/{} is unreadable and may be a newer snapshot of {name}: {}",
                    u.id.short(),
                    u.reason
                );
            }
        }
        let verified = select_stream(&snap, &spec.stream).map_err(anyhow::Error::from).and_then(|stream| {
            let none = std::sync::atomic::AtomicU64::new(0);
            Ok(repo.restore_stream(ctx.rt.handle(), &snap, stream, &mut std::io::sink(), &none)?)
        });
        match verified {
            Ok(_) => {
                if n != *back || !unreadable.is_empty() {
                    note!(
                        "silo: falling back: restoring {name}:latest~{n} ({}, finished {}) instead",
                        snap.id.short(),
                        silo::time::format_micros(snap.manifest.finished)
                    );
                }
                return Ok(snap);
            }
            Err(e) => note!(
                "silo: {name}:latest~{n} ({}) cannot be restored intact: {e:#}; trying an older one",
                snap.id.short()
            ),
        }
    }
    unreachable!("resolve fails with SnapshotNotFound once the snapshots of the name run out")
}

fn select_stream<'a>(
    snap: &'a silo::repo::snapshots::Snapshot,
    name: &Option<String>,
) -> Result<&'a silo::format::manifest::StreamManifest, silo::Error> {
    let names = || snap.manifest.streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    match name {
        Some(name) => snap.manifest.streams.iter().find(|s| &s.name == name).ok_or_else(|| silo::Error::Input {
            what: format!("snapshot {}", snap.id.short()),
            message: format!("has no stream {name:?} (streams: {})", names()),
        }),
        None if snap.manifest.streams.len() == 1 => Ok(&snap.manifest.streams[0]),
        None => Err(silo::Error::Input {
            what: format!("snapshot {}", snap.id.short()),
            message: format!("has several streams ({}); pick one with SNAP:STREAM", names()),
        }),
    }
}

fn restore(ctx: &Invocation, snapshot: &str, output: Option<&std::path::Path>, fallback: bool) -> Result<()> {
    let repo = ctx.open()?;
    let spec = SnapshotSpec::parse(snapshot)?;
    let snap = if fallback { choose_intact(ctx, &repo, &spec)? } else { ctx.rt.block_on(repo.resolve(&spec))? };
    let stream = select_stream(&snap, &spec.stream)?;
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _shown = progress::Progress::start("restored", counter.clone(), Some(stream.size));
    let report = match output {
        None if CLOSED_AT_START.load(std::sync::atomic::Ordering::SeqCst) & 2 != 0 => {
            return Err(silo::Error::Input {
                what: "snapshot restore".into(),
                message:
                    "standard output is closed, so there is nowhere to restore to; redirect it or use --output FILE"
                        .into(),
            }
            .into())
        }
        None => {
            let stdout = std::io::stdout();
            {
                use std::os::fd::AsRawFd;
                // SAFETY: fcntl on our stdout; F_SETPIPE_SZ fails harmlessly when it is not a pipe.
                unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
            }
            // Chunks go straight to the descriptor, one write each: a buffer in between copied every byte.
            let lock = stdout.lock();
            let fd = std::os::fd::AsFd::as_fd(&lock).try_clone_to_owned().context("duplicating stdout")?;
            let mut out = std::fs::File::from(fd);
            repo.restore_stream(ctx.rt.handle(), &snap, stream, &mut out, &counter)?
        }
        Some(path) => restore_to_file(ctx, &repo, &snap, stream, path, &counter)?,
    };
    drop(_shown);
    output::restored(&snap, stream, &report, output.is_none(), ctx.cli.json)
}

/// Where `--output` writes.
enum OutputTarget {
    /// A regular file (existing or not): written under an unpredictable temporary name created with
    /// O_EXCL (0600) beside it, fsynced, given the existing file's mode, and renamed over it — complete or
    /// absent. A symbolic link is followed: the file it points to is replaced, the link stays.
    Atomic { path: PathBuf, mode: Option<u32> },
    /// A character device or FIFO (`/dev/null`, `/dev/stdout`, a named pipe): written through as it is.
    Through(std::fs::File),
}

fn output_target(path: &std::path::Path) -> Result<OutputTarget> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let refuse = |why: &str| -> anyhow::Error {
        silo::Error::Input { what: format!("--output {}", path.display()), message: why.into() }.into()
    };
    let through = || -> Result<OutputTarget> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(OutputTarget::Through(file))
    };
    // /dev/stdout and friends lead to whatever the descriptor is: write to it, never replace it.
    if path.starts_with("/dev/fd")
        || path.starts_with("/proc")
        || ["/dev/stdout", "/dev/stderr"].iter().any(|p| path == std::path::Path::new(p))
    {
        return through();
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            let real = std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
            Ok(OutputTarget::Atomic { path: real, mode: Some(m.permissions().mode() & 0o7777) })
        }
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => through(),
        Ok(m) if m.is_dir() => Err(refuse("is a directory; name a file")),
        Ok(_) => Err(refuse("is not a regular file, character device or FIFO; silo will not replace it")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(refuse("is a symbolic link to nothing; name the file itself"));
            }
            Ok(OutputTarget::Atomic { path: path.to_path_buf(), mode: None })
        }
        Err(e) => Err(anyhow::Error::from(e).context(format!("--output {}", path.display()))),
    }
}

/// Restores into `path` as `output_target` decides: a regular file is complete or absent.
fn restore_to_file(
    ctx: &Invocation,
    repo: &Repository,
    snap: &silo::repo::snapshots::Snapshot,
    stream: &silo::format::manifest::StreamManifest,
    path: &std::path::Path,
    counter: &std::sync::atomic::AtomicU64,
) -> Result<silo::repo::read::RestoreReport> {
    let (path, mode) = match output_target(path)? {
        OutputTarget::Through(file) => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let report = repo.restore_stream(ctx.rt.handle(), snap, stream, &mut out, counter)?;
            out.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", path.display()))?;
            return Ok(report);
        }
        OutputTarget::Atomic { path, mode } => (path, mode),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".silo-partial")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let (file, temp_path) = temp.into_parts();
    let _on_interrupt = {
        let partial = temp_path.to_path_buf();
        silo::interrupt::on_interrupt(move || {
            let _ = std::fs::remove_file(&partial);
        })
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let report = repo.restore_stream(ctx.rt.handle(), snap, stream, &mut out, counter)?;
    let file = out.into_inner().map_err(|e| e.into_error()).context("writing restored data")?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode)).context("keeping the file's mode")?;
    }
    file.sync_all().context("syncing restored file")?;
    temp_path
        .persist(&path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming the restored file to {}", path.display()))?;
    Ok(report)
}
