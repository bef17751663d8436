//! Stored policies, the gc lease, writer sessions, damage marks, drill and run records: body decoders and
//! envelope opening.
#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::maintenance::{DamageMark, DrillRecord, Lease, RunRecord, Sealed, Session, StoredPolicy};
use silo_format::{Keys, MasterSecret, ObjectId, RepoId};

fuzz_target!(|data: &[u8]| {
    let _ = StoredPolicy::decode_body(data);
    let _ = Lease::decode_body(data);
    let _ = Session::decode_body(data);
    let _ = DamageMark::decode_body(data);
    let _ = DrillRecord::decode_body(data);
    let _ = RunRecord::decode_body(data);
    let keys = Keys::derive(&MasterSecret([7; 32]));
    let _ = Lease::open(&keys, RepoId([1; 16]), ObjectId::ZERO, data);
});
