#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::Sealed;
use silo_format::manifest::SnapshotManifest;
use silo_format::{Keys, MasterSecret, ObjectId, RepoId};

fuzz_target!(|data: &[u8]| {
    let _ = SnapshotManifest::decode_body(data);
    let keys = Keys::derive(&MasterSecret([7; 32]));
    let _ = SnapshotManifest::open(&keys, RepoId([1; 16]), ObjectId([2; 32]), data);
});
