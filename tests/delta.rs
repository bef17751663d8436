//! Delta chunks through the real binary (format-spec/delta.md, design.md I16): a day of scattered row changes
//! is stored as small deltas of the previous snapshot and restores byte-exact; chains stay bounded; gc keeps
//! (and repacks) every base a live delta needs; a flipped byte in a base is found by check for every snapshot
//! that depends on it and stops their restores; copy and `--no-delta` work.

mod util;

use util::*;

/// A day's dump: `base` with scattered rows changed as a database changes them between two nightly dumps
/// (a balance here, a status there, a few lines a little longer), about one change per `every` bytes.
fn next_day(base: &[u8], day: u64, every: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(base.len() + base.len() / every * 4);
    let mut seed = 0xda7a_u64 ^ (day << 20);
    let mut next_change = every / 2;
    let mut line_start = true;
    for (i, &b) in base.iter().enumerate() {
        if line_start && i >= next_change {
            xorshift(&mut seed);
            // Digits change in place; one change in four makes the row longer.
            let digits = format!("{:06}", seed % 1_000_000);
            out.extend_from_slice(digits.as_bytes());
            if seed.is_multiple_of(4) {
                out.extend_from_slice(b"-x");
            }
            next_change = i + every / 2 + (seed as usize % every);
        }
        out.push(b);
        line_start = b == b'\n';
    }
    out
}

fn create_day(repo: &TestRepo, data: &[u8], extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "snapshot", "create", "--name", "db"];
    args.extend_from_slice(extra);
    let out = repo.ok(&args, data);
    serde_json::from_slice(&out.stdout).expect("json")
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn a_day_of_scattered_changes_is_stored_as_small_deltas_and_restores() {
    let repo = TestRepo::init();
    let day0 = dump(6 << 20, 1601);
    let first = create_day(&repo, &day0, &[]);
    assert_eq!(n(&first, "delta_chunks"), 0, "nothing to be a delta of yet");
    let day1 = next_day(&day0, 1, 8 << 10);
    let second = create_day(&repo, &day1, &[]);
    // Nearly every chunk changed, and nearly every one is a delta, each a small fraction of a whole chunk.
    assert!(n(&second, "new_chunks") * 10 >= n(&second, "chunks") * 9, "{second}");
    assert!(n(&second, "delta_chunks") * 10 >= n(&second, "new_chunks") * 9, "{second}");
    assert!(
        n(&second, "new_bytes_stored") * 8 < n(&first, "new_bytes_stored"),
        "day 1 stored {} bytes, day 0 {}",
        n(&second, "new_bytes_stored"),
        n(&first, "new_bytes_stored")
    );
    // The same day without deltas costs nearly a whole dump again.
    let plain = TestRepo::init();
    create_day(&plain, &day0, &[]);
    let whole = create_day(&plain, &day1, &["--no-delta"]);
    assert_eq!(n(&whole, "delta_chunks"), 0);
    assert!(n(&whole, "new_bytes_stored") > 5 * n(&second, "new_bytes_stored"), "{whole} vs {second}");
    // Both days restore byte-exact, from a cold cache too.
    assert_eq!(repo.restore(second["id"].as_str().unwrap()), day1);
    std::fs::remove_dir_all(repo.cache()).unwrap();
    assert_eq!(repo.restore(first["id"].as_str().unwrap()), day0);
    assert_eq!(repo.restore("db:latest"), day1);
    let stats = repo.json(&["stats"]);
    assert_eq!(n(&stats, "delta_chunks"), n(&second, "delta_chunks"), "{stats}");
    assert!(n(&stats, "delta_raw_bytes") > 10 * n(&stats, "delta_stored_bytes"), "{stats}");
    let check = repo.json(&["check", "--read-data"]);
    assert_eq!(check["damaged"].as_array().unwrap().len(), 0, "{check}");
    assert_eq!(n(&check, "bytes_verified"), n(&stats, "unique_bytes"), "every chunk, deltas decoded: {check}");
    assert_eq!(n(&check, "chunks_verified"), n(&stats, "chunks"), "{check} {stats}");
}

