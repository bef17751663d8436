//! Restore: the mirror of create. Chunk locations come from the cache (synced first); consecutive chunks
//! are fetched in groups of up to 4 MiB, one ranged read per stretch of a pack they lie in (asked for
//! together, `Backend::get_ranges`: a local directory reads them in one blocking call); groups are fetched
//! ahead in parallel, decryption + decompression + re-hashing run on the blocking pool, and output is written
//! strictly in order. The whole-stream BLAKE3 and size are checked at the end, so a consumer of the pipe sees
//! a non-zero exit if anything was wrong.
//!
//! Delta chunks (format-spec/delta.md, I16): a group also fetches the bases of its chunks (repo/chains.rs),
//! counted in its byte bound, each once; they are decoded bases first, and a decoded base stays in memory
//! only until the last chunk of its group that needs it is decoded. A base that fails is damage to every
//! chunk of the group that needs it.

use super::snapshots::Snapshot;
use super::Repository;
use crate::backend::{names, BackendError, RangeRequest, ReadBackend};
use crate::cache::Location;
use crate::{Error, Result};
use futures::StreamExt;
use silo_format::manifest::StreamManifest;
use silo_format::{pack, Keys, ObjectId, RepoId};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// Most raw bytes a read group carries (and most bytes one ranged read spans), bounding memory per read
/// ahead.
const MAX_GROUP_BYTES: u64 = 4 << 20;
/// Bytes of a pack a ranged read may carry that the stream does not need there, to join chunks that are
/// not stored back to back.
const MAX_SPAN_GAP: u64 = 256 << 10;

#[derive(Clone, Debug)]
pub struct RestoreReport {
    pub bytes: u64,
    pub chunks: u64,
    /// Backend requests of this restore (index sync and ranged reads).
    pub requests: crate::backend::metered::RequestCounts,
    pub duration: Duration,
}

/// One ranged read: a span of one pack.
struct Span {
    pack: ObjectId,
    offset: u64,
    len: u64,
}

/// Consecutive chunks of the stream (up to `MAX_GROUP_BYTES` raw, bases included), fetched together: one
/// ranged read per span of a pack they are stored in. A later snapshot's chunks sit mostly in the packs of
/// an earlier one with its changes in new packs; a group reads both spans instead of breaking at every change.
struct ReadGroup {
    spans: Vec<Span>,
    raw: u64,
    /// Every chunk to open, each once, bases before the deltas that need them, each with the index of the
    /// span that holds it (a span may hold envelopes the stream does not need there).
    members: Vec<(ObjectId, Location, usize)>,
    /// Member index of each chunk already added.
    index: HashMap<ObjectId, usize>,
    /// The stream's chunks, in order, as member indexes (a chunk may appear twice).
    outputs: Vec<usize>,
    /// Which ancestor of a chunk to hand out, from its id and its chain (`AncestorHook`).
    ancestor: Option<AncestorHook>,
}

/// Given a chunk's id and the copies of its chain, indexed by depth (the whole chunk at the bottom first,
/// the chunk itself last), the depth of the ancestor to hand out with it, if any.
pub type AncestorHook = fn(&ObjectId, &[Location]) -> Option<u8>;

/// A chunk to add to a group: its copy, and the bases below it (nearest first).
struct Wanted {
    id: ObjectId,
    loc: Location,
    bases: Vec<(ObjectId, Location)>,
}

impl ReadGroup {
    fn new() -> Self {
        ReadGroup {
            spans: Vec::new(),
            raw: 0,
            members: Vec::new(),
            index: HashMap::new(),
            outputs: Vec::new(),
            ancestor: None,
        }
    }

    /// Adds a chunk of the stream and its bases if the group has room.
    fn add(&mut self, w: &Wanted) -> bool {
        let new_raw: u64 = std::iter::once((w.id, w.loc))
            .chain(w.bases.iter().copied())
            .filter(|(id, _)| !self.index.contains_key(id))
            .map(|(_, l)| u64::from(l.raw_len))
            .sum();
        if self.raw + new_raw > MAX_GROUP_BYTES && !self.outputs.is_empty() {
            return false;
        }
        for (id, loc) in w.bases.iter().rev().copied().chain(std::iter::once((w.id, w.loc))) {
            if !self.index.contains_key(&id) {
                self.add_member(id, loc);
            }
        }
        self.outputs.push(self.index[&w.id]);
        true
    }

