//! `snapshot create`: streams → FastCDC → workers (id, dedup, zstd, AES-GCM) → pack collector → bounded
//! parallel uploads → index segments → snapshot manifest.
//!
//! Invariants upheld here:
//! - Write order: a pack is durable before an index segment names it; every segment is durable before the
//!   manifest. A crash at any point leaves only unreferenced objects.
//! - All-or-nothing: the manifest is written only after every stream reached EOF, every command exited 0 and
//!   every pack and segment is durable.
//! - The cache only learns chunks from durable segments; until then, chunks of this session are deduplicated
//!   through `claims`, which is emptied as segments are flushed, so memory does not grow with the stream.
//! - Memory is bounded by channel capacities × chunk size plus (uploads in flight + 2) × pack size.
//! - I16: a chunk that does not deduplicate may be sealed as a delta of a chunk of the previous snapshot of
//!   the same name and stream (repo/bases.rs picks it; it is durable, indexed and unmarked); before commit,
//!   the rescue and the verification cover every base the snapshot's chunks depend on (repo/chains.rs).
//! - Cuts are FastCDC's: where a stream repeats the previous snapshot of its name, the chunker confirms the
//!   next old chunk by its id instead of searching (repo/previous.rs), which cuts exactly where the search
//!   would (silo_format::chunker::Guide).
//! - I14: a stream recognised as a dump (dumps::inspect, on a thread beside the stream hasher, fed the same
//!   shared chunks) is committed only when it is whole, unless `--accept-invalid` records it as invalid.

use super::bases::{BaseChunk, Resembler};
use super::previous::OldStream;
use super::Repository;
use crate::backend::{names, AppendOnly, ReadBackend};
use crate::cache::IndexCache;
use crate::dumps::inspect::{Inspector, Verdict};
use crate::inputs::process::StopSwitch;
use crate::inputs::StreamSpec;
use crate::{Error, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use silo_format::chunker::{SharedChunk, Windows};
use silo_format::codec::delta::DeltaHeader;
use silo_format::envelope::random_nonce;
use silo_format::index::{IndexPack, IndexSegment};
use silo_format::manifest::{DumpRecord, SnapshotManifest, StreamManifest};
use silo_format::pack::{self, PackTrailer, PackWriter};
use silo_format::{Keys, ObjectId, RepoId};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// Chunks per index segment before it is flushed mid-session.
const SEGMENT_FLUSH_CHUNKS: usize = 16_384;
/// Pack uploads in flight at once.
const UPLOADS_IN_FLIGHT: usize = 2;

#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub name: String,
    pub host: String,
    pub tags: Vec<String>,
    pub streams: Vec<StreamSpec>,
    /// Incremented with every byte read from the streams, for a progress display.
    pub progress: Arc<AtomicU64>,
    /// Called (from a stream's reader thread) as soon as a warning arises, e.g. a compressed stream.
    pub warn: fn(&str),
    /// Start and finish times to record instead of now (a copy keeps the original's, for retention).
    pub times: Option<(i64, i64)>,
    /// Commit streams of zero bytes (refused by default: a dump tool that failed inside a pipe yields one).
    pub allow_empty: bool,
    /// Refuse to commit a snapshot of fewer bytes (all streams together): a jobs file's `min_size`.
    pub min_size: Option<u64>,
    /// Which streams are inspected as dumps, and what happens to one that is not whole.
    pub validation: Validation,
    /// Store chunks that do not deduplicate as deltas of the previous snapshot of the same name when that
    /// is smaller (`--no-delta` turns it off).
    pub deltas: bool,
}

/// Dump validation at create (dumps::inspect; design.md "Dump validation"). The default inspects every
/// stream and refuses to commit one that is recognised but not whole.
#[derive(Clone, Debug, Default)]
pub struct Validation {
    /// Inspect no stream (`--no-validate` without names).
    pub all_off: bool,
    /// Streams not inspected (`--no-validate NAME`, a jobs file's `validate = false`).
    pub off: Vec<String>,
    /// Commit a stream that fails validation; its record says why (`--accept-invalid`).
    pub accept_invalid: bool,
    /// Also run `PRAGMA integrity_check` on a stream that is an SQLite database file: it is written to an
    /// owner-only temporary file as it passes (`--sqlite-integrity-check`).
    pub sqlite_integrity: bool,
    /// Records stored as given instead of inspecting, by stream index: a copy keeps the source's.
    pub carried: Option<Vec<Option<DumpRecord>>>,
}

impl Validation {
    fn inspects(&self, name: &str) -> bool {
        self.carried.is_none() && !self.all_off && !self.off.iter().any(|o| o == name)
    }
}

#[derive(Clone, Debug)]
pub struct CreateReport {
    pub id: ObjectId,
    pub bytes: u64,
    pub chunks: u64,
    pub new_chunks: u64,
    /// Bytes of new chunk envelopes written to packs (after compression and encryption).
    pub new_bytes_stored: u64,
    /// New chunks stored as deltas, their plaintext bytes and their envelopes' bytes.
    pub delta_chunks: u64,
    pub delta_raw_bytes: u64,
    pub delta_bytes_stored: u64,
    pub packs: u64,
    pub duration: Duration,
    pub streams: Vec<(String, u64)>,
    /// Everything `warn` was called with, in stream order.
    pub warnings: Vec<String>,
    /// Per stream, what it was recognised as (None: not recognised, or not inspected).
    pub dumps: Vec<Option<DumpRecord>>,
    /// Backend requests this snapshot took (session, sync, packs, segments, manifest).
    pub requests: crate::backend::metered::RequestCounts,
}

