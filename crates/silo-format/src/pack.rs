//! Pack files: many chunk envelopes followed by an encrypted trailer that lists them, so the index can always
//! be rebuilt from packs alone (format-spec/pack.md):
//! `"SILOPACK" || version u32 || envelope* || trailer envelope || trailer_len u32 || "SPKT"`.
//! A trailer of version 2 also lists which chunks are deltas and of which base (format-spec/delta.md), so
//! the index, and every walk over chunks (gc, check, copy), knows a chunk's base without opening it.

use crate::codec::delta::{self, DeltaHeader};
use crate::codec::Codec;
use crate::{encoding, envelope, Aad, FormatError, Keys, ObjectId, ObjectKind, RepoId};
use bincode::{Decode, Encode};

pub const PACK_MAGIC: &[u8; 8] = b"SILOPACK";
pub const PACK_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 12;
pub const FOOTER_MAGIC: &[u8; 4] = b"SPKT";
pub const FOOTER_LEN: usize = 8;
/// The newest trailer version. Writers use version 1 when no chunk of the pack is a delta, so such packs
/// stay readable by silo versions that know only version 1.
pub const TRAILER_VERSION: u32 = 2;
/// Packs are addressed with u32 offsets; writers close a pack long before this.
pub const MAX_PACK_LEN: u64 = u32::MAX as u64;
/// Chunks a writer puts in one pack at most, whatever its bytes. Delta chunks are a few hundred bytes, so a
/// pack closed only at the target size held ~60 000 of them, and its trailer, the index entries and a
/// session's claims (all per chunk) grew with the stream: a 10 GiB day of deltas peaked at 137 MiB RSS. Whole
/// chunks fill a pack's bytes long before this (~400 per 8 MiB pack).
pub const MAX_PACK_ENTRIES: usize = 8192;

/// Where one chunk lives inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PackEntry {
    pub chunk: ObjectId,
    /// Offset of the chunk's envelope from the start of the pack file.
    pub offset: u32,
    /// Length of the chunk's envelope (what a ranged read fetches).
    pub stored_len: u32,
    /// Length of the chunk's plaintext.
    pub raw_len: u32,
}

/// A chunk of the pack that is stored as a delta: `entry` indexes the pack's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DeltaRef {
    pub entry: u32,
    pub base: ObjectId,
    pub depth: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PackTrailer {
    pub version: u32,
    pub entries: Vec<PackEntry>,
    /// Version 2: the entries that are deltas, in entry order.
    pub deltas: Vec<DeltaRef>,
}

/// Version 1 of the trailer as encoded: no deltas.
#[derive(Encode, Decode)]
struct PackTrailerV1 {
    version: u32,
    entries: Vec<PackEntry>,
}

impl PackTrailer {
    /// The version a writer gives this trailer: 2 only when a chunk is a delta.
    pub fn version_needed(deltas: &[DeltaRef]) -> u32 {
        if deltas.is_empty() {
            1
        } else {
            TRAILER_VERSION
        }
    }

    fn encode_body(&self) -> Vec<u8> {
        if self.version == 1 {
            encoding::encode(&PackTrailerV1 { version: 1, entries: self.entries.clone() })
        } else {
            encoding::encode(self)
        }
    }
}

/// Accumulates chunk envelopes into one pack.
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    deltas: Vec<DeltaRef>,
}

impl Default for PackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PackWriter {
    pub fn new() -> Self {
        Self::with_capacity(HEADER_LEN)
    }