    /// Adds one chunk to open: to a span of its pack it lies near, or as a new span.
    fn add_member(&mut self, chunk: ObjectId, loc: Location) {
        let (offset, len) = (u64::from(loc.offset), u64::from(loc.stored_len));
        // Packs hold chunks nearly in stream order: a span covers any stretch of its pack that stays small.
        let near = self.spans.iter().position(|s| {
            s.pack == loc.pack
                && offset + len + MAX_SPAN_GAP >= s.offset
                && offset <= s.offset + s.len + MAX_SPAN_GAP
                && (offset + len).max(s.offset + s.len) - offset.min(s.offset) <= MAX_GROUP_BYTES
        });
        let index = match near {
            Some(i) => {
                let s = &mut self.spans[i];
                let (start, end) = (offset.min(s.offset), (offset + len).max(s.offset + s.len));
                (s.offset, s.len) = (start, end - start);
                i
            }
            None => {
                self.spans.push(Span { pack: loc.pack, offset, len });
                self.spans.len() - 1
            }
        };
        self.raw += u64::from(loc.raw_len);
        self.index.insert(chunk, self.members.len());
        self.members.push((chunk, loc, index));
    }
}

/// Groups a stream's chunks into read groups, looking each up in the cache as the restore consumes them.
struct Planner<'a> {
    cache: std::sync::Arc<crate::cache::IndexCache>,
    snapshot: ObjectId,
    chunks: std::slice::Iter<'a, ObjectId>,
    /// Whether each pack seen so far is marked deleted (one lookup per pack, not per chunk).
    deleted: std::collections::HashMap<ObjectId, bool>,
    /// The chunk that did not fit the previous group.
    carried: Option<Wanted>,
}

impl Iterator for Planner<'_> {
    type Item = Result<ReadGroup>;

    fn next(&mut self) -> Option<Result<ReadGroup>> {
        let mut group = ReadGroup::new();
        if let Some(w) = self.carried.take() {
            group.add(&w);
        }
        for chunk in self.chunks.by_ref() {
            let loc = match super::chains::pick(&self.cache, chunk, &mut self.deleted) {
                Ok(Some(loc)) => loc,
                Ok(None) => {
                    return Some(Err(Error::Inconsistent {
                        object: format!("snapshot {}", self.snapshot.short()),
                        reason: format!("chunk {} is in no index segment", chunk.short()),
                    }))
                }
                Err(e) => return Some(Err(e)),
            };
            let bases = match super::chains::bases(&self.cache, chunk, &loc, &mut self.deleted) {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            let w = Wanted { id: *chunk, loc, bases };
            if !group.add(&w) {
                self.carried = Some(w);
                return Some(Ok(group));
            }
        }
        (!group.outputs.is_empty()).then_some(Ok(group))
    }
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
        // Enough groups in flight to keep every core decrypting while the output is written in order
        // (at most 8 of up to 4 MiB each, bounding memory on many cores).
        let prefetch = (2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) + 2).min(8);
        let mut written = 0u64;
        // The whole-stream BLAKE3 runs beside the writer, off the ordered output's critical path.
        // It takes a group's chunks at a time: a message per chunk cost more in wake-ups than hashing.
        let (to_hasher, hasher_rx) = crossbeam_channel::bounded::<Vec<Vec<u8>>>(2);
        let hasher = std::thread::spawn(move || {
            let mut hasher = blake3::Hasher::new();
            for chunk in hasher_rx.iter().flatten() {
                hasher.update(&chunk);
            }
            *hasher.finalize().as_bytes()
        });
        let streamed = rt.block_on(async {
            // Each group runs as its own task, so it goes on from fetching to decrypting while this loop
            // is busy writing (polled from here, a finished fetch waited for the writer).
            let mut results = futures::stream::iter(plan)
                .map(|group| {
                    let (backend, keys, repo) = (self.backend.reader(), self.keys.clone(), self.repo_id);
                    tokio::spawn(async move { Ok::<_, Error>(fetch_group(backend, keys, repo, group?).await?.outputs) })
                })
                .buffered(prefetch);
            while let Some(chunks) = results.next().await {
                let chunks = chunks.map_err(|e| Error::Invalid(format!("restore task failed: {e}")))??;
                for chunk in &chunks {
                    written += chunk.len() as u64;
                    progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    out.write_all(chunk).map_err(|e| Error::io("writing restored data", e))?;
                }
                let _ = to_hasher.send(chunks);
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

    /// The stream's read groups, looked up in the cache as the restore consumes them, so the first bytes
    /// go out before the last chunk is looked up (planning a 560 MB stream up front took ~0.05 s, a fifth
    /// of the time to its first byte).
    fn plan<'a>(&self, snapshot: &Snapshot, stream: &'a StreamManifest) -> Result<Planner<'a>> {
        Ok(Planner {
            cache: self.cache()?,
            snapshot: snapshot.id,
            chunks: stream.chunks.iter(),
            deleted: std::collections::HashMap::new(),
            carried: None,
        })
    }
}