/// Chunks handed between the pipeline's threads at a time: one message per chunk cost more in wake-ups
/// and context switches (~8 per chunk on two cores) than hashing a 64 KiB chunk does.
const BATCH: usize = 16;

/// Consecutive chunks of one stream, the first at position `seq`; with their ids and delta bases when a
/// resembler went over them first (bases.rs).
struct ChunkBatch {
    stream: usize,
    seq: usize,
    chunks: Vec<SharedChunk>,
    resembled: Option<Vec<Resembled>>,
}

/// A chunk a resembler went over: its id, whether the index had it (live) then, and its delta base.
struct Resembled {
    id: ObjectId,
    live: bool,
    base: Option<BaseChunk>,
}

/// A job's chunks, identified and (when new) sealed.
struct SealedBatch {
    stream: usize,
    seq: usize,
    chunks: Vec<SealedChunk>,
}

struct SealedChunk {
    id: ObjectId,
    raw_len: u32,
    sealed: Option<(Vec<u8>, Option<DeltaHeader>)>,
}

struct SealedPack {
    id: ObjectId,
    bytes: Vec<u8>,
    trailer: PackTrailer,
}

struct StreamResult {
    size: u64,
    blake3: [u8; 32],
    exit_status: Option<i32>,
    warning: Option<String>,
    dump: Option<Verdict>,
    /// Why a stream that looks like a dump was stored unjudged.
    dump_note: Option<String>,
}

/// What `chunk_stream` learned about a stream.
struct Chunked {
    size: u64,
    blake3: [u8; 32],
    warning: Option<String>,
    dump: Option<Verdict>,
    dump_note: Option<String>,
}

#[derive(Default)]
struct PackedStreams {
    ids: Vec<Vec<ObjectId>>,
    new_chunks: u64,
    new_bytes: u64,
    delta_chunks: u64,
    delta_raw: u64,
    delta_bytes: u64,
    error: Option<Error>,
}

/// A stream's resembler with the keys and cache its thread needs (bases.rs).
type StreamResembler = (Resembler, Arc<Keys>, Arc<IndexCache>);

/// A previous version of a stream: its chunk ids, in order.
type OldIds = Vec<ObjectId>;

/// Chunk ids this session stores whose index segment is not durable yet.
type Claims = Arc<Mutex<HashSet<ObjectId>>>;

