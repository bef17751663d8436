//! Pack files: many chunk envelopes followed by an encrypted trailer that lists them, so the index can always
//! be rebuilt from packs alone (format-spec/pack.md):
//! `"SILOPACK" || version u32 || envelope* || trailer envelope || trailer_len u32 || "SPKT"`.

use crate::{encoding, envelope, Aad, FormatError, Keys, ObjectId, ObjectKind, RepoId};
use bincode::{Decode, Encode};

pub const PACK_MAGIC: &[u8; 8] = b"SILOPACK";
pub const PACK_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 12;
pub const FOOTER_MAGIC: &[u8; 4] = b"SPKT";
pub const FOOTER_LEN: usize = 8;
pub const TRAILER_VERSION: u32 = 1;
/// Packs are addressed with u32 offsets; writers close a pack long before this.
pub const MAX_PACK_LEN: u64 = u32::MAX as u64;

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

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PackTrailer {
    pub version: u32,
    pub entries: Vec<PackEntry>,
}

/// Accumulates chunk envelopes into one pack.
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
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
        PackWriter { buf, entries: Vec::new() }
    }

    /// Appends one sealed chunk. The caller closes the pack before it reaches `MAX_PACK_LEN`.
    pub fn push(&mut self, chunk: ObjectId, sealed: &[u8], raw_len: u32) {
        let offset = self.buf.len() as u32;
        self.buf.extend_from_slice(sealed);
        self.entries.push(PackEntry { chunk, offset, stored_len: sealed.len() as u32, raw_len });
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn chunk_count(&self) -> usize {
        self.entries.len()
    }

    /// Seals the trailer and returns the whole pack file plus its entries.
    pub fn finish(self, keys: &Keys, repo: RepoId, pack: ObjectId, nonce: [u8; 12]) -> (Vec<u8>, Vec<PackEntry>) {
        let PackWriter { mut buf, entries } = self;
        let trailer = PackTrailer { version: TRAILER_VERSION, entries };
        let body = encoding::encode(&trailer);
        let key = keys.object_key(ObjectKind::PackTrailer, &pack);
        let sealed = envelope::seal(&key, &Aad::new(repo, ObjectKind::PackTrailer, pack), &body, Some(3), nonce);
        buf.extend_from_slice(&sealed);
        buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        buf.extend_from_slice(FOOTER_MAGIC);
        (buf, trailer.entries)
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
    let trailer: PackTrailer = encoding::decode("pack trailer", body)?;
    if trailer.version != TRAILER_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: "pack trailer",
            found: trailer.version,
            supported: TRAILER_VERSION,
        });
    }
    validate_entries("pack trailer", &trailer.entries, trailer_start)?;
    Ok(trailer)
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

/// Opens one chunk envelope and re-hashes the plaintext: the result is exactly the bytes that were stored
/// under `id`, or an error.
pub fn open_chunk(
    keys: &Keys,
    repo: RepoId,
    id: ObjectId,
    sealed: &[u8],
    raw_len: u32,
) -> Result<Vec<u8>, FormatError> {
    let key = keys.object_key(ObjectKind::Chunk, &id);
    let plain = envelope::open(&key, &Aad::new(repo, ObjectKind::Chunk, id), sealed, raw_len as usize)?;
    if plain.len() != raw_len as usize {
        return Err(FormatError::malformed("chunk", format!("{} bytes where the index says {raw_len}", plain.len())));
    }
    if keys.chunk_id(&plain) != id {
        return Err(FormatError::malformed("chunk", "content does not hash to its id"));
    }
    Ok(plain)
}