#[test]
fn chains_stay_within_the_bound_and_every_day_restores() {
    let repo = TestRepo::init();
    let mut days = vec![dump(2 << 20, 1602)];
    let mut stored = vec![n(&create_day(&repo, &days[0], &[]), "new_bytes_stored")];
    for day in 1..=16u64 {
        let next = next_day(days.last().unwrap(), day, 16 << 10);
        stored.push(n(&create_day(&repo, &next, &[]), "new_bytes_stored"));
        days.push(next);
    }
    // Past the depth limit chains re-anchor on an older base instead of storing chunks whole: later days cost
    // a few days of changes (more where an edit moved a chunk boundary), never a large part of the dump.
    let first_days = stored[1..=3].iter().copied().max().unwrap();
    let mut later: Vec<u64> = stored[4..].to_vec();
    later.sort_unstable();
    assert!(
        later[later.len() / 2] < 8 * first_days,
        "median day {} vs {first_days}: {stored:?}",
        later[later.len() / 2]
    );
    assert!(stored[4..].iter().all(|s| s * 4 < stored[0]), "a day stored a quarter of the dump: {stored:?}");
    eprintln!("bytes stored per day: {stored:?}");
    let stats = repo.json(&["stats"]);
    let depth = n(&stats, "delta_max_depth");
    assert!((2..=8).contains(&depth), "chains are as deep as the writer's limit allows, no deeper: {stats}");
    let ids = repo.snapshot_ids();
    assert_eq!(ids.len(), days.len());
    for (id, data) in ids.iter().zip(&days) {
        assert!(repo.restore(id) == *data, "snapshot {id} restores byte-exact");
    }
    let check = repo.json(&["check", "--read-data"]);
    assert_eq!(check["damaged"].as_array().unwrap().len(), 0, "{check}");
}

#[test]
fn gc_keeps_and_repacks_the_bases_live_deltas_need() {
    let repo = TestRepo::init_with(&["--pack-size", "1048576"]);
    let day0 = dump(4 << 20, 1603);
    let day1 = next_day(&day0, 1, 8 << 10);
    // Day 2 keeps the first half of the dump only: half of day 1's deltas die, the other half are bases.
    let day2 = next_day(&day1[..day1.len() / 2], 2, 8 << 10);
    for d in [&day0, &day1, &day2] {
        create_day(&repo, d, &[]);
    }
    repo.json(&["forget", "--name", "db", "--keep-last", "1"]);
    let gc = repo.json(&["gc", "--safety", "none"]);
    assert!(gc["packs_deleted"].as_u64().unwrap() + gc["packs_repacked"].as_u64().unwrap() > 0, "{gc}");
    assert_eq!(repo.restore("db:latest"), day2);
    std::fs::remove_dir_all(repo.cache()).unwrap();
    assert_eq!(repo.restore("db:latest"), day2, "from a cold cache: the index alone knows the bases");
    let check = repo.json(&["check", "--read-data"]);
    assert_eq!(check["damaged"].as_array().unwrap().len(), 0, "{check}");
    // A second gc finds nothing more to take: what is left is all needed.
    let again = repo.json(&["gc", "--safety", "none"]);
    assert_eq!(again["packs_deleted"].as_u64(), Some(0), "{again}");
    assert_eq!(repo.restore("db:latest"), day2);
}

#[test]
fn a_flipped_byte_in_a_base_is_damage_to_every_snapshot_that_depends_on_it() {
    let repo = TestRepo::init();
    let day0 = dump(1 << 20, 1604);
    let day1 = next_day(&day0, 1, 4 << 10);
    let day2 = next_day(&day1, 2, 4 << 10);
    let ids: Vec<String> =
        [&day0, &day1, &day2].iter().map(|d| create_day(&repo, d, &[])["id"].as_str().unwrap().to_string()).collect();
    // Day 0 is one pack; flip a byte inside its first chunk's envelope (a whole chunk, the base of day 1's
    // first chunk, itself the base of day 2's).
    let packs = repo.objects("packs");
    let first_pack = packs.iter().min_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap()).unwrap().clone();
    let mut bytes = std::fs::read(&first_pack).unwrap();
    bytes[12 + 200] ^= 0x10;
    std::fs::write(&first_pack, &bytes).unwrap();
    std::fs::remove_dir_all(repo.cache()).unwrap();

    let out = repo.run(&["--json", "check", "--read-data"], b"");
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let affected: Vec<&str> =
        report["affected_snapshots"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for id in &ids {
        assert!(affected.contains(&id.as_str()), "snapshot {id} depends on the flipped base: {report}");
    }
    let damaged = report["damaged"].as_array().unwrap();
    let named: Vec<&str> =
        damaged.iter().flat_map(|d| d["snapshots"].as_array().unwrap().iter().map(|s| s.as_str().unwrap())).collect();
    for id in &ids {
        assert!(named.contains(&id.as_str()), "the damaged pack's finding names {id}: {report}");
    }
    // Every dependent restore refuses (exit 5), naming the pack; none writes wrong data with exit 0.
    for id in &ids {
        let r = repo.run(&["snapshot", "restore", id], b"");
        assert_eq!(r.status.code(), Some(EXIT_DAMAGED), "restore {id}: {}", stderr(&r));
        assert!(stderr(&r).contains("pack"), "{}", stderr(&r));
    }
}

