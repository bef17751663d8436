//! Content-defined chunking: FastCDC (2020, normalization level 1) with a gear table seeded from the
//! repository secret, so that chunk boundaries — and therefore chunk sizes — do not leak content
//! (format-spec/chunker.md).

use crate::FormatError;
use bincode::{Decode, Encode};
use fastcdc::v2020::{self, Normalization, StreamCDC};
use std::io::Read;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// Defaults: 64 KiB / 256 KiB / 1 MiB. Smaller than restic's 1 MiB average because database dumps change
    /// in small scattered places; the RocksDB index cache keeps the larger chunk count off the heap.
    pub const DEFAULT: ChunkerParams = ChunkerParams { min_size: 64 << 10, avg_size: 256 << 10, max_size: 1 << 20 };

    pub fn validate(&self) -> Result<(), FormatError> {
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min_size)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg_size)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size;
        if ok {
            Ok(())
        } else {
            Err(FormatError::malformed("chunker parameters", format!("{self:?} outside FastCDC's limits")))
        }
    }

    /// A streaming chunker over `source`. Call only with validated parameters.
    pub fn stream<R: Read>(&self, source: R, seed: u64) -> StreamCDC<R> {
        StreamCDC::with_level_and_seed(source, self.min_size, self.avg_size, self.max_size, Normalization::Level1, seed)
    }

    /// Cut points (chunk end offsets) of an in-memory buffer; used by the test vectors.
    pub fn cut_points(&self, data: &[u8], seed: u64) -> Vec<usize> {
        v2020::FastCDC::with_level_and_seed(
            data,
            self.min_size,
            self.avg_size,
            self.max_size,
            Normalization::Level1,
            seed,
        )
        .map(|c| c.offset + c.length)
        .collect()
    }
}
