//! Checks the code against format-spec/vectors.json: fixed keys, nonces and inputs must give exactly the
//! recorded bytes, and the recorded bytes must decode back to the inputs. Regenerate only for a deliberate
//! format change: `SILO_WRITE_VECTORS=1 cargo test -p silo-format --test vectors` (and bump the version).

use serde_json::{json, Value};
use silo_format::chunker::ChunkerParams;

/// The chunker parameters in the config vector (silo's defaults when the vectors were made).
const VECTOR_CHUNKER: ChunkerParams = ChunkerParams { min_size: 64 << 10, avg_size: 256 << 10, max_size: 1 << 20 };
use silo_format::config::{self, RepoConfig};
use silo_format::index::{DeletedPack, IndexPack, IndexSegment};
use silo_format::keyfile::{KdfParams, KeyFile};
use silo_format::maintenance::{
    DamageMark, DrillRecord, Lease, Policy, RunRecord, RunStep, Sealed, Session, StoredPolicy,
};
use silo_format::manifest::{dump_format, DumpRecord, SnapshotManifest, StreamManifest, TableStat};
use silo_format::pack::{self, PackWriter};
use silo_format::{envelope, Aad, Keys, MasterSecret, ObjectId, ObjectKind, RepoId};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../format-spec/vectors.json");

fn seq<const N: usize>(start: u8) -> [u8; N] {
    let mut b = [0u8; N];
    for (i, x) in b.iter_mut().enumerate() {
        *x = start.wrapping_add(i as u8);
    }
    b
}

/// The chunker input with a run of 200 spaces ending every 4 KiB, for the rule 2 vector.
fn with_runs() -> Vec<u8> {
    let mut data = pseudo_random(1 << 20, 0x5110);
    for block in data.chunks_mut(4096) {
        let n = block.len();
        block[n - 200..].fill(b' ');
    }
    data
}

/// Deterministic pseudo-random bytes (xorshift64*), for the chunker vector.
fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

struct Fixture {
    master: MasterSecret,
    keys: Keys,
    repo: RepoId,
}

fn fixture() -> Fixture {
    let master = MasterSecret(seq(0));
    Fixture { keys: Keys::derive(&master), master, repo: RepoId(seq(0x10)) }
}

/// A chunk from the middle of a plain pg_dump: the end of one row, 40 COPY rows (one with an empty field),
/// the end of the block and the next statement's start.
fn copy_block() -> Vec<u8> {
    let mut s = String::from("pped\n");
    for i in 1..=40u32 {
        let note = if i == 7 { String::new() } else { format!("gift {}", i % 3) };
        s += &format!(
            "{i}\tcustomer-{:08x}\t{}.{:02}\t2026-11-{:02} 0{}:{:02}:00\t{note}\n",
            i.wrapping_mul(2_654_435_761),
            i * 37 % 1000,
            i % 100,
            1 + i % 28,
            i % 10,
            i % 60
        );
    }
    s += "\\.\n\nCREATE INDEX orders_customer ON public.orders USING btree (cust";
    s.into_bytes()
}

