//! Round trips and rejections of every codec: what is encoded decodes to the same value, and malformed,
//! truncated or extended input is an error, never a panic.

use silo_format::chunker::ChunkerParams;
use silo_format::config::{self, RepoConfig};
use silo_format::index::{IndexPack, IndexSegment};
use silo_format::keyfile::{KdfParams, KeyFile};
use silo_format::manifest::{SnapshotManifest, StreamManifest};
use silo_format::pack::{self, PackEntry, PackWriter};
use silo_format::Sealed;
use silo_format::{envelope, Aad, FormatError, Keys, MasterSecret, ObjectId, ObjectKind, RepoId};

fn keys() -> Keys {
    Keys::derive(&MasterSecret([5; 32]))
}

const REPO: RepoId = RepoId([3; 16]);

fn sample(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 7) as u8).collect()
}

#[test]
fn envelope_round_trips_at_many_sizes_and_picks_the_smaller_codec() {
    let key = [9u8; 32];
    let aad = Aad::new(REPO, ObjectKind::Chunk, ObjectId([1; 32]));
    for len in [0usize, 1, 15, 16, 17, 1000, 65_536, 300_001] {
        let compressible = vec![b'a'; len];
        let sealed = envelope::seal(&key, &aad, &compressible, Some(3), envelope::random_nonce());
        assert_eq!(envelope::open(&key, &aad, &sealed, len).unwrap(), compressible);
        if len > 100 {
            assert!(sealed.len() < len / 4, "zstd should win on repetitive data");
        }
        let noise: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(0x9e3779b97f4a7c15).to_le_bytes()[7]).collect();
        let sealed = envelope::seal(&key, &aad, &noise, Some(3), envelope::random_nonce());
        assert!(sealed.len() <= len + envelope::OVERHEAD);
        assert_eq!(envelope::open(&key, &aad, &sealed, len).unwrap(), noise);
    }
}

#[test]
fn envelope_enforces_the_size_bound_and_rejects_short_input() {
    let key = [9u8; 32];
    let aad = Aad::new(REPO, ObjectKind::Chunk, ObjectId([1; 32]));
    let sealed = envelope::seal(&key, &aad, &vec![0u8; 10_000], Some(3), [0; 12]);
    assert!(envelope::open(&key, &aad, &sealed, 9_999).is_err(), "a zstd bomb is cut at the bound");
    let stored = envelope::seal(&key, &aad, &[1, 2, 3], None, [0; 12]);
    assert!(envelope::open(&key, &aad, &stored, 2).is_err());
    for n in 0..envelope::OVERHEAD {
        assert!(envelope::open(&key, &aad, &sealed[..n], 1 << 20).is_err());
    }
    let mut wrong_version = sealed.clone();
    wrong_version[0] = 2;
    assert!(matches!(envelope::open(&key, &aad, &wrong_version, 1 << 20), Err(FormatError::UnsupportedVersion { .. })));
}

fn build_pack(keys: &Keys, pack_id: ObjectId, chunks: &[Vec<u8>]) -> (Vec<u8>, Vec<PackEntry>) {
    let mut w = PackWriter::new();
    for c in chunks {
        let id = keys.chunk_id(c);
        w.push(id, &pack::seal_chunk(keys, REPO, id, c, Some(3), envelope::random_nonce()), c.len() as u32);
    }
    let (bytes, trailer) = w.finish(keys, REPO, pack_id, envelope::random_nonce());
    (bytes, trailer.entries)
}

#[test]
fn packs_round_trip_and_every_chunk_verifies() {
    let keys = keys();
    let chunks: Vec<Vec<u8>> = (0..20).map(|i| sample(1000 + i * 977, i as u8)).collect();
    let pack_id = ObjectId([4; 32]);
    let (bytes, entries) = build_pack(&keys, pack_id, &chunks);
    let trailer = pack::open_pack(&keys, REPO, pack_id, &bytes).unwrap();
    assert_eq!(trailer.entries, entries);
    for (e, c) in entries.iter().zip(&chunks) {
        let sealed = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
        assert_eq!(&pack::open_chunk(&keys, REPO, e.chunk, sealed, e.raw_len).unwrap(), c);
        // A chunk presented under another id fails: authentication binds the id.
        assert!(pack::open_chunk(&keys, REPO, ObjectId([0; 32]), sealed, e.raw_len).is_err());
        assert!(pack::open_chunk(&keys, REPO, e.chunk, sealed, e.raw_len + 1).is_err());
    }
    // The trailer of one pack does not open as another pack's.
    assert!(pack::open_pack(&keys, REPO, ObjectId([5; 32]), &bytes).is_err());
    for cut in [0, 5, 12, bytes.len() / 2, bytes.len() - 9, bytes.len() - 1] {
        assert!(pack::open_pack(&keys, REPO, pack_id, &bytes[..cut]).is_err(), "truncated at {cut}");
    }
}

