//! Rendering answers: a table or lines for people, one JSON document with `--json`.

use anyhow::Result;
use serde_json::json;
use silo::format::maintenance::{DamageMark, DrillRecord};
use silo::repo::snapshots::Snapshot;
use silo::repo::stats::RepoStats;
use silo::repo::write::CreateReport;
use silo::time::format_micros;

fn print_json(v: &serde_json::Value) -> Result<()> {
    say!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
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

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn init(location: &str, id: &str, json: bool) -> Result<()> {
    if json {
        return print_json(&json!({ "location": location, "repository_id": id }));
    }
    say!("created repository {id} at {location}");
    Ok(())
}

pub fn create(r: &CreateReport, json: bool) -> Result<()> {
    if json {
        return print_json(&json!({
            "id": r.id.to_hex(),
            "short_id": r.id.short(),
            "bytes": r.bytes,
            "new_bytes_stored": r.new_bytes_stored,
            "chunks": r.chunks,
            "new_chunks": r.new_chunks,
            "packs": r.packs,
            "duration_seconds": r.duration.as_secs_f64(),
            "streams": r.streams.iter().map(|(n, s)| json!({"name": n, "bytes": s})).collect::<Vec<_>>(),
            "warnings": r.warnings,
            "requests": r.requests,
        }));
    }
    note!(
        "snapshot {}: {} read, {} new chunks of {}, {} stored, {:.2} s",
        r.id.short(),
        human_bytes(r.bytes),
        r.new_chunks,
        r.chunks,
        human_bytes(r.new_bytes_stored),
        r.duration.as_secs_f64()
    );
    say!("{}", r.id.to_hex());
    Ok(())
}

fn snapshot_json(s: &Snapshot) -> serde_json::Value {
    let m = &s.manifest;
    json!({
        "id": s.id.to_hex(),
        "short_id": s.id.short(),
        "name": m.name,
        "host": m.host,
        "tags": m.tags,
        "started": format_micros(m.started),
        "finished": format_micros(m.finished),
        "bytes": m.total_size(),
        "silo_version": m.silo_version,
        "streams": m.streams.iter().map(|st| json!({
            "name": st.name,
            "bytes": st.size,
            "chunks": st.chunks.len(),
            "blake3": hex::encode(st.blake3),
            "command": st.command,
            "exit_status": st.exit_status,
        })).collect::<Vec<_>>(),
    })
}

type Marks = std::collections::HashMap<silo::format::ObjectId, DamageMark>;

/// Readable snapshots oldest first, then the manifests that cannot be read (their name is unknown: listed
/// whatever `--name` says, so damage is never hidden).
pub fn snapshot_list(
    snaps: &[Snapshot],
    unreadable: &[silo::repo::snapshots::UnreadableManifest],
    damaged: &Marks,
    json: bool,
) -> Result<()> {
    if json {
        let items = snaps
            .iter()
            .map(|s| {
                let mut v = snapshot_json(s);
                v["damaged"] = json!(damaged.contains_key(&s.id));
                v
            })
            .chain(unreadable.iter().map(|u| {
                json!({
                    "id": u.id.to_hex(),
                    "short_id": u.id.short(),
                    "stored": format_micros(u.stored_at),
                    "damaged": true,
                    "unreadable": u.reason,
                })
            }))
            .collect();
        return print_json(&serde_json::Value::Array(items));
    }
    say!("{:<8}  {:<20}  {:<24}  {:<16}  {:>10}  tags", "id", "time", "name", "host", "size");
    for s in snaps {
        let m = &s.manifest;
        say!(
            "{:<8}  {:<20}  {:<24}  {:<16}  {:>10}  {}",
            s.id.short(),
            format_micros(m.finished),
            m.name,
            m.host,
            human_bytes(m.total_size()),
            m.tags.join(",")
        );
        if m.streams.len() > 1 {
            let list: Vec<String> =
                m.streams.iter().map(|st| format!("{} ({})", st.name, human_bytes(st.size))).collect();
            say!("          streams: {}", list.join(", "));
        }
        if damaged.contains_key(&s.id) {
            say!("          ^ damaged: see `silo snapshot show {}`", s.id.short());
        }
    }
    for u in unreadable {
        say!("{:<8}  {:<20}  UNREADABLE manifest: {}", u.id.short(), format_micros(u.stored_at), u.reason);
    }
    if unreadable.is_empty() {
        say!("{} snapshots", snaps.len());
    } else {
        say!("{} snapshots, {} unreadable (run `silo check`)", snaps.len(), unreadable.len());
    }
    Ok(())
}

fn drill_json(d: &DrillRecord) -> serde_json::Value {
    json!({
        "stream": d.stream,
        "command": d.command,
        "host": d.host,
        "started": format_micros(d.started),
        "duration_seconds": (d.finished - d.started) as f64 / 1e6,
        "bytes": d.bytes,
        "exit_status": d.exit_status,
        "ok": d.ok,
        "error": d.error,
    })
}

pub fn snapshot_show(s: &Snapshot, damage: Option<&DamageMark>, drills: &[DrillRecord], json: bool) -> Result<()> {
    if json {
        let mut v = snapshot_json(s);
        v["damaged"] = json!(damage.map(|d| json!({"found_at": format_micros(d.found_at), "reason": d.reason})));
        v["drills"] = serde_json::Value::Array(drills.iter().map(drill_json).collect());
        return print_json(&v);
    }
    let m = &s.manifest;
    say!("snapshot {}", s.id.to_hex());
    say!("  name      {}", m.name);
    say!("  host      {}", m.host);
    say!("  tags      {}", m.tags.join(", "));
    say!("  started   {}", format_micros(m.started));
    say!("  finished  {}", format_micros(m.finished));
    say!("  size      {} ({} bytes)", human_bytes(m.total_size()), m.total_size());
    for st in &m.streams {
        say!("  stream {}", st.name);
        say!("    bytes    {}", st.size);
        say!("    chunks   {}", st.chunks.len());
        say!("    blake3   {}", hex::encode(st.blake3));
        match &st.command {
            Some(c) => say!(
                "    command  {} (exit status {})",
                command_text(c),
                st.exit_status.map_or("?".into(), |c| c.to_string())
            ),
            None => say!("    command  (standard input)"),
        }
    }
    if let Some(d) = damage {
        say!("  DAMAGED (found {}): {}", format_micros(d.found_at), d.reason);
    }
    for d in drills {
        say!(
            "  drill {}  {}  {:.1} s  {}  `{}`",
            format_micros(d.started),
            if d.ok { "ok    " } else { "FAILED" },
            (d.finished - d.started) as f64 / 1e6,
            human_bytes(d.bytes),
            d.command.join(" ")
        );
    }
    Ok(())
}

pub fn damage_marks(marks: &[DamageMark], dry_run: bool, json: bool) -> Result<()> {
    if json {
        let v: Vec<_> = marks.iter().map(|m| json!({"snapshot": m.snapshot.to_hex(), "reason": m.reason})).collect();
        return print_json(&json!({"dry_run": dry_run, "marked": v}));
    }
    for m in marks {
        say!("{} {}: {}", if dry_run { "would mark" } else { "marked" }, m.snapshot.short(), m.reason);
    }
    say!("{} snapshots {}marked damaged (none deleted)", marks.len(), if dry_run { "would be " } else { "" });
    Ok(())
}

pub fn drill(d: &DrillRecord, json: bool) -> Result<()> {
    if json {
        return print_json(&drill_json(d));
    }
    note!(
        "drill {}: restored {} into `{}` in {:.2} s (recorded)",
        if d.ok { "ok" } else { "FAILED" },
        human_bytes(d.bytes),
        d.command.join(" "),
        (d.finished - d.started) as f64 / 1e6
    );
    Ok(())
}

pub fn stats(s: &RepoStats, json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::to_value(s)?);
    }
    say!("snapshots          {}", s.snapshots);
    say!("logical bytes      {} ({})", human_bytes(s.logical_bytes), s.logical_bytes);
    say!("unique bytes       {} ({})", human_bytes(s.unique_bytes), s.unique_bytes);
    say!("stored bytes       {} ({})", human_bytes(s.stored_bytes), s.stored_bytes);
    say!("dedup ratio        {:.2}x", s.dedup_ratio);
    say!("compression ratio  {:.2}x", s.compression_ratio);
    say!("total ratio        {:.2}x", s.total_ratio);
    say!("chunks             {}", s.chunks);
    say!("packs              {}", s.packs);
    say!("index segments     {}", s.index_segments);
    Ok(())
}

