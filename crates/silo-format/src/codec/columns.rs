//! Envelope codec 0x02, "columns" (format-spec/columns.md): a chunk of tab-separated lines — the COPY blocks
//! that make up most of a plain `pg_dump`, or any TSV — is stored as one zstd frame per column instead of one
//! frame of rows. Each column then gets its own literal statistics (digits, hex, a timestamp's fixed shape),
//! which zstd cannot learn from interleaved rows: chunks come out 16% smaller on the benchmark dump series
//! and 26% smaller on a real pg_dump, for ~10% more ingest CPU. Lines that do not have the chunk's field
//! count, and the partial lines at either end of the chunk, are kept verbatim in a `rest` stream, so every
//! input round-trips exactly.

use super::{zstd_compress as compress, zstd_decompress_exact as decompress_exact};
use crate::FormatError;
use memchr::{memchr, memrchr};

/// Version byte of a columns payload that uses integer columns (stream codec 0x02); others are version 1.
pub const COLUMNS_VERSION: u8 = 2;
/// Version byte of a payload without integer columns (what silo wrote before version 2; still written then).
pub const COLUMNS_VERSION_1: u8 = 1;
/// Most fields per line the codec splits (wider lines leave the chunk to plain zstd).
pub const MAX_FIELDS: usize = 64;
/// A chunk is split only if it has at least this many regular lines...
const MIN_LINES: usize = 16;
/// ...and at least 9 in 10 of its whole lines are regular.
const MIN_REGULAR_TENTHS: usize = 9;

/// Bytes of spare room kept after every copy target, so that short fields are copied in one fixed-size move.
const SLACK: usize = 32;
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const STREAM_STORED: u8 = 0;
const STREAM_ZSTD: u8 = 1;
const STREAM_INT_DELTAS: u8 = 2;
/// Longest canonical decimal of an i64 (`-9223372036854775808`).
const MAX_INT_DIGITS: usize = 20;
const LINE_REGULAR: u8 = 0;
const LINE_VERBATIM: u8 = 1;

/// The columns payload of `data`, streams compressed with zstd at `level`; `None` when `data` does not look
/// like tab-separated lines (then the caller uses plain zstd).
pub fn encode(data: &[u8], level: i32) -> Option<Vec<u8>> {
    encode_with(data, level, true)
}

/// The version 1 payload of `data`: no integer columns, byte for byte what silo wrote before version 2 (the
/// test vectors keep it reproducible).
pub fn encode_v1(data: &[u8], level: i32) -> Option<Vec<u8>> {
    encode_with(data, level, false)
}

fn encode_with(data: &[u8], level: i32, int_columns: bool) -> Option<Vec<u8>> {
    let first = memchr(b'\n', data)?;
    let last = memrchr(b'\n', data)?;
    if first == last {
        return None;
    }
    let body = &data[first + 1..=last];
    // The field count: that of the first line with a tab (a chunk may begin with DDL before its rows).
    let tab = memchr(b'\t', body)?;
    let line_start = memrchr(b'\n', &body[..tab]).map_or(0, |p| p + 1);
    let line_end = tab + memchr(b'\n', &body[tab..])?;
    let fields = memchr::memchr_iter(b'\t', &body[line_start..line_end]).count() + 1;
    if !(2..=MAX_FIELDS).contains(&fields) {
        return None;
    }

    SCRATCH.with(|scratch| {
        let mut columns = scratch.borrow_mut();
        split_and_pack(data, first, last, fields, level, int_columns, &mut columns)
    })
}