#[test]
fn impossible_pack_entries_are_rejected() {
    let e = |offset, stored_len| PackEntry { chunk: ObjectId([1; 32]), offset, stored_len, raw_len: 1 };
    assert!(pack::validate_entries("t", &[e(12, 40), e(52, 40)], 92).is_ok());
    assert!(pack::validate_entries("t", &[e(0, 40)], 100).is_err(), "inside the header");
    assert!(pack::validate_entries("t", &[e(12, 40), e(40, 40)], 100).is_err(), "overlap");
    assert!(pack::validate_entries("t", &[e(12, 40)], 51).is_err(), "past the end");
    assert!(pack::validate_entries("t", &[e(12, 5)], 100).is_err(), "shorter than an envelope");
    assert!(pack::validate_entries("t", &[e(u32::MAX, u32::MAX)], u64::MAX).is_err(), "no overflow");
}

#[test]
fn index_segments_and_manifests_round_trip() {
    let keys = keys();
    let (bytes, entries) = build_pack(&keys, ObjectId([4; 32]), &[sample(5000, 1), sample(7000, 2)]);
    let mut seg = IndexSegment::new();
    seg.packs.push(IndexPack {
        pack: ObjectId([4; 32]),
        pack_size: bytes.len() as u64,
        entries: entries.clone(),
        deltas: vec![],
    });
    let id = ObjectId([6; 32]);
    let sealed = seg.seal(&keys, REPO, id, envelope::random_nonce());
    assert_eq!(IndexSegment::open(&keys, REPO, id, &sealed).unwrap(), seg);
    assert!(IndexSegment::open(&keys, REPO, ObjectId([7; 32]), &sealed).is_err());
    // A manifest envelope is not accepted as an index segment even under the same id.
    let m = SnapshotManifest {
        version: 1,
        name: "shop".into(),
        host: "h".into(),
        tags: vec![],
        started: 1,
        finished: 2,
        silo_version: "t".into(),
        streams: vec![StreamManifest {
            name: "data".into(),
            command: None,
            exit_status: None,
            size: 12_000,
            blake3: [0; 32],
            chunks: entries.iter().map(|e| e.chunk).collect(),
            dump: None,
        }],
    };
    let sealed_m = m.seal(&keys, REPO, id, envelope::random_nonce());
    assert_eq!(SnapshotManifest::open(&keys, REPO, id, &sealed_m).unwrap(), m);
    assert!(IndexSegment::open(&keys, REPO, id, &sealed_m).is_err());
    let mut no_streams = m.clone();
    no_streams.streams.clear();
    assert!(SnapshotManifest::decode_body(&no_streams.encode_body()).is_err());
}

