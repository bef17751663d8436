//! Deterministic SQL-dump-like data, shared by the integration tests and `examples/gendump.rs` (the
//! benchmarks' generator), so both measure the same kind of input.

use std::io::Write;

/// Deterministic SQL-dump-like bytes: compressible text with pseudo-random values, so chunking, dedup and
/// compression behave as on a real dump.
pub struct DumpGen {
    state: u64,
    row: u64,
}

impl DumpGen {
    pub fn new(seed: u64) -> Self {
        DumpGen { state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, row: 0 }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Appends one line of dump.
    pub fn line(&mut self, out: &mut Vec<u8>) {
        self.row += 1;
        let (a, b, c) = (self.next(), self.next(), self.next());
        let _ = writeln!(
            out,
            "{}\tcustomer-{:08x}\t{}.{:02}\t2026-{:02}-{:02} {:02}:{:02}:00\t{{\"sku\": \"{:016x}\", \"qty\": {}}}",
            self.row,
            a >> 32,
            b % 100_000,
            b % 100,
            1 + c % 12,
            1 + c % 28,
            c % 24,
            a % 60,
            c,
            a % 17
        );
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 256);
        while out.len() < len {
            self.line(&mut out);
        }
        out.truncate(len);
        out
    }
}

/// `512M`, `10G`, `64K` or plain bytes, for the generators' command lines.
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}
