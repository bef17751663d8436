//! A Redis RDB file (`redis-cli --rdb -`): complete when it ends with the EOF opcode 0xFF and, from RDB
//! version 5, an 8-byte CRC-64 (Jones polynomial, reflected, as Redis's crc64.c) of everything before it
//! matches (a stored 0 means the server has `rdbchecksum no`: then only the opcode is checked). The opening
//! auxiliary fields give the Redis version and the first database's key count.
//!
//! `redis-cli --rdb -` of a server doing diskless replication (Redis 7's default) leaves the transfer's
//! 40-byte end mark after the RDB (redis-cli truncates it only from a file it can truncate); such a stream is
//! whole when the RDB before the mark is.

use super::{record, shown, Scanner, Verdict};
use silo_format::manifest::dump_format;

pub(super) fn is_rdb(head: &[u8]) -> bool {
    // Five letters, four digits of version and an opcode (AUX, SELECTDB, RESIZEDB, EOF, module and function
    // opcodes: 0xF4-0xFF): a text file that begins `REDIS0011` is not an RDB.
    head.len() >= 10 && head.starts_with(b"REDIS") && head[5..9].iter().all(u8::is_ascii_digit) && head[9] >= 0xf4
}

/// CRC-64/Jones, reflected: Redis's crc64.c.
fn crc_table() -> [u64; 256] {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9, bits reversed
    let mut t = [0u64; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut c = i as u64;
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
        }
        *slot = c;
    }
    t
}