thread_local! {
    /// Column buffers reused across chunks: allocating (and faulting in) fresh ones per chunk was a
    /// visible share of ingest time.
    static SCRATCH: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn split_and_pack(
    data: &[u8],
    first: usize,
    last: usize,
    fields: usize,
    level: i32,
    int_columns: bool,
    columns: &mut Vec<Vec<u8>>,
) -> Option<Vec<u8>> {
    let body = &data[first + 1..=last];
    // Start each column at twice its fair share of the body (grown below when a wide column needs more), so
    // a table of many columns does not touch fields × chunk size of memory; SLACK bytes of room let short
    // fields be copied in one fixed-size move.
    columns.resize_with(fields.max(columns.len()), Vec::new);
    let share = (2 * body.len() / fields).min(body.len()) + SLACK;
    for c in columns.iter_mut().take(fields) {
        if c.len() < share {
            c.resize(share, 0);
        }
    }
    let mut lens = [0usize; MAX_FIELDS];
    let mut rest = Vec::with_capacity(data.len() - body.len() + 64);
    rest.extend_from_slice(&data[..=first]);
    let mut shape = Vec::with_capacity(body.len() / 32);
    let mut tabs = [0usize; MAX_FIELDS];
    let (mut line_start, mut ntabs, mut regular) = (0usize, 0usize, 0usize);
    separators(body, |pos, byte| {
        if byte == b'\t' {
            if ntabs < MAX_FIELDS {
                tabs[ntabs] = pos;
            }
            ntabs += 1;
            return;
        }
        if ntabs + 1 == fields {
            let mut start = line_start;
            for (j, column) in columns.iter_mut().take(fields).enumerate() {
                let end = if j < ntabs { tabs[j] } else { pos };
                if lens[j] + (end - start) + 1 + SLACK > column.len() {
                    let grown = (2 * column.len()).max(lens[j] + (end - start) + 1 + SLACK);
                    column.resize(grown, 0);
                }
                let at = copy_short(column, lens[j], body, start, end);
                column[at] = b'\n';
                lens[j] = at + 1;
                start = end + 1;
            }
            shape.push(LINE_REGULAR);
            regular += 1;
        } else {
            rest.extend_from_slice(&body[line_start..=pos]);
            shape.push(LINE_VERBATIM);
        }
        line_start = pos + 1;
        ntabs = 0;
    });
    if regular < MIN_LINES || regular * 10 < shape.len() * MIN_REGULAR_TENTHS {
        return None;
    }
    rest.extend_from_slice(&data[last + 1..]);

    let mut out = Vec::with_capacity(data.len() / 2);
    out.push(COLUMNS_VERSION_1);
    out.extend_from_slice(&u32::try_from(shape.len()).ok()?.to_le_bytes());
    out.push(fields as u8);
    out.extend_from_slice(&u32::try_from(first + 1).ok()?.to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len() - last - 1).ok()?.to_le_bytes());
    put_stream(&mut out, &rest, level)?;
    put_stream(&mut out, &shape, level)?;
    let mut any_int = false;
    for (column, len) in columns.iter().zip(lens).take(fields) {
        any_int |= put_column(&mut out, &column[..len], level, int_columns)?;
    }
    if any_int {
        out[0] = COLUMNS_VERSION;
    }
    Some(out)
}

/// Puts a column's stream: as integer deltas (codec 0x02) when every field is a canonical integer and that
/// comes out smaller than the usual stream; says whether it did.
fn put_column(out: &mut Vec<u8>, raw: &[u8], level: i32, int_columns: bool) -> Option<bool> {
    let start = out.len();
    put_stream(out, raw, level)?;
    let Some(deltas) = int_columns.then(|| int_deltas(raw)).flatten() else { return Some(false) };
    let Some(packed) = compress(&deltas, level) else { return Some(false) };
    let size = 1 + 4 + 4 + 4 + packed.len();
    if size >= out.len() - start {
        return Some(false);
    }
    out.truncate(start);
    out.push(STREAM_INT_DELTAS);
    out.extend_from_slice(&u32::try_from(raw.len()).ok()?.to_le_bytes());
    out.extend_from_slice(&u32::try_from(4 + packed.len()).ok()?.to_le_bytes());
    out.extend_from_slice(&u32::try_from(deltas.len()).ok()?.to_le_bytes());
    out.extend_from_slice(&packed);
    Some(true)
}