/// Fetches and opens a group's chunks. A chunk that fails authentication is fetched once more (with its
/// whole group) before it is called damaged: a byte flipped in transit is not damage in the repository.
async fn fetch_group(
    backend: Arc<dyn ReadBackend>,
    keys: Arc<Keys>,
    repo: RepoId,
    group: ReadGroup,
) -> Result<Decoded> {
    let group = Arc::new(group);
    match fetch_group_once(backend.clone(), keys.clone(), repo, group.clone()).await {
        Err(e @ Error::Damaged { .. }) => {
            tracing::info!("{e}; fetching it again");
            fetch_group_once(backend, keys, repo, group).await
        }
        other => other,
    }
}

async fn fetch_group_once(
    backend: Arc<dyn ReadBackend>,
    keys: Arc<Keys>,
    repo: RepoId,
    group: Arc<ReadGroup>,
) -> Result<Decoded> {
    // One request for all the group's spans: a local directory reads them in one blocking call.
    let ranges: Vec<RangeRequest> = group
        .spans
        .iter()
        .map(|span| RangeRequest { name: names::pack(&span.pack), offset: span.offset, len: span.len })
        .collect();
    let mut spans = Vec::with_capacity(ranges.len());
    for (span, answer) in group.spans.iter().zip(backend.get_ranges(&ranges).await) {
        match answer {
            Ok(b) => spans.push(b),
            Err(e @ (BackendError::NotFound { .. } | BackendError::ShortRead { .. })) => {
                return Err(Error::Inconsistent {
                    object: format!("pack {}", span.pack.short()),
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    tokio::task::spawn_blocking(move || decode_group(&keys, repo, &group, &spans))
        .await
        .map_err(|e| Error::Invalid(format!("decryption task failed: {e}")))?
}

/// A base below a chunk in its chain, handed out by `read_chunks` when asked for (`ReadGroup::ancestor`).
pub struct Ancestor {
    pub id: ObjectId,
    pub loc: Location,
    pub data: Vec<u8>,
}

/// A decoded group: the stream's chunks in order, and for each the ancestor asked for, if any.
struct Decoded {
    outputs: Vec<Vec<u8>>,
    ancestors: Vec<Option<Ancestor>>,
}

/// Opens every member of a fetched group (bases first) and returns the stream's chunks in order.
fn decode_group(keys: &Keys, repo: RepoId, group: &ReadGroup, spans: &[Vec<u8>]) -> Result<Decoded> {
    let mut plain: Vec<Vec<u8>> = Vec::with_capacity(group.members.len());
    let mut is_output = vec![false; group.members.len()];
    for m in &group.outputs {
        is_output[*m] = true;
    }
    // The member that last needs each base: a base that is not also an output is dropped once that one is
    // decoded (unless ancestors are handed out), so its buffer is reused for the next instead of a chain's
    // every level staying in memory, and faulted in anew, until the group ends.
    let base_of = |loc: &Location| loc.delta.and_then(|d| group.index.get(&d.base).copied());
    let mut last_use_as_base = vec![usize::MAX; group.members.len()];
    for (n, (_, loc, _)) in group.members.iter().enumerate() {
        if let Some(b) = base_of(loc) {
            last_use_as_base[b] = n;
        }
    }
    for (n, (id, loc, i)) in group.members.iter().enumerate() {
        // A chunk read only as a base is authenticated but not re-hashed: the id check of the chunk decoded
        // from it covers it (a wrong base cannot give the right id).
        let verify = if is_output[n] { pack::Verify::Id } else { pack::Verify::BaseOnly };
        let (span, bytes) = (&group.spans[*i], &spans[*i]);
        let start = (u64::from(loc.offset) - span.offset) as usize;
        let sealed = &bytes[start..start + loc.stored_len as usize];
        let what = || format!("pack {} chunk {} at offset {}", span.pack.short(), id.short(), loc.offset);
        let opened = pack::open_chunk_parts_with(keys, repo, *id, sealed, loc.raw_len, verify)
            .map_err(|e| Error::damaged(what(), e))?;
        let data = match opened {
            pack::ChunkParts::Whole(data) if loc.delta.is_none() => data,
            pack::ChunkParts::Delta { header, payload } if loc.delta == Some(header) => {
                // Bases were added before the deltas that need them.
                let base =
                    group.index.get(&header.base).and_then(|b| plain.get(*b)).ok_or_else(|| Error::Inconsistent {
                        object: what(),
                        reason: format!("its base {} was not read before it", header.base.short()),
                    })?;
                pack::finish_delta_with(keys, *id, &payload, base, loc.raw_len, verify)
                    .map_err(|e| Error::damaged(format!("{} (a delta of chunk {})", what(), header.base.short()), e))?
            }
            _ => {
                return Err(Error::damaged(
                    what(),
                    silo_format::FormatError::malformed("chunk", "its envelope and the index disagree on its base"),
                ))
            }
        };
        plain.push(data);
        if let Some(b) = base_of(loc) {
            if group.ancestor.is_none() && !is_output[b] && last_use_as_base[b] == n {
                plain[b] = Vec::new();
            }
        }
    }
    // Ancestors asked for: the hook sees the chain's copies and names a depth; the first base down the
    // chain at or below it is handed out.
    let ancestors = match group.ancestor {
        None => Vec::new(),
        Some(want) => group
            .outputs
            .iter()
            .map(|m| {
                let mut chain = vec![*m];
                while let Some(d) = group.members[chain[chain.len() - 1]].1.delta {
                    chain.push(*group.index.get(&d.base)?);
                }
                let copies: Vec<Location> = chain.iter().rev().map(|at| group.members[*at].1).collect();
                let target = want(&group.members[*m].0, &copies)?;
                chain.iter().skip(1).find(|at| super::chains::depth(&group.members[**at].1) <= target).map(|at| {
                    let (aid, aloc, _) = &group.members[*at];
                    Ancestor { id: *aid, loc: *aloc, data: plain[*at].clone() }
                })
            })
            .collect(),
    };
    // The last use of a member takes its bytes; earlier uses (a chunk twice in the stream) copy them.
    let mut last_use = vec![usize::MAX; plain.len()];
    for (n, m) in group.outputs.iter().enumerate() {
        last_use[*m] = n;
    }
    let outputs = group
        .outputs
        .iter()
        .enumerate()
        .map(|(n, m)| if last_use[*m] == n { std::mem::take(&mut plain[*m]) } else { plain[*m].clone() })
        .collect();
    Ok(Decoded { outputs, ancestors })
}

/// What reading chunks outside a restore needs: the runtime to fetch on, the repository's parts.
#[derive(Clone)]
pub struct Source {
    pub rt: Handle,
    pub backend: Arc<dyn ReadBackend>,
    pub keys: Arc<Keys>,
    pub repo: RepoId,
    pub cache: Arc<crate::cache::IndexCache>,
}

/// A decoded chunk of a stream read by `read_chunks`, with the copy it was read from.
pub struct ReadChunk {
    pub id: ObjectId,
    pub loc: Location,
    pub data: Vec<u8>,
    /// The base below it that `read_chunks` was asked for, if it has one.
    pub ancestor: Option<Ancestor>,
}

/// Reads `chunks` in order (planned, fetched and decoded as a restore does, `prefetch` groups ahead) and
/// hands each group's chunks to `each`, stopping early when it returns false. Runs on the calling thread
/// (which must be outside the runtime `rt` belongs to).
pub fn read_chunks(
    source: &Source,
    chunks: &[ObjectId],
    prefetch: usize,
    ancestor: Option<AncestorHook>,
    mut each: impl FnMut(Vec<ReadChunk>) -> bool,
) -> Result<()> {
    let (backend, keys, repo) = (source.backend.clone(), source.keys.clone(), source.repo);
    let plan = Planner {
        cache: source.cache.clone(),
        snapshot: ObjectId::ZERO,
        chunks: chunks.iter(),
        deleted: HashMap::new(),
        carried: None,
    };
    source.rt.block_on(async {
        let mut results = futures::stream::iter(plan)
            .map(|group| {
                let (backend, keys) = (backend.clone(), keys.clone());
                tokio::spawn(async move {
                    let mut group = group?;
                    group.ancestor = ancestor;
                    let ids: Vec<(ObjectId, Location)> =
                        group.outputs.iter().map(|m| (group.members[*m].0, group.members[*m].1)).collect();
                    let decoded = fetch_group(backend, keys, repo, group).await?;
                    let mut ancestors = decoded.ancestors.into_iter();
                    Ok::<_, Error>(
                        ids.into_iter()
                            .zip(decoded.outputs)
                            .map(|((id, loc), data)| ReadChunk { id, loc, data, ancestor: ancestors.next().flatten() })
                            .collect(),
                    )
                })
            })
            .buffered(prefetch.max(1));
        while let Some(group) = results.next().await {
            let group: Vec<ReadChunk> = group.map_err(|e| Error::Invalid(format!("read task failed: {e}")))??;
            if !each(group) {
                break;
            }
        }
        Ok(())
    })
}
