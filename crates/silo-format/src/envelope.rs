//! The encryption envelope that wraps every encrypted byte string in a repository:
//! `version(1) || nonce(12) || AES-256-GCM(plaintext) || tag(16)`, where the plaintext is
//! `codec(1) || payload` and the associated data binds repository, object kind and object id
//! (format-spec/envelope.md). Opening either returns authenticated bytes or an error; never partial data.

use crate::{FormatError, ObjectId, RepoId};
use rand::RngCore;
use ring::aead::{self, LessSafeKey, UnboundKey, AES_256_GCM};
use std::io::Read;

pub const ENVELOPE_VERSION: u8 = 1;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds around its payload: version, nonce, codec byte, tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 1 + TAG_LEN;

pub const CODEC_STORED: u8 = 0;
pub const CODEC_ZSTD: u8 = 1;
pub const CODEC_COLUMNS: u8 = 2;

/// What an encrypted object is; part of the associated data and of the per-object key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    Chunk = 1,
    PackTrailer = 2,
    IndexSegment = 3,
    Snapshot = 4,
    Config = 5,
    KeyFile = 6,
    Policy = 7,
    Lease = 8,
    Session = 9,
    DamageMark = 10,
    Drill = 11,
}

/// Associated data: `"silo" || envelope version || repo id(16) || kind(1) || object id(32)`, 54 bytes.
#[derive(Clone, Copy, Debug)]
pub struct Aad {
    pub repo: RepoId,
    pub kind: ObjectKind,
    pub id: ObjectId,
}

impl Aad {
    pub fn new(repo: RepoId, kind: ObjectKind, id: ObjectId) -> Self {
        Aad { repo, kind, id }
    }

    pub fn to_bytes(&self) -> [u8; 54] {
        let mut b = [0u8; 54];
        b[..4].copy_from_slice(b"silo");
        b[4] = ENVELOPE_VERSION;
        b[5..21].copy_from_slice(&self.repo.0);
        b[21] = self.kind as u8;
        b[22..54].copy_from_slice(&self.id.0);
        b
    }
}

/// AES-256-GCM under `key` (ring: AES-NI/VAES and CLMUL assembly, several GB/s; the RustCrypto crates ran
/// at ~340 MiB/s here without target-cpu flags, see benches/components.rs).
fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is a valid AES-256 key"))
}

pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

/// Compresses `payload` at zstd `level` — column by column when it is tab-separated lines (columns.rs),
/// as one frame otherwise — when that makes it smaller, then seals it. `level = None` stores the payload
/// as is (already-compressed data, key files).
pub fn seal(key: &[u8; 32], aad: &Aad, payload: &[u8], level: Option<i32>, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let smaller = |c: &Vec<u8>| c.len() < payload.len();
    let compressed = level.and_then(|l| {
        crate::columns::encode(payload, l)
            .filter(smaller)
            .map(|c| (CODEC_COLUMNS, c))
            .or_else(|| compress(payload, l).filter(smaller).map(|c| (CODEC_ZSTD, c)))
    });
    let (codec, body) = match &compressed {
        Some((codec, c)) => (*codec, c.as_slice()),
        None => (CODEC_STORED, payload),
    };
    let mut out = Vec::with_capacity(body.len() + OVERHEAD);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&nonce);
    out.push(codec);
    out.extend_from_slice(body);
    let tag = cipher(key)
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad.to_bytes()),
            &mut out[1 + NONCE_LEN..],
        )
        .expect("AES-GCM encryption only fails for messages over 64 GiB");
    out.extend_from_slice(tag.as_ref());
    out
}

/// Authenticates and decrypts an envelope, then decompresses its payload. `max_len` bounds the payload size
/// after decompression (a hostile zstd frame must not exhaust memory).
pub fn open(key: &[u8; 32], aad: &Aad, envelope: &[u8], max_len: usize) -> Result<Vec<u8>, FormatError> {
    if envelope.len() < OVERHEAD {
        return Err(FormatError::Truncated { needed: OVERHEAD, have: envelope.len() });
    }
    if envelope[0] != ENVELOPE_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: "envelope",
            found: u32::from(envelope[0]),
            supported: u32::from(ENVELOPE_VERSION),
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&envelope[1..1 + NONCE_LEN]);
    // Ciphertext and tag, decrypted in place; the tag is then cut off.
    let mut plain = envelope[1 + NONCE_LEN..].to_vec();
    let len = cipher(key)
        .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad.to_bytes()), &mut plain)
        .map_err(|_| FormatError::Authentication)?
        .len();
    plain.truncate(len);
    let codec = plain[0];
    match codec {
        CODEC_STORED => {
            plain.remove(0);
            if plain.len() > max_len {
                return Err(FormatError::malformed(
                    "envelope",
                    format!("payload of {} bytes exceeds {max_len}", plain.len()),
                ));
            }
            Ok(plain)
        }
        CODEC_ZSTD => decompress_bounded(&plain[1..], max_len),
        CODEC_COLUMNS => crate::columns::decode(&plain[1..], max_len),
        other => Err(FormatError::malformed("envelope", format!("unknown codec {other}"))),
    }
}

thread_local! {
    /// One zstd context per thread and level, reused: creating one per chunk cost ~4% of a restore.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub(crate) fn compress(payload: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        slot.as_mut()?.1.compress(payload).ok()
    })
}

/// One zstd frame that must decompress to exactly `len` bytes (a columns stream).
pub(crate) fn decompress_exact(data: &[u8], len: usize) -> Result<Vec<u8>, FormatError> {
    let out = decompress_bounded(data, len)?;
    if out.len() != len {
        return Err(FormatError::Decompress(format!("{} bytes where {len} were recorded", out.len())));
    }
    Ok(out)
}

fn decompress_bounded(data: &[u8], max_len: usize) -> Result<Vec<u8>, FormatError> {
    // Small bounds (every chunk): one-shot into a buffer of exactly the bound. Large bounds (manifests):
    // streaming, so a small body does not reserve the whole bound.
    if max_len <= 16 << 20 {
        return DECOMPRESSOR.with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| FormatError::Decompress(e.to_string()))?);
            }
            match slot.as_mut() {
                Some(d) => d.decompress(data, max_len).map_err(|e| FormatError::Decompress(e.to_string())),
                None => Err(FormatError::Decompress("no zstd context".into())),
            }
        });
    }
    let decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(|e| FormatError::Decompress(e.to_string()))?;
    let mut out = Vec::new();
    decoder.take(max_len as u64 + 1).read_to_end(&mut out).map_err(|e| FormatError::Decompress(e.to_string()))?;
    if out.len() > max_len {
        return Err(FormatError::Decompress(format!("payload exceeds {max_len} bytes")));
    }
    Ok(out)
}
