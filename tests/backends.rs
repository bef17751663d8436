//! One conformance suite every backend passes (modelled on restic's internal/backend/test/suite.go): the
//! local directory, the in-memory backend, the wrapped backends the binary opens, and S3 on a Garage node
//! (skipped with a printed reason when Garage is absent; a failure under SILO_REQUIRE_SERVICES=1). Each
//! contract the repository code relies on (backend/mod.rs) is a function here, and `conformance!` makes it a
//! named test per backend, on a fresh store of its own: `local::a_put_replaces_the_whole_object` fails alone.

mod util;

use silo::backend::{BackendError, RangeRequest, ReadBackend, WriteBackend};
use silo::clock::{Clock, ManualClock, SystemClock};
use std::sync::Arc;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// A store under test and the clock its stamps come from around; the directory lives as long as it.
struct Store {
    backend: Arc<dyn WriteBackend>,
    clock: Arc<dyn Clock>,
    _dir: Option<tempfile::TempDir>,
}

fn local() -> Option<Store> {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Arc::new(silo::backend::local::LocalBackend::new(dir.path().join("repo")));
    Some(Store { backend, clock: Arc::new(SystemClock), _dir: Some(dir) })
}

fn memory() -> Option<Store> {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000_000));
    let backend = Arc::new(silo::backend::memory::MemoryBackend::new(clock.clone()));
    Some(Store { backend, clock, _dir: None })
}

/// `backend::open` wraps a local directory in metering (and S3 in retries + metering): the wrappers keep
/// the contract.
fn opened() -> Option<Store> {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = silo::backend::open(&dir.path().join("repo").display().to_string()).expect("open");
    Some(Store { backend, clock: Arc::new(SystemClock), _dir: Some(dir) })
}

fn s3() -> Option<Store> {
    let g = util::garage::shared()?;
    let location = g.location(0, &util::random_name());
    let backend = Arc::new(silo::backend::s3::S3Backend::connect(&location, &g.credentials()).expect("backend"));
    Some(Store { backend, clock: Arc::new(SystemClock), _dir: None })
}

const PACK: &str = "packs/ab/abababababababababababababababababababababababababababababababab";

fn pack_bytes() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect()
}

/// A missing object is `NotFound` to a get, an error to a ranged read, absent from a listing; deleting
/// it is fine or `NotFound`.
async fn a_missing_object_is_not_found(b: &dyn WriteBackend, _: &dyn Clock) {
    assert!(matches!(b.get("index/missing").await, Err(BackendError::NotFound { .. })));
    assert!(b.get_range("index/missing", 0, 1).await.is_err());
    assert!(b.list("index/").await.expect("list").is_empty());
    match b.delete("index/missing").await {
        Ok(()) | Err(BackendError::NotFound { .. }) => {}
        Err(e) => panic!("deleting a missing object: {e}"),
    }
}

/// Whole objects round-trip, under nested names, the empty object too.
async fn whole_objects_round_trip(b: &dyn WriteBackend, _: &dyn Clock) {
    b.put(PACK, pack_bytes()).await.expect("put");
    b.put("index/empty", Vec::new()).await.expect("put empty");
    assert_eq!(b.get(PACK).await.expect("get"), pack_bytes());
    assert_eq!(b.get("index/empty").await.expect("get empty"), Vec::<u8>::new());
}

/// A put replaces the whole object (a longer and a shorter one).
async fn a_put_replaces_the_whole_object(b: &dyn WriteBackend, _: &dyn Clock) {
    b.put("snapshots/one", b"first".to_vec()).await.expect("put");
    b.put("snapshots/one", b"second, longer".to_vec()).await.expect("replace");
    assert_eq!(b.get("snapshots/one").await.expect("get"), b"second, longer");
    b.put("snapshots/one", b"3".to_vec()).await.expect("replace");
    assert_eq!(b.get("snapshots/one").await.expect("get"), b"3");
}

/// Create-if-absent: true once, then false without writing; true again after a delete.
async fn create_if_absent_writes_once(b: &dyn WriteBackend, _: &dyn Clock) {
    assert!(b.put_if_absent("gc/lease", b"mine".to_vec()).await.expect("put_if_absent"), "first wins");
    assert!(!b.put_if_absent("gc/lease", b"theirs".to_vec()).await.expect("put_if_absent"), "second loses");
    assert_eq!(b.get("gc/lease").await.expect("get"), b"mine", "the loser wrote nothing");
    b.delete("gc/lease").await.expect("delete lease");
    assert!(b.put_if_absent("gc/lease", b"again".to_vec()).await.expect("put_if_absent"), "after a delete");
}

/// A ranged read returns exactly the bytes asked for, or an error past the end (never fewer bytes).
async fn a_ranged_read_is_exact_or_an_error(b: &dyn WriteBackend, _: &dyn Clock) {
    let data = pack_bytes();
    b.put(PACK, data.clone()).await.expect("put");
    assert_eq!(b.get_range(PACK, 0, 10).await.expect("range"), data[..10], "range at 0");
    assert_eq!(b.get_range(PACK, 99_990, 10).await.expect("range"), data[99_990..], "range at the end");
    assert_eq!(b.get_range(PACK, 4096, 4096).await.expect("range"), data[4096..8192], "range inside");
    assert!(b.get_range(PACK, 99_995, 10).await.is_err(), "a range past the end must fail");
}

