//! `snapshot create` / `restore` / `list` / `show` through the real binary: byte-exact round trips, dedup,
//! all-or-nothing commits, selectors.

mod util;

use std::process::Stdio;
use util::*;

#[test]
fn stdin_round_trips_are_byte_exact_at_every_size() {
    let repo = TestRepo::init();
    // Default chunker: min 64 KiB, max 1 MiB. Sizes: empty, one byte, one chunk, exactly max, many chunks.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one-byte", vec![0x42]),
        ("one-chunk", dump(10_000, 1)),
        ("max-chunk", vec![7u8; 1 << 20]),
        ("many-chunks", dump(6 << 20, 2)),
    ];
    for (name, data) in &cases {
        // An empty stream is refused unless asked for (tests/reliability.rs); here it is asked for.
        let out = repo.ok(&["--json", "snapshot", "create", "--name", name, "--allow-empty"], data);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
        assert_eq!(report["bytes"].as_u64(), Some(data.len() as u64), "{name}");
        let restored = repo.restore(&format!("{name}:latest"));
        assert!(restored == *data, "{name}: restored {} bytes, stored {}", restored.len(), data.len());
    }
    let report = repo.create_json("many-again", &cases[4].1);
    assert!(report["chunks"].as_u64().unwrap() > 5, "6 MiB should cut into several chunks: {report}");
    // NAME:latest is chosen from manifest headers (chunk lists dropped) and then loaded whole; a listing
    // shows every chunk too.
    let show = repo.json(&["snapshot", "show", "many-again:latest"]);
    assert_eq!(show["streams"][0]["chunks"], report["chunks"], "{show}");
    let listed = repo.json(&["snapshot", "list"]);
    let entry = listed.as_array().and_then(|l| l.iter().find(|s| s["name"] == "many-again")).expect("listed");
    assert_eq!(entry["streams"][0]["chunks"], report["chunks"], "{entry}");
    let show = repo.json(&["snapshot", "show", "one-byte:latest"]);
    assert_eq!(show["streams"][0]["blake3"].as_str(), Some(blake3::hash(&[0x42]).to_hex().as_str()));
    assert_eq!(show["streams"][0]["command"], serde_json::Value::Null);
}

/// Standard input redirected from a file is cut through memory mappings (src/mapped.rs): the same chunks
/// as through a pipe, starting at the descriptor's offset, and leaving it at the end as read(2) would.
#[test]
fn stdin_from_a_file_cuts_like_a_pipe_from_its_offset() {
    use std::io::{Seek, SeekFrom, Write};
    let repo = TestRepo::init();
    let data = dump(20 << 20, 7);
    let piped = repo.create_json("piped", &data);
    let mut file = tempfile::tempfile().expect("temp file");
    file.write_all(b"skipped prefix\n").expect("write");
    file.write_all(&data).expect("write");
    for skip in [0u64, 15] {
        file.seek(SeekFrom::Start(skip)).expect("seek");
        let out = repo
            .cmd(&["--json", "snapshot", "create", "--name", "mapped"])
            .stdin(Stdio::from(file.try_clone().expect("clone")))
            .output()
            .expect("run silo");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
        let position = file.stream_position().expect("offset");
        assert_eq!(position, 15 + data.len() as u64, "silo leaves the shared offset at the end");
        let restored = repo.restore("mapped:latest");
        if skip == 0 {
            assert!(restored.starts_with(b"skipped prefix\n") && restored[15..] == data[..], "whole file restored");
        } else {
            assert!(restored == data, "read from the offset on: restored {} bytes", restored.len());
            assert_eq!(report["chunks"], piped["chunks"], "same cuts as through a pipe");
            assert_eq!(report["new_chunks"].as_u64(), Some(0), "a file and a pipe of the same bytes deduplicate");
        }
    }
}

#[test]
fn command_output_round_trips_and_records_the_command() {
    let repo = TestRepo::init();
    let data = dump(3 << 20, 3);
    let file = repo.dir.path().join("dump.sql");
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();
    let out =
        repo.ok(&["snapshot", "create", "--name", "shop", "--tag", "nightly", "--host", "db1", "--", "cat", file], b"");
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 64);
    assert_eq!(repo.restore(&id[..10]), data);
    let show = repo.json(&["snapshot", "show", &id]);
    assert_eq!(show["name"], "shop");
    assert_eq!(show["host"], "db1");
    assert_eq!(show["tags"][0], "nightly");
    assert_eq!(show["streams"][0]["command"][0], "cat");
    assert_eq!(show["streams"][0]["exit_status"], 0);
    assert_eq!(show["bytes"].as_u64(), Some(data.len() as u64));
}