fn compute() -> Value {
    let f = fixture();
    let text = b"INSERT INTO orders VALUES (1, 'silo'); INSERT INTO orders VALUES (2, 'silo');".repeat(4);
    let chunk_a = f.keys.chunk_id(&text);
    let chunk_b = f.keys.chunk_id(b"hello silo");

    let env_key = f.keys.object_key(ObjectKind::Chunk, &chunk_a);
    let aad = Aad::new(f.repo, ObjectKind::Chunk, chunk_a);
    let sealed_zstd = envelope::seal(&env_key, &aad, &text, Some(3), seq(0x20));
    let sealed_stored = envelope::seal(&env_key, &aad, &text, None, seq(0x20));
    let copy_block = copy_block();
    let chunk_c = f.keys.chunk_id(&copy_block);
    // Version 1 (text columns only, as silo wrote before integer columns) and version 2 (the key column as
    // differences), each alone and sealed.
    let columns_payload =
        silo_format::columns::encode_v1(&copy_block, 1).expect("a COPY block takes the columns codec");
    let key_c = f.keys.object_key(ObjectKind::Chunk, &chunk_c);
    let aad_c = Aad::new(f.repo, ObjectKind::Chunk, chunk_c);
    let sealed_columns =
        envelope::seal_encoded(&key_c, &aad_c, silo_format::codec::Codec::Columns, &columns_payload, seq(0x2d));
    let columns_payload_v2 =
        silo_format::columns::encode(&copy_block, 1).expect("a COPY block takes the columns codec");
    assert_eq!(columns_payload_v2[0], silo_format::columns::COLUMNS_VERSION, "the key column is stored as differences");
    let sealed_columns_v2 = envelope::seal(&key_c, &aad_c, &copy_block, Some(1), seq(0x2d));

    let pack_id = ObjectId(seq(0x40));
    let mut writer = PackWriter::new();
    writer.push(chunk_a, &pack::seal_chunk(&f.keys, f.repo, chunk_a, &text, Some(3), seq(0x21)), text.len() as u32);
    writer.push(chunk_b, &pack::seal_chunk(&f.keys, f.repo, chunk_b, b"hello silo", Some(3), seq(0x22)), 10);
    let (pack_bytes, trailer) = writer.finish(&f.keys, f.repo, pack_id, seq(0x23));
    let entries = trailer.entries;

    let segment_id = ObjectId(seq(0x60));
    let segment = IndexSegment {
        version: 1,
        packs: vec![IndexPack {
            pack: pack_id,
            pack_size: pack_bytes.len() as u64,
            entries: entries.clone(),
            deltas: vec![],
        }],
        deleted: vec![DeletedPack { pack: ObjectId(seq(0x80)), marked_at: 1_795_372_226_000_000 }],
        supersedes: vec![ObjectId(seq(0xa0))],
    };
    let segment_bytes = segment.seal(&f.keys, f.repo, segment_id, seq(0x24));

    // Delta chunks (codec 0x03): chunk_d is chunk_a with one row changed, stored as a delta of chunk_a in a
    // version 2 pack whose trailer lists it, indexed by a version 2 segment.
    let text_d = delta_plaintext(&text);
    let chunk_d = f.keys.chunk_id(&text_d);
    let base_a = pack::Base { id: chunk_a, depth: 0, plaintext: &text };
    let (sealed_delta, delta_header) =
        pack::seal_chunk_against(&f.keys, f.repo, chunk_d, &text_d, 3, Some(base_a), seq(0x32));
    assert_eq!(delta_header.map(|h| (h.base, h.depth)), Some((chunk_a, 1)), "the vector's chunk must be a delta");
    let pack_v2_id = ObjectId(seq(0x41));
    let mut writer = PackWriter::new();
    writer.push(chunk_a, &pack::seal_chunk(&f.keys, f.repo, chunk_a, &text, Some(3), seq(0x33)), text.len() as u32);
    writer.push_with(chunk_d, &sealed_delta, text_d.len() as u32, delta_header);
    let (pack_v2_bytes, trailer_v2) = writer.finish(&f.keys, f.repo, pack_v2_id, seq(0x34));
    let segment_v2 = IndexSegment {
        version: 2,
        packs: vec![IndexPack {
            pack: pack_v2_id,
            pack_size: pack_v2_bytes.len() as u64,
            entries: trailer_v2.entries.clone(),
            deltas: trailer_v2.deltas.clone(),
        }],
        deleted: vec![],
        supersedes: vec![],
    };
    let segment_v2_bytes = segment_v2.seal(&f.keys, f.repo, ObjectId(seq(0x61)), seq(0x35));

    let snapshot_id = ObjectId(seq(0xc0));
    let manifest = SnapshotManifest {
        version: 1,
        name: "shop".into(),
        host: "db1".into(),
        tags: vec!["nightly".into()],
        started: 1_795_372_226_000_000,
        finished: 1_795_372_230_500_000,
        silo_version: "0.1.0".into(),
        streams: vec![StreamManifest {
            name: "data".into(),
            command: Some(vec!["pg_dump".into(), "shop".into()]),
            exit_status: Some(0),
            size: text.len() as u64 + 10,
            blake3: *blake3::hash(b"stand-in").as_bytes(),
            chunks: vec![chunk_a, chunk_b],
            dump: None,
        }],
    };
    let manifest_bytes = manifest.seal(&f.keys, f.repo, snapshot_id, seq(0x25));
    // Version 2: the same stream recognised as a plain pg_dump with two tables.
    let mut manifest_v2 = manifest.clone();
    manifest_v2.version = 2;
    manifest_v2.streams[0].dump = Some(DumpRecord {
        format: dump_format::PG_DUMP_PLAIN,
        tool_version: "15.20".into(),
        invalid: None,
        entries: 0,
        tables: vec![
            TableStat { name: "public.orders".into(), rows: Some(2), bytes: 31 },
            TableStat { name: "public.empty".into(), rows: Some(0), bytes: 0 },
        ],
    });
    let manifest_v2_bytes = manifest_v2.seal(&f.keys, f.repo, snapshot_id, seq(0x27));

    let cfg = RepoConfig {
        version: 1,
        chunker: VECTOR_CHUNKER,
        pack_target_size: 8 << 20,
        compression_level: 3,
        gc_safety_age: 86_400,
        gc_grace_period: 86_400,
        created: 1_795_372_226_000_000,
        chunker_rule: 1,
    };
    let config_bytes = config::encode(&cfg, &f.keys, f.repo, seq(0x26));
    let cfg_v2 = RepoConfig { version: 2, chunker_rule: silo_format::chunker::RULE_SKIP_RUNS, ..cfg.clone() };
    let config_v2_bytes = config::encode(&cfg_v2, &f.keys, f.repo, seq(0x36));

    let key_id = ObjectId(seq(0xe0));
    let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    // Version 1: no user, no role (what silo wrote before version 2; still read).
    let keyfile = KeyFile { version: 1, user: String::new(), ..keyfile_v2_template(&f, key_id, kdf) }
        .rewrap(&f.master, b"correct horse", key_id, seq(0x27))
        .expect("wrap");
    let keyfile_v2 = KeyFile::wrap(
        &f.master,
        b"battery staple",
        f.repo,
        ObjectId(seq(0xe1)),
        kdf,
        seq(0x31),
        1_795_372_226_000_000,
        "db1".into(),
        "backup".into(),
        silo_format::keyfile::ROLE_WRITER,
        seq(0x2e),
    )
    .expect("wrap");

    let policy = StoredPolicy {
        version: 1,
        name: "shop".into(),
        policy: Policy { last: Some(3), daily: Some(7), within: Some(86_400), ..Default::default() },
        set_at: 1_795_372_226_000_000,
    };
    let policy_bytes = policy.seal(&f.keys, f.repo, ObjectId(seq(0x11)), seq(0x28));
    let lease =
        Lease { version: 1, holder: ObjectId(seq(0x12)), host: "db1".into(), pid: 4242, acquired_at: 1, expires_at: 2 };
    let lease_bytes = lease.seal(&f.keys, f.repo, ObjectId::ZERO, seq(0x29));
    let session = Session { version: 1, host: "db1".into(), pid: 4243, started_at: 3, heartbeat_at: 4 };
    let session_bytes = session.seal(&f.keys, f.repo, ObjectId(seq(0x13)), seq(0x2a));

    let mark =
        DamageMark { version: 1, snapshot: ObjectId(seq(0xc0)), found_at: 5, reason: "packs/40/…: missing".into() };
    let mark_bytes = mark.seal(&f.keys, f.repo, ObjectId(seq(0xc0)), seq(0x2b));
    let drill = DrillRecord {
        version: 1,
        snapshot: ObjectId(seq(0xc0)),
        stream: "data".into(),
        command: vec!["psql".into(), "-d".into(), "scratch".into()],
        host: "db1".into(),
        started: 6,
        finished: 7,
        bytes: 8,
        exit_status: Some(0),
        ok: true,
        error: String::new(),
    };
    let drill_bytes = drill.seal(&f.keys, f.repo, ObjectId(seq(0x14)), seq(0x2c));
    let run_bytes = run_record().seal(&f.keys, f.repo, ObjectId(seq(0x15)), seq(0x2f));

    let small = ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 65536 };
    let cuts = small.cut_points(&pseudo_random(1 << 20, 0x5110), f.keys.chunker_seed());
    let cuts_v2 = small.cut_points_by(&with_runs(), f.keys.chunker_seed(), silo_format::chunker::RULE_SKIP_RUNS);

    json!({
        "about": "silo format 1 test vectors; see format-spec/README.md. Hex is lowercase.",
        "inputs": {
            "master_secret": hex::encode(f.master.0),
            "repo_id": f.repo.to_hex(),
            "chunk_a_plaintext": hex::encode(&text),
            "chunk_b_plaintext": hex::encode(b"hello silo"),
            "chunk_c_plaintext": hex::encode(&copy_block),
            "chunk_d_plaintext": hex::encode(&text_d),
            "delta": "chunk_d is sealed as a delta (codec 0x03) of chunk_a with nonce 0x32; pack_v2 (id from 0x41) holds chunk_a (nonce 0x33) then chunk_d, trailer nonce 0x34; index_segment_v2 (id from 0x61, nonce 0x35) indexes it",
            "nonces": "envelope nonces are 12 consecutive bytes starting at 0x20 (chunk_a envelope), 0x21, 0x22 (pack chunks), 0x23 (trailer), 0x24 (segment), 0x25 (manifest), 0x26 (config), 0x27 (key file), 0x28 (policy), 0x29 (lease), 0x2a (session), 0x2b (damage mark), 0x2c (drill), 0x2d (chunk_c envelope, codec columns), 0x2e (version 2 key file), 0x2f (run record), 0x36 (version 2 config)",
            "ids": "pack id = 32 consecutive bytes from 0x40, segment 0x60, deleted pack 0x80, superseded segment 0xa0, snapshot 0xc0, key file 0xe0 (version 2: 0xe1), policy 0x11, lease holder 0x12, session 0x13, drill 0x14, run record 0x15; the damage mark's id is the snapshot id; the lease's AAD id is zero; key file salt 16 bytes from 0x30 (version 2: 0x31)",
            "password": "correct horse",
        },
        "keys": {
            "chunker_seed": f.keys.chunker_seed().to_string(),
            "chunk_a_id": chunk_a.to_hex(),
            "chunk_b_id": chunk_b.to_hex(),
            "chunk_c_id": chunk_c.to_hex(),
            "chunk_d_id": chunk_d.to_hex(),
            "chunk_a_object_key": hex::encode(env_key),
            "aad_chunk_a": hex::encode(aad.to_bytes()),
        },
        "envelope_zstd": hex::encode(&sealed_zstd),
        "envelope_stored": hex::encode(&sealed_stored),
        "envelope_columns": hex::encode(&sealed_columns),
        "columns_payload": hex::encode(&columns_payload),
        "envelope_columns_v2": hex::encode(&sealed_columns_v2),
        "columns_payload_v2": hex::encode(&columns_payload_v2),
        "envelope_delta": hex::encode(&sealed_delta),
        "pack_v2": hex::encode(&pack_v2_bytes),
        "index_segment_v2": hex::encode(&segment_v2_bytes),
        "pack": hex::encode(&pack_bytes),
        "index_segment": hex::encode(&segment_bytes),
        "snapshot_manifest": hex::encode(&manifest_bytes),
        "snapshot_manifest_v2": hex::encode(&manifest_v2_bytes),
        "config": hex::encode(&config_bytes),
        "config_v2": hex::encode(&config_v2_bytes),
        "key_file": hex::encode(keyfile.encode()),
        "key_file_v2": hex::encode(keyfile_v2.encode()),
        "policy": hex::encode(&policy_bytes),
        "lease": hex::encode(&lease_bytes),
        "session": hex::encode(&session_bytes),
        "damage_mark": hex::encode(&mark_bytes),
        "drill": hex::encode(&drill_bytes),
        "run_record": hex::encode(&run_bytes),
        "chunker": {
            "params": "min 4096, avg 16384, max 65536, normalization level 1, seed = chunker_seed",
            "input": "1 MiB of xorshift64* output, state 0x5110, little-endian words",
            "cut_points": cuts,
        },
        "chunker_v2": {
            "params": "as chunker, by rule 2 (no chunk ends inside a run of one byte)",
            "input": "the chunker input with the last 200 bytes of every 4096 replaced by spaces (0x20)",
            "cut_points": cuts_v2,
        },
    })
}