/// A column's fields (each ending in `\n`) as LEB128 varints of the zigzag-encoded wrapping differences
/// between consecutive values (the first from 0); `None` unless every field is a canonical decimal i64.
fn int_deltas(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len() / 2);
    let mut previous = 0i64;
    let mut at = 0;
    while at < raw.len() {
        let len = field_len(&raw[at..])?;
        let value = canonical_int(&raw[at..at + len])?;
        let d = value.wrapping_sub(previous);
        let mut z = ((d << 1) ^ (d >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
        previous = value;
        at += len + 1;
    }
    Some(out)
}

/// The value of `field` if it is a canonical decimal i64: `0`, or an optional `-` and digits without a
/// leading zero (no `+`, no `-0`, nothing else), so that formatting the value gives the field back.
fn canonical_int(field: &[u8]) -> Option<i64> {
    let (negative, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > MAX_INT_DIGITS - 1 || (digits[0] == b'0' && (negative || digits.len() > 1)) {
        return None;
    }
    let mut magnitude = 0u64;
    for &c in digits {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    match negative {
        false => i64::try_from(magnitude).ok(),
        true if magnitude <= 1 << 63 => Some((magnitude as i64).wrapping_neg()),
        true => None,
    }
}

/// Appends `value`'s canonical decimal and a `\n`.
fn push_int(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; MAX_INT_DIGITS];
    let mut at = digits.len();
    let mut magnitude = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if value < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    out.extend_from_slice(&digits[at..]);
    out.push(b'\n');
}

/// Reverses `int_deltas`: the column's text, which must be exactly `raw_len` bytes.
fn int_column(varints: &[u8], raw_len: usize) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(raw_len + MAX_INT_DIGITS + 1);
    let mut value = 0i64;
    let mut at = 0;
    while at < varints.len() {
        let mut z = 0u64;
        let mut shift = 0;
        loop {
            let byte = *varints.get(at).ok_or_else(|| bad("an integer column ends inside a number"))?;
            at += 1;
            if shift == 63 && byte > 1 {
                return Err(bad("an integer column's difference exceeds 64 bits"));
            }
            z |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    return Err(bad("an integer column's difference is not minimally encoded"));
                }
                break;
            }
            shift += 7;
        }
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        value = value.wrapping_add(d);
        push_int(&mut out, value);
        if out.len() > raw_len {
            return Err(bad(format!("an integer column decodes to more than its {raw_len} bytes")));
        }
    }
    if out.len() != raw_len {
        return Err(bad(format!("an integer column decodes to {} bytes, not {raw_len}", out.len())));
    }
    Ok(out)
}

/// Copies `src[start..end]` to `dst` at `at` and returns the end. A field is usually at most 32 bytes: then,
/// when both sides have 32 bytes to spare, one fixed-size copy (two vector loads and stores) replaces a call
/// to memcpy; the bytes written past the field are overwritten by what follows.
#[inline(always)]
fn copy_short(dst: &mut [u8], at: usize, src: &[u8], start: usize, end: usize) -> usize {
    let n = end - start;
    if n <= SLACK && start + SLACK <= src.len() && at + SLACK <= dst.len() {
        dst[at..at + SLACK].copy_from_slice(&src[start..start + SLACK]);
    } else {
        dst[at..at + n].copy_from_slice(&src[start..end]);
    }
    at + n
}

/// Calls `f(offset, byte)` for every `\t` and `\n` in `data`, in order. Fields are short (a dozen bytes),
/// so finding separators one `memchr` call at a time cost more than the compression; this tests 8 bytes at
/// once (SWAR: a byte equal to the separator becomes zero, and a zero byte sets its high bit) and walks the
/// candidates. The zero test can flag a byte just above a true zero, so each candidate is checked.
fn separators(data: &[u8], mut f: impl FnMut(usize, u8)) {
    let mut words = data.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        let mut mask = zero_bytes(x ^ (ONES * u64::from(b'\t'))) | zero_bytes(x ^ (ONES * u64::from(b'\n')));
        while mask != 0 {
            let i = (mask.trailing_zeros() / 8) as usize;
            let b = bytes[i];
            if b == b'\t' || b == b'\n' {
                f(base + i, b);
            }
            mask &= mask - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == b'\t' || b == b'\n' {
            f(base + i, b);
        }
    }
}

fn put_stream(out: &mut Vec<u8>, raw: &[u8], level: i32) -> Option<()> {
    let packed = compress(raw, level).filter(|c| c.len() < raw.len());
    let (codec, bytes) = match &packed {
        Some(c) => (STREAM_ZSTD, c.as_slice()),
        None => (STREAM_STORED, raw),
    };
    out.push(codec);
    out.extend_from_slice(&u32::try_from(raw.len()).ok()?.to_le_bytes());
    out.extend_from_slice(&u32::try_from(bytes.len()).ok()?.to_le_bytes());
    out.extend_from_slice(bytes);
    Some(())
}

