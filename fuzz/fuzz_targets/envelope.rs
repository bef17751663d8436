//! Envelope opening with a fixed key: arbitrary bytes must give an error or the authenticated plaintext,
//! never a panic or an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::{envelope, Aad, ObjectId, ObjectKind, RepoId};

fuzz_target!(|data: &[u8]| {
    let aad = Aad::new(RepoId([1; 16]), ObjectKind::Chunk, ObjectId([2; 32]));
    let _ = envelope::open(&[3; 32], &aad, data, 1 << 20);
});