fn lock(claims: &Claims) -> std::sync::MutexGuard<'_, HashSet<ObjectId>> {
    claims.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Repository {
    /// Runs the whole create pipeline. Call from a thread outside the runtime `rt` belongs to.
    pub fn create_snapshot(&self, rt: &Handle, options: &CreateOptions) -> Result<CreateReport> {
        let started = self.now();
        let clock = Instant::now();
        let before = self.backend.requests();
        let session = rt.block_on(self.start_session())?;
        let result = self.create_in_session(rt, options, &session, started, clock);
        rt.block_on(session.end());
        result.map(|mut r| {
            r.requests = self.backend.requests().since(&before);
            r
        })
    }

    fn create_in_session(
        &self,
        rt: &Handle,
        options: &CreateOptions,
        session: &super::session::SessionGuard,
        started: i64,
        clock: Instant,
    ) -> Result<CreateReport> {
        rt.block_on(self.sync_cache())?;
        let cache = self.cache()?;
        // I20: chunks whose packs are gone (a disk error, an operator's mistake) are stored again, not
        // deduplicated against; listed after the sync, so every pack the synced index names that exists is
        // listed (a segment is written only after its packs are durable).
        let listed = rt.block_on(self.backend.list(names::PACKS))?;
        cache.limit_to_present(listed.iter().filter_map(|o| names::id_of(&o.name)).collect());
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(1);
        let claims: Claims = Arc::default();
        let stop = Arc::new(StopSwitch::default());
        let _on_interrupt = {
            let stop = stop.clone();
            crate::interrupt::on_interrupt(move || stop.set())
        };
        // 8 batches (~8 MiB) queued: the workers keep hashing while the chunker maps or reads its next
        // window, whatever the core count (docs/benchmarks.md "Allocator and KDF memory").
        let (job_tx, job_rx) = bounded::<ChunkBatch>(8);
        let (done_tx, done_rx) = bounded::<Result<SealedBatch>>(workers * 2);
        let (pack_tx, pack_rx) = tokio::sync::mpsc::channel::<SealedPack>(1);
        let uploader = rt.spawn(upload_and_index(
            self.backend.clone(),
            self.keys.clone(),
            self.repo_id,
            cache.clone(),
            claims.clone(),
            pack_rx,
            Marks { at: self.now(), damaged: !self.is_writer_only() },
        ));
        let level = self.config.compression_level;
        let target = self.config.pack_target_size as usize;
        let params = self.config.chunker;
        let seed = self.keys.chunker_seed();
        let nstreams = options.streams.len();
        // The previous version of each stream guides the chunker (an unchanged stretch skips the cut search)
        // and, with deltas, gives bases; its chunks' offsets are looked up on a thread of their own.
        let previous: Vec<Option<Arc<OldStream>>> = self
            .previous_streams(rt, options)?
            .into_iter()
            .map(|ids| ids.map(|ids| Arc::new(OldStream::new(ids, cache.clone()))))
            .collect();
        let mut warnings = password_warnings(options);

        let (stream_results, collected) = std::thread::scope(|s| {
            for _ in 0..workers {
                let (jobs, done) = (job_rx.clone(), done_tx.clone());
                let (keys, cache, claims) = (self.keys.clone(), cache.clone(), claims.clone());
                let repo = self.repo_id;
                s.spawn(move || seal_worker(jobs, done, &keys, repo, &cache, &claims, level));
            }
            drop((job_rx, done_tx));
            let collector = {
                let (keys, repo, stop) = (self.keys.clone(), self.repo_id, stop.clone());
                s.spawn(move || pack_in_stream_order(done_rx, pack_tx, &keys, repo, target, nstreams, &stop))
            };
            let producers: Vec<_> = options
                .streams
                .iter()
                .enumerate()
                .zip(previous)
                .map(|((i, spec), old)| {
                    let (jobs, stop, progress) = (job_tx.clone(), stop.clone(), options.progress.clone());
                    if let Some(old) = &old {
                        let old = old.clone();
                        s.spawn(move || old.offsets().is_some());
                    }
                    let (guide, resembler) = self.previous_helpers(rt, &cache, old, options.deltas);
                    s.spawn(move || {
                        let feed = Feed {
                            jobs: &jobs,
                            params: &params,
                            rule: self.config.chunker_rule,
                            seed,
                            stop: &stop,
                            progress: &progress,
                            warn: options.warn,
                            inspect: options.validation.inspects(&spec.name),
                            sqlite_integrity: options.validation.sqlite_integrity,
                            resembler: std::sync::Mutex::new(resembler),
                            guide: std::sync::Mutex::new(guide),
                        };
                        let r = read_stream(i, spec, &feed);
                        if r.is_err() {
                            stop.set();
                        }
                        r
                    })
                })
                .collect();
            drop(job_tx);
            joined(producers, collector)
        });
        let uploaded = rt.block_on(uploader).map_err(|e| Error::Invalid(format!("upload task failed: {e}")));

        let (mut streams_done, collected) = streams_outcome(stream_results, collected)?;
        // Streams stopped with no error of their own: an interrupt killed their commands. What was read is
        // cut short and must never become a snapshot (I9).
        let interrupted = || Error::Interrupted { what: format!("snapshot {:?}", options.name) };
        if stop.is_set() || crate::interrupt::interrupted() || streams_done.len() != nstreams {
            return Err(interrupted());
        }
        let mut packs = uploaded??;
        let dumps = refuse_incomplete(options, &mut streams_done, &mut warnings)?;
        packs += rt.block_on(self.rescue_marked_chunks(collected.ids.iter().flatten()))?;
        rt.block_on(self.verify_before_commit(session, collected.ids.iter().flatten()))?;
        let done = Done { streams: streams_done, collected, dumps, packs, warnings, started, clock };
        self.commit_manifest(rt, options, done)
    }

    /// Writes the manifest naming every stream's chunks: the commit (I1, I2). The last moment an interrupt
    /// can still keep the snapshot from being committed; one arriving during the save waits for it, and the
    /// command then exits as committed (I9).
    fn commit_manifest(&self, rt: &Handle, options: &CreateOptions, done: Done) -> Result<CreateReport> {
        let Done { streams: streams_done, collected, dumps, packs, mut warnings, started, clock } = done;
        let mut streams = Vec::with_capacity(options.streams.len());
        let mut chunks = 0u64;
        for (((spec, result), ids), dump) in options.streams.iter().zip(streams_done).zip(collected.ids).zip(&dumps) {
            chunks += ids.len() as u64;
            warnings.extend(result.warning);
            streams.push(StreamManifest {
                name: spec.name.clone(),
                command: spec.source.recorded_command(),
                exit_status: result.exit_status,
                size: result.size,
                blake3: result.blake3,
                chunks: ids,
                dump: dump.clone(),
            });
        }
        let mut manifest = SnapshotManifest {
            version: 0,
            name: options.name.clone(),
            host: options.host.clone(),
            tags: options.tags.clone(),
            started: options.times.map_or(started, |t| t.0),
            finished: options.times.map_or_else(|| self.now(), |t| t.1),
            silo_version: env!("CARGO_PKG_VERSION").to_string(),
            streams,
        };
        manifest.version = manifest.version_needed();
        let id = ObjectId::random();
        let interrupted = || Error::Interrupted { what: format!("snapshot {:?}", options.name) };
        crate::interrupt::commit(|| rt.block_on(self.save(id, &manifest))).ok_or_else(interrupted)??;
        Ok(CreateReport {
            id,
            bytes: manifest.total_size(),
            chunks,
            new_chunks: collected.new_chunks,
            new_bytes_stored: collected.new_bytes,
            delta_chunks: collected.delta_chunks,
            delta_raw_bytes: collected.delta_raw,
            delta_bytes_stored: collected.delta_bytes,
            packs,
            duration: clock.elapsed(),
            streams: manifest.streams.iter().map(|s| (s.name.clone(), s.size)).collect(),
            warnings,
            dumps,
            requests: Default::default(),
        })
    }
}

