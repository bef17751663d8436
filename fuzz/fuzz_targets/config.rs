#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::{config, Keys, MasterSecret};

fuzz_target!(|data: &[u8]| {
    let _ = config::parse_header(data);
    let _ = config::decode_body(data);
    let keys = Keys::derive(&MasterSecret([7; 32]));
    let _ = config::decode(data, &keys);
});
