//! The `config` object: a plaintext header (magic, format version, repository id) that lets any build refuse
//! a repository it cannot read before asking for a password, followed by the encrypted repository parameters
//! (format-spec/config.md).

use crate::chunker::ChunkerParams;
use crate::{encoding, envelope, Aad, FormatError, Keys, ObjectId, ObjectKind, RepoId, FORMAT_VERSION};
use bincode::{Decode, Encode};

pub const CONFIG_MAGIC: &[u8; 8] = b"SILOREPO";
pub const HEADER_LEN: usize = 28;
pub const CONFIG_BODY_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RepoConfig {
    pub version: u32,
    pub chunker: ChunkerParams,
    /// A writer closes a pack once it holds at least this many bytes.
    pub pack_target_size: u32,
    /// zstd level for chunks.
    pub compression_level: i32,
    /// gc: a pack younger than this (seconds) is never considered dead.
    pub gc_safety_age: u64,
    /// gc: seconds between marking a pack deleted and removing it.
    pub gc_grace_period: u64,
    /// Microseconds since the Unix epoch.
    pub created: i64,
}

impl RepoConfig {
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.version != CONFIG_BODY_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "config",
                found: self.version,
                supported: CONFIG_BODY_VERSION,
            });
        }
        self.chunker.validate()?;
        if !(1 << 20..=1 << 30).contains(&self.pack_target_size) {
            return Err(FormatError::malformed("config", "pack target size outside 1 MiB..1 GiB"));
        }
        if !(1..=22).contains(&self.compression_level) {
            return Err(FormatError::malformed("config", "compression level outside 1..22"));
        }
        Ok(())
    }
}

/// The plaintext header of `config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigHeader {
    pub format_version: u32,
    pub repo: RepoId,
}

/// Reads only the header: magic and version are checked, the repository id is returned.
pub fn parse_header(bytes: &[u8]) -> Result<ConfigHeader, FormatError> {
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated { needed: HEADER_LEN, have: bytes.len() });
    }
    if &bytes[..8] != CONFIG_MAGIC {
        return Err(FormatError::BadMagic { what: "repository config" });
    }
    let format_version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if format_version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: "repository format",
            found: format_version,
            supported: FORMAT_VERSION,
        });
    }
    let mut repo = [0u8; 16];
    repo.copy_from_slice(&bytes[12..28]);
    Ok(ConfigHeader { format_version, repo: RepoId(repo) })
}

pub fn encode(config: &RepoConfig, keys: &Keys, repo: RepoId, nonce: [u8; 12]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(CONFIG_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&repo.0);
    let key = keys.object_key(ObjectKind::Config, &ObjectId::ZERO);
    out.extend_from_slice(&envelope::seal(
        &key,
        &Aad::new(repo, ObjectKind::Config, ObjectId::ZERO),
        &encoding::encode(config),
        None,
        nonce,
    ));
    out
}

pub fn decode(bytes: &[u8], keys: &Keys) -> Result<RepoConfig, FormatError> {
    let header = parse_header(bytes)?;
    let key = keys.object_key(ObjectKind::Config, &ObjectId::ZERO);
    let body = envelope::open(
        &key,
        &Aad::new(header.repo, ObjectKind::Config, ObjectId::ZERO),
        &bytes[HEADER_LEN..],
        1 << 16,
    )?;
    decode_body(&body)
}

pub fn decode_body(body: &[u8]) -> Result<RepoConfig, FormatError> {
    let config: RepoConfig = encoding::decode("config", body)?;
    config.validate()?;
    Ok(config)
}