impl Repository {
    /// What the previous version of a stream gives the new one: a guide for the chunker (an unchanged
    /// stretch skips the cut search) and, with deltas, a resembler that finds bases.
    fn previous_helpers(
        &self,
        rt: &Handle,
        cache: &Arc<IndexCache>,
        old: Option<Arc<OldStream>>,
        deltas: bool,
    ) -> (Option<Box<dyn silo_format::chunker::Guide>>, Option<StreamResembler>) {
        let guide = old.clone().map(|old| {
            Box::new(super::previous::StreamGuide::new(old, self.keys.clone())) as Box<dyn silo_format::chunker::Guide>
        });
        let resembler = old.filter(|_| deltas).map(|old| {
            let source = super::bases::Source {
                rt: rt.clone(),
                backend: self.backend.reader(),
                keys: self.keys.clone(),
                repo: self.repo_id,
                cache: cache.clone(),
            };
            (Resembler::new(source, old), self.keys.clone(), cache.clone())
        });
        (guide, resembler)
    }
}

/// The stream readers' results and the pack collector's, a panic in any of them an error.
fn joined(
    producers: Vec<std::thread::ScopedJoinHandle<'_, Result<StreamResult>>>,
    collector: std::thread::ScopedJoinHandle<'_, PackedStreams>,
) -> (Vec<Result<StreamResult>>, PackedStreams) {
    let results = producers
        .into_iter()
        .map(|p| p.join().unwrap_or_else(|_| Err(Error::Invalid("a stream reader thread panicked".into()))))
        .collect();
    let collected = collector.join().unwrap_or_else(|_| PackedStreams {
        error: Some(Error::Invalid("the pack collector panicked".into())),
        ..Default::default()
    });
    (results, collected)
}

/// What a create has when every stream is read and stored, before its manifest is written.
struct Done {
    streams: Vec<StreamResult>,
    collected: PackedStreams,
    dumps: Vec<Option<silo_format::manifest::DumpRecord>>,
    packs: u64,
    warnings: Vec<String>,
    started: i64,
    clock: Instant,
}

/// Commands are stored as typed: a password on the command line would be in every snapshot. One warning
/// per stream whose command holds what looks like one (also said through `options.warn`).
fn password_warnings(options: &CreateOptions) -> Vec<String> {
    let mut warnings = Vec::new();
    for spec in &options.streams {
        let found = spec.source.recorded_command().and_then(|argv| crate::inputs::password_in_command(&argv));
        if let Some(what) = found {
            let text = format!(
                "the command of stream {} holds what looks like a password ({what}); it is stored in the \
                 snapshot as typed and shown by `snapshot show`: use ~/.pgpass / PGPASSFILE or ~/.my.cnf \
                 instead",
                spec.name
            );
            (options.warn)(&text);
            warnings.push(text);
        }
    }
    warnings
}

