//! Pack parsing: header, footer and trailer framing of a whole pack, plus the trailer body decoder (which
//! an attacker cannot reach without the key, but a bug in silo could).
#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::{pack, Keys, MasterSecret, ObjectId, RepoId};

fuzz_target!(|data: &[u8]| {
    let keys = Keys::derive(&MasterSecret([7; 32]));
    let _ = pack::open_pack(&keys, RepoId([1; 16]), ObjectId([2; 32]), data);
    if data.len() >= pack::FOOTER_LEN {
        let _ = pack::parse_footer(&data[data.len() - pack::FOOTER_LEN..]);
    }
    let _ = pack::check_header(data);
    let _ = pack::decode_trailer_body(data, u64::from(u32::MAX));
});
