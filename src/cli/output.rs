//! The one output path: every answer is a `Report` (a `Serialize` struct) that `emit` prints as one JSON
//! document with `--json`, or as lines for people. Writes to stdout are checked (`say!`); messages go to
//! stderr (`note!`). Views shared by several commands (a snapshot, a drill) live here.

use anyhow::Result;
use serde::Serialize;
use silo::format::maintenance::DrillRecord;
use silo::repo::snapshots::Snapshot;
pub use silo::text::{command_text, human_bytes};
use silo::time::format_micros;

/// Bit `fd` is set when standard descriptor `fd` was closed when silo started (main.rs).
pub static CLOSED_AT_START: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// An answer: serialised as it is for `--json`, or written for people by `human`.
pub trait Report: Serialize {
    fn human(&self) -> Result<()>;
}

/// Prints `report` on stdout, as JSON or for people.
pub fn emit<R: Report + ?Sized>(report: &R, json: bool) -> Result<()> {
    if json {
        say!("{}", serde_json::to_string_pretty(report)?);
        Ok(())
    } else {
        report.human()
    }
}

/// Writing the answer to standard output failed: the work itself is done (main.rs says so and exits 9, or
/// quietly 141 when the reader went away, as `| head` does).
#[derive(Debug)]
pub struct OutputFailed(pub std::io::Error);

impl std::fmt::Display for OutputFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing the answer to standard output failed: {}", self.0)
    }
}

impl std::error::Error for OutputFailed {}

/// One line of the answer on stdout, checked.
pub fn say_line(args: std::fmt::Arguments) -> Result<(), OutputFailed> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|_| out.write_all(b"\n")).map_err(OutputFailed)
}

/// Flushes what `say_line` buffered, checked.
pub fn flush() -> Result<(), OutputFailed> {
    use std::io::Write;
    std::io::stdout().lock().flush().map_err(OutputFailed)
}

/// One line on stderr; a failure to write it is ignored (there is nowhere left to say anything).
pub fn note_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|_| err.write_all(b"\n"));
}

/// A snapshot as listings and `show` give it.
#[derive(Serialize)]
pub struct SnapshotView {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub host: String,
    pub tags: Vec<String>,
    pub started: String,
    pub finished: String,
    pub bytes: u64,
    pub silo_version: String,
    pub streams: Vec<StreamView>,
}

#[derive(Serialize)]
pub struct StreamView {
    pub name: String,
    pub bytes: u64,
    pub chunks: usize,
    pub blake3: String,
    pub command: Option<Vec<String>>,
    pub exit_status: Option<i32>,
    /// What the stream was recognised as when it was stored (absent: not recognised or not inspected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump: Option<DumpJson>,
}

/// A stream's dump record (format-spec/manifest.md `DumpRecord`) for `--json` and `snapshot show`.
#[derive(Serialize)]
pub struct DumpJson {
    pub format: &'static str,
    pub tool_version: String,
    /// False when the stream failed validation and was committed with --accept-invalid.
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub entries: u64,
    pub tables: Vec<TableJson>,
}

#[derive(Serialize)]
pub struct TableJson {
    pub name: String,
    pub rows: Option<u64>,
    pub bytes: u64,
}

impl DumpJson {
    pub fn of(d: &silo_format::manifest::DumpRecord) -> Self {
        DumpJson {
            format: silo_format::manifest::dump_format::name(d.format),
            tool_version: d.tool_version.clone(),
            valid: d.invalid.is_none(),
            problem: d.invalid.clone(),
            entries: d.entries,
            tables: d.tables.iter().map(|t| TableJson { name: t.name.clone(), rows: t.rows, bytes: t.bytes }).collect(),
        }
    }
}

impl SnapshotView {
    pub fn of(s: &Snapshot) -> Self {
        let m = &s.manifest;
        SnapshotView {
            id: s.id.to_hex(),
            short_id: s.id.short(),
            name: m.name.clone(),
            host: m.host.clone(),
            tags: m.tags.clone(),
            started: format_micros(m.started),
            finished: format_micros(m.finished),
            bytes: m.total_size(),
            silo_version: m.silo_version.clone(),
            streams: m
                .streams
                .iter()
                .map(|st| StreamView {
                    name: st.name.clone(),
                    bytes: st.size,
                    chunks: st.chunks.len(),
                    blake3: hex::encode(st.blake3),
                    command: st.command.clone(),
                    exit_status: st.exit_status,
                    dump: st.dump.as_ref().map(DumpJson::of),
                })
                .collect(),
        }
    }
}

/// A drill record as `show` and `drill` give it.
#[derive(Serialize)]
pub struct DrillView {
    pub stream: String,
    pub command: Vec<String>,
    pub host: String,
    pub started: String,
    pub duration_seconds: f64,
    pub bytes: u64,
    pub exit_status: Option<i32>,
    pub ok: bool,
    pub error: String,
}

impl DrillView {
    pub fn of(d: &DrillRecord) -> Self {
        DrillView {
            stream: d.stream.clone(),
            command: d.command.clone(),
            host: d.host.clone(),
            started: format_micros(d.started),
            duration_seconds: (d.finished - d.started) as f64 / 1e6,
            bytes: d.bytes,
            exit_status: d.exit_status,
            ok: d.ok,
            error: d.error.clone(),
        }
    }
}