fn crc_update(table: &[u64; 256], mut crc: u64, data: &[u8]) -> u64 {
    for &b in data {
        crc = table[((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Bytes of the opening kept for reading its auxiliary fields.
const OPENING: usize = 64 * 1024;

/// A diskless transfer's end mark (40 characters) after the checksum.
const MARK: usize = 40;
/// Bytes kept out of the CRC until the end: the checksum, and perhaps a mark after it.
const HELD: usize = 8 + MARK;

pub(super) struct Rdb {
    table: Box<[u64; 256]>,
    crc: u64,
    /// The last `HELD` bytes seen, not yet in the CRC (the checksum, and perhaps a mark).
    held: Vec<u8>,
    /// The last byte that went into the CRC (the EOF opcode, when a mark follows the checksum).
    last_in_crc: Option<u8>,
    opening: Vec<u8>,
    size: u64,
}

impl Default for Rdb {
    fn default() -> Self {
        Rdb { table: Box::new(crc_table()), crc: 0, held: Vec::new(), last_in_crc: None, opening: Vec::new(), size: 0 }
    }
}

impl Rdb {
    fn absorb(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.crc = crc_update(&self.table, self.crc, bytes);
            self.last_in_crc = Some(last);
        }
    }

    /// The stored checksum, the CRC of what it covers, and the byte before it (the EOF opcode), for an RDB
    /// that ends the stream or is followed by a transfer mark.
    fn ends(&self) -> Vec<(u64, u64, Option<u8>)> {
        let h = &self.held;
        let le = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let mut out = Vec::new();
        if h.len() >= 9 {
            let body = &h[..h.len() - 8];
            let crc = crc_update(&self.table, self.crc, body);
            out.push((le(&h[h.len() - 8..]), crc, body.last().copied()));
        }
        if h.len() == HELD && h[8..].iter().all(u8::is_ascii_alphanumeric) {
            out.push((le(&h[..8]), self.crc, self.last_in_crc));
        }
        out
    }
}

impl Scanner for Rdb {
    fn feed(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        if self.opening.len() < OPENING {
            let take = (OPENING - self.opening.len()).min(data.len());
            self.opening.extend_from_slice(&data[..take]);
        }
        if data.len() >= HELD {
            let held = std::mem::take(&mut self.held);
            self.absorb(&held);
            self.absorb(&data[..data.len() - HELD]);
            self.held.extend_from_slice(&data[data.len() - HELD..]);
        } else {
            self.held.extend_from_slice(data);
            let over = self.held.len().saturating_sub(HELD);
            let out: Vec<u8> = self.held.drain(..over).collect();
            self.absorb(&out);
        }
    }

    fn finish(self: Box<Self>) -> Verdict {
        let (tool_version, keys) = opening(&self.opening);
        let mut r = record(dump_format::REDIS_RDB, tool_version);
        r.entries = keys;
        let version: u32 =
            self.opening.get(5..9).and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        if self.size < 9 {
            let problem = format!("the file is {} bytes, shorter than the RDB header", self.size);
            return Verdict { record: r, problem: Some(problem) };
        }
        let ends = self.ends();
        let problem = if version >= 5 {
            let marked = ends.iter().filter(|(_, _, op)| *op == Some(0xff)).collect::<Vec<_>>();
            if marked.is_empty() {
                Some("the file does not end with the RDB end-of-file marker: it was cut short".to_string())
            } else if !marked.iter().any(|(stored, crc, _)| *stored == 0 || stored == crc) {
                Some("the RDB checksum does not match its contents: the file was cut short or damaged".to_string())
            } else {
                None
            }
        } else if self.held.last() != Some(&0xff) {
            Some("the file does not end with the RDB end-of-file marker: it was cut short".to_string())
        } else {
            None
        };
        Verdict { record: r, problem }
    }
}

/// The Redis version (aux field `redis-ver`) and the first database's key count (its RESIZEDB hint) from
/// the opening opcodes; whatever cannot be read there stays empty.
fn opening(bytes: &[u8]) -> (String, u64) {
    let mut pos = 9;
    let mut version = String::new();
    loop {
        let Some(&op) = bytes.get(pos) else { return (version, 0) };
        pos += 1;
        match op {
            0xfa => {
                let (Some(key), Some(value)) = (string(bytes, &mut pos), string(bytes, &mut pos)) else {
                    return (version, 0);
                };
                if key == b"redis-ver" {
                    version = shown(&value);
                }
            }
            0xfe => {
                if length(bytes, &mut pos).is_none() {
                    return (version, 0);
                }
            }
            0xfb => return (version, length(bytes, &mut pos).map_or(0, |(n, _)| n)),
            _ => return (version, 0),
        }
    }
}

/// An RDB length: the value and whether it is a special (integer or compressed) string encoding.
fn length(b: &[u8], pos: &mut usize) -> Option<(u64, bool)> {
    let first = *b.get(*pos)?;
    *pos += 1;
    match first >> 6 {
        0 => Some(((first & 0x3f) as u64, false)),
        1 => {
            let second = *b.get(*pos)?;
            *pos += 1;
            Some(((((first & 0x3f) as u64) << 8) | second as u64, false))
        }
        2 => {
            let n = match first {
                0x80 => 4,
                0x81 => 8,
                _ => return None,
            };
            let bytes = b.get(*pos..*pos + n)?;
            *pos += n;
            Some((bytes.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64), false))
        }
        _ => Some(((first & 0x3f) as u64, true)),
    }
}

fn string(b: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let (n, special) = length(b, pos)?;
    if !special {
        let s = b.get(*pos..pos.checked_add(n as usize)?)?.to_vec();
        *pos += n as usize;
        return Some(s);
    }
    let int_bytes = match n {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => {
            // LZF-compressed: compressed length, uncompressed length, data (not needed here).
            let (clen, _) = length(b, pos)?;
            length(b, pos)?;
            *pos = pos.checked_add(clen as usize)?;
            return Some(Vec::new());
        }
    };
    let bytes = b.get(*pos..*pos + int_bytes)?;
    *pos += int_bytes;
    let mut v: i64 = 0;
    for (i, &x) in bytes.iter().enumerate() {
        v |= (x as i64) << (8 * i);
    }
    Some(v.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::inspect_all;
    use super::*;

    #[test]
    fn crc64_matches_redis() {
        // Redis crc64.c's self-test value.
        assert_eq!(crc_update(&crc_table(), 0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    fn rdb() -> Vec<u8> {
        let mut f = b"REDIS0010".to_vec();
        f.extend_from_slice(&[0xfa, 9]);
        f.extend_from_slice(b"redis-ver");
        f.push(6);
        f.extend_from_slice(b"7.0.15");
        f.extend_from_slice(&[0xfe, 0, 0xfb, 2, 0]);
        f.extend_from_slice(&[0, 1, b'a', 1, b'1', 0, 1, b'b', 1, b'2', 0xff]);
        let crc = crc_update(&crc_table(), 0, &f);
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn an_rdb_passes_whole_and_fails_cut_or_flipped() {
        let f = rdb();
        for piece in [1, 3, 8, 9, 100] {
            let v = inspect_all(&f, piece).unwrap();
            assert_eq!(v.problem, None, "pieces of {piece}");
            assert_eq!((v.record.tool_version.as_str(), v.record.entries), ("7.0.15", 2));
        }
        for cut in 10..f.len() {
            assert!(inspect_all(&f[..cut], 4).unwrap().problem.is_some(), "cut at {cut}");
        }
        let mut flipped = f.clone();
        flipped[30] ^= 1;
        assert!(inspect_all(&flipped, 7).unwrap().problem.unwrap().contains("checksum"));
        // redis-cli's output of a diskless transfer: the 40-byte end mark after the RDB.
        let mut marked = f.clone();
        marked.extend_from_slice(b"d42c5e7b99d4df5dc2264f16b8e40bbf7293cbbf");
        for piece in [1, 7, 48, 49, 1000] {
            assert_eq!(inspect_all(&marked, piece).unwrap().problem, None, "pieces of {piece}");
        }
        for cut in f.len() + 1..marked.len() {
            assert!(inspect_all(&marked[..cut], 5).unwrap().problem.is_some(), "cut inside the mark at {cut}");
        }
        let mut flipped = marked.clone();
        flipped[20] ^= 1;
        assert!(inspect_all(&flipped, 9).unwrap().problem.is_some());
    }
}
