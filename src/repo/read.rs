//! Restore: the mirror of create. Chunk locations come from the cache (synced first); adjacent chunks of a
//! pack are fetched with one ranged read; fetches run ahead in parallel, decryption + decompression +
//! re-hashing run on the blocking pool, and output is written strictly in order. The whole-stream BLAKE3 and
//! size are checked at the end, so a consumer of the pipe sees a non-zero exit if anything was wrong.

use super::snapshots::Snapshot;
use super::Repository;
use crate::backend::{names, BackendError};
use crate::cache::Location;
use crate::{Error, Result};
use futures::StreamExt;
use silo_format::manifest::StreamManifest;
use silo_format::{pack, ObjectId};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// Largest ranged read (raw bytes of the chunks it carries), bounding memory per read ahead.
const MAX_RUN_BYTES: u64 = 4 << 20;

#[derive(Clone, Debug)]
pub struct RestoreReport {
    pub bytes: u64,
    pub chunks: u64,
    /// Backend requests of this restore (index sync and ranged reads).
    pub requests: crate::backend::metered::RequestCounts,
    pub duration: Duration,
}

/// One ranged read of consecutive chunk envelopes in one pack.
struct ReadRun {
    pack: ObjectId,
    offset: u64,
    len: u64,
    raw: u64,
    chunks: Vec<(ObjectId, Location)>,
}

impl Repository {
    /// Writes stream `stream` of `snapshot` to `out`, verifying every chunk and the whole stream.
    /// `progress` is incremented with every byte written.
    pub fn restore_stream(
        &self,
        rt: &Handle,
        snapshot: &Snapshot,
        stream: &StreamManifest,
        out: &mut dyn Write,
        progress: &AtomicU64,
    ) -> Result<RestoreReport> {
        let clock = Instant::now();
        let before = self.backend.requests();
        rt.block_on(self.sync_cache())?;
        let plan = self.plan(snapshot, stream)?;
        // Enough ranged reads in flight to keep every core decrypting while the output is written in order.
        let prefetch = 2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) + 2;
        let mut written = 0u64;
        // The whole-stream BLAKE3 runs beside the writer, off the ordered output's critical path.
        let (to_hasher, hasher_rx) = crossbeam_channel::bounded::<Vec<u8>>(64);
        let hasher = std::thread::spawn(move || {
            let mut hasher = blake3::Hasher::new();
            for chunk in hasher_rx {
                hasher.update(&chunk);
            }
            *hasher.finalize().as_bytes()
        });
        let streamed = rt.block_on(async {
            let mut results = futures::stream::iter(plan).map(|run| self.fetch_run(run)).buffered(prefetch);
            while let Some(chunks) = results.next().await {
                for chunk in chunks? {
                    written += chunk.len() as u64;
                    progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    out.write_all(&chunk).map_err(|e| Error::io("writing restored data", e))?;
                    let _ = to_hasher.send(chunk);
                }
            }
            Ok::<_, Error>(())
        });
        drop(to_hasher);
        let digest = hasher.join().map_err(|_| Error::Invalid("the stream hasher panicked".into()))?;
        streamed?;
        out.flush().map_err(|e| Error::io("writing restored data", e))?;
        let object = format!("snapshot {} stream {}", snapshot.id.short(), stream.name);
        if written != stream.size {
            return Err(Error::Inconsistent {
                object,
                reason: format!("restored {written} bytes, the manifest says {}", stream.size),
            });
        }
        if digest != stream.blake3 {
            return Err(Error::Inconsistent {
                object,
                reason: "restored data does not match the recorded BLAKE3".into(),
            });
        }
        let requests = self.backend.requests().since(&before);
        Ok(RestoreReport { bytes: written, chunks: stream.chunks.len() as u64, requests, duration: clock.elapsed() })
    }

    fn plan(&self, snapshot: &Snapshot, stream: &StreamManifest) -> Result<Vec<ReadRun>> {
        let cache = self.cache()?;
        let mut runs: Vec<ReadRun> = Vec::new();
        for chunk in &stream.chunks {
            let loc = cache.any_location(chunk)?.ok_or_else(|| Error::Inconsistent {
                object: format!("snapshot {}", snapshot.id.short()),
                reason: format!("chunk {} is in no index segment", chunk.short()),
            })?;
            let (offset, len) = (u64::from(loc.offset), u64::from(loc.stored_len));
            match runs.last_mut() {
                Some(r)
                    if r.pack == loc.pack
                        && r.offset + r.len == offset
                        && r.raw + u64::from(loc.raw_len) <= MAX_RUN_BYTES =>
                {
                    r.len += len;
                    r.raw += u64::from(loc.raw_len);
                    r.chunks.push((*chunk, loc));
                }
                _ => runs.push(ReadRun {
                    pack: loc.pack,
                    offset,
                    len,
                    raw: u64::from(loc.raw_len),
                    chunks: vec![(*chunk, loc)],
                }),
            }
        }
        Ok(runs)
    }

    async fn fetch_run(&self, run: ReadRun) -> Result<Vec<Vec<u8>>> {
        let name = names::pack(&run.pack);
        let bytes = match self.backend.get_range(&name, run.offset, run.len).await {
            Ok(b) => b,
            Err(e @ (BackendError::NotFound { .. } | BackendError::ShortRead { .. })) => {
                return Err(Error::Inconsistent { object: format!("pack {}", run.pack.short()), reason: e.to_string() })
            }
            Err(e) => return Err(e.into()),
        };
        let (keys, repo) = (self.keys.clone(), self.repo_id);
        tokio::task::spawn_blocking(move || {
            run.chunks
                .iter()
                .map(|(id, loc)| {
                    let start = (u64::from(loc.offset) - run.offset) as usize;
                    let sealed = &bytes[start..start + loc.stored_len as usize];
                    pack::open_chunk(&keys, repo, *id, sealed, loc.raw_len).map_err(|e| {
                        Error::damaged(
                            format!("pack {} chunk {} at offset {}", run.pack.short(), id.short(), loc.offset),
                            e,
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::Invalid(format!("decryption task failed: {e}")))?
    }
}