#[test]
fn code_matches_recorded_vectors() {
    let computed = compute();
    if std::env::var_os("SILO_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, serde_json::to_string_pretty(&computed).unwrap() + "\n").unwrap();
        return;
    }
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("format-spec/vectors.json")).unwrap();
    for key in [
        "keys",
        "envelope_zstd",
        "envelope_stored",
        "envelope_columns",
        "columns_payload",
        "envelope_columns_v2",
        "columns_payload_v2",
        "envelope_delta",
        "pack_v2",
        "index_segment_v2",
        "pack",
        "index_segment",
        "snapshot_manifest",
        "snapshot_manifest_v2",
        "config",
        "config_v2",
        "key_file",
        "key_file_v2",
        "chunker",
        "chunker_v2",
    ] {
        assert_eq!(computed[key], recorded[key], "format-spec/vectors.json: {key} differs from what the code produces");
    }
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

#[test]
fn recorded_vectors_decode() {
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let f = fixture();
    let text = unhex(&recorded["inputs"]["chunk_a_plaintext"]);
    let chunk_a = ObjectId::from_hex(recorded["keys"]["chunk_a_id"].as_str().unwrap()).unwrap();
    assert_eq!(f.keys.chunk_id(&text), chunk_a);
    let key = f.keys.object_key(ObjectKind::Chunk, &chunk_a);
    let aad = Aad::new(f.repo, ObjectKind::Chunk, chunk_a);
    for which in ["envelope_zstd", "envelope_stored"] {
        assert_eq!(envelope::open(&key, &aad, &unhex(&recorded[which]), 1 << 20).unwrap(), text);
    }
    let copy_block = unhex(&recorded["inputs"]["chunk_c_plaintext"]);
    let chunk_c = ObjectId::from_hex(recorded["keys"]["chunk_c_id"].as_str().unwrap()).unwrap();
    assert_eq!(f.keys.chunk_id(&copy_block), chunk_c);
    let sealed = unhex(&recorded["envelope_columns"]);
    let len = copy_block.len() as u32;
    assert_eq!(pack::open_chunk(&f.keys, f.repo, chunk_c, &sealed, len).unwrap(), copy_block);
    let payload = unhex(&recorded["columns_payload"]);
    assert_eq!(payload[0], silo_format::columns::COLUMNS_VERSION_1);
    assert_eq!(silo_format::columns::decode(&payload, copy_block.len()).unwrap(), copy_block);
    let sealed = unhex(&recorded["envelope_columns_v2"]);
    assert_eq!(pack::open_chunk(&f.keys, f.repo, chunk_c, &sealed, len).unwrap(), copy_block);
    let payload = unhex(&recorded["columns_payload_v2"]);
    assert_eq!(payload[0], silo_format::columns::COLUMNS_VERSION);
    assert_eq!(silo_format::columns::decode(&payload, copy_block.len()).unwrap(), copy_block);

    let pack_id = ObjectId(seq(0x40));
    let pack_bytes = unhex(&recorded["pack"]);
    let trailer = pack::open_pack(&f.keys, f.repo, pack_id, &pack_bytes).unwrap();
    assert_eq!(trailer.entries.len(), 2);
    let e = trailer.entries[0];
    let sealed = &pack_bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
    assert_eq!(pack::open_chunk(&f.keys, f.repo, e.chunk, sealed, e.raw_len).unwrap(), text);

    // The delta chunk decodes against chunk_a, from the envelope alone and from the version 2 pack.
    let text_d = unhex(&recorded["inputs"]["chunk_d_plaintext"]);
    let chunk_d = ObjectId::from_hex(recorded["keys"]["chunk_d_id"].as_str().unwrap()).unwrap();
    let len_d = text_d.len() as u32;
    let sealed = unhex(&recorded["envelope_delta"]);
    assert!(pack::open_chunk(&f.keys, f.repo, chunk_d, &sealed, len_d).is_err(), "a delta needs its base");
    let pack::ChunkParts::Delta { header, payload } =
        pack::open_chunk_parts(&f.keys, f.repo, chunk_d, &sealed, len_d).unwrap()
    else {
        panic!("envelope_delta is not a delta")
    };
    assert_eq!((header.base, header.depth), (chunk_a, 1));
    assert_eq!(pack::finish_delta(&f.keys, chunk_d, &payload, &text, len_d).unwrap(), text_d);
    let wrong = String::from_utf8(text.clone()).unwrap().replace("(1, 'silo')", "(1, 'oops')").into_bytes();
    assert!(pack::finish_delta(&f.keys, chunk_d, &payload, &wrong, len_d).is_err(), "the wrong base");
    let pack_v2 = unhex(&recorded["pack_v2"]);
    let t2 = pack::open_pack(&f.keys, f.repo, ObjectId(seq(0x41)), &pack_v2).unwrap();
    assert_eq!(t2.version, 2);
    assert_eq!(t2.deltas, vec![pack::DeltaRef { entry: 1, base: chunk_a, depth: 1 }]);
    let seg2 = IndexSegment::open(&f.keys, f.repo, ObjectId(seq(0x61)), &unhex(&recorded["index_segment_v2"])).unwrap();
    assert_eq!((seg2.version, &seg2.packs[0].deltas), (2, &t2.deltas));

    let seg = IndexSegment::open(&f.keys, f.repo, ObjectId(seq(0x60)), &unhex(&recorded["index_segment"])).unwrap();
    assert_eq!((seg.version, trailer.version), (1, 1), "segments and trailers without deltas stay version 1");
    assert_eq!(seg.packs[0].entries, trailer.entries);
    let m =
        SnapshotManifest::open(&f.keys, f.repo, ObjectId(seq(0xc0)), &unhex(&recorded["snapshot_manifest"])).unwrap();
    assert_eq!(m.name, "shop");
    assert_eq!(m.streams[0].chunks[0], chunk_a);
    assert_eq!((m.version, &m.streams[0].dump), (1, &None), "version 1 manifests stay readable");
    let m2 = SnapshotManifest::open(&f.keys, f.repo, ObjectId(seq(0xc0)), &unhex(&recorded["snapshot_manifest_v2"]))
        .unwrap();
    let dump = m2.streams[0].dump.as_ref().unwrap();
    assert_eq!((m2.version, dump.format, dump.tables.len()), (2, dump_format::PG_DUMP_PLAIN, 2));
    let cfg = config::decode(&unhex(&recorded["config"]), &f.keys).unwrap();
    assert_eq!(cfg.chunker, VECTOR_CHUNKER);
    assert_eq!((cfg.version, cfg.chunker_rule), (1, 1), "version 1 configs stay readable and cut by rule 1");
    let cfg_v2 = config::decode(&unhex(&recorded["config_v2"]), &f.keys).unwrap();
    assert_eq!((cfg_v2.version, cfg_v2.chunker_rule), (2, silo_format::chunker::RULE_SKIP_RUNS));
    let kf = KeyFile::decode(&unhex(&recorded["key_file"])).unwrap();
    assert_eq!(kf.unwrap(b"correct horse", ObjectId(seq(0xe0))).unwrap().0, f.master.0);
    assert!(kf.unwrap(b"wrong", ObjectId(seq(0xe0))).is_err());
    assert_eq!((kf.version, kf.user.as_str()), (1, ""), "version 1 key files stay readable");
    let kf2 = KeyFile::decode(&unhex(&recorded["key_file_v2"])).unwrap();
    assert_eq!((kf2.version, kf2.user.as_str(), kf2.host.as_str()), (2, "backup", "db1"));
    assert_eq!((kf.role, kf2.role), (silo_format::keyfile::ROLE_OWNER, silo_format::keyfile::ROLE_WRITER));
    assert_eq!(kf2.unwrap(b"battery staple", ObjectId(seq(0xe1))).unwrap().0, f.master.0);
    let mut renamed = kf2.clone();
    renamed.user = "mallory".into();
    assert!(renamed.unwrap(b"battery staple", ObjectId(seq(0xe1))).is_err(), "the user is authenticated");
    let p = StoredPolicy::open(&f.keys, f.repo, ObjectId(seq(0x11)), &unhex(&recorded["policy"])).unwrap();
    assert_eq!((p.name.as_str(), p.policy.daily), ("shop", Some(7)));
    assert_eq!(Lease::open(&f.keys, f.repo, ObjectId::ZERO, &unhex(&recorded["lease"])).unwrap().pid, 4242);
    assert_eq!(Session::open(&f.keys, f.repo, ObjectId(seq(0x13)), &unhex(&recorded["session"])).unwrap().pid, 4243);
    let mark = DamageMark::open(&f.keys, f.repo, ObjectId(seq(0xc0)), &unhex(&recorded["damage_mark"])).unwrap();
    assert_eq!(mark.snapshot, ObjectId(seq(0xc0)));
    let drill = DrillRecord::open(&f.keys, f.repo, ObjectId(seq(0x14)), &unhex(&recorded["drill"])).unwrap();
    assert_eq!((drill.command[0].as_str(), drill.ok), ("psql", true));
    let run = RunRecord::open(&f.keys, f.repo, ObjectId(seq(0x15)), &unhex(&recorded["run_record"])).unwrap();
    assert_eq!(run, run_record());
}

