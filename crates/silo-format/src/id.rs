//! Object and repository identifiers: 32-byte object ids (chunk ids are keyed hashes, every other object id is
//! random) and 16-byte repository ids, with their lowercase-hex names.

use bincode::{Decode, Encode};
use rand::RngCore;
use std::fmt;

/// A 32-byte object id. Chunks: keyed BLAKE3 of the plaintext. Packs, index segments, snapshots, key files:
/// 32 random bytes from the operating system's CSPRNG.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode, Default)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    pub const ZERO: ObjectId = ObjectId([0; 32]);

    pub fn random() -> Self {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        ObjectId(b)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, as shown to people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(ObjectId(b))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short())
    }
}

/// A 16-byte random repository id, fixed at `init`; bound into every envelope's associated data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Default)]
pub struct RepoId(pub [u8; 16]);

impl RepoId {
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        RepoId(b)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoId({})", self.to_hex())
    }
}
