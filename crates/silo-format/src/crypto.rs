//! Key hierarchy: one random master secret per repository, from which every purpose gets its own subkey by
//! BLAKE3 `derive_key` with a distinct context (format-spec/crypto.md). No key is ever used for two purposes.

use crate::{envelope::ObjectKind, ObjectId};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

pub const CONTEXT_CHUNK_ID: &str = "silo 2026-11-22 chunk id key v1";
pub const CONTEXT_ENCRYPTION: &str = "silo 2026-11-22 object encryption key v1";
pub const CONTEXT_CHUNKER: &str = "silo 2026-11-22 chunker gear seed v1";

/// The 32-byte repository master secret, stored only wrapped in key files.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterSecret(pub [u8; 32]);

impl MasterSecret {
    pub fn random() -> Self {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        MasterSecret(b)
    }
}

/// Subkeys derived from the master secret.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Keys {
    chunk_id_key: [u8; 32],
    encryption_key: [u8; 32],
    chunker_seed: u64,
}

impl Keys {
    pub fn derive(master: &MasterSecret) -> Self {
        let chunk_id_key = blake3::derive_key(CONTEXT_CHUNK_ID, &master.0);
        let encryption_key = blake3::derive_key(CONTEXT_ENCRYPTION, &master.0);
        let seed_bytes = blake3::derive_key(CONTEXT_CHUNKER, &master.0);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&seed_bytes[..8]);
        // fastcdc treats seed 0 as "unseeded"; a repository must never fall back to the public gear table.
        let chunker_seed = u64::from_le_bytes(seed).max(1);
        Keys { chunk_id_key, encryption_key, chunker_seed }
    }

    /// Chunk id: BLAKE3 keyed with the chunk-id key over the chunk's plaintext. Keyed, so that holding the
    /// repository does not let anyone test whether it contains a known file.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ObjectId {
        ObjectId(*blake3::keyed_hash(&self.chunk_id_key, plaintext).as_bytes())
    }

    /// The AES-256-GCM key of one object: BLAKE3 keyed with the encryption key over `kind || id`.
    /// A key per object is what keeps nonce reuse out of reach (format-spec/envelope.md, "Nonces").
    pub fn object_key(&self, kind: ObjectKind, id: &ObjectId) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.encryption_key);
        hasher.update(&[kind as u8]);
        hasher.update(&id.0);
        *hasher.finalize().as_bytes()
    }

    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }
}
