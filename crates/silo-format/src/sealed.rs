//! The one way a structured body becomes an encrypted object and back: encode (encoding.md), seal in an
//! envelope of the type's kind with its id in the AAD, and on the way back open, decode, check the version
//! and validate. Index segments, manifests, policies, the gc lease and sessions all go through here.

use crate::{encoding, envelope, Aad, FormatError, Keys, ObjectId, ObjectKind, RepoId};
use bincode::{Decode, Encode};

/// A body type stored in its own envelope kind.
pub trait Sealed: Encode + Decode<()> + Sized {
    const KIND: ObjectKind;
    const WHAT: &'static str;
    /// The body version this build writes and reads.
    const VERSION: u32;
    /// zstd level when sealing (`None`: stored).
    const COMPRESSION: Option<i32> = None;
    /// Largest decompressed body accepted.
    const MAX_BODY: usize = 1 << 16;

    fn version(&self) -> u32;

    /// Checks beyond the encoding itself (ranges, non-empty lists).
    fn validate(&self) -> Result<(), FormatError> {
        Ok(())
    }

    fn seal(&self, keys: &Keys, repo: RepoId, id: ObjectId, nonce: [u8; 12]) -> Vec<u8> {
        let key = keys.object_key(Self::KIND, &id);
        envelope::seal(&key, &Aad::new(repo, Self::KIND, id), &encoding::encode(self), Self::COMPRESSION, nonce)
    }

    fn open(keys: &Keys, repo: RepoId, id: ObjectId, sealed: &[u8]) -> Result<Self, FormatError> {
        let key = keys.object_key(Self::KIND, &id);
        let body = envelope::open(&key, &Aad::new(repo, Self::KIND, id), sealed, Self::MAX_BODY)?;
        Self::decode_body(&body)
    }

    fn decode_body(body: &[u8]) -> Result<Self, FormatError> {
        let v: Self = encoding::decode(Self::WHAT, body)?;
        if v.version() != Self::VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: Self::WHAT,
                found: v.version(),
                supported: Self::VERSION,
            });
        }
        v.validate()?;
        Ok(v)
    }
}