/// chunk_a with its second row changed (a balance, as a daily dump changes a row): a delta of chunk_a.
fn delta_plaintext(text: &[u8]) -> Vec<u8> {
    let s = String::from_utf8(text.to_vec()).expect("chunk_a is text");
    s.replacen("(2, 'silo')", "(2, 'SILO')", 1).into_bytes()
}

/// A failed `silo run` whose offsite copy failed: the run record of the vectors.
fn run_record() -> RunRecord {
    let step = |step: &str, outcome: &str, error: &str| RunStep {
        step: step.into(),
        outcome: outcome.into(),
        error: error.into(),
    };
    RunRecord {
        version: 1,
        kind: "run".into(),
        job: "shop".into(),
        host: "db1".into(),
        started: 9,
        finished: 10,
        bytes_read: 11,
        bytes_added: 12,
        snapshot: Some(ObjectId(seq(0xc0))),
        ok: false,
        exit_code: 3,
        error: "copy: offsite unreachable".into(),
        steps: vec![step("create", "ok", ""), step("copy", "failed", "offsite unreachable"), step("forget", "ok", "")],
    }
}

#[test]
fn run_records_are_validated() {
    let mut r = run_record();
    assert!(r.validate().is_ok());
    r.kind = "party".into();
    assert!(r.validate().is_err(), "unknown kind");
    let mut r = run_record();
    r.exit_code = 0;
    assert!(r.validate().is_err(), "a failed run with exit code 0");
    let mut r = run_record();
    r.finished = r.started - 1;
    assert!(r.validate().is_err(), "finishes before it starts");
    let mut r = run_record();
    r.steps[1].outcome = "meh".into();
    assert!(r.validate().is_err(), "unknown step outcome");
    let mut r = run_record();
    r.error = "x".repeat(silo_format::maintenance::RUN_ERROR_MAX + 1);
    assert!(r.validate().is_err(), "error line too long");
    let cut = silo_format::maintenance::run_error_line(&format!("{}\nsecond line", "é".repeat(600)));
    assert!(cut.len() <= silo_format::maintenance::RUN_ERROR_MAX && !cut.contains('\n'));
}