/// Reverses `encode`. The output is at most `max_len` bytes; every length is checked against the bytes
/// actually present, so arbitrary input gives an error, never a panic or an allocation beyond `max_len`.
pub fn decode(payload: &[u8], max_len: usize) -> Result<Vec<u8>, FormatError> {
    let mut r = Cursor { data: payload, at: 0 };
    let version = r.u8()?;
    if version != COLUMNS_VERSION && version != COLUMNS_VERSION_1 {
        return Err(FormatError::UnsupportedVersion {
            what: "columns payload",
            found: u32::from(version),
            supported: u32::from(COLUMNS_VERSION),
        });
    }
    let lines = r.u32()? as usize;
    let fields = usize::from(r.u8()?);
    let head_len = r.u32()? as usize;
    let tail_len = r.u32()? as usize;
    if !(2..=MAX_FIELDS).contains(&fields) {
        return Err(bad(format!("{fields} fields per line (2..={MAX_FIELDS})")));
    }
    if lines > max_len {
        return Err(bad(format!("{lines} lines in at most {max_len} bytes")));
    }
    // rest, shape, then one stream per column; the output is exactly rest + columns in length.
    let mut budget = max_len;
    let rest = r.stream(&mut budget, false)?;
    let mut shape_budget = lines;
    let shape = r.stream(&mut shape_budget, false)?;
    let ints = version == COLUMNS_VERSION;
    let columns = (0..fields).map(|_| r.stream(&mut budget, ints)).collect::<Result<Vec<_>, _>>()?;
    if r.at != payload.len() {
        return Err(bad(format!("{} bytes after the last column", payload.len() - r.at)));
    }
    if shape.len() != lines {
        return Err(bad(format!("shape has {} entries for {lines} lines", shape.len())));
    }
    if head_len.checked_add(tail_len).is_none_or(|n| n > rest.len()) {
        return Err(bad("head and tail longer than the rest stream"));
    }

    let total = max_len - budget;
    let mut out = vec![0u8; total + SLACK];
    let mut at = copy_short(&mut out, 0, &rest, 0, head_len);
    let mut verbatim = head_len;
    let verbatim_end = rest.len() - tail_len;
    let mut from = vec![0usize; fields];
    for (n, kind) in shape.iter().enumerate() {
        match *kind {
            LINE_REGULAR => {
                for (j, column) in columns.iter().enumerate() {
                    let start = from[j];
                    let len =
                        field_len(&column[start..]).ok_or_else(|| bad(format!("column {j} ends before line {n}")))?;
                    at = copy_short(&mut out, at, column, start, start + len);
                    out[at] = if j + 1 == fields { b'\n' } else { b'\t' };
                    at += 1;
                    from[j] = start + len + 1;
                }
            }
            LINE_VERBATIM => {
                let len = memchr(b'\n', &rest[verbatim..verbatim_end])
                    .ok_or_else(|| bad(format!("verbatim line {n} missing")))?;
                at = copy_short(&mut out, at, &rest, verbatim, verbatim + len + 1);
                verbatim += len + 1;
            }
            other => return Err(bad(format!("line kind {other}"))),
        }
    }
    if verbatim != verbatim_end || (0..fields).any(|j| from[j] != columns[j].len()) {
        return Err(bad("streams hold more than the lines use"));
    }
    at = copy_short(&mut out, at, &rest, verbatim_end, rest.len());
    out.truncate(at);
    Ok(out)
}

/// Offset of the first `\n` in `data`. Fields are short: the first 32 bytes are tested a word at a time (the
/// lowest flagged byte of the zero-byte test is always exact), and only longer fields fall back to memchr.
#[inline(always)]
fn field_len(data: &[u8]) -> Option<usize> {
    let words = (data.len() / 8).min(SLACK / 8);
    for w in 0..words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&data[w * 8..w * 8 + 8]);
        let mask = zero_bytes(u64::from_le_bytes(bytes) ^ (ONES * u64::from(b'\n')));
        if mask != 0 {
            return Some(w * 8 + (mask.trailing_zeros() / 8) as usize);
        }
    }
    memchr(b'\n', &data[words * 8..]).map(|i| i + words * 8)
}

/// The high bit of every zero byte of `v` (and possibly of a byte just above a zero byte: the lowest
/// flagged byte is always a true zero).
#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HIGHS
}