/// The streams that finished, or the most specific error: a failed command explains everything after it
/// (streams stopped because another failed end `Aborted`), then the pack collector's.
fn streams_outcome(
    results: Vec<Result<StreamResult>>,
    collected: PackedStreams,
) -> Result<(Vec<StreamResult>, PackedStreams)> {
    let mut done = Vec::with_capacity(results.len());
    let mut first_error = None;
    for r in results {
        match r {
            Ok(sr) => done.push(sr),
            Err(Error::Aborted) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut collected = collected;
    match first_error.or(collected.error.take()) {
        Some(e) => Err(e),
        None => Ok((done, collected)),
    }
}

fn seal_worker(
    jobs: Receiver<ChunkBatch>,
    done: Sender<Result<SealedBatch>>,
    keys: &Keys,
    repo: RepoId,
    cache: &IndexCache,
    claims: &Claims,
    level: i32,
) {
    for job in jobs {
        let mut resembled = job.resembled.map(|r| r.into_iter());
        let chunks = job
            .chunks
            .iter()
            .map(|data| {
                let (id, live, base) = match resembled.as_mut().and_then(|r| r.next()) {
                    Some(r) => (r.id, r.live, r.base),
                    None => (data.id().unwrap_or_else(|| keys.chunk_id(data)), false, None),
                };
                let known = live || cache.usable_location(&id)?.is_some() || !lock(claims).insert(id);
                let sealed = (!known).then(|| {
                    let base = base.as_ref().map(|b| pack::Base { id: b.id, depth: b.depth, plaintext: &b.data });
                    pack::seal_chunk_against(keys, repo, id, data, level, base, random_nonce())
                });
                Ok(SealedChunk { id, raw_len: data.len() as u32, sealed })
            })
            .collect::<Result<Vec<_>>>();
        let msg = chunks.map(|chunks| SealedBatch { stream: job.stream, seq: job.seq, chunks });
        if done.send(msg).is_err() {
            return;
        }
    }
}

fn pack_in_stream_order(
    done: Receiver<Result<SealedBatch>>,
    packs: tokio::sync::mpsc::Sender<SealedPack>,
    keys: &Keys,
    repo: RepoId,
    target: usize,
    nstreams: usize,
    abort: &StopSwitch,
) -> PackedStreams {
    let mut out = PackedStreams { ids: vec![Vec::new(); nstreams], ..Default::default() };
    let capacity = target + (1 << 20) + 4096;
    let mut writer = PackWriter::with_capacity(capacity);
    let ship = |writer: PackWriter, out: &mut PackedStreams| {
        let id = ObjectId::random();
        let (bytes, trailer) = writer.finish(keys, repo, id, random_nonce());
        if packs.blocking_send(SealedPack { id, bytes, trailer }).is_err() && out.error.is_none() {
            out.error = Some(Error::Invalid("the uploader stopped early".into()));
            abort.set();
        }
    };
    // Jobs finish out of order; packs take them in stream order, so a restore reads each pack front to back.
    let mut next = vec![0usize; nstreams];
    let mut held: Vec<BTreeMap<usize, SealedBatch>> = (0..nstreams).map(|_| BTreeMap::new()).collect();
    let in_order = done.into_iter().flat_map(|msg| {
        let mut ready = Vec::new();
        match msg {
            Ok(d) => {
                let stream = d.stream;
                held[stream].insert(d.seq, d);
                while let Some(d) = held[stream].remove(&next[stream]) {
                    next[stream] += d.chunks.len();
                    ready.push(Ok(d));
                }
            }
            Err(e) => ready.push(Err(e)),
        }
        ready
    });
    for msg in in_order {
        let d = match msg {
            Ok(d) => d,
            Err(e) => {
                out.error.get_or_insert(e);
                abort.set();
                continue;
            }
        };
        let end = d.seq + d.chunks.len();
        if out.ids[d.stream].len() < end {
            out.ids[d.stream].resize(end, ObjectId::ZERO);
        }
        for (i, c) in d.chunks.into_iter().enumerate() {
            out.ids[d.stream][d.seq + i] = c.id;
            if let Some((sealed, delta)) = c.sealed {
                out.new_chunks += 1;
                out.new_bytes += sealed.len() as u64;
                if delta.is_some() {
                    out.delta_chunks += 1;
                    out.delta_raw += u64::from(c.raw_len);
                    out.delta_bytes += sealed.len() as u64;
                }
                writer.push_with(c.id, &sealed, c.raw_len, delta);
                if writer.is_full(target) {
                    let full = std::mem::replace(&mut writer, PackWriter::with_capacity(capacity));
                    ship(full, &mut out);
                }
            }
        }
    }
    if !writer.is_empty() {
        ship(writer, &mut out);
    }
    out
}

/// Uploads packs with bounded concurrency; as packs become durable, records them in index segments,
/// flushing a segment every `SEGMENT_FLUSH_CHUNKS` chunks and at the end. Returns the number of packs.
/// How a create marks the packs it stored chunks again for: when (the deletion marks' time), and whether
/// packs held damaged by this machine's check are marked too (an owner key) or only gone ones (a writer key).
struct Marks {
    at: i64,
    damaged: bool,
}

async fn upload_and_index(
    backend: AppendOnly,
    keys: Arc<Keys>,
    repo: RepoId,
    cache: Arc<IndexCache>,
    claims: Claims,
    mut rx: tokio::sync::mpsc::Receiver<SealedPack>,
    marks: Marks,
) -> Result<u64> {
    let Marks { at: marked_at, damaged: marks_damaged } = marks;
    let mut inflight = tokio::task::JoinSet::new();
    let mut segment = IndexSegment::new();
    let mut pending_chunks = 0usize;
    let mut first_error: Option<Error> = None;
    let mut packs = 0u64;
    let mut finish_one = |r: std::result::Result<Result<IndexPack>, tokio::task::JoinError>,
                          segment: &mut IndexSegment,
                          pending: &mut usize,
                          first_error: &mut Option<Error>| {
        match r {
            Ok(Ok(p)) => {
                *pending += p.entries.len();
                packs += 1;
                segment.packs.push(p);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(Error::Invalid(format!("upload task failed: {e}")));
            }
        }
    };
    while let Some(p) = rx.recv().await {
        if first_error.is_some() {
            continue; // keep draining so the collector never blocks; the snapshot will not be committed
        }
        while inflight.len() >= UPLOADS_IN_FLIGHT {
            if let Some(r) = inflight.join_next().await {
                finish_one(r, &mut segment, &mut pending_chunks, &mut first_error);
            }
        }
        let uploader = backend.clone();
        inflight.spawn(async move {
            let size = p.bytes.len() as u64;
            uploader.create(&names::pack(&p.id), p.bytes).await?;
            Ok(IndexPack { pack: p.id, pack_size: size, entries: p.trailer.entries, deltas: p.trailer.deltas })
        });
        if pending_chunks >= SEGMENT_FLUSH_CHUNKS {
            let full = std::mem::replace(&mut segment, IndexSegment::new());
            pending_chunks = 0;
            if let Err(e) = flush_segment(&backend, &keys, repo, &cache, &claims, full).await {
                first_error.get_or_insert(e);
            }
        }
    }
    while let Some(r) = inflight.join_next().await {
        finish_one(r, &mut segment, &mut pending_chunks, &mut first_error);
    }
    // Packs the index names that are gone, or that hold a copy `check` found damaged, get a deletion mark,
    // so readers prefer the copies stored again now; gc drops the entries of gone ones and rescues the
    // intact chunks of the others (I20). A writer key marks only the gone ones: a copy its own cache holds
    // to be damaged (its check may have read another store, or a tampered copy) is not evidence the owner's
    // gc should act on (I11); it still stores those chunks again rather than deduplicate against them.
    segment.deleted = cache
        .take_absent_seen()
        .into_iter()
        .filter(|pack| marks_damaged || !cache.is_present(pack))
        .map(|pack| silo_format::index::DeletedPack { pack, marked_at })
        .collect();
    if !segment.deleted.is_empty() {
        tracing::warn!(
            "{} pack(s) the index names are gone or hold a copy found damaged; those chunks were stored again: {}",
            segment.deleted.len(),
            segment.deleted.iter().map(|d| d.pack.short()).collect::<Vec<_>>().join(", ")
        );
    }
    // Durable packs are indexed even when the snapshot fails: a retry then deduplicates against them.
    if !segment.packs.is_empty() || !segment.deleted.is_empty() {
        flush_segment(&backend, &keys, repo, &cache, &claims, segment).await?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(packs),
    }
}

async fn flush_segment(
    backend: &AppendOnly,
    keys: &Keys,
    repo: RepoId,
    cache: &IndexCache,
    claims: &Claims,
    segment: IndexSegment,
) -> Result<()> {
    let id = ObjectId::random();
    super::save_to(backend, keys, repo, id, &segment).await?;
    cache.add_present(segment.packs.iter().map(|p| p.pack));
    cache.absorb(&id, &segment)?;
    let mut claimed = lock(claims);
    for p in &segment.packs {
        for e in &p.entries {
            claimed.remove(&e.chunk);
        }
    }
    Ok(())
}

/// What every stream reader shares: where chunks go, how to cut, when to stop, what to count.
struct Feed<'a> {
    jobs: &'a Sender<ChunkBatch>,
    params: &'a silo_format::chunker::ChunkerParams,
    /// The repository's cut rule (chunker.md).
    rule: u8,
    seed: u64,
    stop: &'a StopSwitch,
    progress: &'a AtomicU64,
    warn: fn(&str),
    /// Inspect the stream as a dump (dumps::inspect) on a thread beside its hasher.
    inspect: bool,
    /// And check an SQLite file with `PRAGMA integrity_check` (SqliteSpill).
    sqlite_integrity: bool,
    /// Finds delta bases for the stream's chunks (and hashes them) before they go to the workers; with the
    /// keys and cache it needs. Only the stream's own reader thread uses it.
    resembler: std::sync::Mutex<Option<StreamResembler>>,
    /// Predicts the stream's chunks from its previous version (previous.rs); the reader thread takes it.
    guide: std::sync::Mutex<Option<Box<dyn silo_format::chunker::Guide>>>,
}

/// Stage 1, one thread per stream: opens the input (inputs.rs), cuts it into chunk batches for the sealers,
/// and, once it ends, learns whether it ended cleanly (a command's exit status).
fn read_stream(index: usize, spec: &StreamSpec, feed: &Feed) -> Result<StreamResult> {
    let (windows, ending) = crate::inputs::open(index, spec, feed.stop, feed.params.max_size as usize)?;
    let chunked = chunk_stream(index, &spec.name, windows, feed);
    let exit_status = ending.finish(chunked.is_err(), feed.stop)?;
    let c = chunked?;
    Ok(StreamResult {
        size: c.size,
        blake3: c.blake3,
        exit_status,
        warning: c.warning,
        dump: c.dump,
        dump_note: c.dump_note,
    })
}

/// Cuts `reader` into chunks for the workers. The whole-stream BLAKE3 and the dump inspection run on their
/// own thread, off the chunker's critical path (the chunker is the one sequential stage of the pipeline).
fn chunk_stream(index: usize, name: &str, reader: impl Windows, feed: &Feed) -> Result<Chunked> {
    let (to_hasher, hasher_rx) = bounded::<Vec<SharedChunk>>(8);
    let (to_inspector, inspector_rx) = bounded::<Vec<SharedChunk>>(8);
    let integrity = feed.inspect && feed.sqlite_integrity;
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut hasher = blake3::Hasher::new();
            for chunk in hasher_rx.iter().flatten() {
                hasher.update(&chunk);
            }
            *hasher.finalize().as_bytes()
        });
        // Dump inspection on a thread of its own: on an unchanged re-run (nothing to seal) hashing and
        // inspecting are the work, and they overlap.
        let inspector = feed.inspect.then(|| s.spawn(move || inspect_stream(inspector_rx, integrity)));
        let taps: Vec<&Sender<Vec<SharedChunk>>> =
            if feed.inspect { vec![&to_hasher, &to_inspector] } else { vec![&to_hasher] };
        // With a previous version of the stream, a thread of its own hashes each batch and finds delta bases
        // (bases.rs) between the chunker and the workers, off the chunker's critical path.
        let resembler = feed.resembler.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (to_resembler, resembler_rx) = bounded::<ChunkBatch>(4);
        let resembling = resembler.map(|(mut r, keys, cache)| {
            let (jobs, stop) = (feed.jobs, feed.stop);
            s.spawn(move || find_bases(resembler_rx, &mut r, &keys, &cache, jobs, stop))
        });
        let jobs = if resembling.is_some() { &to_resembler } else { feed.jobs };
        let cut = cut_stream(index, name, reader, feed, jobs, &taps);
        drop((to_hasher, to_inspector, to_resembler));
        if let Some(r) = resembling {
            r.join().map_err(|_| Error::Invalid("the delta base finder panicked".into()))??;
        }
        let blake3 = hasher.join().map_err(|_| Error::Invalid("the stream hasher panicked".into()))?;
        let (dump, dump_note) = match inspector.map(|i| i.join()) {
            Some(Ok(v)) => v,
            Some(Err(_)) => return Err(Error::Invalid("the dump inspector panicked".into())),
            None => (None, None),
        };
        let (size, warning) = cut?;
        Ok(Chunked { size, blake3, warning, dump, dump_note })
    })
}

