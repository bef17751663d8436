//! Is a stream already compressed or encrypted? Such a stream defeats deduplication: one changed row changes
//! every byte after it, so each snapshot stores the whole dump again. Pure logic: a byte-entropy estimate over
//! the first chunks of a stream, and the verdict the create pipeline turns into one warning.

/// Bits of Shannon entropy per byte of `data` (0 for empty input, at most 8).
pub fn bits_per_byte(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u64; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
}

/// Above this a chunk is taken for compressed or encrypted data: zstd, gzip and AES output measure 7.9-8.0;
/// SQL text, CSV and hex-encoded binary measure 4-6, and uncompressed `pg_dump -Fc -Z0` stays below 7.
pub const HIGH_ENTROPY: f64 = 7.5;
/// Chunks shorter than this say too little about the stream (a dump's header, a trailer).
const MIN_SAMPLE: usize = 4096;
/// Chunks examined before deciding; a verdict also comes at the end of a shorter stream.
const SAMPLE_CHUNKS: usize = 8;

/// Watches the first chunks of one stream and decides once whether it looks compressed.
#[derive(Debug, Default)]
pub struct EntropyProbe {
    examined: usize,
    high: usize,
    total_bits: f64,
    decided: bool,
}

impl EntropyProbe {
    /// Feeds the next chunk; returns the mean entropy (bits per byte) once, when the first `SAMPLE_CHUNKS`
    /// sizeable chunks are in and at least three quarters of them look compressed.
    pub fn observe(&mut self, chunk: &[u8]) -> Option<f64> {
        if self.decided || chunk.len() < MIN_SAMPLE {
            return None;
        }
        let bits = bits_per_byte(chunk);
        self.examined += 1;
        self.total_bits += bits;
        if bits > HIGH_ENTROPY {
            self.high += 1;
        }
        if self.examined >= SAMPLE_CHUNKS {
            return self.decide();
        }
        None
    }

    /// The verdict for a stream that ended before `SAMPLE_CHUNKS` sizeable chunks.
    pub fn finish(&mut self) -> Option<f64> {
        self.decide()
    }

    fn decide(&mut self) -> Option<f64> {
        if self.decided || self.examined == 0 {
            return None;
        }
        self.decided = true;
        (self.high * 4 >= self.examined * 3).then(|| self.total_bits / self.examined as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn sql(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0u64;
        while out.len() < n {
            out.extend_from_slice(
                format!("{i}\tcustomer {i}\t{}\t2026-11-{:02}\n", i * 37 % 1000, i % 28 + 1).as_bytes(),
            );
            i += 1;
        }
        out.truncate(n);
        out
    }

    #[test]
    fn entropy_bounds() {
        assert_eq!(bits_per_byte(&[]), 0.0);
        assert_eq!(bits_per_byte(&[7; 1000]), 0.0);
        let two: Vec<u8> = (0..1000).map(|i| (i % 2) as u8).collect();
        assert!((bits_per_byte(&two) - 1.0).abs() < 1e-9);
        let all: Vec<u8> = (0..=255u8).collect();
        assert!((bits_per_byte(&all) - 8.0).abs() < 1e-9);
        assert!(bits_per_byte(&noise(1 << 16, 1)) > 7.99);
        assert!(bits_per_byte(&sql(1 << 16)) < 5.0);
    }

    #[test]
    fn compressed_stream_is_flagged_once() {
        let mut p = EntropyProbe::default();
        let verdicts: Vec<_> = (0..20).filter_map(|i| p.observe(&noise(65536, i + 1))).collect();
        assert_eq!(verdicts.len(), 1);
        assert!(verdicts[0] > 7.9);
        assert_eq!(p.finish(), None, "already decided");
    }

    #[test]
    fn text_stream_is_not_flagged() {
        let mut p = EntropyProbe::default();
        for _ in 0..20 {
            assert_eq!(p.observe(&sql(65536)), None);
        }
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn short_streams_decide_at_the_end() {
        let mut p = EntropyProbe::default();
        assert_eq!(p.observe(&noise(100, 3)), None, "too short to judge");
        assert_eq!(p.finish(), None, "nothing sizeable was seen");
        let mut p = EntropyProbe::default();
        assert_eq!(p.observe(&noise(65536, 3)), None);
        assert!(p.finish().is_some());
    }

    #[test]
    fn an_uncompressed_header_does_not_hide_a_compressed_body() {
        // pg_dump -Fc: a text-ish table of contents first, compressed table data after it.
        let mut p = EntropyProbe::default();
        assert_eq!(p.observe(&sql(65536)), None);
        let verdict = (0..10).find_map(|i| p.observe(&noise(65536, i + 9)));
        assert!(verdict.is_some());
    }
}
