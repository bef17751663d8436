//! Reading a piped stream ahead of the chunker: a thread of its own reads the next piece while the chunker
//! cuts (or, guided by the previous snapshot, hashes) the current one. Reading a pipe used to happen on the
//! chunker's own thread, between its cuts, so every copy out of the pipe was on the pipeline's one
//! sequential path.
//!
//! Invariants upheld here:
//! - The windows are the stream's bytes in order, each starting with the tail the chunker hands back, so
//!   the cuts are those of any other reader (silo_format::chunker::Windows).
//! - Memory: one piece being read and none queued (the hand-over waits for the chunker), plus the pieces
//!   chunks still hold; a buffer goes back for reuse when the last chunk of it is dropped.
//! - A read error ends the stream with that error; a create that stopped ends the thread at its next piece.

use crossbeam_channel::{bounded, Receiver, Sender};
use silo_format::chunker::{Window, Windows};
use std::io::Read;
use std::sync::Arc;

/// Bytes read per piece.
const PIECE: usize = 4 << 20;
/// Most bytes asked of the source per read: a pipe's lock is held while it copies, so one read of a whole
/// 1 MiB pipe keeps the writer (`pg_dump`, `cat`) spinning on it; smaller reads let both sides copy at once
/// (measured on 2 vCPUs, 534 MiB through `cat`: 0.27-0.30 s of system time against 0.31-0.35 s reading up to
/// a whole piece at once).
const READ: usize = 256 << 10;
/// Buffers kept for reuse.
const POOL: usize = 8;

struct Piece {
    buf: Vec<u8>,
    len: usize,
    eof: bool,
}

/// A stream read on its own thread, as windows for the chunker.
pub struct ReadAhead {
    pieces: Receiver<std::io::Result<Piece>>,
    back: Sender<Vec<u8>>,
    /// Room kept before each piece for the chunker's tail (at least the largest chunk).
    front: usize,
}

/// A window: `buf[start..end]`; the buffer goes back to the reader when the window is dropped.
struct PieceWindow {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    back: Sender<Vec<u8>>,
}

impl AsRef<[u8]> for PieceWindow {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

impl Drop for PieceWindow {
    fn drop(&mut self) {
        let _ = self.back.try_send(std::mem::take(&mut self.buf));
    }
}

impl ReadAhead {
    /// Starts reading `source`; `front` is the most tail bytes the chunker hands back (its largest chunk).
    pub fn new(mut source: Box<dyn Read + Send>, front: usize) -> std::io::Result<Self> {
        let (pieces_tx, pieces) = bounded(0);
        let (back, returned) = bounded::<Vec<u8>>(POOL);
        std::thread::Builder::new().name("silo-read".into()).spawn(move || loop {
            let mut buf = returned.try_recv().unwrap_or_default();
            if buf.len() != front + PIECE {
                buf = vec![0; front + PIECE]; // zeroed once; a reused buffer's old bytes are overwritten
            }
            let piece = fill(&mut source, &mut buf[front..]).map(|len| Piece { buf, len, eof: len < PIECE });
            let end = piece.as_ref().map_or(true, |p| p.eof);
            if pieces_tx.send(piece).is_err() || end {
                return;
            }
        })?;
        Ok(ReadAhead { pieces, back, front })
    }
}

/// Fills `out` from `source` in reads of at most READ bytes; fewer bytes only at the end of the stream.
fn fill(source: &mut impl Read, out: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < out.len() {
        let end = (n + READ).min(out.len());
        match source.read(&mut out[n..end]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Windows for ReadAhead {
    fn next_window(&mut self, tail: &[u8], _at: u64, _block: usize) -> std::io::Result<(Window, bool)> {
        let Piece { mut buf, len, eof } =
            self.pieces.recv().map_err(|_| std::io::Error::other("the stream's reader thread stopped"))??;
        let body = self.front..self.front + len;
        if tail.len() > self.front {
            let mut joined = Vec::with_capacity(tail.len() + len);
            joined.extend_from_slice(tail);
            joined.extend_from_slice(&buf[body]);
            return Ok((Arc::new(joined), eof));
        }
        let start = self.front - tail.len();
        buf[start..self.front].copy_from_slice(tail);
        Ok((Arc::new(PieceWindow { buf, start, end: body.end, back: self.back.clone() }), eof))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_format::chunker::ChunkerParams;

    /// Dump-like rows with numbers that vary, so cuts fall at many sizes.
    fn rows(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 64);
        let mut i = 0u64;
        while out.len() < len {
            let n = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
            out.extend_from_slice(format!("{i}\tcustomer {n:08}\t{}\n", n % 977).as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// `data` through a real pipe, written by a thread in writes of varying sizes.
    fn piped(data: Vec<u8>) -> Box<dyn Read + Send> {
        use std::io::Write;
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        std::thread::spawn(move || {
            let mut at = 0;
            let mut size = 1usize;
            while at < data.len() {
                size = (size * 31 + 7) % 200_003 + 1;
                let end = (at + size).min(data.len());
                writer.write_all(&data[at..end]).expect("write");
                at = end;
            }
        });
        Box::new(reader)
    }

    #[test]
    fn cuts_through_a_pipe_are_those_of_the_whole_buffer_at_every_size() {
        let big = ChunkerParams { min_size: 1 << 20, avg_size: 4 << 20, max_size: 16 << 20 };
        for p in [ChunkerParams::DEFAULT, big] {
            for len in [0, 1, 65_535, PIECE - 1, PIECE, PIECE + 1, (13 << 20) + 12_345, 40 << 20] {
                let d = rows(len);
                let windows = ReadAhead::new(piped(d.clone()), p.max_size as usize).expect("thread");
                let mut end = 0;
                let cuts: Vec<usize> = p
                    .windows(windows, 3)
                    .map(|c| {
                        end += c.expect("read").len();
                        end
                    })
                    .collect();
                assert_eq!(cuts, p.cut_points(&d, 3), "{p:?} len {len}");
            }
        }
    }

    /// Gives `good` bytes, then fails.
    struct Breaks {
        good: usize,
    }

    impl Read for Breaks {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.good == 0 {
                return Err(std::io::Error::other("the pipe broke"));
            }
            let n = out.len().min(self.good).min(100_000);
            out[..n].fill(b'r');
            self.good -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_ends_the_stream_with_it() {
        let windows = ReadAhead::new(Box::new(Breaks { good: 9 << 20 }), 1 << 18).expect("thread");
        let err = ChunkerParams::DEFAULT.windows(windows, 3).find_map(|c| c.err()).expect("an error");
        assert_eq!(err.to_string(), "the pipe broke");
    }

    /// Interrupted every other call, and records the largest read it was asked for.
    struct Interrupts {
        left: usize,
        calls: usize,
        largest: usize,
    }

    impl Read for Interrupts {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.calls += 1;
            self.largest = self.largest.max(out.len());
            if self.calls % 2 == 1 {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = out.len().min(self.left);
            out[..n].fill(b'i');
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn fill_retries_interrupted_reads_and_asks_for_at_most_read_bytes() {
        let mut source = Interrupts { left: PIECE + 5, calls: 0, largest: 0 };
        let mut out = vec![0; PIECE];
        assert_eq!(fill(&mut source, &mut out).expect("fill"), PIECE);
        assert_eq!(source.largest, READ);
        assert_eq!(fill(&mut source, &mut out).expect("fill"), 5, "the rest, then the end of the stream");
        assert_eq!(fill(&mut source, &mut out).expect("fill"), 0);
    }
}
