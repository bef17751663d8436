//! Codecs: how a payload is compressed inside an envelope (format-spec/envelope.md, its codec table). The envelope
//! (envelope.rs) only frames and authenticates; the codec byte it carries is the id in `Codec`'s table.
//! Adding a codec = one variant here, one file, one row in the spec's table, one test vector.
//!
//! Every decoder is bounded: `decode` never returns (or allocates for) more than `max_len` bytes, whatever
//! a hostile payload claims.

pub mod columns;
pub mod delta;
mod zstd;

use crate::FormatError;
use std::borrow::Cow;

pub(crate) use self::zstd::{compress as zstd_compress, decompress_exact as zstd_decompress_exact};

/// The codec ids (one table: `id`, `from_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// The payload as it is.
    Stored,
    /// One zstd frame.
    Zstd,
    /// Tab-separated lines column by column, each column a zstd frame (columns.rs).
    Columns,
    /// The difference from another chunk, its base (delta.rs); chunks only, decoded with the base's
    /// plaintext (`envelope::open_chunk_parts`).
    Delta,
}

impl Codec {
    pub const ALL: [Codec; 4] = [Codec::Stored, Codec::Zstd, Codec::Columns, Codec::Delta];

    pub fn id(self) -> u8 {
        match self {
            Codec::Stored => 0,
            Codec::Zstd => 1,
            Codec::Columns => 2,
            Codec::Delta => delta::DELTA_CODEC,
        }
    }

    pub fn from_id(id: u8) -> Result<Codec, FormatError> {
        Codec::ALL
            .into_iter()
            .find(|c| c.id() == id)
            .ok_or_else(|| FormatError::malformed("envelope", format!("unknown codec {id}")))
    }

    /// The smallest encoding of `payload` at zstd `level`: column by column when it is tab-separated lines,
    /// one frame otherwise, as it is when neither is smaller. `level = None` stores as it is
    /// (already-compressed data, key files).
    pub fn choose(payload: &[u8], level: Option<i32>) -> (Codec, Cow<'_, [u8]>) {
        let smaller = |c: &Vec<u8>| c.len() < payload.len();
        let compressed = level.and_then(|l| {
            columns::encode(payload, l)
                .filter(smaller)
                .map(|c| (Codec::Columns, c))
                .or_else(|| zstd::compress(payload, l).filter(smaller).map(|c| (Codec::Zstd, c)))
        });
        match compressed {
            Some((codec, body)) => (codec, Cow::Owned(body)),
            None => (Codec::Stored, Cow::Borrowed(payload)),
        }
    }

    /// Decodes `body`, refusing more than `max_len` bytes of output.
    pub fn decode(self, body: &[u8], max_len: usize) -> Result<Vec<u8>, FormatError> {
        match self {
            Codec::Stored => {
                if body.len() > max_len {
                    return Err(FormatError::malformed(
                        "envelope",
                        format!("payload of {} bytes exceeds {max_len}", body.len()),
                    ));
                }
                Ok(body.to_vec())
            }
            Codec::Zstd => zstd::decompress_bounded(body, max_len),
            Codec::Columns => columns::decode(body, max_len),
            Codec::Delta => Err(FormatError::malformed("envelope", "a delta chunk can only be decoded with its base")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_round_trip() {
        for c in Codec::ALL {
            assert_eq!(Codec::from_id(c.id()).ok(), Some(c));
        }
        assert!(Codec::from_id(4).is_err());
        assert!(Codec::from_id(255).is_err());
    }

    #[test]
    fn the_choice_round_trips_and_never_grows_the_payload() {
        let tsv: Vec<u8> = (0..2000).flat_map(|i| format!("{i}\tname {i}\t{}\n", i * 7).into_bytes()).collect();
        let text: Vec<u8> = b"the same words again and again ".repeat(200);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        for (payload, want) in [(&tsv, Codec::Columns), (&text, Codec::Zstd), (&random, Codec::Stored)] {
            let (codec, body) = Codec::choose(payload, Some(1));
            assert_eq!(codec, want);
            assert!(body.len() <= payload.len());
            assert_eq!(&codec.decode(&body, payload.len()).unwrap(), payload);
            assert!(codec.decode(&body, payload.len() - 1).is_err(), "{codec:?} must honour the bound");
        }
        assert_eq!(Codec::choose(&text, None).0, Codec::Stored);
    }
}
