//! `silo snapshot create`: standard input, the command after `--`, or `--stream NAME=COMMAND`s, stored as
//! one snapshot (I2 all-or-nothing). The snapshot id is the answer on stdout.

use crate::cli::context::Invocation;
use crate::cli::output::{emit, human_bytes, Report};
use crate::cli::progress::Progress;
use anyhow::{Context, Result};
use serde::Serialize;
use silo::inputs::{Source, StreamSpec};
use silo::repo::snapshots::validate_name;
use silo::repo::write::{CreateOptions, CreateReport, Validation};
use std::io::IsTerminal;

#[derive(clap::Args, Debug)]
pub struct Args {
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
    /// Do not inspect these streams as dumps (all streams when no name is given). By default every stream is
    /// recognised by its first bytes (pg_dump plain/custom/tar, pg_dumpall, mysqldump, sqlite3 .dump or file,
    /// Redis RDB, LDIF) and refused if it is not whole; other streams are stored unchecked.
    #[arg(long, value_name = "STREAM", num_args = 0.., value_delimiter = ',')]
    no_validate: Option<Vec<String>>,
    /// Commit a stream that fails dump validation, recorded as invalid (shown by `snapshot show`).
    #[arg(long)]
    accept_invalid: bool,
    /// Also run SQLite's `PRAGMA integrity_check` on a stream that is an SQLite database file (it is written
    /// to an owner-only temporary file as it passes; needs sqlite3 and room for one copy).
    #[arg(long)]
    sqlite_integrity_check: bool,
    /// Warn when a table of the dump shrank by this many percent (or vanished) since the previous snapshot
    /// of this name.
    #[arg(long, value_name = "PERCENT", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
    table_shrink_alert: u8,
    /// Store every new chunk whole. By default a chunk that does not deduplicate is stored as a delta of the
    /// most similar chunk of the previous snapshot of this name when that is smaller (rows changed since).
    #[arg(long)]
    no_delta: bool,
    /// Command whose standard output is stored; the snapshot is committed only if it exits 0.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Serialize)]
struct Created {
    id: String,
    short_id: String,
    bytes: u64,
    new_bytes_stored: u64,
    chunks: u64,
    new_chunks: u64,
    /// New chunks stored as deltas of the previous snapshot's, their bytes before and after.
    delta_chunks: u64,
    delta_raw_bytes: u64,
    delta_bytes_stored: u64,
    packs: u64,
    duration_seconds: f64,
    streams: Vec<StreamSize>,
    warnings: Vec<String>,
    requests: silo::backend::metered::RequestCounts,
}

#[derive(Serialize)]
struct StreamSize {
    name: String,
    bytes: u64,
    /// What the stream was recognised as (absent: not recognised or not inspected).
    #[serde(skip_serializing_if = "Option::is_none")]
    dump: Option<crate::cli::output::DumpJson>,
}

impl Created {
    fn of(r: &CreateReport) -> Self {
        Created {
            id: r.id.to_hex(),
            short_id: r.id.short(),
            bytes: r.bytes,
            new_bytes_stored: r.new_bytes_stored,
            chunks: r.chunks,
            new_chunks: r.new_chunks,
            delta_chunks: r.delta_chunks,
            delta_raw_bytes: r.delta_raw_bytes,
            delta_bytes_stored: r.delta_bytes_stored,
            packs: r.packs,
            duration_seconds: r.duration.as_secs_f64(),
            streams: r
                .streams
                .iter()
                .zip(&r.dumps)
                .map(|((name, bytes), dump)| StreamSize {
                    name: name.clone(),
                    bytes: *bytes,
                    dump: dump.as_ref().map(crate::cli::output::DumpJson::of),
                })
                .collect(),
            warnings: r.warnings.clone(),
            requests: r.requests,
        }
    }
}

impl Report for Created {
    /// The summary goes to stderr; the id alone is the answer (`id=$(... | silo snapshot create ...)`).
    fn human(&self) -> Result<()> {
        let deltas = if self.delta_chunks > 0 {
            format!(" ({} as deltas of {})", self.delta_chunks, human_bytes(self.delta_raw_bytes))
        } else {
            String::new()
        };
        note!(
            "snapshot {}: {} read, {} new chunks of {}{deltas}, {} stored, {:.2} s",
            self.short_id,
            human_bytes(self.bytes),
            self.new_chunks,
            self.chunks,
            human_bytes(self.new_bytes_stored),
            self.duration_seconds
        );
        say!("{}", self.id);
        Ok(())
    }
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

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    ctx.record(|d| d.job = a.name.clone());
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
    let repo = ctx.open_with_cache()?;
    let options = CreateOptions {
        name: a.name.clone(),
        host: a.host.clone().unwrap_or_else(silo::repo::hostname),
        tags: a.tags.clone(),
        streams,
        progress: Default::default(),
        warn: |text| note!("silo: warning: {text}"),
        times: None,
        allow_empty: a.allow_empty,
        min_size: None,
        validation: Validation {
            all_off: a.no_validate.as_ref().is_some_and(|names| names.is_empty()),
            off: a.no_validate.clone().unwrap_or_default(),
            accept_invalid: a.accept_invalid,
            sqlite_integrity: a.sqlite_integrity_check,
            carried: None,
        },
        deltas: !a.no_delta,
    };
    if let Some(unknown) = validation_names_unknown(&options) {
        return Err(silo::Error::Input {
            what: format!("--no-validate {unknown}"),
            message: format!(
                "there is no stream of that name (streams: {})",
                options.streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
        .into());
    }
    let total = match &options.streams[..] {
        [StreamSpec { source: Source::Stdin, .. }] => silo::inputs::stdin_remaining(),
        _ => None,
    };
    let shown = Progress::start("read", options.progress.clone(), total);
    let mut report = repo.create_snapshot(ctx.rt.handle(), &options)?;
    for line in content_warnings(ctx, &repo, &a.name, &report, a.table_shrink_alert) {
        note!("silo: warning: {line}");
        report.warnings.push(line);
    }
    ctx.record(|d| {
        (d.snapshot, d.bytes_read, d.bytes_added) = (Some(report.id), report.bytes, report.new_bytes_stored)
    });
    drop(shown);
    emit(&Created::of(&report), ctx.json())
        .and_then(|()| Ok(crate::cli::output::flush()?))
        .with_context(|| format!("snapshot {} was committed (do not run create again for it)", report.id.to_hex()))
}

/// A `--no-validate` name that is not one of the snapshot's streams (a typo would silently validate).
fn validation_names_unknown(options: &CreateOptions) -> Option<&str> {
    options.validation.off.iter().map(String::as_str).find(|n| !options.streams.iter().any(|s| s.name == *n))
}

/// Tables of the new snapshot's dumps that vanished or shrank since the previous snapshot of `name`
/// (dumps::sanity), one line each. The snapshot is committed whatever they say: a failure to look is a line.
pub fn content_warnings(
    ctx: &Invocation,
    repo: &silo::repo::Repository,
    name: &str,
    report: &CreateReport,
    threshold: u8,
) -> Vec<String> {
    if report.dumps.iter().all(Option::is_none) {
        return Vec::new();
    }
    // Headers are enough: the dump records, not the chunks.
    let snapshots = match ctx.rt.block_on(repo.scan_snapshot_heads()) {
        Ok(scan) => scan.snapshots,
        Err(e) => return vec![format!("could not compare the tables with the previous snapshot: {e}")],
    };
    let Some(previous) = snapshots.iter().rev().find(|s| s.manifest.name == name && s.id != report.id) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for ((stream, _), dump) in report.streams.iter().zip(&report.dumps) {
        let Some(now) = dump else { continue };
        let before = previous.manifest.streams.iter().find(|s| &s.name == stream).and_then(|s| s.dump.as_ref());
        if let Some(before) = before {
            lines.extend(silo::dumps::sanity::compare(stream, before, now, threshold).into_iter().map(|f| f.line));
        }
    }
    lines
}