/// Dump inspection of a stream's chunks as they come (with the SQLite file written aside for its integrity
/// check when `integrity`): the verdict and a note.
fn inspect_stream(chunks: Receiver<Vec<SharedChunk>>, integrity: bool) -> (Option<Verdict>, Option<String>) {
    let mut inspector = Inspector::default();
    let mut spill = integrity.then(SqliteSpill::default);
    for chunk in chunks.iter().flatten() {
        inspector.feed(&chunk);
        match (inspector.format(), spill.as_mut()) {
            (Some(f), Some(_)) if f != Some(silo_format::manifest::dump_format::SQLITE_FILE) => spill = None,
            (_, Some(sp)) => sp.write(&chunk),
            _ => {}
        }
    }
    let (mut verdict, note) = inspector.conclude();
    if let (Some(sp), Some(v)) = (spill, verdict.as_mut()) {
        if v.record.format == silo_format::manifest::dump_format::SQLITE_FILE && v.problem.is_none() {
            v.problem = sp.check();
        }
    }
    (verdict, note)
}

/// Between the chunker and the sealing workers: each chunk of each batch gets its id, whether a live copy
/// exists, and a delta base (bases.rs); the batch then goes on to the workers. A cache error stops the run.
fn find_bases(
    batches: Receiver<ChunkBatch>,
    r: &mut Resembler,
    keys: &Keys,
    cache: &IndexCache,
    jobs: &Sender<ChunkBatch>,
    stop: &StopSwitch,
) -> Result<()> {
    for mut batch in batches {
        let mut out = Vec::with_capacity(batch.chunks.len());
        for data in &batch.chunks {
            let id = data.id().unwrap_or_else(|| keys.chunk_id(data));
            let (mut live, mut failed) = (false, None);
            let base = r.base_for(&id, data, || match cache.usable_location(&id) {
                Ok(l) => {
                    live = l.is_some();
                    live
                }
                Err(e) => {
                    failed = Some(e);
                    true
                }
            });
            if let Some(e) = failed {
                stop.set();
                return Err(e);
            }
            out.push(Resembled { id, live, base });
        }
        batch.resembled = Some(out);
        if jobs.send(batch).is_err() {
            return Err(Error::Aborted);
        }
    }
    Ok(())
}