    /// A writer whose buffer never reallocates below `capacity` bytes (keeps peak memory at one pack).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(HEADER_LEN));
        buf.extend_from_slice(PACK_MAGIC);
        buf.extend_from_slice(&PACK_VERSION.to_le_bytes());
        PackWriter { buf, entries: Vec::new(), deltas: Vec::new() }
    }

    /// Appends one sealed chunk. The caller closes the pack before it reaches `MAX_PACK_LEN`.
    pub fn push(&mut self, chunk: ObjectId, sealed: &[u8], raw_len: u32) {
        self.push_with(chunk, sealed, raw_len, None)
    }

    /// Appends one sealed chunk that may be a delta of `delta.base`.
    pub fn push_with(&mut self, chunk: ObjectId, sealed: &[u8], raw_len: u32, delta: Option<DeltaHeader>) {
        if let Some(d) = delta {
            self.deltas.push(DeltaRef { entry: self.entries.len() as u32, base: d.base, depth: d.depth });
        }
        let offset = self.buf.len() as u32;
        self.buf.extend_from_slice(sealed);
        self.entries.push(PackEntry { chunk, offset, stored_len: sealed.len() as u32, raw_len });
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether a writer aiming at `target` bytes closes the pack now: it reached the bytes or
    /// `MAX_PACK_ENTRIES` chunks.
    pub fn is_full(&self, target: usize) -> bool {
        self.buf.len() >= target || self.entries.len() >= MAX_PACK_ENTRIES
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn chunk_count(&self) -> usize {
        self.entries.len()
    }

    /// Seals the trailer and returns the whole pack file plus its trailer (entries and deltas).
    pub fn finish(self, keys: &Keys, repo: RepoId, pack: ObjectId, nonce: [u8; 12]) -> (Vec<u8>, PackTrailer) {
        let PackWriter { mut buf, entries, deltas } = self;
        let trailer = PackTrailer { version: PackTrailer::version_needed(&deltas), entries, deltas };
        let body = trailer.encode_body();
        let key = keys.object_key(ObjectKind::PackTrailer, &pack);
        let sealed = envelope::seal(&key, &Aad::new(repo, ObjectKind::PackTrailer, pack), &body, Some(3), nonce);
        buf.extend_from_slice(&sealed);
        buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        buf.extend_from_slice(FOOTER_MAGIC);
        (buf, trailer)
    }
}

/// Parses the 8-byte footer (the last bytes of a pack) into the trailer envelope's length.
pub fn parse_footer(footer: &[u8]) -> Result<u32, FormatError> {
    if footer.len() != FOOTER_LEN {
        return Err(FormatError::Truncated { needed: FOOTER_LEN, have: footer.len() });
    }
    if &footer[4..] != FOOTER_MAGIC {
        return Err(FormatError::BadMagic { what: "pack footer" });
    }
    Ok(u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]))
}

pub fn check_header(header: &[u8]) -> Result<(), FormatError> {
    if header.len() < HEADER_LEN {
        return Err(FormatError::Truncated { needed: HEADER_LEN, have: header.len() });
    }
    if &header[..8] != PACK_MAGIC {
        return Err(FormatError::BadMagic { what: "pack" });
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != PACK_VERSION {
        return Err(FormatError::UnsupportedVersion { what: "pack", found: version, supported: PACK_VERSION });
    }
    Ok(())
}

/// Decodes a trailer body (after decryption) and checks every entry lies between the header and
/// `trailer_start`, without overlapping its neighbours.
pub fn decode_trailer_body(body: &[u8], trailer_start: u64) -> Result<PackTrailer, FormatError> {
    let trailer = match body.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) {
        Some(1) => {
            let v1: PackTrailerV1 = encoding::decode("pack trailer", body)?;
            PackTrailer { version: 1, entries: v1.entries, deltas: Vec::new() }
        }
        Some(TRAILER_VERSION) => encoding::decode("pack trailer", body)?,
        Some(found) => {
            return Err(FormatError::UnsupportedVersion { what: "pack trailer", found, supported: TRAILER_VERSION })
        }
        None => return Err(FormatError::Truncated { needed: 4, have: body.len() }),
    };
    validate_entries("pack trailer", &trailer.entries, trailer_start)?;
    validate_deltas("pack trailer", &trailer.entries, &trailer.deltas)?;
    Ok(trailer)
}

/// Delta references must name entries in increasing order, a depth in 1..=MAX_DEPTH and a base other than
/// the chunk itself.
pub fn validate_deltas(what: &'static str, entries: &[PackEntry], deltas: &[DeltaRef]) -> Result<(), FormatError> {
    let mut next = 0u64;
    for d in deltas {
        let entry = entries.get(d.entry as usize).filter(|_| u64::from(d.entry) >= next);
        let Some(e) = entry else {
            return Err(FormatError::malformed(
                what,
                format!("delta reference to entry {} out of order or range", d.entry),
            ));
        };
        if d.depth == 0 || d.depth > delta::MAX_DEPTH {
            return Err(FormatError::malformed(what, format!("chunk {} has delta depth {}", e.chunk.short(), d.depth)));
        }
        if d.base == e.chunk {
            return Err(FormatError::malformed(what, format!("chunk {} is its own base", e.chunk.short())));
        }
        next = u64::from(d.entry) + 1;
    }
    Ok(())
}

/// Entries must be sorted by offset, start after the header, not overlap, and end by `end`.
pub fn validate_entries(what: &'static str, entries: &[PackEntry], end: u64) -> Result<(), FormatError> {
    let mut next_free = HEADER_LEN as u64;
    for e in entries {
        let start = u64::from(e.offset);
        let stop = start + u64::from(e.stored_len);
        if start < next_free || stop > end || stop > MAX_PACK_LEN || (e.stored_len as usize) < envelope::OVERHEAD {
            return Err(FormatError::malformed(
                what,
                format!("chunk {} has an impossible range {start}..{stop}", e.chunk.short()),
            ));
        }
        next_free = stop;
    }
    Ok(())
}

