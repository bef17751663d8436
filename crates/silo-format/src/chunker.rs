//! Content-defined chunking: FastCDC (2020, normalization level 1) with a gear table seeded from the
//! repository secret, so that chunk boundaries — and therefore chunk sizes — do not leak content
//! (format-spec/chunker.md).

use crate::FormatError;
use bincode::{Decode, Encode};
use fastcdc::v2020::{self, Normalization};
use std::collections::VecDeque;
use std::io::Read;
use std::ops::Deref;
use std::sync::Arc;

/// Bytes read from a stream at a time (at least twice the maximum chunk size).
const BLOCK: usize = 8 << 20;
/// Read buffers a chunker keeps for reuse: a fresh 8 MiB buffer costs ~2000 page faults on first touch, so
/// a buffer whose chunks have all been dropped is filled again instead.
const POOL: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// Defaults: 16 KiB / 64 KiB / 256 KiB, chosen by benches/sweep.sh on the daily dump series: a day's
    /// increment is ~3x smaller than at 256 KiB and ~8x smaller than at restic's 1 MiB, because dumps change
    /// in small scattered places, at the same ingest speed and within 3% of the compression. The RocksDB
    /// index cache keeps the larger chunk count off the heap; the manifest's flat chunk list caps one
    /// snapshot near 512 GiB at this size (init with larger chunks for bigger streams).
    pub const DEFAULT: ChunkerParams = ChunkerParams { min_size: 16 << 10, avg_size: 64 << 10, max_size: 256 << 10 };

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

    /// A streaming chunker over `source`: cuts exactly where `cut_points` cuts the whole stream, and hands
    /// out chunks as ranges of large shared read buffers (no copy per chunk). Call only with validated
    /// parameters.
    pub fn stream<R: Read>(&self, source: R, seed: u64) -> BlockChunker<R> {
        BlockChunker {
            source,
            params: *self,
            seed,
            buf: Arc::new(Vec::new()),
            pool: Vec::new(),
            pos: 0,
            eof: false,
            ready: VecDeque::new(),
        }
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

/// One chunk: a range of a shared read buffer.
#[derive(Clone, Debug)]
pub struct SharedChunk {
    buf: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Deref for SharedChunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

/// See `ChunkerParams::stream`. A FastCDC cut depends only on the chunk's start and the bytes up to the cut,
/// so every cut found inside a buffer is final; only a chunk that runs into the end of the buffer before
/// the stream ends (and is shorter than the maximum) waits for the next read.
pub struct BlockChunker<R> {
    source: R,
    params: ChunkerParams,
    seed: u64,
    buf: Arc<Vec<u8>>,
    /// Buffers for reuse (each also held by the chunks cut from it until they are dropped).
    pool: Vec<Arc<Vec<u8>>>,
    pos: usize,
    eof: bool,
    ready: VecDeque<SharedChunk>,
}

impl<R: Read> BlockChunker<R> {
    /// Starts a new buffer with the unconsumed tail of the current one and fills it (or reaches EOF).
    fn refill(&mut self) -> std::io::Result<()> {
        let block = BLOCK.max(2 * self.params.max_size as usize);
        let mut next = match self.pool.iter_mut().position(|b| Arc::strong_count(b) == 1) {
            Some(i) => self.pool.swap_remove(i),
            None => Arc::new(Vec::with_capacity(block)),
        };
        let Some(fill) = Arc::get_mut(&mut next) else {
            unreachable!("a buffer is filled only when nothing else holds it")
        };
        fill.clear();
        fill.extend_from_slice(&self.buf[self.pos..]);
        // read_to_end on a Take: fills the block (or reaches EOF) without zeroing the buffer first.
        let want = (block - fill.len()) as u64;
        let got = (&mut self.source).take(want).read_to_end(fill)?;
        if (got as u64) < want {
            self.eof = true;
        }
        let done = std::mem::replace(&mut self.buf, next);
        if self.pool.len() < POOL && done.capacity() >= block {
            self.pool.push(done);
        }
        self.pos = 0;
        Ok(())
    }

    /// Queues every final cut of the current buffer.
    fn cut(&mut self) {
        let p = self.params;
        let data = &self.buf[self.pos..];
        let cdc = v2020::FastCDC::with_level_and_seed(
            data,
            p.min_size,
            p.avg_size,
            p.max_size,
            Normalization::Level1,
            self.seed,
        );
        for c in cdc {
            let (start, end) = (self.pos + c.offset, self.pos + c.offset + c.length);
            if end == self.buf.len() && !self.eof && c.length < p.max_size as usize {
                break; // more bytes may move this cut: wait for them
            }
            self.ready.push_back(SharedChunk { buf: self.buf.clone(), start, end });
        }
        if let Some(last) = self.ready.back() {
            self.pos = last.end;
        }
    }
}

impl<R: Read> Iterator for BlockChunker<R> {
    type Item = std::io::Result<SharedChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(c) = self.ready.pop_front() {
                return Some(Ok(c));
            }
            if self.eof && self.pos == self.buf.len() {
                return None;
            }
            if let Err(e) = self.refill() {
                return Some(Err(e));
            }
            self.cut();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its data in reads of varying, sometimes tiny, sizes, like a pipe.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.step = (self.step * 7 + 13) % 300_001;
            let n = (self.step + 1).min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Runs of text-like bytes with occasional repeats, so cuts fall at every size.
                if i % 5000 < 1200 {
                    b'a'
                } else {
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn streaming_cuts_equal_whole_buffer_cuts() {
        let p = ChunkerParams::DEFAULT;
        for len in [0, 1, 65_535, 1 << 20, (1 << 20) + 1, 9 << 20, (17 << 20) + 12_345] {
            let d = data(len);
            let whole = p.cut_points(&d, 9);
            let streamed: Vec<usize> = {
                let mut end = 0;
                p.stream(Trickle { data: d.clone(), at: 0, step: 1 }, 9)
                    .map(|c| {
                        let c = c.expect("read");
                        assert_eq!(&d[end..end + c.len()], &c[..]);
                        end += c.len();
                        end
                    })
                    .collect()
            };
            assert_eq!(streamed, whole, "len {len}");
        }
    }
}