#[test]
fn identical_input_stores_no_new_chunks() {
    let repo = TestRepo::init();
    let data = dump(8 << 20, 4);
    let first = repo.create_json("db", &data);
    assert!(first["new_chunks"].as_u64().unwrap() > 0);
    let stored_before = repo.json(&["stats"])["stored_bytes"].as_u64().unwrap();
    let second = repo.create_json("db", &data);
    assert_eq!(second["new_chunks"].as_u64(), Some(0), "{second}");
    assert_eq!(second["new_bytes_stored"].as_u64(), Some(0), "{second}");
    assert_eq!(second["chunks"], first["chunks"]);
    let stats = repo.json(&["stats"]);
    assert_eq!(stats["stored_bytes"].as_u64(), Some(stored_before), "no pack may be added for identical input");
    assert_eq!(stats["snapshots"].as_u64(), Some(2));
    assert_eq!(stats["logical_bytes"].as_u64(), Some(2 * data.len() as u64));
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 1.9, "{stats}");
    assert_eq!(repo.restore("db:latest"), data);
    assert_eq!(repo.restore("db:latest~1"), data);
}

#[test]
fn shifted_input_reuses_most_chunks() {
    let repo = TestRepo::init();
    let data = dump(16 << 20, 5);
    repo.create_json("db", &data);
    let mut shifted = b"-- a new header line inserted at the very front of the dump\n".to_vec();
    shifted.extend_from_slice(&data);
    let report = repo.create_json("db", &shifted);
    let (chunks, new) = (report["chunks"].as_u64().unwrap(), report["new_chunks"].as_u64().unwrap());
    assert!(chunks >= 20, "{report}");
    assert!(new <= 2, "inserting at the front must only change the first chunk(s): {new} of {chunks} new");
    assert_eq!(repo.restore("db:latest"), shifted);
}

/// A create guided by the previous snapshot of its name (where the stream repeats it, each chunk is
/// confirmed by its id instead of searched for) cuts exactly where an unguided create cuts: the same stream
/// stored afterwards under a name with no history adds no chunk, for a stream changed in the middle, one
/// grown past the old end (whose last chunk its end had cut short) and one cut short.
#[test]
fn guided_cuts_are_the_searched_cuts() {
    let repo = TestRepo::init();
    let data = dump(12 << 20, 6);
    repo.create_json("db", &data);
    let mut changed = data.clone();
    changed.splice(5_000_000..5_000_100, b"-- rows changed here\n".iter().copied());
    let mut longer = data.clone();
    longer.extend_from_slice(&dump(1 << 20, 7));
    let shorter = data[..9_000_000].to_vec();
    for (i, version) in [changed, longer, shorter].iter().enumerate() {
        let mut create = repo.cmd(&["snapshot", "create", "--name", "db"]);
        create.env("SILO_LOG", "silo=debug");
        let out = run_with_input(create, version);
        assert!(out.status.success(), "{}", stderr(&out));
        let log = stderr(&out);
        let confirmed: u64 = log
            .split("chunking guided by the previous snapshot: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no guide log line: {log}"));
        assert!(confirmed > 100, "version {i}: most chunks confirmed by id, not searched: {log}");
        let searched = repo.create_json(&format!("fresh{i}"), version);
        assert_eq!(searched["new_chunks"].as_u64(), Some(0), "version {i}: {searched}");
        assert_eq!(repo.restore("db:latest"), *version);
    }
}

/// A plain dump's COPY rows with a sequential key are stored with the key column as differences (columns
/// payload version 2): a million rows of `key, group, blank filler` take 114-136 KB (mostly each chunk's
/// framing; 2 chunker seeds in 24 gave 194 and 203 KB, and one CI run 228 KB), where with the key column as
/// text (version 1) they took 726 KB. Restored byte for byte, together with a table whose keys have leading
/// zeros (text columns, version 1).
#[test]
fn sequential_keys_are_stored_as_differences() {
    let repo = TestRepo::init();
    let rows = 1_000_000u64;
    let mut data = b"COPY public.accounts (aid, bid, filler) FROM stdin;\n".to_vec();
    for aid in 1..=rows {
        data.extend_from_slice(format!("{aid}\t{}\t{}\n", aid / 100_000, " ".repeat(40)).as_bytes());
    }
    data.extend_from_slice(b"\\.\n\nCOPY public.codes (code, name) FROM stdin;\n");
    for code in 0..50_000u64 {
        data.extend_from_slice(format!("{code:06}\tname {}\n", code % 13).as_bytes());
    }
    data.extend_from_slice(b"\\.\n");
    let report = repo.create_json("db", &data);
    let stored = report["new_bytes_stored"].as_u64().expect("stored bytes");
    assert!(
        stored < rows * 2 / 5,
        "{stored} bytes stored for {rows} rows: the key column was not stored as differences"
    );
    assert_eq!(repo.restore("db:latest"), data);
}