/// Opens a whole pack file: header, footer and trailer. Used by `repair index` and by tests; restore reads
/// ranges instead.
pub fn open_pack(keys: &Keys, repo: RepoId, pack: ObjectId, bytes: &[u8]) -> Result<PackTrailer, FormatError> {
    check_header(bytes)?;
    if bytes.len() < HEADER_LEN + FOOTER_LEN {
        return Err(FormatError::Truncated { needed: HEADER_LEN + FOOTER_LEN, have: bytes.len() });
    }
    let trailer_len = parse_footer(&bytes[bytes.len() - FOOTER_LEN..])? as usize;
    let trailer_end = bytes.len() - FOOTER_LEN;
    if trailer_len > trailer_end - HEADER_LEN {
        return Err(FormatError::malformed("pack footer", "trailer length exceeds the pack"));
    }
    let trailer_start = trailer_end - trailer_len;
    let body = open_trailer(keys, repo, pack, &bytes[trailer_start..trailer_end])?;
    decode_trailer_body(&body, trailer_start as u64)
}

pub fn open_trailer(keys: &Keys, repo: RepoId, pack: ObjectId, sealed: &[u8]) -> Result<Vec<u8>, FormatError> {
    let key = keys.object_key(ObjectKind::PackTrailer, &pack);
    envelope::open(&key, &Aad::new(repo, ObjectKind::PackTrailer, pack), sealed, encoding::MAX_BODY)
}

/// Seals one chunk (compressing it at `level` when that helps).
pub fn seal_chunk(
    keys: &Keys,
    repo: RepoId,
    id: ObjectId,
    plaintext: &[u8],
    level: Option<i32>,
    nonce: [u8; 12],
) -> Vec<u8> {
    let key = keys.object_key(ObjectKind::Chunk, &id);
    envelope::seal(&key, &Aad::new(repo, ObjectKind::Chunk, id), plaintext, level, nonce)
}

/// A candidate base for a chunk: its id, depth (0: a whole chunk) and plaintext.
pub struct Base<'a> {
    pub id: ObjectId,
    pub depth: u8,
    pub plaintext: &'a [u8],
}

/// zstd level of delta frames (at least; a higher repository level applies). Matching against a prefix
/// needs a searching strategy: on daily pgbench and sysbench dumps level 1 made deltas 2x larger than level
/// 3 and 2.4x larger than 5, and levels above 7 cost more time than they saved bytes (benches/delta_series.sh).
pub const DELTA_LEVEL: i32 = 5;

/// A delta payload at most this fraction of the chunk is taken without also trying the whole-chunk codecs
/// (they would not beat it by enough to pay for a second compression of the chunk).
const DELTA_GOOD_ENOUGH: usize = 16;

/// Seals one chunk at zstd `level` (deltas at `DELTA_LEVEL` or more), as a delta of `base` when that is
/// smaller than every whole-chunk codec.
/// Returns the envelope and, when it is a delta, its header (for the pack's trailer).
pub fn seal_chunk_against(
    keys: &Keys,
    repo: RepoId,
    id: ObjectId,
    plaintext: &[u8],
    level: i32,
    base: Option<Base<'_>>,
    nonce: [u8; 12],
) -> (Vec<u8>, Option<DeltaHeader>) {
    let key = keys.object_key(ObjectKind::Chunk, &id);
    let aad = Aad::new(repo, ObjectKind::Chunk, id);
    let delta = base.filter(|b| b.depth < delta::MAX_DEPTH && b.id != id).and_then(|b| {
        let header = DeltaHeader { base: b.id, depth: b.depth + 1 };
        delta::encode(plaintext, b.plaintext, header, DELTA_LEVEL.max(level)).map(|p| (header, p))
    });
    if let Some((header, payload)) = &delta {
        if payload.len() <= plaintext.len() / DELTA_GOOD_ENOUGH {
            return (envelope::seal_encoded(&key, &aad, Codec::Delta, payload, nonce), Some(*header));
        }
    }
    let (codec, body) = Codec::choose(plaintext, Some(level));
    match delta {
        Some((header, payload)) if payload.len() < body.len() => {
            (envelope::seal_encoded(&key, &aad, Codec::Delta, &payload, nonce), Some(header))
        }
        _ => (envelope::seal_encoded(&key, &aad, codec, &body, nonce), None),
    }
}

