//! The structured-body encoding: bincode 2 with little-endian fixed-width integers (format-spec/encoding.md).
//! Decoding is bounded (`MAX_BODY`) and rejects trailing bytes, so one byte string has exactly one meaning.

use crate::FormatError;
use bincode::{config, Decode, Encode};

/// Largest structured body a decoder accepts (and so the largest allocation a hostile length can cause).
pub const MAX_BODY: usize = 256 << 20;

fn cfg() -> config::Configuration<config::LittleEndian, config::Fixint, config::Limit<MAX_BODY>> {
    config::standard().with_little_endian().with_fixed_int_encoding().with_limit::<MAX_BODY>()
}

pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec only fails past MAX_BODY, which no writer in silo produces (a stream manifest of
    // 256 MiB would describe ~2 PiB of data at the default chunk size).
    bincode::encode_to_vec(value, cfg()).expect("encoding a silo body into memory cannot fail below MAX_BODY")
}

pub fn decode<T: Decode<()>>(what: &'static str, bytes: &[u8]) -> Result<T, FormatError> {
    let (value, used) =
        bincode::decode_from_slice(bytes, cfg()).map_err(|e| FormatError::malformed(what, e.to_string()))?;
    if used != bytes.len() {
        return Err(FormatError::malformed(what, format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}
