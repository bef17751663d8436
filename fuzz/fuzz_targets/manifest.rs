#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::Sealed;
use silo_format::manifest::SnapshotManifest;
use silo_format::{Keys, MasterSecret, ObjectId, RepoId};

fuzz_target!(|data: &[u8]| {
    // Versions 1 and 2 (with dump records): whatever decodes re-encodes to a body that decodes to the same.
    if let Ok(m) = SnapshotManifest::decode_body(data) {
        assert_eq!(SnapshotManifest::decode_body(&m.encode_body()).ok(), Some(m));
    }
    let keys = Keys::derive(&MasterSecret([7; 32]));
    let _ = SnapshotManifest::open(&keys, RepoId([1; 16]), ObjectId([2; 32]), data);
});