/// An SQLite database file stream written aside (an owner-only temporary file, removed when dropped) so
/// `sqlite3` can run `PRAGMA integrity_check` on it before commit.
#[derive(Default)]
struct SqliteSpill {
    file: Option<std::io::BufWriter<tempfile::NamedTempFile>>,
    error: Option<String>,
}

impl SqliteSpill {
    fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        if self.error.is_some() {
            return;
        }
        if self.file.is_none() {
            match tempfile::Builder::new().prefix("silo-sqlite-check-").tempfile() {
                Ok(f) => self.file = Some(std::io::BufWriter::with_capacity(1 << 20, f)),
                Err(e) => {
                    self.error = Some(format!("could not create a temporary file for the integrity check: {e}"));
                    return;
                }
            }
        }
        if let Some(Err(e)) = self.file.as_mut().map(|f| f.write_all(bytes)) {
            self.error = Some(format!("could not write the temporary file for the integrity check: {e}"));
        }
    }

    /// None when `PRAGMA integrity_check` says ok; otherwise what it (or running it) said.
    fn check(self) -> Option<String> {
        if let Some(e) = self.error {
            return Some(e);
        }
        let file = match self.file.map(|f| f.into_inner()) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return Some(format!("could not write the temporary file for the integrity check: {e}")),
            None => return Some("nothing was written for the integrity check".into()),
        };
        let out = crate::inputs::process::command("sqlite3")
            .args(["-readonly", "-batch"])
            .arg(file.path())
            .arg("PRAGMA integrity_check;")
            .stdin(std::process::Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "ok" => None,
            Ok(o) => {
                let said =
                    String::from_utf8_lossy(if o.stdout.is_empty() { &o.stderr } else { &o.stdout }).into_owned();
                Some(format!("PRAGMA integrity_check failed: {}", said.trim().lines().next().unwrap_or("no answer")))
            }
            Err(e) => Some(format!("--sqlite-integrity-check needs sqlite3, which could not be started: {e}")),
        }
    }
}