/// Several ranges at once: each answered in order as alone, a failed one failing only itself.
async fn several_ranges_are_answered_each_as_alone(b: &dyn WriteBackend, _: &dyn Clock) {
    let data = pack_bytes();
    b.put(PACK, data.clone()).await.expect("put");
    let range = |name: &str, offset: u64, len: u64| RangeRequest { name: name.to_string(), offset, len };
    let answers = b
        .get_ranges(&[
            range(PACK, 4096, 100),
            range(PACK, 0, 10),
            range("packs/ab/missing", 0, 1),
            range(PACK, 99_995, 10),
            range(PACK, 99_990, 10),
        ])
        .await;
    assert_eq!(answers.len(), 5, "one answer per range");
    assert_eq!(answers[0].as_deref().expect("range"), &data[4096..4196], "first of several");
    assert_eq!(answers[1].as_deref().expect("range"), &data[..10], "an earlier range after a later one");
    assert!(matches!(answers[2], Err(BackendError::NotFound { .. })), "missing among several");
    assert!(answers[3].is_err(), "past the end among several must fail");
    assert_eq!(answers[4].as_deref().expect("range"), &data[99_990..], "a range after failed ones");
}

/// A listing holds exactly the objects under the prefix, with their sizes and stamps by the backend's
/// clock.
async fn a_listing_holds_the_objects_under_the_prefix(b: &dyn WriteBackend, clock: &dyn Clock) {
    let before = clock.now_micros();
    b.put(PACK, pack_bytes()).await.expect("put");
    b.put("index/empty", Vec::new()).await.expect("put");
    b.put("snapshots/one", b"first".to_vec()).await.expect("put");
    let listed = b.list("packs/").await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].name.as_str(), listed[0].size), (PACK, 100_000));
    let server = b.server_time().await.expect("server time").unwrap_or_else(|| clock.now_micros());
    let stamp = listed[0].modified;
    assert!(stamp >= before - 5_000_000 && stamp <= server + 5_000_000, "stamp {stamp} not near {server}");
    let mut names: Vec<String> = b.list("").await.expect("list all").into_iter().map(|o| o.name).collect();
    names.retain(|n| !n.starts_with("tmp/"));
    names.sort();
    assert_eq!(names, ["index/empty", PACK, "snapshots/one"], "list everything");
    assert!(b.list("snap").await.expect("list").iter().all(|o| o.name.starts_with("snap")));
}

/// A deleted object is gone from gets and listings.
async fn a_deleted_object_is_gone(b: &dyn WriteBackend, _: &dyn Clock) {
    b.put(PACK, pack_bytes()).await.expect("put");
    b.delete(PACK).await.expect("delete");
    assert!(matches!(b.get(PACK).await, Err(BackendError::NotFound { .. })), "deleted");
    assert!(b.list("packs/").await.expect("list").is_empty(), "a deleted object is still listed");
}

/// Runs `contract` on a fresh store from `store`, or says why not (no Garage: util::garage::shared prints
/// the reason and fails under SILO_REQUIRE_SERVICES=1).
fn run<F>(store: fn() -> Option<Store>, contract: F)
where
    F: for<'a> FnOnce(&'a dyn WriteBackend, &'a dyn Clock) -> futures::future::BoxFuture<'a, ()>,
{
    let Some(s) = store() else { return };
    rt().block_on(contract(s.backend.as_ref(), s.clock.as_ref()));
}

macro_rules! conformance {
    ($backend:ident: $($contract:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $contract() {
                    super::run(super::$backend, |b, c| Box::pin(super::$contract(b, c)));
                }
            )*
        }
    };
}

macro_rules! every_contract {
    ($($backend:ident),*) => {
        $(
            conformance!($backend:
                a_missing_object_is_not_found,
                whole_objects_round_trip,
                a_put_replaces_the_whole_object,
                create_if_absent_writes_once,
                a_ranged_read_is_exact_or_an_error,
                several_ranges_are_answered_each_as_alone,
                a_listing_holds_the_objects_under_the_prefix,
                a_deleted_object_is_gone,
            );
        )*
    };
}

every_contract!(local, memory, opened, s3);

#[test]
fn the_memory_backend_stamps_by_its_clock() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000_000));
    let b = silo::backend::memory::MemoryBackend::new(clock.clone());
    rt().block_on(async {
        clock.advance(std::time::Duration::from_secs(3 * 3600));
        b.put("index/later", vec![1]).await.expect("put");
        let later = b.list("index/later").await.expect("list");
        assert_eq!(later[0].modified, 1_800_000_000_000_000 + 3 * 3600 * 1_000_000);
        assert_eq!(b.server_time().await.expect("time"), Some(clock.now_micros()));
    });
}
