//! The columns codec (envelope codec 0x02): arbitrary payloads must decode to an error or to at most the
//! bound, never panic; and any input the encoder accepts must decode back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::columns;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = columns::decode(data, 1 << 20) {
        assert!(out.len() <= 1 << 20);
    }
    if let Some(payload) = columns::encode(data, 1) {
        assert_eq!(columns::decode(&payload, data.len()).ok().as_deref(), Some(data));
    }
});