/// I2: refuses to commit an empty stream (unless allowed), a dump that is not whole (`judge_dumps`) or a
/// snapshot under `min_size`, in that order. Returns the dump records to store.
fn refuse_incomplete(
    options: &CreateOptions,
    streams: &mut [StreamResult],
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<DumpRecord>>> {
    if let Some(empty) = streams.iter().zip(&options.streams).find(|(r, _)| r.size == 0 && !options.allow_empty) {
        return Err(Error::EmptyStream { stream: empty.1.name.clone() });
    }
    let dumps = judge_dumps(options, streams, warnings)?;
    let total: u64 = streams.iter().map(|r| r.size).sum();
    if let Some(min) = options.min_size.filter(|min| total < *min) {
        return Err(Error::TooSmall { name: options.name.clone(), bytes: total, min });
    }
    Ok(dumps)
}

/// The dump records to store, per stream; refuses (before anything is committed) a stream that was
/// recognised and is not whole, unless the options accept it — then it is recorded as invalid and warned of.
fn judge_dumps(
    options: &CreateOptions,
    streams: &mut [StreamResult],
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<DumpRecord>>> {
    if let Some(carried) = &options.validation.carried {
        return Ok((0..streams.len()).map(|i| carried.get(i).cloned().flatten()).collect());
    }
    let mut records = Vec::with_capacity(streams.len());
    for (result, spec) in streams.iter_mut().zip(&options.streams) {
        let Some(verdict) = result.dump.take() else {
            if let Some(note) = result.dump_note.take() {
                let text = format!("stream {}: {note}", spec.name);
                (options.warn)(&text);
                warnings.push(text);
            }
            records.push(None);
            continue;
        };
        let format = verdict.format_name();
        let mut record = verdict.record;
        if let Some(problem) = verdict.problem {
            if !options.validation.accept_invalid {
                return Err(Error::InvalidDump { stream: spec.name.clone(), format: format.into(), problem });
            }
            let text = format!(
                "stream {} ({format}) failed validation and was committed because of --accept-invalid: {problem}",
                spec.name
            );
            (options.warn)(&text);
            warnings.push(text);
            record.invalid = Some(problem);
        }
        records.push(Some(record));
    }
    Ok(records)
}

fn cut_stream(
    index: usize,
    name: &str,
    reader: impl Windows,
    feed: &Feed,
    jobs: &Sender<ChunkBatch>,
    taps: &[&Sender<Vec<SharedChunk>>],
) -> Result<(u64, Option<String>)> {
    let mut size = 0u64;
    let mut probe = crate::entropy::EntropyProbe::default();
    let mut warning = None;
    let mut judge = |verdict: Option<f64>| {
        if let Some(bits) = verdict {
            let text = format!(
                "stream {name} looks already compressed or encrypted ({bits:.2} bits/byte): it will not \
                 deduplicate, so every snapshot stores it in full; dump it uncompressed and let silo compress \
                 (plain pg_dump or pg_dump -Fc -Z0, no gzip in the pipe)"
            );
            (feed.warn)(&text);
            warning = Some(text);
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut seq = 0;
    let mut chunker = feed.params.windows_by(reader, feed.seed, feed.rule);
    if let Some(guide) = feed.guide.lock().unwrap_or_else(|p| p.into_inner()).take() {
        chunker = chunker.guided(guide);
    }
    let mut chunks = chunker.peekable();
    while let Some(chunk) = chunks.next() {
        let chunk = chunk.map_err(|e| Error::Input {
            what: format!("stream {name}"),
            message: format!("read failed: {e}; no snapshot was written"),
        })?;
        if feed.stop.is_set() {
            return Err(Error::Aborted);
        }
        judge(probe.observe(&chunk));
        size += chunk.len() as u64;
        feed.progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        batch.push(chunk);
        if batch.len() == BATCH || chunks.peek().is_none() {
            let chunks = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let job = ChunkBatch { stream: index, seq, chunks, resembled: None };
            seq += job.chunks.len();
            if taps.iter().any(|t| t.send(job.chunks.clone()).is_err()) || jobs.send(job).is_err() {
                return Err(Error::Aborted);
            }
        }
    }
    judge(probe.finish());
    Ok((size, warning))
}

impl Repository {
    /// For each stream to create, the chunk ids of the stream of the same name in the newest snapshot of the
    /// same name, when there is one: what guides the chunker and where delta bases come from.
    fn previous_streams(&self, rt: &Handle, options: &CreateOptions) -> Result<Vec<Option<OldIds>>> {
        let none = vec![None; options.streams.len()];
        // Headers of every snapshot (chunk lists dropped as each is read), then the newest of the name whole.
        let previous = rt.block_on(async {
            match self.list_snapshot_heads().await?.into_iter().rev().find(|s| s.manifest.name == options.name) {
                Some(head) => self.load_snapshot(head.id).await.map(Some),
                None => Ok(None),
            }
        });
        let mut previous = match previous {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(none),
            Err(e) => {
                tracing::warn!(
                    "could not read the previous snapshot to find delta bases: {e}; chunks are stored whole"
                );
                return Ok(none);
            }
        };
        let mut out = Vec::with_capacity(options.streams.len());
        for spec in &options.streams {
            // Its chunks' lengths are looked up beside the stream, not before it (previous.rs).
            let old = previous.manifest.streams.iter_mut().find(|s| s.name == spec.name && !s.chunks.is_empty());
            out.push(old.map(|s| std::mem::take(&mut s.chunks)));
        }
        Ok(out)
    }
}
