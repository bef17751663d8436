//! Key files (format-spec/keyfile.md): several `keys/<id>` wrap one master secret, each under its own
//! password. `key add` wraps it under a new password and reads the new key file back to prove it opens before
//! saying so; `key passwd` is add-then-remove, so a crash at any point leaves at least one working key;
//! removals hold the gc lease, so two of them at once cannot remove the last two keys.
//!
//! Upholds I17 (no command removes the last key that opens the repository): a key counts as what remains
//! only when this process proved it opens — the key the password opened, a key just added, or the key
//! another password given for the purpose opens — its file is still byte for byte what opened, and it is an
//! owner key. A damaged or unproven key file, or a writer key, never counts.

use super::lease::HeldLease;
use super::Repository;
use crate::backend::{names, ReadBackend};
use crate::{Error, Result};
use silo_format::envelope::random_nonce;
use silo_format::keyfile::{KdfParams, KeyFile};
use silo_format::ObjectId;
use std::time::Duration;

/// A key file this process proved opens the repository: its id and the BLAKE3 of its bytes then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvenKey {
    pub id: ObjectId,
    pub digest: [u8; 32],
}

/// How long a key removal waits for the lease another removal (or a gc) holds before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(30);

/// One key file as `key list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyInfo {
    #[serde(serialize_with = "hex")]
    pub id: ObjectId,
    pub host: String,
    pub user: String,
    pub created: i64,
    pub version: u32,
    pub kdf_memory_kib: u32,
    pub kdf_iterations: u32,
    pub kdf_parallelism: u32,
    /// `owner`, or `writer` (append-only).
    pub role: &'static str,
    /// The key file whose password opened the repository in this run.
    pub current: bool,
}

