//! Records about snapshots, kept in the repository: damage marks (`repair snapshots`: a snapshot whose data
//! is gone is marked, never deleted) and restore drills (`drill`: restore into a command, timed, recorded).

use super::check::{CheckOptions, DataCheck};
use super::snapshots::Snapshot;
use super::Repository;
use crate::{Error, Result};
use silo_format::maintenance::{DamageMark, DrillRecord, MAINTENANCE_VERSION};
use silo_format::manifest::StreamManifest;
use silo_format::ObjectId;
use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;

impl Repository {
    /// Every damage mark, by snapshot.
    pub async fn damage_marks(&self) -> Result<HashMap<ObjectId, DamageMark>> {
        Ok(self.load_all::<DamageMark>().await?.into_iter().map(|(_, _, m)| (m.snapshot, m)).collect())
    }

    /// Runs check and marks every snapshot it finds damaged, then drops the copies it found missing or
    /// damaged from the index (I20), so the next create stores them again — and the marked snapshots become
    /// restorable again when it does. Returns the marks written now and how many copies left the index.
    pub async fn repair_snapshots(&self, read_data: bool, dry_run: bool) -> Result<(Vec<DamageMark>, usize)> {
        let options = CheckOptions {
            data: if read_data { DataCheck::All } else { DataCheck::None },
            snapshot: None,
            max_age: None,
            max_age_name: None,
            progress: Default::default(),
        };
        let report = self.check(&options).await?;
        let existing = self.damage_marks().await?;
        let mut written = Vec::new();
        for snap in &report.affected_snapshots {
            let Some(id) = ObjectId::from_hex(snap) else { continue };
            if existing.contains_key(&id) {
                continue;
            }
            let reason = report
                .damaged
                .iter()
                .filter(|p| p.snapshots.contains(snap))
                .map(|p| format!("{}: {}", p.object, p.problem))
                .collect::<Vec<_>>()
                .join("; ");
            let mark = DamageMark { version: MAINTENANCE_VERSION, snapshot: id, found_at: self.now(), reason };
            if !dry_run {
                self.save_if_absent(id, &mark).await?;
            }
            written.push(mark);
        }
        let lost = report.lost.len();
        if !dry_run && lost > 0 {
            let lease = self.acquire_lease(3600).await?;
            let dropped = self.drop_lost_from_index(&report.lost, &lease).await;
            self.release_lease(lease).await?;
            dropped?;
        }
        Ok((written, lost))
    }

    pub async fn drills(&self, snapshot: &ObjectId) -> Result<Vec<DrillRecord>> {
        let mut out: Vec<DrillRecord> = self
            .load_all::<DrillRecord>()
            .await?
            .into_iter()
            .map(|(_, _, d)| d)
            .filter(|d| d.snapshot == *snapshot)
            .collect();
        out.sort_by_key(|d| d.started);
        Ok(out)
    }

    /// Restores `stream` of `snap` into the standard input of `argv`, times it, and records the result in
    /// the repository. Returns the record (also when the drill failed) and, when it failed, why: the
    /// restore's own error, or the command's (`CommandFailed`).
    pub fn drill(
        &self,
        rt: &tokio::runtime::Handle,
        snap: &Snapshot,
        stream: &StreamManifest,
        argv: &[String],
    ) -> Result<(DrillRecord, Option<Error>)> {
        let (program, args) =
            argv.split_first().ok_or_else(|| Error::Invalid("drill needs a command after --".into()))?;
        let shown = argv.join(" ");
        let started = self.now();
        // The command's own output goes to stderr: stdout carries silo's answer (`--json` reports).
        let to_stderr = {
            use std::os::fd::AsFd;
            std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| Error::io("duplicating stderr", e))?
        };
        let mut child = crate::inputs::process::command(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(to_stderr))
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("starting drill command `{shown}`"), e))?;
        let tail = child.stderr.take().map(crate::inputs::process::StderrTail::forward);
        let progress = std::sync::atomic::AtomicU64::new(0);
        let restored = {
            let stdin = child.stdin.take().ok_or_else(|| Error::Invalid("drill command has no stdin".into()))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdin);
            let r = self.restore_stream(rt, snap, stream, &mut out, &progress);
            let flushed = out.flush();
            r.and_then(|r| flushed.map(|_| r).map_err(|e| Error::io(format!("writing to `{shown}`"), e)))
        };
        let status = child.wait().map_err(|e| Error::io(format!("waiting for `{shown}`"), e))?;
        let finished = self.now();
        let described = crate::inputs::process::describe_status(&status);
        let tail = tail.map(|t| t.finish()).unwrap_or_default();
        let stderr_tail =
            if tail.trim().is_empty() { String::new() } else { format!("; its stderr ended with: {}", tail.trim()) };
        // A command that failed and stopped reading explains the broken pipe the restore then met.
        let broken_pipe =
            matches!(&restored, Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe);
        let command_failed = !status.success() && (restored.is_ok() || broken_pipe);
        let (ok, error) = match (&restored, status.success()) {
            (Ok(_), true) => (true, String::new()),
            _ if command_failed => (false, format!("`{shown}` {described}{stderr_tail}")),
            (Err(e), _) => (false, e.to_string()),
            (Ok(_), false) => (false, format!("`{shown}` {described}")),
        };
        let record = DrillRecord {
            version: MAINTENANCE_VERSION,
            snapshot: snap.id,
            stream: stream.name.clone(),
            command: argv.to_vec(),
            host: super::hostname(),
            started,
            finished,
            bytes: restored.as_ref().map(|r| r.bytes).unwrap_or(0),
            exit_status: status.code(),
            ok,
            error,
        };
        let id = ObjectId::random();
        rt.block_on(self.save(id, &record))?;
        let failed = match restored {
            _ if command_failed => Some(Error::CommandFailed {
                command: shown,
                status: described,
                outcome: "the drill failed and was recorded",
                stderr_tail,
            }),
            Err(e) => Some(e),
            Ok(_) => None,
        };
        Ok((record, failed))
    }
}
