//! `silo copy`: snapshots from one repository into another with different keys (the offsite copy).
//!
//! Chunk ids are keyed hashes, so the target cannot tell which of the source's chunks it has without their
//! plaintext: each copied stream is restored from the source (verified chunk by chunk and as a whole) and fed
//! through the target's own create pipeline, which re-chunks it with the target's chunker and uploads only
//! chunks the target lacks. Copies therefore deduplicate against earlier copies and against the target's own
//! snapshots. The manifest keeps the original's name, host, tags, times, commands and exit statuses, so
//! retention treats a copy like the original; a snapshot already copied (same name, host, start time and
//! stream hashes) is skipped.

use super::snapshots::Snapshot;
use super::write::{CreateOptions, CreateReport};
use super::Repository;
use crate::inputs::{SharedReader, Source, StreamSpec};
use crate::{Error, Result};
use std::io::Read;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio::runtime::Handle;

/// What happened to one source snapshot.
#[derive(Debug)]
pub enum CopyOutcome {
    /// The target already holds this snapshot (as this id).
    Present(silo_format::ObjectId),
    Copied {
        report: Box<CreateReport>,
        source_requests: u64,
    },
}

/// The outcome of a restore thread (its error's text), read by the pipe's reader at end of stream.
type Finished = Arc<Mutex<Option<std::result::Result<(), String>>>>;

/// The read end of a restore: at end of stream it reports the restore's error instead of a clean EOF, so a
/// failed or truncated source never becomes a snapshot.
struct CheckedPipe {
    pipe: std::io::PipeReader,
    finished: Finished,
}

impl Read for CheckedPipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let state = self.finished.lock().unwrap_or_else(|p| p.into_inner());
            match state.as_ref() {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(std::io::Error::other(format!("the source failed: {e}"))),
                None => return Err(std::io::Error::other("the source stopped early")),
            }
        }
        Ok(n)
    }
}

impl Repository {
    /// The snapshots `copy` takes from this (source) repository: those `specs` name (every snapshot when
    /// there are none), of `name` if given, oldest first, each once.
    pub async fn select_for_copy(
        &self,
        specs: &[super::snapshots::SnapshotSpec],
        name: Option<&str>,
    ) -> Result<Vec<Snapshot>> {
        let mut chosen = if specs.is_empty() {
            self.list_snapshots().await?
        } else {
            let mut v = Vec::new();
            for spec in specs {
                v.push(self.resolve(spec).await?);
            }
            v.sort_by_key(|s| (s.manifest.finished, s.id));
            v.dedup_by_key(|s| s.id);
            v
        };
        if let Some(n) = name {
            chosen.retain(|s| s.manifest.name == n);
        }
        Ok(chosen)
    }
}

/// Is `candidate` a copy of `original` (or the original itself)?
pub fn same_snapshot(original: &Snapshot, candidate: &Snapshot) -> bool {
    let (a, b) = (&original.manifest, &candidate.manifest);
    a.name == b.name
        && a.host == b.host
        && a.started == b.started
        && a.streams.len() == b.streams.len()
        && a.streams.iter().zip(&b.streams).all(|(x, y)| x.name == y.name && x.size == y.size && x.blake3 == y.blake3)
}

impl Repository {
    /// Copies `snap` of `source` into this repository unless one of `existing` (this repository's snapshots)
    /// already is a copy of it; `progress` counts the bytes copied. Call from a thread outside the runtime
    /// `rt` belongs to.
    pub fn copy_from(
        &self,
        rt: &Handle,
        source: &Repository,
        snap: &Snapshot,
        existing: &[Snapshot],
        progress: Arc<AtomicU64>,
    ) -> Result<CopyOutcome> {
        if let Some(present) = existing.iter().find(|t| same_snapshot(snap, t)) {
            return Ok(CopyOutcome::Present(present.id));
        }
        std::thread::scope(|s| {
            let mut specs = Vec::with_capacity(snap.manifest.streams.len());
            let mut restores = Vec::with_capacity(snap.manifest.streams.len());
            for stream in &snap.manifest.streams {
                let (reader, mut writer) = std::io::pipe().map_err(|e| Error::io("creating a pipe for copy", e))?;
                let finished: Finished = Arc::default();
                let done = finished.clone();
                restores.push(s.spawn(move || {
                    let none = AtomicU64::new(0);
                    let r = source.restore_stream(rt, snap, stream, &mut writer, &none).map(|r| r.requests.total());
                    let outcome = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
                    *done.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                    drop(writer); // after the outcome is stored: the reader checks it at EOF
                    r
                }));
                specs.push(StreamSpec {
                    name: stream.name.clone(),
                    source: Source::Reader {
                        reader: SharedReader::new(CheckedPipe { pipe: reader, finished }),
                        command: stream.command.clone(),
                        exit_status: stream.exit_status,
                    },
                });
            }
            let m = &snap.manifest;
            let options = CreateOptions {
                name: m.name.clone(),
                host: m.host.clone(),
                tags: m.tags.clone(),
                streams: specs,
                progress,
                warn: |_| {},
                times: Some((m.started, m.finished)),
                allow_empty: true,
                min_size: None,
                // The source's records, as they are: a copy neither re-judges nor drops them.
                validation: crate::repo::write::Validation {
                    carried: Some(m.streams.iter().map(|s| s.dump.clone()).collect()),
                    ..Default::default()
                },
                // Against the destination's previous snapshot of the name, as a create there would.
                deltas: true,
            };
            let created = self.create_snapshot(rt, &options);
            drop(options); // unread pipes close, so no restore thread waits for a reader that is gone
            let mut source_requests = 0;
            let mut source_error = None;
            for thread in restores {
                match thread.join() {
                    Ok(Ok(n)) => source_requests += n,
                    // Writing into a pipe the target stopped reading: the target's error says why.
                    Ok(Err(Error::Io { .. })) if created.is_err() => {}
                    Ok(Err(e)) => {
                        source_error.get_or_insert(e.to_string());
                    }
                    Err(_) => {
                        source_error.get_or_insert("a restore thread panicked".into());
                    }
                }
            }
            // The source's error explains the target's (a stream that ended early); report it first.
            if let Some(reason) = source_error {
                return Err(Error::Inconsistent {
                    object: format!("source snapshot {} ({})", snap.id.short(), m.name),
                    reason: format!("cannot be read intact: {reason}; nothing was committed to the target"),
                });
            }
            Ok(CopyOutcome::Copied { report: Box::new(created?), source_requests })
        })
    }
}