fn hex<S: serde::Serializer>(id: &ObjectId, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

impl Repository {
    /// The key file that opened this handle.
    pub fn key_id(&self) -> ObjectId {
        self.key_id
    }

    /// Every key file, oldest first. One that does not decode is damage, named.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for info in self.backend.list(names::KEYS).await? {
            let Some(id) = names::id_of(&info.name) else { continue };
            let bytes = match self.backend.get(&info.name).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let kf = KeyFile::decode(&bytes).map_err(|e| Error::damaged(info.name.clone(), e))?;
            out.push(KeyInfo {
                id,
                host: kf.host,
                user: kf.user,
                created: kf.created,
                version: kf.version,
                kdf_memory_kib: kf.params.memory_kib,
                kdf_iterations: kf.params.iterations,
                kdf_parallelism: kf.params.parallelism,
                role: if kf.role == silo_format::keyfile::ROLE_WRITER { "writer" } else { "owner" },
                current: id == self.key_id,
            });
        }
        out.sort_by_key(|k| (k.created, k.id));
        Ok(out)
    }

    /// The argon2id parameters of the key file that opened this handle (what `key add` keeps by default).
    pub async fn current_kdf(&self) -> Result<KdfParams> {
        let name = names::key(&self.key_id);
        let bytes = match self.backend.get(&name).await {
            Ok(bytes) => bytes,
            // A concurrent `key passwd` or `key remove` took it since this run opened: the password no
            // longer opens the repository (as `unlock` would now answer).
            Err(e) if e.is_not_found() => return Err(Error::WrongPassword),
            Err(e) => return Err(e.into()),
        };
        let kf = KeyFile::decode(&bytes).map_err(|e| Error::damaged(name, e))?;
        Ok(kf.params)
    }

    /// Wraps the master secret under `password` in a new key file, then reads it back and unwraps it: the id
    /// is returned only once the new password is proven to open the repository.
    pub async fn add_key(&self, password: &[u8], kdf: KdfParams, role: u8) -> Result<ProvenKey> {
        // A writer key must not mint an owner key (or any key: it would outlive the writer's own).
        let store = self.owner_store("key add")?;
        if password.is_empty() {
            return Err(Error::Input { what: "the new password".into(), message: "is empty".into() });
        }
        let id = ObjectId::random();
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&ObjectId::random().0[..16]);
        let kf = KeyFile::wrap(
            &self.master,
            password,
            self.repo_id,
            id,
            kdf,
            salt,
            self.now(),
            super::hostname(),
            super::username(),
            role,
            random_nonce(),
        )
        .map_err(|e| Error::Input { what: "the new key's argon2id parameters".into(), message: e.to_string() })?;
        let name = names::key(&id);
        if !store.put_if_absent(&name, kf.encode()).await? {
            return Err(Error::Inconsistent { object: name, reason: "a key file of this random id exists".into() });
        }
        let read = self.backend.get(&name).await?;
        let back = KeyFile::decode(&read).map_err(|e| Error::damaged(name.clone(), e))?;
        match back.unwrap(password, id) {
            Ok(m) if m.0 == self.master.0 => Ok(ProvenKey { id, digest: *blake3::hash(&read).as_bytes() }),
            _ => {
                let _ = store.delete(&name).await;
                Err(Error::Inconsistent { object: name, reason: "the new key file does not open as written".into() })
            }
        }
    }

    /// The one key file whose id starts with `prefix`.
    pub async fn resolve_key(&self, prefix: &str) -> Result<ObjectId> {
        let prefix = prefix.to_ascii_lowercase();
        let found: Vec<ObjectId> = self
            .backend
            .list(names::KEYS)
            .await?
            .iter()
            .filter_map(|o| names::id_of(&o.name))
            .filter(|id| !prefix.is_empty() && id.to_hex().starts_with(&prefix))
            .collect();
        match found.as_slice() {
            [id] => Ok(*id),
            [] => Err(Error::Input {
                what: format!("key {prefix:?}"),
                message: "no key file has such an id; list them with `silo key list`".into(),
            }),
            many => Err(Error::Input {
                what: format!("key {prefix:?}"),
                message: format!("matches {} key files; give more characters of the id", many.len()),
            }),
        }
    }

    /// The key file that opened this handle, as proven then.
    pub fn proven_self(&self) -> ProvenKey {
        ProvenKey { id: self.key_id, digest: self.key_digest }
    }

    /// Proves that `password` opens a key file other than `except` (the one about to be removed).
    pub async fn prove_other_key(&self, password: &[u8], except: ObjectId) -> Result<ProvenKey> {
        match super::unlock(&self.backend, self.repo_id, password, Some(except)).await {
            Ok(u) if u.master.0 == self.master.0 => Ok(ProvenKey { id: u.key_id, digest: u.digest }),
            Ok(_) => Err(Error::Input {
                what: "the other password".into(),
                message: "opens a key file of another master secret (tampered?)".into(),
            }),
            Err(Error::WrongPassword) => Err(Error::Input {
                what: "the other password".into(),
                message: format!(
                    "opens no intact key file but {}; give the password of another owner key",
                    except.short()
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// Removes key file `id`, only while another owner key this process proved opens stays (I17): the key
    /// that opened this handle, or one in `proven` (`--other-password-file`, or a key just added). The key
    /// that opened this handle goes only with `force`.
    pub async fn remove_key(&self, id: ObjectId, force: bool, proven: &[ProvenKey]) -> Result<()> {
        self.owner_store("key remove")?;
        if id == self.key_id && !force {
            return Err(Error::Input {
                what: format!("key {}", id.short()),
                message: "is the one your password opened; pass --force to remove it anyway (keep another)".into(),
            });
        }
        let mut all = vec![self.proven_self()];
        all.extend_from_slice(proven);
        let lease = self.acquire_lease_waiting(LEASE_WAIT).await?;
        let result = self.remove_key_under_lease(id, &all, &lease).await;
        self.release_lease(lease).await?;
        match result? {
            true => Ok(()),
            false => Err(Error::Input {
                what: format!("key {}", id.short()),
                message: "is not in the repository (removed already?)".into(),
            }),
        }
    }

    /// Whether `key` still opens as proven: its file is the same bytes and an owner key of this repository.
    async fn still_opens_as_owner(&self, key: &ProvenKey) -> Result<bool> {
        let bytes = match self.backend.get(&names::key(&key.id)).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if *blake3::hash(&bytes).as_bytes() != key.digest {
            return Ok(false);
        }
        Ok(KeyFile::decode(&bytes)
            .is_ok_and(|kf| kf.repo == self.repo_id && kf.role == silo_format::keyfile::ROLE_OWNER))
    }

    /// Removes `id` if a key in `proven` stays (I17). `Ok(false)`: it was not there (removed already).
    async fn remove_key_under_lease(&self, id: ObjectId, proven: &[ProvenKey], lease: &HeldLease) -> Result<bool> {
        let ids: Vec<ObjectId> =
            self.backend.list(names::KEYS).await?.iter().filter_map(|o| names::id_of(&o.name)).collect();
        if !ids.contains(&id) {
            return Ok(false);
        }
        if ids.len() <= 1 {
            return Err(Error::Input {
                what: format!("key {}", id.short()),
                message: "is the repository's last key: without it nothing can be restored; add another first".into(),
            });
        }
        let mut remains = false;
        for key in proven.iter().filter(|k| k.id != id) {
            if self.still_opens_as_owner(key).await? {
                remains = true;
                break;
            }
        }
        if !remains {
            return Err(Error::Input {
                what: format!("key {}", id.short()),
                message: "would leave no owner key proven to open the repository (a damaged key file or a writer \
                          key does not count): give another owner key's password with --other-password-file, \
                          or use `silo key passwd`"
                    .into(),
            });
        }
        match lease.store().delete(&names::key(&id)).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// A new password: adds a key file for it (proven to open), then removes the key that opened this run.
    /// Returns the new key's id. Should the removal fail, the new password works and the error says which
    /// old key is left.
    pub async fn change_password(&self, password: &[u8], kdf: KdfParams) -> Result<ObjectId> {
        self.owner_store("key passwd")?;
        let proven = self.add_key(password, kdf, silo_format::keyfile::ROLE_OWNER).await?;
        let new = proven.id;
        let lease = self.acquire_lease_waiting(LEASE_WAIT).await.map_err(|e| left_behind(self.key_id, new, e))?;
        let removed = self.remove_key_under_lease(self.key_id, &[proven], &lease).await;
        self.release_lease(lease).await.map_err(|e| left_behind(self.key_id, new, e))?;
        match removed {
            // Removed now, or another `key passwd` from the same old password removed it first.
            Ok(_) => Ok(new),
            Err(e) => Err(left_behind(self.key_id, new, e)),
        }
    }
}

fn left_behind(old: ObjectId, new: ObjectId, e: Error) -> Error {
    Error::Input {
        what: "key passwd".into(),
        message: format!(
            "the new password works (key {}), but the old key {} is still there: {e}; remove it with \
             `silo key remove {}`",
            new.short(),
            old.short(),
            old.short()
        ),
    }
}
