//! gzip and zstd streams (`pg_dump | gzip | silo`): decoded on the inspection thread as they pass (the
//! stored bytes stay as they came) and the decoded bytes judged by an inner `Inspector`. A compressed stream
//! is whole when every gzip member ends with its CRC-32 and length (every zstd frame ends) and what it holds
//! is a whole dump. A dump inside is judged as if it came uncompressed; a compressed stream holding no dump
//! silo identifies is stored unjudged with a note (even when the compression itself was cut short).

use super::{Inspector, Verdict};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

pub(super) fn is_gzip(head: &[u8]) -> bool {
    head.len() >= 10 && head.starts_with(&[0x1f, 0x8b, 8]) && head[3] & 0xe0 == 0
}

pub(super) fn is_zstd(head: &[u8]) -> bool {
    head.len() >= 6 && head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// Decoded bytes handed to the inner inspector at a time.
const OUT: usize = 256 * 1024;

enum Gz {
    /// Gathering a member's header.
    Header(Vec<u8>),
    Body(Box<InflateState>),
    /// Gathering a member's CRC-32 and length.
    Trailer(Vec<u8>),
    /// After a whole member (another may follow).
    Between,
}

enum Codec {
    Gzip { state: Gz, crc: u32, size: u32, table: Box<[u32; 256]> },
    Zstd { decoder: Box<zstd::stream::raw::Decoder<'static>>, frame_done: bool },
}

pub(super) struct Compressed {
    codec: Codec,
    inner: Box<Inspector>,
    out: Vec<u8>,
    problem: Option<String>,
}

impl Compressed {
    pub(super) fn gzip() -> Self {
        let table = Box::new(crc32_table());
        Self::new(Codec::Gzip { state: Gz::Header(Vec::new()), crc: 0, size: 0, table })
    }

    pub(super) fn zstd() -> Option<Self> {
        let decoder = zstd::stream::raw::Decoder::new().ok()?;
        Some(Self::new(Codec::Zstd { decoder: Box::new(decoder), frame_done: false }))
    }

    fn new(codec: Codec) -> Self {
        Compressed { codec, inner: Box::default(), out: vec![0; OUT], problem: None }
    }

    pub(super) fn name(&self) -> &'static str {
        match self.codec {
            Codec::Gzip { .. } => "gzip",
            Codec::Zstd { .. } => "zstd",
        }
    }

    pub(super) fn feed(&mut self, data: &[u8]) {
        if self.problem.is_some() || data.is_empty() {
            return;
        }
        let result = match &mut self.codec {
            Codec::Gzip { .. } => self.gzip_feed(data),
            Codec::Zstd { decoder, frame_done } => zstd_feed(decoder, frame_done, data, &mut self.out, &mut self.inner),
        };
        if let Err(e) = result {
            self.problem = Some(e);
        }
    }

    fn gzip_feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        let Codec::Gzip { state, crc, size, table } = &mut self.codec else { return Ok(()) };
        while !data.is_empty() {
            match state {
                Gz::Between => {
                    if data[0] != 0x1f {
                        return Err("bytes follow the last gzip member that are not another member".into());
                    }
                    *state = Gz::Header(Vec::new());
                }
                Gz::Header(h) => {
                    let take = data.len().min(4096);
                    match header_piece(h, &data[..take])? {
                        None => data = &data[take..],
                        Some(used) => {
                            data = &data[used..];
                            *crc = 0;
                            *size = 0;
                            *state = Gz::Body(InflateState::new_boxed(DataFormat::Raw));
                        }
                    }
                }
                Gz::Body(inflate) => {
                    let r = miniz_oxide::inflate::stream::inflate(inflate, data, &mut self.out, MZFlush::None);
                    let written = &self.out[..r.bytes_written];
                    *crc = crc32_update(table, *crc, written);
                    *size = size.wrapping_add(written.len() as u32);
                    self.inner.feed(written);
                    data = &data[r.bytes_consumed..];
                    match r.status {
                        Ok(MZStatus::StreamEnd) => *state = Gz::Trailer(Vec::with_capacity(8)),
                        Ok(_) => {}
                        Err(MZError::Buf) => {}
                        Err(e) => return Err(format!("the gzip data is damaged ({e:?})")),
                    }
                    if r.bytes_consumed == 0 && r.bytes_written == 0 && !matches!(state, Gz::Trailer(_)) {
                        break;
                    }
                }
                Gz::Trailer(t) => {
                    let take = data.len().min(8 - t.len());
                    t.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if t.len() == 8 {
                        let want_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                        let want_size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
                        if want_crc != *crc || want_size != *size {
                            return Err("a gzip member's CRC-32 or length does not match its data".into());
                        }
                        *state = Gz::Between;
                    }
                }
            }
        }
        Ok(())
    }

    /// The verdict and note, as `Inspector::conclude` gives them.
    pub(super) fn conclude(mut self) -> (Option<Verdict>, Option<String>) {
        let name = self.name();
        let ended = match &mut self.codec {
            Codec::Gzip { state, .. } => matches!(state, Gz::Between),
            Codec::Zstd { frame_done, .. } => *frame_done,
        };
        let problem = self
            .problem
            .take()
            .or_else(|| (!ended).then(|| format!("the {name} stream ends before its end: it was cut short")));
        let (inner, note) = self.inner.conclude();
        match inner {
            None => {
                let why = match (&problem, note) {
                    (Some(p), _) => format!("a {name} stream holding no dump silo identifies ({p})"),
                    (None, Some(n)) => format!("a {name} stream: {n}"),
                    (None, None) => format!("a {name} stream holding no dump silo identifies"),
                };
                (None, Some(super::unjudged_note(&why)))
            }
            Some(mut v) => match problem.or(v.problem.take()) {
                Some(p) => {
                    v.problem = Some(format!("{name}-compressed: {p}"));
                    (Some(v), None)
                }
                None => (
                    None,
                    Some(format!(
                        "a whole {} inside {name}, checked through it; kept without a dump record, so \
                         restore-database cannot load it (dump uncompressed and let silo compress)",
                        v.format_name()
                    )),
                ),
            },
        }
    }
}

