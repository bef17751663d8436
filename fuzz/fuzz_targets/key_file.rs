//! Key file decoding. Unwrapping runs argon2 only on parameters `decode` accepted; the fuzzer caps them
//! further so one input stays fast.
#![no_main]
use libfuzzer_sys::fuzz_target;
use silo_format::keyfile::KeyFile;
use silo_format::ObjectId;

fuzz_target!(|data: &[u8]| {
    if let Ok(kf) = KeyFile::decode(data) {
        if kf.params.memory_kib <= 256 && kf.params.iterations <= 2 {
            let _ = kf.unwrap(b"password", ObjectId([2; 32]));
        }
    }
});
