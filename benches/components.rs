//! Component throughput, one criterion group per stage of the pipeline: chunking, chunk id (keyed BLAKE3),
//! zstd, the columns codec, AES-256-GCM, pack encode/decode and index lookups in the RocksDB cache (hit and miss).
//! Run: `cargo bench --profile dev --bench components` (the profile the binary is built in; its
//! dependencies are compiled at opt-level 3). Input: the same SQL-dump-like generator as the tests.

#[path = "../tests/util/dumpgen.rs"]
#[allow(dead_code)]
mod dumpgen;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use silo::cache::IndexCache;
use silo::format::chunker::ChunkerParams;
use silo::format::columns;
use silo::format::envelope::random_nonce;
use silo::format::index::{IndexPack, IndexSegment};
use silo::format::pack::{self, PackWriter};
use silo::format::{Keys, MasterSecret, ObjectId, RepoId};
use std::hint::black_box;

const INPUT: usize = 32 << 20;

fn input() -> Vec<u8> {
    dumpgen::DumpGen::new(7).bytes(INPUT)
}

fn keys() -> Keys {
    Keys::derive(&MasterSecret([7; 32]))
}

/// Chunks of the default size, cut from the generated dump.
fn chunks(data: &[u8]) -> Vec<Vec<u8>> {
    let cuts = ChunkerParams::DEFAULT.cut_points(data, 1);
    let mut start = 0;
    cuts.iter()
        .map(|&end| {
            let c = data[start..end].to_vec();
            start = end;
            c
        })
        .collect()
}

fn chunker(c: &mut Criterion) {
    let data = input();
    let mut g = c.benchmark_group("chunker");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("fastcdc-default", |b| b.iter(|| ChunkerParams::DEFAULT.cut_points(black_box(&data), 1).len()));
    g.bench_function("fastcdc-default-stream", |b| {
        b.iter(|| ChunkerParams::DEFAULT.stream(black_box(&data[..]), 1).count())
    });
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let data = input();
    let chunks = chunks(&data);
    let keys = keys();
    let mut g = c.benchmark_group("chunk-id");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("keyed-blake3", |b| {
        b.iter(|| chunks.iter().map(|c| keys.chunk_id(black_box(c)).0[0] as usize).sum::<usize>())
    });
    g.finish();
}

fn compression(c: &mut Criterion) {
    let data = input();
    let chunks = chunks(&data);
    let mut g = c.benchmark_group("zstd");
    g.throughput(Throughput::Bytes(data.len() as u64));
    for level in [1, 3] {
        g.bench_function(format!("compress-level-{level}"), |b| {
            b.iter(|| {
                chunks.iter().map(|c| zstd::bulk::compress(black_box(c), level).map_or(0, |v| v.len())).sum::<usize>()
            })
        });
    }
    let compressed: Vec<Vec<u8>> = chunks.iter().map(|c| zstd::bulk::compress(c, 3).unwrap_or_default()).collect();
    g.bench_function("decompress", |b| {
        b.iter(|| {
            compressed
                .iter()
                .zip(&chunks)
                .map(|(z, c)| zstd::bulk::decompress(black_box(z), c.len()).map_or(0, |v| v.len()))
                .sum::<usize>()
        })
    });
    g.finish();

    // Envelope codec 0x02 (format-spec/columns.md): the same chunks split into columns, one frame each.
    let mut g = c.benchmark_group("columns");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("encode-level-1", |b| {
        b.iter(|| chunks.iter().map(|c| columns::encode(black_box(c), 1).map_or(0, |v| v.len())).sum::<usize>())
    });
    let payloads: Vec<Option<Vec<u8>>> = chunks.iter().map(|c| columns::encode(c, 1)).collect();
    g.bench_function("decode", |b| {
        b.iter(|| {
            payloads
                .iter()
                .zip(&chunks)
                .filter_map(|(p, c)| p.as_ref().and_then(|p| columns::decode(black_box(p), c.len()).ok()))
                .map(|v| v.len())
                .sum::<usize>()
        })
    });
    let plain: usize = chunks.iter().filter_map(|c| zstd::bulk::compress(c, 1).ok()).map(|v| v.len()).sum();
    let split: usize = chunks
        .iter()
        .map(|c| columns::encode(c, 1).map_or_else(|| zstd::bulk::compress(c, 1).map_or(0, |v| v.len()), |v| v.len()))
        .sum();
    println!("columns: {split} bytes vs {plain} as one zstd frame per chunk ({:.3}x)", split as f64 / plain as f64);
    g.finish();
}