pub fn forget(plan: &[silo::repo::forget::ForgetGroup], dry_run: bool, json: bool) -> Result<()> {
    if json {
        let groups: Vec<serde_json::Value> = plan
            .iter()
            .map(|g| {
                json!({
                    "name": g.name,
                    "host": g.host,
                    "policy": g.policy.as_ref().map(|p| format!("{p:?}")),
                    "snapshots": g.decisions.iter().map(|d| json!({
                        "id": d.item.id.to_hex(),
                        "time": format_micros(d.time),
                        "keep": d.keep,
                        "reasons": d.reasons,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&json!({ "dry_run": dry_run, "groups": groups }));
    }
    for g in plan {
        say!("{} on {}:", g.name, g.host);
        for d in &g.decisions {
            let verdict = if d.keep {
                "keep  "
            } else if dry_run {
                "would remove"
            } else {
                "remove"
            };
            say!("  {verdict}  {}  {}  {}", d.item.id.short(), format_micros(d.time), d.reasons.join(","));
        }
    }
    let removed = plan.iter().flat_map(|g| &g.decisions).filter(|d| !d.keep).count();
    say!("{} snapshots {}", removed, if dry_run { "would be removed" } else { "removed" });
    Ok(())
}

pub fn policies(
    p: &std::collections::BTreeMap<String, silo::format::maintenance::StoredPolicy>,
    json: bool,
) -> Result<()> {
    if json {
        let v: Vec<serde_json::Value> = p
            .values()
            .map(|s| {
                let q = &s.policy;
                json!({"name": s.name, "set_at": format_micros(s.set_at), "keep_last": q.last, "keep_hourly": q.hourly,
                       "keep_daily": q.daily, "keep_weekly": q.weekly, "keep_monthly": q.monthly,
                       "keep_yearly": q.yearly, "keep_within_seconds": q.within})
            })
            .collect();
        return print_json(&serde_json::Value::Array(v));
    }
    for s in p.values() {
        say!("{}: {:?} (set {})", s.name, s.policy, format_micros(s.set_at));
    }
    say!("{} policies", p.len());
    Ok(())
}

pub fn gc(r: &silo::repo::gc::GcReport, json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::to_value(r)?);
    }
    let verb = if r.dry_run { "would be" } else { "were" };
    say!("snapshots {}, packs {}, live chunks {}", r.snapshots, r.packs, r.marked_chunks);
    say!("reclaimed now: {} packs {verb} deleted ({})", r.packs_deleted, human_bytes(r.bytes_deleted));
    say!(
        "marked: {} packs ({}), {} packs {verb} repacked",
        r.packs_marked,
        human_bytes(r.bytes_marked),
        r.packs_repacked
    );
    if r.packs_pending > 0 {
        say!(
            "pending: {} packs ({}) reclaimable by a gc run after {}",
            r.packs_pending,
            human_bytes(r.bytes_pending),
            r.pending_reclaimable_at.as_deref().unwrap_or("?")
        );
    }
    if r.packs_too_young > 0 {
        say!("{} unreferenced packs are younger than the safety age and were left alone", r.packs_too_young);
    }
    Ok(())
}

pub fn prune(plan: &[silo::repo::forget::ForgetGroup], report: &silo::repo::gc::GcReport, json: bool) -> Result<()> {
    if json {
        let removed: Vec<String> =
            plan.iter().flat_map(|g| &g.decisions).filter(|d| !d.keep).map(|d| d.item.id.to_hex()).collect();
        return print_json(&json!({ "forgotten": removed, "gc": serde_json::to_value(report)? }));
    }
    forget(plan, report.dry_run, false)?;
    gc(report, false)
}

pub fn check(r: &silo::repo::check::CheckReport, json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::to_value(r)?);
    }
    say!(
        "{} snapshots, {} index segments, {} packs ({} read, {} chunks / {} verified)",
        r.snapshots,
        r.index_segments,
        r.packs,
        r.packs_read,
        r.chunks_verified,
        human_bytes(r.bytes_verified)
    );
    for p in &r.damaged {
        let affects = if p.snapshots.is_empty() {
            String::new()
        } else {
            format!(" (affects {})", p.snapshots.iter().map(|s| &s[..8]).collect::<Vec<_>>().join(", "))
        };
        say!("damaged: {}: {}{affects}", p.object, p.problem);
    }
    for o in &r.orphans {
        say!("orphan: {o} (no index names it; gc reclaims it)");
    }
    if let Some(s) = &r.stale {
        say!("stale: {s}");
    }
    if !r.is_damaged() && r.stale.is_none() {
        say!("no errors found");
    }
    Ok(())
}

pub fn repair(r: &silo::repo::repair::RepairReport, json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::to_value(r)?);
    }
    let verb = if r.dry_run { "would index" } else { "indexed" };
    say!(
        "{} packs scanned; {verb} {} packs ({} chunks) from their trailers",
        r.packs,
        r.packs_indexed,
        r.chunks_indexed
    );
    for s in &r.segments_replaced {
        say!("damaged segment {s} {}", if r.dry_run { "would be replaced" } else { "replaced" });
    }
    for p in &r.unreadable_packs {
        say!("unreadable pack: {p}");
    }
    Ok(())
}