fn bad(reason: impl Into<String>) -> FormatError {
    FormatError::malformed("columns payload", reason)
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FormatError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(FormatError::Truncated { needed: self.at.saturating_add(n), have: self.data.len() })?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// One stream, whose raw length is charged to `budget` before anything is allocated; integer deltas
    /// only where `ints` allows them (the columns of a version 2 payload).
    fn stream(&mut self, budget: &mut usize, ints: bool) -> Result<Vec<u8>, FormatError> {
        let codec = self.u8()?;
        let raw_len = self.u32()? as usize;
        let len = self.u32()? as usize;
        *budget =
            budget.checked_sub(raw_len).ok_or_else(|| bad(format!("a stream of {raw_len} bytes exceeds the bound")))?;
        let bytes = self.take(len)?;
        match codec {
            STREAM_STORED if len == raw_len => Ok(bytes.to_vec()),
            STREAM_STORED => Err(bad(format!("stored stream of {len} bytes claims {raw_len}"))),
            STREAM_ZSTD => decompress_exact(bytes, raw_len),
            STREAM_INT_DELTAS if ints => {
                let (count, frame) =
                    bytes.split_first_chunk::<4>().ok_or_else(|| bad("an integer column without its length"))?;
                let varints_len = u32::from_le_bytes(*count) as usize;
                // Every field takes at least 2 raw bytes and its difference at most 10.
                if varints_len > raw_len / 2 * 10 {
                    return Err(bad(format!("{varints_len} bytes of differences for a column of {raw_len} bytes")));
                }
                int_column(&decompress_exact(frame, varints_len)?, raw_len)
            }
            other => Err(bad(format!("stream codec {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_block(rows: usize) -> Vec<u8> {
        let mut s = String::from(
            "CREATE TABLE t (id int, name text, at timestamp);\nCOPY public.t (id, name, at) FROM stdin;\n",
        );
        for i in 0..rows {
            s += &format!(
                "{i}\tcustomer-{:08x}\t2026-0{}-1{} 10:{:02}:00\n",
                i * 2_654_435_761 % (1 << 32),
                1 + i % 9,
                i % 10,
                i % 60
            );
        }
        s += "\\.\n\nCREATE INDEX t_name ON t (na";
        s.into_bytes()
    }

    #[test]
    fn copy_rows_round_trip_and_shrink() {
        let data = copy_block(2000);
        let payload = encode(&data, 1).expect("a COPY block is columnar");
        assert_eq!(decode(&payload, data.len()).unwrap(), data);
        let plain = compress(&data, 1).unwrap();
        assert!(payload.len() < plain.len(), "columns {} vs zstd {}", payload.len(), plain.len());
        // The bound is exact: one byte less is refused.
        assert!(decode(&payload, data.len() - 1).is_err());
    }

    #[test]
    fn irregular_lines_and_edges_round_trip() {
        let mut data = copy_block(100);
        // Lines with other field counts, empty fields, empty lines, a line of only tabs.
        data.splice(200..200, b"one\ttwo\n\n\t\t\n\t\n".iter().copied());
        data.splice(900..900, b"x\t\ty\n".iter().copied());
        assert!(encode(&data, 3).is_some());
        for cut in [0, 1, 57, 63, 64, 500, data.len() - 1] {
            for piece in [&data[cut..], &data[..data.len() - cut]] {
                if let Some(p) = encode(piece, 3) {
                    assert_eq!(decode(&p, piece.len()).unwrap(), piece, "cut {cut}");
                }
            }
        }
    }

    #[test]
    fn separators_are_found_exactly() {
        // Bytes next to the separators' values (0x08, 0x0b) and zeros, which a word-at-a-time test can confuse.
        let data: Vec<u8> =
            (0..4096u32).map(|i| [0, 8, 9, 10, 11, b'a', 0x89, 0x8a][(i * i % 13 % 8) as usize]).collect();
        let mut found = Vec::new();
        separators(&data, |pos, b| found.push((pos, b)));
        let expected: Vec<_> =
            data.iter().enumerate().filter(|(_, &b)| b == 9 || b == 10).map(|(i, &b)| (i, b)).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn non_tabular_data_is_left_to_zstd() {
        assert!(encode(b"", 1).is_none());
        assert!(encode(b"no newline at all", 1).is_none());
        assert!(encode("plain text\n".repeat(100).as_bytes(), 1).is_none());
        let mut mixed = copy_block(20);
        mixed.extend("free text line\n".repeat(40).as_bytes());
        assert!(encode(&mixed, 1).is_none(), "fewer than 9 in 10 lines regular");
    }

    #[test]
    fn damaged_payloads_are_errors() {
        let data = copy_block(300);
        let payload = encode(&data, 1).unwrap();
        for i in 0..payload.len() {
            let mut p = payload.clone();
            p[i] ^= 0x41;
            if let Ok(out) = decode(&p, data.len()) {
                assert!(out.len() <= data.len());
            }
        }
        for n in 0..payload.len() {
            assert!(decode(&payload[..n], data.len()).is_err());
        }
    }

    /// pgbench_accounts-like rows: a sequential key, a key that repeats, a balance, blank filler.
    fn accounts(from: i64, rows: usize) -> Vec<u8> {
        let mut s = String::from("ler\n");
        for aid in from..from + rows as i64 {
            s += &format!("{aid}\t{}\t{}\t{}\n", aid / 1000, (aid * 7919) % 20001 - 10000, " ".repeat(84));
        }
        s.into_bytes()
    }

    #[test]
    fn integer_columns_are_stored_as_differences() {
        let data = accounts(1, 3000);
        let payload = encode(&data, 3).expect("columnar");
        assert_eq!(payload[0], COLUMNS_VERSION, "integer columns make a version 2 payload");
        assert_eq!(decode(&payload, data.len()).unwrap(), data);
        let v1 = encode_v1(&data, 3).expect("columnar");
        assert_eq!(v1[0], COLUMNS_VERSION_1);
        assert_eq!(decode(&v1, data.len()).unwrap(), data);
        assert!(payload.len() * 2 < v1.len(), "differences {} vs text {}", payload.len(), v1.len());
        assert!(decode(&payload, data.len() - 1).is_err(), "the bound is exact");
    }

    #[test]
    fn only_canonical_integers_take_the_integer_codec() {
        let column = |fields: &[&str]| fields.iter().map(|f| format!("{f}\n")).collect::<String>().into_bytes();
        let extremes = ["0", "-1", "9223372036854775807", "-9223372036854775808", "12", "-9223372036854775808"];
        let raw = column(&extremes);
        let deltas = int_deltas(&raw).expect("canonical");
        assert_eq!(int_column(&deltas, raw.len()).unwrap(), raw, "wrapping differences round-trip");
        for odd in ["007", "+5", "-0", "1.5", "", "9223372036854775808", "-9223372036854775809", "1e3", " 1"] {
            assert!(int_deltas(&column(&["1", odd, "2"])).is_none(), "{odd:?} is not canonical");
        }
        // A table whose key has leading zeros is still columnar, as version 1.
        let padded: String = (0..100).map(|i| format!("{i:05}\tx{}\n", i % 7)).collect();
        let data = format!("a\n{padded}").into_bytes();
        let payload = encode(&data, 3).expect("columnar");
        assert_eq!(payload[0], COLUMNS_VERSION_1);
        assert_eq!(decode(&payload, data.len()).unwrap(), data);
    }

    #[test]
    fn integer_columns_refuse_bad_differences() {
        let raw = b"1\n2\n3\n".to_vec();
        let good = int_deltas(&raw).unwrap();
        assert_eq!(good, [2, 2, 2]);
        assert!(int_column(&good, raw.len() + 1).is_err(), "shorter than recorded");
        assert!(int_column(&good, raw.len() - 1).is_err(), "longer than recorded");
        assert!(int_column(&[0x82], 2).is_err(), "ends inside a number");
        assert!(int_column(&[0x82, 0x00], 2).is_err(), "not minimally encoded");
        let mut too_wide = vec![0xff; 9];
        too_wide.push(0x02);
        assert!(int_column(&too_wide, 100).is_err(), "more than 64 bits");
        // Codec 0x02 is refused in a version 1 payload.
        let data = accounts(1, 200);
        let mut payload = encode(&data, 3).unwrap();
        assert_eq!(payload[0], COLUMNS_VERSION);
        payload[0] = COLUMNS_VERSION_1;
        assert!(decode(&payload, data.len()).is_err());
    }
}
