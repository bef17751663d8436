#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::Sealed;
use silo_format::index::IndexSegment;
use silo_format::{Keys, MasterSecret, ObjectId, RepoId};

fuzz_target!(|data: &[u8]| {
    let _ = IndexSegment::decode_body(data);
    let keys = Keys::derive(&MasterSecret([7; 32]));
    let _ = IndexSegment::open(&keys, RepoId([1; 16]), ObjectId([2; 32]), data);
});