#[test]
fn failing_command_commits_nothing_and_shows_its_stderr() {
    let repo = TestRepo::init();
    let before = repo.objects("snapshots");
    let out = repo.run(
        &[
            "snapshot",
            "create",
            "--name",
            "shop",
            "--",
            "sh",
            "-c",
            "head -c 3000000 /dev/zero; echo 'pg_dump: connection lost' >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(EXIT_COMMAND_FAILED), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("exited with status 3"), "{err}");
    assert!(err.contains("connection lost"), "{err}");
    assert!(err.contains("no snapshot was written"), "{err}");
    assert_eq!(repo.objects("snapshots"), before);

    let killed = repo.run(&["snapshot", "create", "--name", "shop", "--", "sh", "-c", "echo partial; kill -9 $$"], b"");
    assert_eq!(killed.status.code(), Some(EXIT_COMMAND_FAILED));
    assert!(stderr(&killed).contains("killed by signal 9"), "{}", stderr(&killed));

    let missing = repo.run(&["snapshot", "create", "--name", "shop", "--", "/nonexistent/pg_dump"], b"");
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("/nonexistent/pg_dump"), "{}", stderr(&missing));
    assert_eq!(repo.snapshot_count(), 0);
}

#[test]
fn one_gib_stream_round_trips() {
    let repo = TestRepo::init();
    const LEN: u64 = 1 << 30;
    let mut child = repo
        .cmd(&["--json", "snapshot", "create", "--name", "big"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sent = feed_generated(&mut child, LEN, 6).join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut restore =
        repo.cmd(&["snapshot", "restore", "big:latest"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (len, hash) = hash_reader(restore.stdout.take().unwrap());
    let status = restore.wait().unwrap();
    assert!(status.success());
    assert_eq!(len, LEN);
    assert_eq!(hash, sent);
    let show = repo.json(&["snapshot", "show", "big:latest"]);
    assert_eq!(show["streams"][0]["blake3"].as_str(), Some(hex::encode(sent).as_str()));
}

#[test]
fn selectors_resolve_and_bad_ones_fail_clearly() {
    let repo = TestRepo::init();
    let a = repo.create("shop", b"monday");
    let _b = repo.create("shop", b"tuesday");
    repo.create("crm", b"other");
    assert_eq!(repo.restore("shop:latest"), b"tuesday");
    assert_eq!(repo.restore("shop:latest~1"), b"monday");
    assert_eq!(repo.restore(&a), b"monday");
    assert_eq!(repo.restore(&format!("{}:data", &a[..12])), b"monday");
    let list = repo.json(&["snapshot", "list", "--name", "shop"]);
    assert_eq!(list.as_array().unwrap().len(), 2);

    for (spec, needle) in [
        ("shop:latest~2", "no snapshot matches"),
        ("nope:latest", "no snapshot matches"),
        ("shop", "hexadecimal"),
        ("ffffffffff", "no snapshot matches"),
    ] {
        let out = repo.run(&["snapshot", "restore", spec], b"");
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{spec}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{spec}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let out = repo.run(&["snapshot", "restore", &format!("{a}:nostream")], b"");
    assert!(stderr(&out).contains("has no stream"), "{}", stderr(&out));
    let bad_name = repo.run(&["snapshot", "create", "--name", "a:b"], b"x");
    assert_eq!(bad_name.status.code(), Some(EXIT_USAGE));
}

/// A day's dump keeps most chunks in the previous day's packs, its changes in new ones: restore reads
/// both in groups (one ranged read per stretch of a pack) instead of a read per unchanged run.
#[test]
fn restore_of_a_changed_stream_takes_few_ranged_reads() {
    let repo = TestRepo::init();
    let day0 = dump(16 << 20, 3);
    let mut day1 = day0.clone();
    for i in 0..40 {
        let at = i * (day1.len() / 40) + 12_345;
        day1[at..at + 8].copy_from_slice(b"CHANGED!");
    }
    repo.create("db", &day0);
    let changed = repo.create_json("db", &day1);
    assert!(changed["new_chunks"].as_u64().unwrap() >= 30, "the changes land in many chunks: {changed}");
    let target = repo.dir.path().join("day1.sql");
    let report = repo.json(&["snapshot", "restore", "db:latest", "--output", target.to_str().unwrap()]);
    assert!(std::fs::read(&target).unwrap() == day1);
    let ranged = report["requests"]["get_range"].as_u64().unwrap();
    // 16 MiB in groups of 4 MiB, each reading a stretch of day 0's pack and one of day 1's.
    assert!(ranged <= 12, "{ranged} ranged reads for 40 scattered changes: {report}");
}

#[test]
fn restore_to_file_is_atomic() {
    let repo = TestRepo::init();
    let data = dump(2 << 20, 7);
    repo.create("db", &data);
    let target = repo.dir.path().join("out.sql");
    repo.ok(&["snapshot", "restore", "db:latest", "--output", target.to_str().unwrap()], b"");
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(!repo.dir.path().join("out.sql.partial").exists());
}

#[test]
fn human_list_and_show_name_the_snapshot() {
    let repo = TestRepo::init();
    let id = repo.create("shop", b"data");
    let list = String::from_utf8(repo.ok(&["snapshot", "list"], b"").stdout).unwrap();
    assert!(list.contains(&id[..8]) && list.contains("shop") && list.contains("1 snapshots"), "{list}");
    let show = String::from_utf8(repo.ok(&["snapshot", "show", &id], b"").stdout).unwrap();
    assert!(show.contains(&id) && show.contains(&blake3::hash(b"data").to_hex().to_string()), "{show}");
    let stats = String::from_utf8(repo.ok(&["stats"], b"").stdout).unwrap();
    assert!(stats.contains("dedup ratio"), "{stats}");
}

/// `snapshot restore` and `create` open an existing index cache on a thread of their own while the
/// password's key is derived (src/repo/mod.rs `open_with_cache`). A wrong password still fails as it did
/// (exit 4, nothing written, no cache made, no crash from the thread), and a restore while a writer holds
/// the shared cache opens a private one and restores the same bytes.
#[test]
fn the_cache_opened_beside_the_key_derivation_changes_no_outcome() {
    use std::io::Write;
    let repo = TestRepo::init();
    // Before the password is checked, only a cache silo made before is opened: a wrong password creates none.
    let mut wrong = repo.cmd(&["snapshot", "restore", "db:latest"]);
    wrong.env("SILO_PASSWORD", "not the password");
    let out = run_with_input(wrong, b"");
    assert_eq!(out.status.code(), Some(EXIT_AUTH), "{}", stderr(&out));
    assert!(!repo.cache().exists(), "a wrong password made a cache: {:?}", std::fs::read_dir(repo.cache()).ok());
    let data = dump(3 << 20, 41);
    repo.create("db", &data);
    let mut wrong = repo.cmd(&["snapshot", "restore", "db:latest"]);
    wrong.env("SILO_PASSWORD", "not the password");
    let out = run_with_input(wrong, b"");
    assert_eq!(out.status.code(), Some(EXIT_AUTH), "{}", stderr(&out));
    assert!(out.stdout.is_empty() && stderr(&out).contains("wrong password"), "{}", stderr(&out));

    // The writer reads its standard input only once the repository and its cache are open: once it has
    // taken 8 MiB of it (more than a pipe holds), it holds the shared cache.
    let mut writer = repo.cmd(&["snapshot", "create", "--name", "other"]);
    writer.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = writer.spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let first = dump(8 << 20, 42);
    input.write_all(&first).expect("the writer reads its input");
    let mut restore = repo.cmd(&["snapshot", "restore", "db:latest"]);
    restore.env("SILO_LOG", "info");
    let out = run_with_input(restore, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "restored {} bytes of {}", out.stdout.len(), data.len());
    assert!(stderr(&out).contains("using a private temporary cache"), "the writer held the cache: {}", stderr(&out));
    drop(input);
    let written = child.wait_with_output().expect("writer");
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(repo.restore("other:latest") == first, "the writer's snapshot restores");
}
