//! The single gc lease (`gc/lease`, format-spec/maintenance.md; docs/design.md I4 gc grace): at most one gc
//! or `repair index` changes the index and deletes at a time. Taken with create-if-absent; an expired lease
//! is broken (its holder is dead or paused past it, and deletes nothing more: every destructive step first
//! checks that the lease is still ours with a margin). Released on success, error and interrupt (I9).

use super::Repository;
use crate::backend::names;
use crate::{Error, Result};
use silo_format::maintenance::{Lease, Sealed, MAINTENANCE_VERSION};
use silo_format::ObjectId;

const SECOND: i64 = 1_000_000;
/// A lease this close to its end counts as lost: the next deletion batch must finish inside it.
const MARGIN: i64 = 5 * SECOND;

/// A lease this process holds.
pub struct HeldLease {
    holder: ObjectId,
    expires_at: i64,
    /// On Ctrl-C / SIGTERM the lease is removed if it is still ours, so the next gc need not wait for it.
    _on_interrupt: crate::interrupt::Registration,
}

impl Repository {
    /// Takes the lease for `seconds`, or says who holds it (exit 6).
    pub async fn acquire_lease(&self, seconds: u64) -> Result<HeldLease> {
        // Everything done under the lease deletes or rewrites (gc, repair index, key removal).
        self.require_owner("taking the gc lease")?;
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
                let _on_interrupt = self.release_on_interrupt(holder);
                return Ok(HeldLease { holder, expires_at: lease.expires_at, _on_interrupt });
            }
            match self.read_lease().await? {
                Some(other) if other.expires_at > self.now() => {
                    return Err(Error::GcBusy {
                        host: other.host,
                        pid: other.pid,
                        until: crate::time::format_micros(other.expires_at),
                    });
                }
                // Expired: its holder is dead or paused past it, and will delete nothing more.
                Some(_) => match self.backend.delete(names::LEASE).await {
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
            self.backend.delete(names::LEASE).await?;
        }
        Ok(())
    }

    fn release_on_interrupt(&self, holder: ObjectId) -> crate::interrupt::Registration {
        let (backend, keys, repo) = (self.backend.clone(), self.keys.clone(), self.repo_id);
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