/// Opens one chunk envelope and re-hashes the plaintext: the result is exactly the bytes that were stored
/// under `id`, or an error (also for a delta, which needs its base: `open_chunk_parts`).
pub fn open_chunk(
    keys: &Keys,
    repo: RepoId,
    id: ObjectId,
    sealed: &[u8],
    raw_len: u32,
) -> Result<Vec<u8>, FormatError> {
    match open_chunk_parts(keys, repo, id, sealed, raw_len)? {
        ChunkParts::Whole(plain) => Ok(plain),
        ChunkParts::Delta { header, .. } => Err(FormatError::malformed(
            "chunk",
            format!("a delta of chunk {} (depth {}), read without its base", header.base.short(), header.depth),
        )),
    }
}

/// An opened chunk: its verified plaintext, or a delta still to be decoded against its base.
#[derive(Debug)]
pub enum ChunkParts {
    Whole(Vec<u8>),
    Delta { header: DeltaHeader, payload: Vec<u8> },
}

/// How much of a chunk's identity a reader checks after decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Length and id (keyed hash): every chunk a reader hands on.
    Id,
    /// Length only: a chunk read solely as the base of a delta, whose own id check covers it (a wrong base
    /// cannot decode to the delta's id). The envelope is still authenticated.
    BaseOnly,
}

/// Opens one chunk envelope. A whole chunk is checked (length and id) here; a delta is checked by
/// `finish_delta` once its base is decoded.
pub fn open_chunk_parts(
    keys: &Keys,
    repo: RepoId,
    id: ObjectId,
    sealed: &[u8],
    raw_len: u32,
) -> Result<ChunkParts, FormatError> {
    open_chunk_parts_with(keys, repo, id, sealed, raw_len, Verify::Id)
}

/// `open_chunk_parts` with the given check of a whole chunk.
pub fn open_chunk_parts_with(
    keys: &Keys,
    repo: RepoId,
    id: ObjectId,
    sealed: &[u8],
    raw_len: u32,
    verify: Verify,
) -> Result<ChunkParts, FormatError> {
    let key = keys.object_key(ObjectKind::Chunk, &id);
    match envelope::open_chunk_parts(&key, &Aad::new(repo, ObjectKind::Chunk, id), sealed, raw_len as usize)? {
        envelope::Opened::Whole(plain) => {
            check_chunk(keys, id, &plain, raw_len, verify)?;
            Ok(ChunkParts::Whole(plain))
        }
        envelope::Opened::Delta { header, payload } => {
            if header.base == id {
                return Err(FormatError::malformed("chunk", "a delta of itself"));
            }
            Ok(ChunkParts::Delta { header, payload })
        }
    }
}

/// Decodes a delta's payload against its base's (verified) plaintext and checks the result is chunk `id`.
pub fn finish_delta(
    keys: &Keys,
    id: ObjectId,
    payload: &[u8],
    base: &[u8],
    raw_len: u32,
) -> Result<Vec<u8>, FormatError> {
    finish_delta_with(keys, id, payload, base, raw_len, Verify::Id)
}

/// `finish_delta` with the given check of the result.
pub fn finish_delta_with(
    keys: &Keys,
    id: ObjectId,
    payload: &[u8],
    base: &[u8],
    raw_len: u32,
    verify: Verify,
) -> Result<Vec<u8>, FormatError> {
    let plain = delta::decode(payload, base, raw_len as usize)?;
    check_chunk(keys, id, &plain, raw_len, verify)?;
    Ok(plain)
}

fn check_chunk(keys: &Keys, id: ObjectId, plain: &[u8], raw_len: u32, verify: Verify) -> Result<(), FormatError> {
    if plain.len() != raw_len as usize {
        return Err(FormatError::malformed("chunk", format!("{} bytes where the index says {raw_len}", plain.len())));
    }
    if verify == Verify::Id && keys.chunk_id(plain) != id {
        return Err(FormatError::malformed("chunk", "content does not hash to its id"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_is_full_at_its_target_bytes_or_at_max_entries() {
        let mut w = PackWriter::with_capacity(1 << 20);
        let small = [0u8; 64];
        for i in 0..MAX_PACK_ENTRIES - 1 {
            w.push(ObjectId([(i % 251) as u8; 32]), &small, 1000);
        }
        assert!(!w.is_full(usize::MAX), "below the entry limit and the target");
        w.push(ObjectId([9; 32]), &small, 1000);
        assert!(w.is_full(usize::MAX), "at the entry limit, whatever the bytes");
        let mut big = PackWriter::new();
        big.push(ObjectId([1; 32]), &[0u8; 4096], 4096);
        assert!(big.is_full(4096) && !big.is_full(1 << 20));
    }
}