#[test]
fn copy_stores_deltas_in_the_destination_and_restores() {
    let source = TestRepo::init();
    let day0 = dump(3 << 20, 1605);
    let day1 = next_day(&day0, 1, 8 << 10);
    create_day(&source, &day0, &[]);
    create_day(&source, &day1, &[]);
    let to = TestRepo::init();
    let mut c = source.cmd(&["--json", "copy", "--to", to.location.as_str()]);
    c.env("SILO_TO_PASSWORD", PASSWORD);
    let out = run_with_input(c, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = to.snapshot_ids();
    assert_eq!(ids.len(), 2);
    assert_eq!(to.restore(&ids[0]), day0);
    assert_eq!(to.restore(&ids[1]), day1);
    let stats = to.json(&["stats"]);
    assert!(n(&stats, "delta_chunks") > 0, "the copy of day 1 is stored as deltas of day 0: {stats}");
    let check = to.json(&["check", "--read-data"]);
    assert_eq!(check["damaged"].as_array().unwrap().len(), 0, "{check}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (p, t) = (e.path(), to.join(e.file_name()));
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// Fault injection over chains: single bit flips at random places in the chunks of the first day's pack (the
/// bases of everything after it). In every case `check --read-data` fails, and the snapshots it names as
/// affected are exactly the ones a cold restore refuses; every other one restores byte-exact.
#[test]
fn every_flip_in_a_base_pack_names_exactly_the_snapshots_that_no_longer_restore() {
    let cases: usize = std::env::var("SILO_FAULT_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(200) / 25 + 2;
    let pristine = TestRepo::init();
    let day0 = dump(1 << 20, 1606);
    let day1 = next_day(&day0, 1, 4 << 10);
    let day2 = next_day(&day1, 2, 4 << 10);
    let days = [&day0, &day1, &day2];
    let ids: Vec<String> =
        days.iter().map(|d| create_day(&pristine, d, &[])["id"].as_str().unwrap().to_string()).collect();
    let first_pack = pristine
        .objects("packs")
        .into_iter()
        .min_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap();
    let bytes = std::fs::read(&first_pack).unwrap();
    let footer = &bytes[bytes.len() - 8..];
    let trailer_len = u32::from_le_bytes(footer[..4].try_into().unwrap()) as usize;
    let chunks_end = bytes.len() - 8 - trailer_len;
    let mut seed = 0xf11b_u64;
    let mut spread = 0;
    for case in 0..cases {
        xorshift(&mut seed);
        let offset = 12 + (seed as usize) % (chunks_end - 12);
        let copy = TestRepo::local_in(tempfile::tempdir().unwrap());
        copy_dir(&pristine.path(), &copy.path());
        let target = copy.path().join(first_pack.strip_prefix(pristine.path()).unwrap());
        let mut flipped = bytes.clone();
        flipped[offset] ^= 1 << ((seed >> 40) % 8);
        std::fs::write(&target, &flipped).unwrap();

        let out = copy.run(&["--json", "check", "--read-data"], b"");
        assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "case {case} (byte {offset}): {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let affected: Vec<String> =
            report["affected_snapshots"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        assert!(affected.contains(&ids[0]), "case {case}: the flipped snapshot itself: {report}");
        for (id, data) in ids.iter().zip(days) {
            let r = copy.run(&["snapshot", "restore", id], b"");
            if affected.contains(id) {
                assert_eq!(
                    r.status.code(),
                    Some(EXIT_DAMAGED),
                    "case {case}: check named {id}, restore: {}",
                    stderr(&r)
                );
            } else {
                assert!(r.status.success() && r.stdout == **data, "case {case}: {id} not named but does not restore");
            }
        }
        if affected.len() > 1 {
            spread += 1;
        }
    }
    assert!(spread > 0, "at least one flipped base took later snapshots with it");
    eprintln!("{cases} flips in the base pack: all found; {spread} took dependent snapshots with them");
}

/// `repair index` rebuilds the index from pack trailers alone: the delta references come back with it, so
/// restore decodes chains and gc still keeps bases.
#[test]
fn repair_index_brings_the_delta_references_back() {
    let repo = TestRepo::init();
    let day0 = dump(2 << 20, 1607);
    let day1 = next_day(&day0, 1, 8 << 10);
    create_day(&repo, &day0, &[]);
    create_day(&repo, &day1, &[]);
    for segment in repo.objects("index") {
        std::fs::remove_file(segment).unwrap();
    }
    std::fs::remove_dir_all(repo.cache()).unwrap();
    let repaired = repo.json(&["repair", "index"]);
    assert!(n(&repaired, "packs_indexed") >= 2, "{repaired}");
    assert_eq!(repo.restore("db:latest"), day1);
    repo.json(&["forget", "--name", "db", "--keep-last", "1"]);
    repo.json(&["gc", "--safety", "none"]);
    assert_eq!(repo.restore("db:latest"), day1, "gc kept day 0's chunks: they are day 1's bases");
    let stats = repo.json(&["stats"]);
    assert!(n(&stats, "delta_chunks") > 0, "{stats}");
}
