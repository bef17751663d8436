//! Line splitting for the line-oriented scanners: each line's first bytes and full length, without copying
//! lines that sit inside one piece of input (the common case) and with bounded memory for lines of any size.

/// Bytes of each line a scanner sees (enough for any statement head silo looks at).
pub(super) const HEAD: usize = 4096;

/// The newlines in `data`, counted in one vectorised pass (a search per newline is a call per row). Blocks
/// of 128 bytes are summed into a byte counter, a shape the compiler turns into SIMD compares and adds; a
/// plain `filter().count()` was not, and ran at a seventh of the speed.
pub(super) fn newlines(data: &[u8]) -> u64 {
    let mut blocks = data.chunks_exact(128);
    let mut n = 0u64;
    for block in &mut blocks {
        let mut k = 0u8;
        for &b in block {
            k += u8::from(b == b'\n');
        }
        n += u64::from(k);
    }
    n + blocks.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

#[derive(Default)]
pub(super) struct Lines {
    /// The first `HEAD` bytes of a line that began in an earlier piece and has not ended yet.
    partial: Vec<u8>,
    /// Its full length so far.
    partial_len: u64,
    pending: bool,
}

impl Lines {
    /// Calls `line(head, len)` for every line `data` completes: `head` is at most its first `HEAD` bytes,
    /// `len` its full length; neither includes the `\n`.
    pub(super) fn feed(&mut self, data: &[u8], mut line: impl FnMut(&[u8], u64)) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            let piece = &data[start..nl];
            if self.pending {
                self.extend(piece);
                line(&self.partial, self.partial_len);
                self.partial.clear();
                self.partial_len = 0;
                self.pending = false;
            } else {
                line(&piece[..piece.len().min(HEAD)], piece.len() as u64);
            }
            start = nl + 1;
        }
        if start < data.len() {
            self.pending = true;
            self.extend(&data[start..]);
        }
    }

    fn extend(&mut self, piece: &[u8]) {
        let room = HEAD.saturating_sub(self.partial.len());
        self.partial.extend_from_slice(&piece[..piece.len().min(room)]);
        self.partial_len += piece.len() as u64;
    }

    /// The last line when the stream did not end with `\n`.
    #[cfg(test)]
    pub(super) fn unterminated(&self) -> Option<(&[u8], u64)> {
        self.pending.then_some((&self.partial[..], self.partial_len))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn newlines_are_counted_in_every_block_and_the_remainder() {
        for len in [0, 1, 127, 128, 129, 255, 256, 1000] {
            let data: Vec<u8> = (0..len).map(|i| if i % 3 == 0 { b'\n' } else { b'x' }).collect();
            assert_eq!(super::newlines(&data), (len as u64).div_ceil(3), "{len}");
        }
        assert_eq!(super::newlines(&[b'\n'; 1000]), 1000);
    }

    use super::*;

    type Line = (Vec<u8>, u64);

    fn split(data: &[u8], piece: usize) -> (Vec<Line>, Option<Line>) {
        let mut out = Vec::new();
        let mut l = Lines::default();
        for p in data.chunks(piece) {
            l.feed(p, |h, n| out.push((h.to_vec(), n)));
        }
        (out, l.unterminated().map(|(h, n)| (h.to_vec(), n)))
    }

    #[test]
    fn lines_are_the_same_whatever_the_pieces() {
        let mut data = b"a\n\nbc\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', HEAD + 10));
        data.extend_from_slice(b"\nend");
        let whole = split(&data, data.len());
        for piece in [1, 2, 3, 7, 4096, 5000] {
            assert_eq!(split(&data, piece), whole, "pieces of {piece}");
        }
        let (lines, last) = whole;
        assert_eq!(lines[0], (b"a".to_vec(), 1));
        assert_eq!(lines[1], (b"".to_vec(), 0));
        assert_eq!((lines[3].0.len(), lines[3].1), (HEAD, HEAD as u64 + 10));
        assert_eq!(last, Some((b"end".to_vec(), 3)));
    }
}
