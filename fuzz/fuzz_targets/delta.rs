//! The delta codec (envelope codec 0x03) and the chunk opener that yields deltas: arbitrary payloads decoded
//! against an arbitrary base must give an error or exactly the requested length, never a panic or an
//! allocation past the bound; and a delta the encoder makes from the input must decode back to it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::codec::delta::{self, DeltaHeader};
use silo_format::{pack, Keys, MasterSecret, ObjectId, RepoId};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = (usize::from(split) * rest.len()) / 256;
    let (base, payload) = rest.split_at(at);
    for len in [0, payload.len(), 1 << 16] {
        if let Ok(out) = delta::decode(payload, base, len) {
            assert_eq!(out.len(), len);
        }
    }
    let header = DeltaHeader { base: ObjectId([5; 32]), depth: 1 + split % delta::MAX_DEPTH };
    if let Some(encoded) = delta::encode(payload, base, header, 1) {
        assert_eq!(delta::header(&encoded).ok(), Some(header));
        assert_eq!(delta::decode(&encoded, base, payload.len()).ok().as_deref(), Some(payload));
    }
    let keys = Keys::derive(&MasterSecret([7; 32]));
    let _ = pack::open_chunk_parts(&keys, RepoId([1; 16]), ObjectId([2; 32]), rest, 1 << 16);
});
