//! The encryption envelope that wraps every encrypted byte string in a repository:
//! `version(1) || nonce(12) || AES-256-GCM(plaintext) || tag(16)`, where the plaintext is
//! `codec(1) || payload` and the associated data binds repository, object kind and object id
//! (format-spec/envelope.md). Opening either returns authenticated bytes or an error; never partial data.
//! Only framing and AEAD live here; compression is the codec's (codec/).

use crate::codec::Codec;
use crate::{FormatError, ObjectId, RepoId};
use rand::RngCore;
use ring::aead::{self, LessSafeKey, UnboundKey, AES_256_GCM};

pub const ENVELOPE_VERSION: u8 = 1;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds around its payload: version, nonce, codec byte, tag.
pub const OVERHEAD: usize = 1 + NONCE_LEN + 1 + TAG_LEN;

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
    Run = 12,
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

/// Encodes `payload` with the codec `Codec::choose` picks at zstd `level` (`None`: stored as it is), then
/// seals it.
pub fn seal(key: &[u8; 32], aad: &Aad, payload: &[u8], level: Option<i32>, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let (codec, body) = Codec::choose(payload, level);
    seal_encoded(key, aad, codec, &body, nonce)
}

/// Seals a body already encoded with `codec` (a delta chunk's payload, codec/delta.rs).
pub fn seal_encoded(key: &[u8; 32], aad: &Aad, codec: Codec, body: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + OVERHEAD);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&nonce);
    out.push(codec.id());
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
/// after decompression (a hostile zstd frame must not exhaust memory). A delta (which needs its base) is an
/// error here: chunks are opened with `open_chunk_parts`.
pub fn open(key: &[u8; 32], aad: &Aad, envelope: &[u8], max_len: usize) -> Result<Vec<u8>, FormatError> {
    match open_chunk_parts(key, aad, envelope, max_len)? {
        Opened::Whole(plain) => Ok(plain),
        Opened::Delta { .. } => Codec::Delta.decode(&[], max_len),
    }
}

/// An opened envelope: the payload, or a delta whose base must be decoded first.
#[derive(Debug)]
pub enum Opened {
    Whole(Vec<u8>),
    /// `payload` is the codec's whole payload (header included), for `codec::delta::decode`.
    Delta {
        header: crate::codec::delta::DeltaHeader,
        payload: Vec<u8>,
    },
}

/// Authenticates and decrypts an envelope; decompresses it unless it is a delta, whose header is read and
/// returned with the payload.
pub fn open_chunk_parts(key: &[u8; 32], aad: &Aad, envelope: &[u8], max_len: usize) -> Result<Opened, FormatError> {
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
    match Codec::from_id(plain[0])? {
        // Stored data is already in `plain`: drop the codec byte in place instead of copying every byte
        // again (the decoder's bound check applies through the other arm when it is too long).
        Codec::Stored if plain.len() - 1 <= max_len => {
            plain.remove(0);
            Ok(Opened::Whole(plain))
        }
        Codec::Delta => {
            plain.remove(0);
            Ok(Opened::Delta { header: crate::codec::delta::header(&plain)?, payload: plain })
        }
        codec => codec.decode(&plain[1..], max_len).map(Opened::Whole),
    }
}