fn zstd_feed(
    decoder: &mut zstd::stream::raw::Decoder<'static>,
    frame_done: &mut bool,
    data: &[u8],
    out: &mut [u8],
    inner: &mut Inspector,
) -> Result<(), String> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let mut input = InBuffer::around(data);
    loop {
        let mut output = OutBuffer::around(&mut *out);
        let hint = decoder.run(&mut input, &mut output).map_err(|e| format!("the zstd data is damaged ({e})"))?;
        let written = output.pos();
        inner.feed(&out[..written]);
        *frame_done = hint == 0;
        if input.pos() == data.len() && written < OUT {
            return Ok(());
        }
    }
}

/// The length of a complete gzip member header at the start of `h`, None while it is incomplete.
fn gzip_header(h: &[u8]) -> Result<Option<usize>, String> {
    if h.len() < 10 {
        return Ok(None);
    }
    if h[..3] != [0x1f, 0x8b, 8] {
        return Err("a gzip member does not begin with gzip's magic number".into());
    }
    let flags = h[3];
    let mut at = 10;
    if flags & 4 != 0 {
        let Some(n) = h.get(at..at + 2) else { return Ok(None) };
        at += 2 + u16::from_le_bytes([n[0], n[1]]) as usize;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            match h.get(at..).and_then(|r| r.iter().position(|&b| b == 0)) {
                Some(p) => at += p + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & 2 != 0 {
        at += 2;
    }
    Ok((h.len() >= at).then_some(at))
}

fn crc32_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    for (i, slot) in t.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *slot = c;
    }
    t
}

fn crc32_update(table: &[u32; 256], crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Adds `piece` to a gzip member's header read so far: how many bytes of `piece` it took once the header
/// is whole (the rest belongs to the body), or None when all of it went into a header still incomplete.
fn header_piece(h: &mut Vec<u8>, piece: &[u8]) -> Result<Option<usize>, String> {
    h.extend_from_slice(piece);
    match gzip_header(h)? {
        None if h.len() > 1 << 20 => Err("a gzip member's header is longer than 1 MiB".into()),
        None => Ok(None),
        Some(n) => Ok(Some(piece.len() - (h.len() - n))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A gzip member holding `data` in one stored (uncompressed) deflate block.
    pub(in crate::dumps::inspect) fn gzip_stored(data: &[u8]) -> Vec<u8> {
        let mut g = vec![0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3];
        g.extend_from_slice(b"dump.sql\0");
        g.push(1);
        let len = data.len() as u16;
        g.extend_from_slice(&len.to_le_bytes());
        g.extend_from_slice(&(!len).to_le_bytes());
        g.extend_from_slice(data);
        g.extend_from_slice(&crc32_update(&crc32_table(), 0, data).to_le_bytes());
        g.extend_from_slice(&(data.len() as u32).to_le_bytes());
        g
    }

    #[test]
    fn gzip_members_are_followed_to_their_crc() {
        let dump =
            b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(a);\nINSERT INTO t VALUES(1);\nCOMMIT;\n";
        let (half1, half2) = dump.split_at(30);
        let mut two = gzip_stored(half1);
        two.extend(gzip_stored(half2));
        for g in [gzip_stored(dump), two] {
            let conclude = |data: &[u8], piece: usize| {
                let mut i = Inspector::default();
                for p in data.chunks(piece) {
                    i.feed(p);
                }
                i.conclude()
            };
            for piece in [1, 3, 4096] {
                let (v, note) = conclude(&g, piece);
                assert!(v.is_none() && note.unwrap().contains("inside gzip"), "pieces of {piece}");
            }
            for cut in 10..g.len() {
                let (v, note) = conclude(&g[..cut], 5);
                match v {
                    Some(v) => assert!(v.problem.unwrap().starts_with("gzip-compressed"), "cut at {cut}"),
                    None => assert!(note.unwrap().contains("stored unjudged"), "cut at {cut}"),
                }
            }
            let mut flipped = g.clone();
            let at = flipped.len() - 10;
            flipped[at] ^= 1;
            assert!(conclude(&flipped, 7).0.unwrap().problem.unwrap().contains("gzip"));
        }
    }

    #[test]
    fn crc32_is_gzips() {
        assert_eq!(crc32_update(&crc32_table(), 0, b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn zstd_dumps_are_judged_through_the_compression() {
        let dump = b"--\n-- PostgreSQL database dump\n--\n\nCOPY public.t (a) FROM stdin;\n1\n\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n";
        let z = zstd::encode_all(&dump[..], 3).unwrap();
        let conclude = |data: &[u8]| {
            let mut i = Inspector::default();
            for p in data.chunks(7) {
                i.feed(p);
            }
            i.conclude()
        };
        let (v, note) = conclude(&z);
        assert!(v.is_none() && note.unwrap().contains("a whole pg_dump (plain SQL) inside zstd"));
        for cut in 10..z.len() {
            let (v, note) = conclude(&z[..cut]);
            match v {
                Some(v) => assert!(v.problem.unwrap().starts_with("zstd-compressed"), "cut at {cut}"),
                None => assert!(note.unwrap().contains("stored unjudged"), "cut at {cut}"),
            }
        }
        let cut_dump = zstd::encode_all(&dump[..60], 3).unwrap();
        assert!(conclude(&cut_dump).0.unwrap().problem.unwrap().contains("COPY"));
    }
}
