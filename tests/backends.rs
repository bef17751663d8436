//! One conformance suite every backend passes (modelled on restic's internal/backend/test): the local
//! directory, the in-memory backend, and S3 on a Garage node (skipped with a printed reason when Garage is
//! absent; a failure under SILO_REQUIRE_SERVICES=1). What the repository code relies on is here: whole-object
//! puts that replace, create-if-absent, exact ranged reads, listing by prefix with sizes and stamps on the
//! backend's clock, deletes, and NotFound where an object is missing.

mod util;

use silo::backend::{Backend, BackendError, RangeRequest};
use silo::clock::{Clock, ManualClock, SystemClock};
use std::sync::Arc;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// The whole contract, against `b`, whose stamps come from around `clock`'s time.
async fn conformance(b: &dyn Backend, clock: &dyn Clock) {
    let what = b.location();
    // Missing objects.
    assert!(matches!(b.get("index/missing").await, Err(BackendError::NotFound { .. })), "{what}: get missing");
    assert!(b.get_range("index/missing", 0, 1).await.is_err(), "{what}: range of missing");
    assert!(b.list("index/").await.expect("list").is_empty(), "{what}: empty listing");
    match b.delete("index/missing").await {
        Ok(()) | Err(BackendError::NotFound { .. }) => {}
        Err(e) => panic!("{what}: deleting a missing object: {e}"),
    }

    // Whole objects, nested names, the empty object.
    let pack = format!("packs/ab/{}", "ab".repeat(32));
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let before = clock.now_micros();
    b.put(&pack, data.clone()).await.expect("put");
    b.put("index/empty", Vec::new()).await.expect("put empty");
    b.put("snapshots/one", b"first".to_vec()).await.expect("put");
    assert_eq!(b.get(&pack).await.expect("get"), data, "{what}: round trip");
    assert_eq!(b.get("index/empty").await.expect("get empty"), Vec::<u8>::new(), "{what}: empty object");

    // A put replaces the whole object.
    b.put("snapshots/one", b"second, longer".to_vec()).await.expect("replace");
    assert_eq!(b.get("snapshots/one").await.expect("get"), b"second, longer", "{what}: replace");

    // Create-if-absent: true once, then false without writing.
    assert!(b.put_if_absent("gc/lease", b"mine".to_vec()).await.expect("put_if_absent"), "{what}: first wins");
    assert!(!b.put_if_absent("gc/lease", b"theirs".to_vec()).await.expect("put_if_absent"), "{what}: second loses");
    assert_eq!(b.get("gc/lease").await.expect("get"), b"mine", "{what}: the loser wrote nothing");

    // Ranged reads: exact bytes, or an error past the end (never fewer bytes).
    assert_eq!(b.get_range(&pack, 0, 10).await.expect("range"), data[..10], "{what}: range at 0");
    assert_eq!(b.get_range(&pack, 99_990, 10).await.expect("range"), data[99_990..], "{what}: range at end");
    assert_eq!(b.get_range(&pack, 4096, 4096).await.expect("range"), data[4096..8192], "{what}: range inside");
    assert!(b.get_range(&pack, 99_995, 10).await.is_err(), "{what}: range past the end must fail");
    // Several at once: each answered in order as alone, a failed one failing only itself.
    let range = |name: &str, offset: u64, len: u64| RangeRequest { name: name.to_string(), offset, len };
    let answers = b
        .get_ranges(&[
            range(&pack, 4096, 100),
            range(&pack, 0, 10),
            range("packs/ab/missing", 0, 1),
            range(&pack, 99_995, 10),
            range(&pack, 99_990, 10),
        ])
        .await;
    assert_eq!(answers.len(), 5, "{what}: one answer per range");
    assert_eq!(answers[0].as_deref().expect("range"), &data[4096..4196], "{what}: first of several");
    assert_eq!(answers[1].as_deref().expect("range"), &data[..10], "{what}: an earlier range after a later one");
    assert!(matches!(answers[2], Err(BackendError::NotFound { .. })), "{what}: missing among several");
    assert!(answers[3].is_err(), "{what}: past the end among several must fail");
    assert_eq!(answers[4].as_deref().expect("range"), &data[99_990..], "{what}: a range after failed ones");

    // Listing: exactly the objects under the prefix, with their sizes and the backend's stamps.
    let listed = b.list("packs/").await.expect("list");
    assert_eq!(listed.len(), 1, "{what}: {listed:?}");
    assert_eq!((listed[0].name.as_str(), listed[0].size), (pack.as_str(), data.len() as u64), "{what}");
    let server = b.server_time().await.expect("server time").unwrap_or_else(|| clock.now_micros());
    let stamp = listed[0].modified;
    assert!(stamp >= before - 5_000_000 && stamp <= server + 5_000_000, "{what}: stamp {stamp} not near {server}");
    let mut names: Vec<String> = b.list("").await.expect("list all").into_iter().map(|o| o.name).collect();
    names.retain(|n| !n.starts_with("tmp/"));
    names.sort();
    assert_eq!(names, ["gc/lease", "index/empty", pack.as_str(), "snapshots/one"], "{what}: list everything");
    assert!(b.list("snap").await.expect("list").iter().all(|o| o.name.starts_with("snap")), "{what}");

    // Deletes.
    b.delete(&pack).await.expect("delete");
    assert!(matches!(b.get(&pack).await, Err(BackendError::NotFound { .. })), "{what}: deleted");
    assert!(b.list("packs/").await.expect("list").is_empty(), "{what}: deleted object still listed");
    b.delete("gc/lease").await.expect("delete lease");
    assert!(b.put_if_absent("gc/lease", b"again".to_vec()).await.expect("put_if_absent"), "{what}: after delete");
}

#[test]
fn the_local_backend_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = silo::backend::local::LocalBackend::new(dir.path().join("repo"));
    rt().block_on(conformance(&b, &SystemClock));
}

#[test]
fn the_memory_backend_conforms_and_stamps_by_its_clock() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000_000));
    let b = silo::backend::memory::MemoryBackend::new(clock.clone());
    rt().block_on(async {
        conformance(&b, clock.as_ref()).await;
        clock.advance(std::time::Duration::from_secs(3 * 3600));
        b.put("index/later", vec![1]).await.expect("put");
        let later = b.list("index/later").await.expect("list");
        assert_eq!(later[0].modified, 1_800_000_000_000_000 + 3 * 3600 * 1_000_000);
        assert_eq!(b.server_time().await.expect("time"), Some(clock.now_micros()));
    });
}

#[test]
fn the_s3_backend_conforms() {
    let Some(g) = util::garage::shared() else { return };
    let location = g.location(0, &util::random_name());
    let b = silo::backend::s3::S3Backend::connect(&location, &g.credentials()).expect("backend");
    rt().block_on(conformance(&b, &SystemClock));
}

#[test]
fn the_backends_the_binary_opens_conform_through_their_wrappers() {
    // `backend::open` wraps local in metering and S3 in retries + metering: the wrappers keep the contract.
    let dir = tempfile::tempdir().expect("tempdir");
    let b = silo::backend::open(&dir.path().join("repo").display().to_string()).expect("open");
    rt().block_on(conformance(b.as_ref(), &SystemClock));
}