#[test]
fn tampering_any_byte_of_an_envelope_is_detected() {
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let f = fixture();
    let chunk_a = ObjectId::from_hex(recorded["keys"]["chunk_a_id"].as_str().unwrap()).unwrap();
    let key = f.keys.object_key(ObjectKind::Chunk, &chunk_a);
    let good = unhex(&recorded["envelope_zstd"]);
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        assert!(
            envelope::open(&key, &Aad::new(f.repo, ObjectKind::Chunk, chunk_a), &bad, 1 << 20).is_err(),
            "flip at {i} undetected"
        );
    }
    // The same bytes under another kind, id or repository fail too: objects cannot be swapped.
    assert!(envelope::open(&key, &Aad::new(f.repo, ObjectKind::Snapshot, chunk_a), &good, 1 << 20).is_err());
    assert!(envelope::open(&key, &Aad::new(RepoId([9; 16]), ObjectKind::Chunk, chunk_a), &good, 1 << 20).is_err());
}

/// A key file with the vectors' fields, to be rewrapped as version 1.
fn keyfile_v2_template(f: &Fixture, id: ObjectId, kdf: KdfParams) -> KeyFile {
    KeyFile::wrap(
        &f.master,
        b"correct horse",
        f.repo,
        id,
        kdf,
        seq(0x30),
        1_795_372_226_000_000,
        "db1".into(),
        String::new(),
        silo_format::keyfile::ROLE_OWNER,
        seq(0x27),
    )
    .expect("wrap")
}
