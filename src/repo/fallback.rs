//! `restore --fallback`: the newest snapshot at or after `NAME:latest~N` whose selected stream restores
//! intact (I3 authenticated everything): each candidate is verified by a full read into nothing before a byte
//! is written anywhere. What was passed over, and why, is told to the caller's `notify` (the CLI says it on
//! stderr): a fallback is never silent.

use super::snapshots::{Selector, Snapshot, SnapshotSpec};
use super::Repository;
use crate::{Error, Result};
use tokio::runtime::Handle;

impl Repository {
    pub fn choose_intact(&self, rt: &Handle, spec: &SnapshotSpec, notify: &dyn Fn(String)) -> Result<Snapshot> {
        let Selector::Latest { name, back } = &spec.selector else {
            return Err(Error::Input {
                what: "--fallback".into(),
                message: "needs a NAME:latest[~N] selector (an id names exactly one snapshot)".into(),
            });
        };
        for n in *back.. {
            let candidate = SnapshotSpec {
                selector: Selector::Latest { name: name.clone(), back: n },
                stream: spec.stream.clone(),
            };
            let (snap, unreadable) = match rt.block_on(self.resolve_past_damage(&candidate)) {
                Ok(found) => found,
                Err(Error::SnapshotNotFound { .. } | Error::NewerManifestUnreadable { .. }) if n > *back => {
                    return Err(Error::Inconsistent {
                        object: format!("{name}:latest~{back} and every older snapshot of {name}"),
                        reason: "none can be restored intact".into(),
                    })
                }
                Err(e) => return Err(e),
            };
            if n == *back {
                for u in &unreadable {
                    notify(format!(
                        "{}{} is unreadable and may be a newer snapshot of {name}: {}",
                        crate::backend::names::SNAPSHOTS,
                        u.id.short(),
                        u.reason
                    ));
                }
            }
            let verified = snap.stream(&spec.stream).and_then(|stream| {
                let none = std::sync::atomic::AtomicU64::new(0);
                self.restore_stream(rt, &snap, stream, &mut std::io::sink(), &none)
            });
            match verified {
                Ok(_) => {
                    if n != *back || !unreadable.is_empty() {
                        notify(format!(
                            "falling back: restoring {name}:latest~{n} ({}, finished {}) instead",
                            snap.id.short(),
                            crate::time::format_micros(snap.manifest.finished)
                        ));
                    }
                    return Ok(snap);
                }
                Err(e) => notify(format!(
                    "{name}:latest~{n} ({}) cannot be restored intact: {e}; trying an older one",
                    snap.id.short()
                )),
            }
        }
        unreachable!("resolve fails with SnapshotNotFound once the snapshots of the name run out")
    }
}
