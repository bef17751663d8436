//! The single gc lease (`gc/lease`, format-spec/maintenance.md; docs/design.md I4 gc grace): at most one gc
//! or `repair index` changes the index and deletes at a time. Taken with create-if-absent; an expired lease
//! is broken (its holder is dead or paused past it, and deletes nothing more: every destructive step first
//! checks that the lease is still ours with a margin). Released on success, error and interrupt (I9).
//! A lease whose holder is provably dead — on this host, its process gone — is taken over at once (a gc
//! killed with SIGKILL would otherwise block every gc for the lease's hour); `silo unlock` removes one whose
//! holder is dead or, told so with `--force`, on another host.

use super::Repository;
use crate::backend::{names, WriteBackend};
use crate::{Error, Result};
use silo_format::maintenance::{Lease, Sealed, MAINTENANCE_VERSION};
use silo_format::ObjectId;
use std::sync::Arc;

const SECOND: i64 = 1_000_000;
/// A lease this close to its end counts as lost: the next deletion batch must finish inside it.
const MARGIN: i64 = 5 * SECOND;

/// A lease this process holds. Only an owner key takes one, and it carries the store's deleting half:
/// what is deleted under the lease (gc, repair index, key removal) is deleted through it (I11).
pub struct HeldLease {
    holder: ObjectId,
    expires_at: i64,
    store: Arc<dyn WriteBackend>,
    /// On Ctrl-C / SIGTERM the lease is removed if it is still ours, so the next gc need not wait for it.
    _on_interrupt: crate::interrupt::Registration,
}

impl HeldLease {
    /// The store's deleting half, for what is done under this lease.
    pub(crate) fn store(&self) -> &dyn WriteBackend {
        self.store.as_ref()
    }
}

impl Repository {
    /// Takes the lease for `seconds`, or says who holds it (exit 6).
    pub async fn acquire_lease(&self, seconds: u64) -> Result<HeldLease> {
        // Everything done under the lease deletes or rewrites (gc, repair index, key removal).
        let store = self.owner_store("taking the gc lease")?;
        let holder = ObjectId::random();
        let now = self.now();
        let lease = Lease {
            version: MAINTENANCE_VERSION,
            holder,
            host: super::hostname(),
            pid: std::process::id(),
            acquired_at: now,
            expires_at: now + seconds as i64 * SECOND,
        };
        for _ in 0..2 {
            if self.save_if_absent(ObjectId::ZERO, &lease).await? {
                let _on_interrupt = self.release_on_interrupt(holder, store.clone());
                return Ok(HeldLease { holder, expires_at: lease.expires_at, store, _on_interrupt });
            }
            match self.read_lease().await? {
                Some(other) if other.expires_at > self.now() && !holder_is_dead(&other) => {
                    return Err(Error::GcBusy {
                        host: other.host,
                        pid: other.pid,
                        until: crate::time::format_micros(other.expires_at),
                    });
                }
                // Expired (its holder is dead or paused past it, and will delete nothing more), or its holder
                // is provably dead.
                Some(_) => match store.delete(names::LEASE).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                },
                None => {}
            }
        }
        Err(Error::GcBusy { host: "another client".into(), pid: 0, until: "now (it was just taken)".into() })
    }

    /// A short lease (60 s) for a quick exclusive step, waiting up to `wait` while another holds it.
    pub async fn acquire_lease_waiting(&self, wait: std::time::Duration) -> Result<HeldLease> {
        let until = std::time::Instant::now() + wait;
        loop {
            match self.acquire_lease(60).await {
                Err(Error::GcBusy { .. }) if std::time::Instant::now() < until => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await
                }
                other => return other,
            }
        }
    }

    /// Removes the lease if it is still ours; a lost one belongs to whoever broke it.
    pub async fn release_lease(&self, held: HeldLease) -> Result<()> {
        if self.check_lease(&held).await.is_ok() {
            held.store.delete(names::LEASE).await?;
        }
        Ok(())
    }

    fn release_on_interrupt(&self, holder: ObjectId, backend: Arc<dyn WriteBackend>) -> crate::interrupt::Registration {
        let (keys, repo) = (self.keys.clone(), self.repo_id);
        let handle = tokio::runtime::Handle::current();
        crate::interrupt::on_interrupt(move || {
            handle.block_on(async {
                let Ok(bytes) = backend.get(names::LEASE).await else { return };
                if Lease::open(&keys, repo, ObjectId::ZERO, &bytes).is_ok_and(|l| l.holder == holder) {
                    let _ = backend.delete(names::LEASE).await;
                }
            })
        })
    }

    /// `silo unlock`: removes the lease when its holder is dead (this host, process gone) or expired; one
    /// held on another host only with `force` (silo cannot see that host's processes). Returns the lease
    /// removed, if there was one.
    pub async fn unlock(&self, force: bool) -> Result<Option<Lease>> {
        let store = self.owner_store("unlock")?;
        let Some(lease) = self.read_lease().await? else { return Ok(None) };
        let expired = lease.expires_at <= self.now();
        if !expired && !holder_is_dead(&lease) {
            let here = lease.host == super::hostname();
            if here || !force {
                return Err(Error::GcBusy {
                    host: if here { lease.host } else { format!("{} (pass --force if it is dead)", lease.host) },
                    pid: lease.pid,
                    until: crate::time::format_micros(lease.expires_at),
                });
            }
        }
        match store.delete(names::LEASE).await {
            Ok(()) => Ok(Some(lease)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_lease(&self) -> Result<Option<Lease>> {
        match self.load::<Lease>(ObjectId::ZERO).await {
            Ok(lease) => Ok(Some(lease)),
            Err(Error::Backend(e)) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Ok only while the lease is ours and unexpired (by a margin covering the next deletion batch).
    pub async fn check_lease(&self, held: &HeldLease) -> Result<()> {
        let lost = || Error::LeaseLost { until: crate::time::format_micros(held.expires_at) };
        if self.now() + MARGIN >= held.expires_at {
            return Err(lost());
        }
        match self.read_lease().await? {
            Some(l) if l.holder == held.holder => Ok(()),
            _ => Err(lost()),
        }
    }
}

/// Whether `lease`'s holder is provably dead: it ran on this host and its process is gone.
fn holder_is_dead(lease: &Lease) -> bool {
    is_dead(&lease.host, lease.pid, &super::hostname(), |pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// The decision, pure: a holder on another host is never provably dead; on this one, when its pid is not a
/// live process (a pid reused by another process counts as alive: waiting is safe).
fn is_dead(holder_host: &str, pid: u32, this_host: &str, process_exists: impl Fn(u32) -> bool) -> bool {
    holder_host == this_host && pid != 0 && pid != std::process::id() && !process_exists(pid)
}

#[cfg(test)]
mod tests {
    use super::is_dead;

    #[test]
    fn only_a_holder_on_this_host_whose_process_is_gone_is_dead() {
        assert!(is_dead("db1", 4242, "db1", |_| false));
        assert!(!is_dead("db1", 4242, "db1", |_| true), "alive, or its pid reused");
        assert!(!is_dead("db2", 4242, "db1", |_| false), "another host's processes are not visible");
        assert!(!is_dead("db1", 0, "db1", |_| false));
        assert!(!is_dead("db1", std::process::id(), "db1", |_| false), "never this process");
    }
}