/// A recorded command as the user typed it (`--stream NAME=CMD` is stored as `sh -c CMD`).
fn command_text(argv: &[String]) -> String {
    match argv {
        [sh, c, cmd] if sh == "sh" && c == "-c" => cmd.clone(),
        _ => argv.join(" "),
    }
}

/// One line per copied snapshot as it happens (stderr; the summary is the answer).
pub fn copied(snap: &Snapshot, outcome: &silo::repo::copy::CopyOutcome, json: bool) {
    use silo::repo::copy::CopyOutcome;
    if json {
        return;
    }
    let m = &snap.manifest;
    match outcome {
        CopyOutcome::Present(id) => {
            note!(
                "{} {} {}: already in the target as {}",
                snap.id.short(),
                m.name,
                format_micros(m.finished),
                id.short()
            )
        }
        CopyOutcome::Copied { report, .. } => note!(
            "{} {} {}: copied as {}, {} read, {} new chunks of {}, {} uploaded",
            snap.id.short(),
            m.name,
            format_micros(m.finished),
            report.id.short(),
            human_bytes(report.bytes),
            report.new_chunks,
            report.chunks,
            human_bytes(report.new_bytes_stored)
        ),
    }
}

pub fn copy_summary(results: &[(&Snapshot, silo::repo::copy::CopyOutcome)], json: bool) -> Result<()> {
    use silo::repo::copy::CopyOutcome;
    if json {
        let items: Vec<_> = results
            .iter()
            .map(|(snap, outcome)| match outcome {
                CopyOutcome::Present(id) => json!({
                    "source": snap.id.to_hex(), "name": snap.manifest.name, "copied": false, "target": id.to_hex(),
                }),
                CopyOutcome::Copied { report, source_requests } => json!({
                    "source": snap.id.to_hex(), "name": snap.manifest.name, "copied": true,
                    "target": report.id.to_hex(), "bytes": report.bytes, "chunks": report.chunks,
                    "new_chunks": report.new_chunks, "new_bytes_stored": report.new_bytes_stored,
                    "source_requests": source_requests, "target_requests": report.requests.total(),
                }),
            })
            .collect();
        return print_json(&serde_json::Value::Array(items));
    }
    let copied = results.iter().filter(|(_, o)| matches!(o, CopyOutcome::Copied { .. })).count();
    say!("{copied} snapshots copied, {} already present", results.len() - copied);
    Ok(())
}

/// The restore report: with --json, a JSON document on stdout, or on stderr when stdout carries the data.
pub fn restored(
    snap: &Snapshot,
    stream: &silo::format::manifest::StreamManifest,
    r: &silo::repo::read::RestoreReport,
    data_on_stdout: bool,
    json: bool,
) -> Result<()> {
    if !json {
        tracing::info!(
            "restored {} bytes in {} chunks with {} requests in {:?}",
            r.bytes,
            r.chunks,
            r.requests.total(),
            r.duration
        );
        return Ok(());
    }
    let v = json!({
        "snapshot": snap.id.to_hex(),
        "stream": stream.name,
        "bytes": r.bytes,
        "chunks": r.chunks,
        "duration_seconds": r.duration.as_secs_f64(),
        "requests": r.requests,
    });
    if data_on_stdout {
        note!("{}", serde_json::to_string(&v)?);
        Ok(())
    } else {
        print_json(&v)
    }
}
