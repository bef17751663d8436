//! Key files (`keys/<id>`): the master secret wrapped under a key derived from a password with argon2id.
//! Several key files may wrap one master secret; each is tried in turn (format-spec/keyfile.md).

use crate::{encoding, envelope, Aad, FormatError, MasterSecret, ObjectId, ObjectKind, RepoId};
use bincode::{Decode, Encode};
use zeroize::Zeroizing;

pub const KEYFILE_MAGIC: &[u8; 8] = b"SILOKEY\0";
/// The version silo writes. Version 1 (no `user`) is still read (format-spec/keyfile.md).
pub const KEYFILE_VERSION: u32 = 2;
pub const KDF_ARGON2ID_V19: u32 = 1;
/// A key that may do everything.
pub const ROLE_OWNER: u8 = 0;
/// A writer key: silo holding it creates snapshots but never deletes or overwrites anything (append-only).
pub const ROLE_WRITER: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended setting, above OWASP's argon2id floor
    /// (19 MiB, 2 passes). The lanes are computed in parallel, so every command that opens the repository
    /// pays about half the single-lane time on two cores (the memory-hardness is the same).
    pub const DEFAULT: KdfParams = KdfParams { memory_kib: 64 << 10, iterations: 3, parallelism: 4 };

    pub fn validate(&self) -> Result<(), FormatError> {
        // Upper bounds keep a hostile key file from making silo allocate or spin without limit.
        let ok = (8..=4 << 20).contains(&self.memory_kib)
            && (1..=64).contains(&self.iterations)
            && (1..=16).contains(&self.parallelism)
            && self.memory_kib >= 8 * self.parallelism;
        if ok {
            Ok(())
        } else {
            Err(FormatError::malformed("key file", format!("argon2id parameters {self:?} out of range")))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct KeyFile {
    pub magic: [u8; 8],
    pub version: u32,
    pub repo: RepoId,
    pub kdf: u32,
    pub params: KdfParams,
    pub salt: [u8; 16],
    /// Microseconds since the Unix epoch.
    pub created: i64,
    /// Host that created the key, for `key list`.
    pub host: String,
    /// User who created the key, for `key list` (version 2; empty when read from a version 1 key file).
    pub user: String,
    /// What a client holding this key may do (version 2; `ROLE_OWNER` for a version 1 key file).
    pub role: u8,
    /// Envelope (kind KeyFile, id = this key file's id) of the master secret (32 bytes) followed by the
    /// BLAKE3 of this key file encoded with `wrapped` empty (32 bytes).
    pub wrapped: Vec<u8>,
}

/// A version 1 key file as encoded: version 2 without `user`.
#[derive(Encode, Decode)]
struct KeyFileV1 {
    magic: [u8; 8],
    version: u32,
    repo: RepoId,
    kdf: u32,
    params: KdfParams,
    salt: [u8; 16],
    created: i64,
    host: String,
    wrapped: Vec<u8>,
}

pub fn derive_wrapping_key(
    password: &[u8],
    salt: &[u8; 16],
    params: &KdfParams,
) -> Result<Zeroizing<[u8; 32]>, FormatError> {
    params.validate()?;
    let p = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
        .map_err(|e| FormatError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p.clone());
    let mut out = Zeroizing::new([0u8; 32]);
    let mut memory = crate::kdf_memory::KdfMemory::new(p.block_count());
    argon
        .hash_password_into_with_memory(password, salt, out.as_mut(), &mut memory)
        .map_err(|e| FormatError::Kdf(e.to_string()))?;
    Ok(out)
}

impl KeyFile {
    #[allow(clippy::too_many_arguments)]
    pub fn wrap(
        master: &MasterSecret,
        password: &[u8],
        repo: RepoId,
        id: ObjectId,
        params: KdfParams,
        salt: [u8; 16],
        created: i64,
        host: String,
        user: String,
        role: u8,
        nonce: [u8; 12],
    ) -> Result<Self, FormatError> {
        if role > ROLE_WRITER {
            return Err(FormatError::malformed("key file", format!("unknown role {role}")));
        }
        let kf = KeyFile {
            magic: *KEYFILE_MAGIC,
            version: KEYFILE_VERSION,
            repo,
            kdf: KDF_ARGON2ID_V19,
            params,
            salt,
            created,
            host,
            user,
            role,
            wrapped: Vec::new(),
        };
        kf.rewrap(master, password, id, nonce)
    }

    /// Seals the master secret under `password` with this key file's fields as they are (after a caller
    /// changed them, e.g. to write a version 1 key file for test vectors).
    pub fn rewrap(
        mut self,
        master: &MasterSecret,
        password: &[u8],
        id: ObjectId,
        nonce: [u8; 12],
    ) -> Result<Self, FormatError> {
        let key = derive_wrapping_key(password, &self.salt, &self.params)?;
        let mut payload = Zeroizing::new(Vec::with_capacity(64));
        payload.extend_from_slice(&master.0);
        payload.extend_from_slice(&self.header_hash());
        self.wrapped = envelope::seal(&key, &Aad::new(self.repo, ObjectKind::KeyFile, id), &payload, None, nonce);
        Ok(self)
    }

    /// Returns the master secret, or `FormatError::Authentication` for a wrong password.
    pub fn unwrap(&self, password: &[u8], id: ObjectId) -> Result<MasterSecret, FormatError> {
        let key = derive_wrapping_key(password, &self.salt, &self.params)?;
        let plain =
            Zeroizing::new(envelope::open(&key, &Aad::new(self.repo, ObjectKind::KeyFile, id), &self.wrapped, 64)?);
        if plain.len() != 64 {
            return Err(FormatError::malformed("key file", "wrapped payload is not 64 bytes"));
        }
        if plain[32..] != self.header_hash() {
            return Err(FormatError::malformed(
                "key file",
                "fields were changed after the key was wrapped (tampered?)",
            ));
        }
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&plain[..32]);
        Ok(MasterSecret(secret))
    }

    /// BLAKE3 of this key file encoded with `wrapped` empty: sealed next to the master secret, so every
    /// plaintext field (not only those that feed argon2) is authenticated.
    fn header_hash(&self) -> [u8; 32] {
        let bare = KeyFile { wrapped: Vec::new(), ..self.clone() };
        *blake3::hash(&bare.encode()).as_bytes()
    }

    /// The body encoding of this key file's version.
    pub fn encode(&self) -> Vec<u8> {
        if self.version == 1 {
            encoding::encode(&KeyFileV1 {
                magic: self.magic,
                version: 1,
                repo: self.repo,
                kdf: self.kdf,
                params: self.params,
                salt: self.salt,
                created: self.created,
                host: self.host.clone(),
                wrapped: self.wrapped.clone(),
            })
        } else {
            encoding::encode(self)
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < 12 {
            return Err(FormatError::Truncated { needed: 12, have: bytes.len() });
        }
        if &bytes[..8] != KEYFILE_MAGIC {
            return Err(FormatError::BadMagic { what: "key file" });
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let kf: KeyFile = match version {
            1 => {
                let v1: KeyFileV1 = encoding::decode("key file", bytes)?;
                KeyFile {
                    magic: v1.magic,
                    version: v1.version,
                    repo: v1.repo,
                    kdf: v1.kdf,
                    params: v1.params,
                    salt: v1.salt,
                    created: v1.created,
                    host: v1.host,
                    user: String::new(),
                    role: ROLE_OWNER,
                    wrapped: v1.wrapped,
                }
            }
            KEYFILE_VERSION => encoding::decode("key file", bytes)?,
            found => {
                return Err(FormatError::UnsupportedVersion { what: "key file", found, supported: KEYFILE_VERSION })
            }
        };
        if kf.kdf != KDF_ARGON2ID_V19 {
            return Err(FormatError::malformed("key file", format!("unknown key derivation function {}", kf.kdf)));
        }
        kf.params.validate()?;
        if kf.role > ROLE_WRITER {
            return Err(FormatError::malformed("key file", format!("unknown role {}", kf.role)));
        }
        Ok(kf)
    }
}