fn encryption(c: &mut Criterion) {
    let data = input();
    let chunks = chunks(&data);
    let keys = keys();
    let repo = RepoId([1; 16]);
    let ids: Vec<ObjectId> = chunks.iter().map(|c| keys.chunk_id(c)).collect();
    let mut g = c.benchmark_group("aes-256-gcm");
    g.throughput(Throughput::Bytes(data.len() as u64));
    // Level None: encryption and framing only, no compression.
    g.bench_function("seal-stored", |b| {
        b.iter(|| {
            chunks
                .iter()
                .zip(&ids)
                .map(|(c, id)| pack::seal_chunk(&keys, repo, *id, c, None, random_nonce()).len())
                .sum::<usize>()
        })
    });
    let sealed: Vec<Vec<u8>> =
        chunks.iter().zip(&ids).map(|(c, id)| pack::seal_chunk(&keys, repo, *id, c, None, random_nonce())).collect();
    g.bench_function("open-stored-and-verify", |b| {
        b.iter(|| {
            sealed
                .iter()
                .zip(&ids)
                .zip(&chunks)
                .map(|((s, id), c)| pack::open_chunk(&keys, repo, *id, s, c.len() as u32).map_or(0, |p| p.len()))
                .sum::<usize>()
        })
    });
    g.finish();
}

fn packs(c: &mut Criterion) {
    let data = input();
    let chunks = chunks(&data);
    let keys = keys();
    let repo = RepoId([1; 16]);
    let sealed: Vec<(ObjectId, Vec<u8>, u32)> = chunks
        .iter()
        .map(|c| {
            let id = keys.chunk_id(c);
            (id, pack::seal_chunk(&keys, repo, id, c, Some(3), random_nonce()), c.len() as u32)
        })
        .collect();
    let stored: usize = sealed.iter().map(|s| s.1.len()).sum();
    let mut g = c.benchmark_group("pack");
    g.throughput(Throughput::Bytes(stored as u64));
    let pack_id = ObjectId([9; 32]);
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut w = PackWriter::with_capacity(stored + 4096);
            for (id, s, raw) in &sealed {
                w.push(*id, s, *raw);
            }
            w.finish(&keys, repo, pack_id, random_nonce()).0.len()
        })
    });
    let mut w = PackWriter::with_capacity(stored + 4096);
    for (id, s, raw) in &sealed {
        w.push(*id, s, *raw);
    }
    let (bytes, _) = w.finish(&keys, repo, pack_id, random_nonce());
    g.bench_function("decode-trailer-and-all-chunks", |b| {
        b.iter(|| {
            let trailer = pack::open_pack(&keys, repo, pack_id, black_box(&bytes)).expect("pack");
            trailer
                .entries
                .iter()
                .map(|e| {
                    let range = e.offset as usize..(e.offset + e.stored_len) as usize;
                    pack::open_chunk(&keys, repo, e.chunk, &bytes[range], e.raw_len).map_or(0, |p| p.len())
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

fn index(c: &mut Criterion) {
    const CHUNKS: usize = 200_000; // ~50 GiB of 256 KiB chunks
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = IndexCache::open(dir.path(), RepoId([1; 16])).expect("cache");
    let ids: Vec<ObjectId> = (0..CHUNKS as u64).map(|i| ObjectId(*blake3::hash(&i.to_le_bytes()).as_bytes())).collect();
    for (n, batch) in ids.chunks(10_000).enumerate() {
        let mut seg = IndexSegment::new();
        seg.packs.push(IndexPack {
            pack: ObjectId(*blake3::hash(&(n as u64).to_be_bytes()).as_bytes()),
            pack_size: 1 << 23,
            entries: batch
                .iter()
                .enumerate()
                .map(|(i, id)| pack::PackEntry {
                    chunk: *id,
                    offset: 12 + i as u32 * 100,
                    stored_len: 100,
                    raw_len: 200,
                })
                .collect(),
            deltas: vec![],
        });
        cache.absorb(&ObjectId::random(), &seg).expect("absorb");
    }
    let misses: Vec<ObjectId> =
        (0..1000u64).map(|i| ObjectId(*blake3::hash(&((i + 1) << 40).to_le_bytes()).as_bytes())).collect();
    let mut g = c.benchmark_group("index-lookup");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("hit", |b| {
        b.iter_batched(
            || (0..1000).map(|i| ids[(i * 7919) % CHUNKS]).collect::<Vec<_>>(),
            |probe| probe.iter().filter(|id| cache.live_location(id).ok().flatten().is_some()).count(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("miss", |b| {
        b.iter(|| misses.iter().filter(|id| cache.live_location(id).ok().flatten().is_some()).count())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = chunker, hashing, compression, encryption, packs, index
}
criterion_main!(benches);
