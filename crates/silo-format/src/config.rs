//! The `config` object: a plaintext header (magic, format version, repository id) that lets any build refuse
//! a repository it cannot read before asking for a password, followed by the encrypted repository parameters
//! (format-spec/config.md).

use crate::chunker::ChunkerParams;
use crate::{encoding, envelope, Aad, FormatError, Keys, ObjectId, ObjectKind, RepoId, FORMAT_VERSION};
use bincode::{Decode, Encode};

pub const CONFIG_MAGIC: &[u8; 8] = b"SILOREPO";
pub const HEADER_LEN: usize = 28;
/// The body version `init` writes. Version 1 (no `chunker_rule`: rule 1) is still read.
pub const CONFIG_BODY_VERSION: u32 = 2;

/// The repository parameters; encoded as body version 2 (a version 1 body is `BodyV1`).
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
    /// How streams are cut (chunker.md `RULE_*`): 1 in a version 1 body, stored from version 2 on.
    pub chunker_rule: u8,
}

/// Body version 1 as stored: version 2 without the cut rule.
#[derive(Encode, Decode)]
struct BodyV1 {
    version: u32,
    chunker: ChunkerParams,
    pack_target_size: u32,
    compression_level: i32,
    gc_safety_age: u64,
    gc_grace_period: u64,
    created: i64,
}

impl From<BodyV1> for RepoConfig {
    fn from(b: BodyV1) -> Self {
        RepoConfig {
            version: b.version,
            chunker: b.chunker,
            pack_target_size: b.pack_target_size,
            compression_level: b.compression_level,
            gc_safety_age: b.gc_safety_age,
            gc_grace_period: b.gc_grace_period,
            created: b.created,
            chunker_rule: crate::chunker::RULE_FASTCDC,
        }
    }
}

impl From<&RepoConfig> for BodyV1 {
    fn from(c: &RepoConfig) -> Self {
        BodyV1 {
            version: 1,
            chunker: c.chunker,
            pack_target_size: c.pack_target_size,
            compression_level: c.compression_level,
            gc_safety_age: c.gc_safety_age,
            gc_grace_period: c.gc_grace_period,
            created: c.created,
        }
    }
}

impl RepoConfig {
    pub fn validate(&self) -> Result<(), FormatError> {
        if !(1..=CONFIG_BODY_VERSION).contains(&self.version) {
            return Err(FormatError::UnsupportedVersion {
                what: "config",
                found: self.version,
                supported: CONFIG_BODY_VERSION,
            });
        }
        let rules: &[u8] = if self.version == 1 {
            &[crate::chunker::RULE_FASTCDC]
        } else {
            &[crate::chunker::RULE_FASTCDC, crate::chunker::RULE_SKIP_RUNS]
        };
        if !rules.contains(&self.chunker_rule) {
            return Err(FormatError::malformed("config", format!("unknown chunker rule {}", self.chunker_rule)));
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
        &encode_body(config),
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

/// The body of a config, by its version (the first field, a u32 LE): 1 or 2; any other is refused by
/// number.
pub fn decode_body(body: &[u8]) -> Result<RepoConfig, FormatError> {
    let version = match body.get(..4) {
        Some(v) => u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
        None => return Err(FormatError::malformed("config", "shorter than its version")),
    };
    let config = match version {
        1 => RepoConfig::from(encoding::decode::<BodyV1>("config", body)?),
        2 => encoding::decode::<RepoConfig>("config", body)?,
        found => return Err(FormatError::UnsupportedVersion { what: "config", found, supported: CONFIG_BODY_VERSION }),
    };
    config.validate()?;
    Ok(config)
}

/// The stored body of `config`: version 1's shape for a version 1 config (so it re-encodes as read),
/// version 2's otherwise.
fn encode_body(c: &RepoConfig) -> Vec<u8> {
    if c.version == 1 {
        encoding::encode(&BodyV1::from(c))
    } else {
        encoding::encode(c)
    }
}