#[test]
fn bodies_reject_trailing_truncated_and_hostile_lengths() {
    let m = SnapshotManifest {
        version: 1,
        name: "n".into(),
        host: "h".into(),
        tags: vec!["t".into()],
        started: 0,
        finished: 0,
        silo_version: "v".into(),
        streams: vec![StreamManifest {
            name: "s".into(),
            command: Some(vec!["c".into()]),
            exit_status: Some(0),
            size: 0,
            blake3: [0; 32],
            chunks: vec![ObjectId([1; 32])],
            dump: None,
        }],
    };
    let mut v2 = m.clone();
    v2.version = 2;
    v2.streams[0].dump = Some(silo_format::manifest::DumpRecord {
        format: silo_format::manifest::dump_format::PG_DUMP_PLAIN,
        tool_version: "15.20".into(),
        invalid: Some("no trailer".into()),
        entries: 3,
        tables: vec![silo_format::manifest::TableStat { name: "public.t".into(), rows: Some(2), bytes: 9 }],
    });
    assert_eq!(v2.version_needed(), 2);
    assert_eq!(m.version_needed(), 1);
    for m in [m, v2] {
        let body = m.encode_body();
        assert_eq!(SnapshotManifest::decode_body(&body).unwrap(), m);
        let mut extended = body.clone();
        extended.push(0);
        assert!(SnapshotManifest::decode_body(&extended).is_err());
        for n in 0..body.len() {
            assert!(SnapshotManifest::decode_body(&body[..n]).is_err(), "truncated at {n}");
        }
        let mut bad_format = m.clone();
        if let Some(d) = bad_format.streams[0].dump.as_mut() {
            d.format = 42;
            assert!(SnapshotManifest::decode_body(&bad_format.encode_body()).is_err(), "unknown dump format");
        }
        let mut future = body.clone();
        future[..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(SnapshotManifest::decode_body(&future).is_err(), "an unknown version is refused");
    }
    // A vector length of 2^60 must be refused, not allocated.
    let mut hostile = 1u32.to_le_bytes().to_vec();
    hostile.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(IndexSegment::decode_body(&hostile).is_err());
}

#[test]
fn config_and_key_files_round_trip() {
    let master = MasterSecret([8; 32]);
    let keys = Keys::derive(&master);
    let cfg = RepoConfig {
        version: 1,
        chunker: ChunkerParams::DEFAULT,
        pack_target_size: 8 << 20,
        compression_level: 3,
        gc_safety_age: 1,
        gc_grace_period: 2,
        created: 3,
        chunker_rule: 1,
    };
    let bytes = config::encode(&cfg, &keys, REPO, envelope::random_nonce());
    assert_eq!(config::parse_header(&bytes).unwrap().repo, REPO);
    assert_eq!(config::decode(&bytes, &keys).unwrap(), cfg);
    assert!(config::decode(&bytes, &Keys::derive(&MasterSecret([1; 32]))).is_err());
    let mut bad = cfg.clone();
    bad.chunker.min_size = 10;
    assert!(
        config::decode(&config::encode(&bad, &keys, REPO, [0; 12]), &keys).is_err(),
        "invalid parameters are refused"
    );

    let params = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let kf =
        KeyFile::wrap(&master, b"pw", REPO, ObjectId([2; 32]), params, [1; 16], 0, "h".into(), "u".into(), 0, [0; 12])
            .unwrap();
    let decoded = KeyFile::decode(&kf.encode()).unwrap();
    assert_eq!(decoded.unwrap(b"pw", ObjectId([2; 32])).unwrap().0, master.0);
    assert!(matches!(decoded.unwrap(b"pW", ObjectId([2; 32])), Err(FormatError::Authentication)));
    assert!(decoded.unwrap(b"pw", ObjectId([3; 32])).is_err(), "a renamed key file does not open");
    let mut edited = decoded.clone();
    edited.host = "elsewhere".into();
    assert!(edited.unwrap(b"pw", ObjectId([2; 32])).is_err(), "every plaintext field is authenticated");
    let mut greedy = kf.clone();
    greedy.params.memory_kib = u32::MAX;
    assert!(KeyFile::decode(&greedy.encode()).is_err(), "absurd argon2 memory is refused before running it");
}

#[test]
fn chunker_respects_bounds_and_depends_on_the_seed() {
    let p = ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 65536 };
    let data = sample(2 << 20, 7)
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ ((i as u64 * 2654435761) >> 13) as u8)
        .collect::<Vec<_>>();
    let cuts = p.cut_points(&data, 42);
    assert_eq!(*cuts.last().unwrap(), data.len());
    let mut prev = 0;
    for (i, &c) in cuts.iter().enumerate() {
        let len = c - prev;
        assert!(len <= 65536);
        assert!(len >= 4096 || i == cuts.len() - 1);
        prev = c;
    }
    assert_eq!(cuts, p.cut_points(&data, 42), "deterministic");
    assert_ne!(cuts, p.cut_points(&data, 43), "the seed changes boundaries");
    let mut end = 0;
    let streamed: Vec<usize> = p
        .stream(&data[..], 42)
        .map(|c| {
            end += c.unwrap().len();
            end
        })
        .collect();
    assert_eq!(streamed, cuts, "streaming and in-memory chunking agree");
    assert!(ChunkerParams { min_size: 10, avg_size: 16384, max_size: 65536 }.validate().is_err());
    assert!(ChunkerParams { min_size: 65536, avg_size: 16384, max_size: 65536 }.validate().is_err());
}
