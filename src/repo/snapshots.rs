//! Listing snapshot manifests and resolving what a user typed (`3fa2c1`, `shop:latest`, `shop:latest~2`,
//! optionally followed by `:STREAM`) to one snapshot.

use super::Repository;
use crate::backend::{names, ReadBackend};
use crate::{Error, Result};
use futures::StreamExt;
use silo_format::manifest::SnapshotManifest;
use silo_format::ObjectId;

#[derive(Clone, Debug)]
pub struct Snapshot {
    pub id: ObjectId,
    pub manifest: SnapshotManifest,
}

/// A parsed snapshot selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// A full id or a unique prefix of one, in hex.
    IdPrefix(String),
    /// The `back`-th newest snapshot of `name` (0 = newest).
    Latest { name: String, back: usize },
    /// The newest snapshot of `name` finished on or before the UTC day `day` (`YYYY-MM-DD`, `today`,
    /// `yesterday`): `shop@2026-12-06`, `shop@yesterday`.
    OnDay { name: String, day: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSpec {
    pub selector: Selector,
    pub stream: Option<String>,
}

/// Names of snapshots and streams: what can appear in a selector without ambiguity.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::Input {
            what: format!("{what} {name:?}"),
            message: "use 1-128 characters from A-Z a-z 0-9 . _ - @ +".into(),
        })
    }
}

impl SnapshotSpec {
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |m: &str| Error::Input { what: format!("snapshot {spec:?}"), message: m.to_string() };
        let parts: Vec<&str> = spec.split(':').collect();
        // NAME@DAY (names may hold '@': only a suffix that names a day counts).
        let on_day = |text: &str| {
            let (name, day) = text.rsplit_once('@')?;
            (!name.is_empty() && crate::time::end_of_day(day, 0).is_some())
                .then(|| Selector::OnDay { name: name.to_string(), day: day.to_string() })
        };
        let (selector, stream) =
            match parts.as_slice() {
                [id] if on_day(id).is_some() => (on_day(id).unwrap_or(Selector::IdPrefix(id.to_string())), None),
                [id, stream] if on_day(id).is_some() => {
                    (on_day(id).unwrap_or(Selector::IdPrefix(id.to_string())), Some(stream.to_string()))
                }
                [id] => (Selector::IdPrefix(id.to_string()), None),
                [first, second, rest @ ..] if second.starts_with("latest") => {
                    let back = match second.strip_prefix("latest").unwrap_or_default() {
                        "" => 0,
                        n => n
                            .strip_prefix('~')
                            .and_then(|n| n.parse().ok())
                            .ok_or_else(|| bad("expected NAME:latest or NAME:latest~N"))?,
                    };
                    let stream = match rest {
                        [] => None,
                        [s] => Some(s.to_string()),
                        _ => return Err(bad("too many ':'")),
                    };
                    (Selector::Latest { name: first.to_string(), back }, stream)
                }
                [id, stream] => (Selector::IdPrefix(id.to_string()), Some(stream.to_string())),
                _ => return Err(bad(
                    "expected ID, NAME:latest[~N] or NAME@DAY (YYYY-MM-DD, today, yesterday), each optionally :STREAM",
                )),
            };
        if let Selector::IdPrefix(p) = &selector {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad("an id is hexadecimal; to pick by name write NAME:latest or NAME@YYYY-MM-DD"));
            }
        }
        Ok(SnapshotSpec { selector, stream })
    }
}

/// A manifest listed in `snapshots/` that cannot be read (damaged, or another repository's): its name is
/// inside the encryption, so it may be any name's newest snapshot.
#[derive(Clone, Debug)]
pub struct UnreadableManifest {
    pub id: ObjectId,
    /// When the backend stored it (its clock).
    pub stored_at: i64,
    pub reason: String,
}

/// Every manifest in `snapshots/`: the readable ones oldest first, when each was stored, and the unreadable.
#[derive(Default)]
pub struct SnapshotScan {
    pub snapshots: Vec<Snapshot>,
    pub stored_at: std::collections::HashMap<ObjectId, i64>,
    pub unreadable: Vec<UnreadableManifest>,
}

impl Repository {
    /// Every readable snapshot, oldest first. A manifest that cannot be read is reported on stderr and
    /// skipped, so one damaged object does not hide the others (`scan_snapshots` returns it).
    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let scan = self.scan_snapshots().await?;
        for u in &scan.unreadable {
            tracing::warn!("skipping snapshots/{}: {}", u.id.to_hex(), u.reason);
        }
        Ok(scan.snapshots)
    }

    /// `list_snapshots` without chunk lists (`scan_snapshot_heads`): for retention, status and reports.
    pub async fn list_snapshot_heads(&self) -> Result<Vec<Snapshot>> {
        let scan = self.scan_snapshot_heads().await?;
        for u in &scan.unreadable {
            tracing::warn!("skipping snapshots/{}: {}", u.id.to_hex(), u.reason);
        }
        Ok(scan.snapshots)
    }

    pub async fn scan_snapshots(&self) -> Result<SnapshotScan> {
        self.scan(false).await
    }

    /// Like `scan_snapshots`, but every manifest's chunk lists are dropped as soon as it is decoded, and
    /// fewer are decoded at once: a 10 GiB stream lists ~134 000 chunk ids (4.3 MB), so a month of daily
    /// snapshots held whole would take more memory than a whole `snapshot create` is allowed. For choosing a
    /// snapshot (by name and age) and reading its header; load the chosen one with `load_snapshot` for its
    /// chunks. Every stream of a head has an empty chunk list — never walk or restore one.
    pub async fn scan_snapshot_heads(&self) -> Result<SnapshotScan> {
        self.scan(true).await
    }

    async fn scan(&self, heads: bool) -> Result<SnapshotScan> {
        let listed = self.backend.list(names::SNAPSHOTS).await?;
        let stored: Vec<(ObjectId, i64)> =
            listed.iter().filter_map(|o| names::id_of(&o.name).map(|id| (id, o.modified))).collect();
        let results: Vec<(ObjectId, i64, Result<Snapshot>)> = futures::stream::iter(stored)
            .map(|(id, at)| async move {
                let loaded = self.load_snapshot(id).await.map(|mut s| {
                    if heads {
                        s.manifest.streams.iter_mut().for_each(|st| st.chunks = Vec::new());
                    }
                    s
                });
                (id, at, loaded)
            })
            .buffer_unordered(if heads { 4 } else { 16 })
            .collect()
            .await;
        let mut scan = SnapshotScan::default();
        for (id, at, r) in results {
            match r {
                Ok(s) => {
                    scan.stored_at.insert(id, at);
                    scan.snapshots.push(s);
                }
                Err(e @ (Error::Damaged { .. } | Error::Inconsistent { .. })) => {
                    scan.unreadable.push(UnreadableManifest { id, stored_at: at, reason: e.to_string() })
                }
                Err(Error::Backend(e)) if e.is_not_found() => {} // removed by forget while listing
                Err(e) => return Err(e),
            }
        }
        scan.snapshots.sort_by_key(|s| (s.manifest.finished, s.id));
        scan.unreadable.sort_by_key(|u| (u.stored_at, u.id));
        Ok(scan)
    }

    pub async fn load_snapshot(&self, id: ObjectId) -> Result<Snapshot> {
        let manifest = self.load::<SnapshotManifest>(id).await?;
        Ok(Snapshot { id, manifest })
    }

    /// The snapshot `spec` names. `NAME:latest[~N]` fails (damage, exit 5) when an unreadable manifest was
    /// stored after the one it would pick: that may be the newest snapshot of NAME, and restoring an older
    /// dump with exit 0 would mislead. `resolve_past_damage` is the `--fallback` form.
    pub async fn resolve(&self, spec: &SnapshotSpec) -> Result<Snapshot> {
        Ok(self.resolve_with_heads(spec).await?.0)
    }

    /// Like `resolve`, with the headers (manifests without chunk lists) a pick by name scanned to choose
    /// (none for an id), so a caller can judge the pick among them without listing every manifest again.
    pub async fn resolve_with_heads(&self, spec: &SnapshotSpec) -> Result<(Snapshot, Vec<Snapshot>)> {
        let (snap, newer, heads) = self.pick(spec).await?;
        match newer.last() {
            Some(u) => Err(Error::NewerManifestUnreadable {
                spec: spec_text(spec),
                object: names::snapshot(&u.id),
                reason: u.reason.clone(),
            }),
            None => Ok((snap, heads)),
        }
    }

    /// Like `resolve`, but returns the pick with the unreadable manifests stored after it.
    pub async fn resolve_past_damage(&self, spec: &SnapshotSpec) -> Result<(Snapshot, Vec<UnreadableManifest>)> {
        let (snap, newer, _) = self.pick(spec).await?;
        Ok((snap, newer))
    }

    /// The pick, the unreadable manifests stored after it, and the headers scanned to choose it.
    async fn pick(&self, spec: &SnapshotSpec) -> Result<(Snapshot, Vec<UnreadableManifest>, Vec<Snapshot>)> {
        match &spec.selector {
            Selector::IdPrefix(prefix) => {
                let prefix = prefix.to_ascii_lowercase();
                let listed = self.backend.list(names::SNAPSHOTS).await?;
                let matches: Vec<ObjectId> = listed
                    .iter()
                    .filter_map(|o| names::id_of(&o.name))
                    .filter(|id| id.to_hex().starts_with(&prefix))
                    .collect();
                match matches.as_slice() {
                    [id] => Ok((self.load_snapshot(*id).await?, Vec::new(), Vec::new())),
                    [] => Err(Error::SnapshotNotFound { spec: spec_text(spec), hint: String::new() }),
                    many => Err(Error::AmbiguousSnapshot { spec: spec_text(spec), count: many.len() }),
                }
            }
            Selector::OnDay { name, day } => {
                let until = crate::time::end_of_day(day, self.now()).ok_or_else(|| Error::Input {
                    what: format!("day {day:?}"),
                    message: "expected YYYY-MM-DD, today or yesterday".into(),
                })?;
                let scan = self.scan_snapshot_heads().await?;
                let chosen = scan
                    .snapshots
                    .iter()
                    .filter(|s| &s.manifest.name == name && s.manifest.finished < until)
                    .max_by_key(|s| s.manifest.finished)
                    .map(|s| s.id);
                let Some(id) = chosen else {
                    return Err(Error::SnapshotNotFound {
                        spec: spec_text(spec),
                        hint: format!(" (no snapshot of {name} finished by the end of {day}, UTC)"),
                    });
                };
                Ok((self.load_snapshot(id).await?, Vec::new(), scan.snapshots))
            }
            Selector::Latest { name, back } => {
                let scan = self.scan_snapshot_heads().await?;
                let hint = match of_name_hint(name, scan.snapshots.iter().map(|s| s.manifest.name.as_str())) {
                    Some(n) => format!(" (did you mean {n}:latest?)"),
                    None => String::new(),
                };
                // Dated more than the tolerance ahead: planted or from a wrong clock. Never `latest` (I10
                // keeps them out of retention the same way); they restore by id.
                let horizon = self.now().saturating_add(crate::retention::FUTURE_TOLERANCE_MICROS);
                let heads = scan.snapshots;
                let mut of_name: Vec<Snapshot> = heads
                    .iter()
                    .filter(|s| &s.manifest.name == name && s.manifest.finished <= horizon)
                    .cloned()
                    .collect();
                of_name.reverse();
                let chosen = of_name.into_iter().nth(*back);
                let Some(chosen) = chosen else {
                    return match scan.unreadable.last() {
                        // The one asked for may be the unreadable one: that is damage, not a typo.
                        Some(u) => Err(Error::NewerManifestUnreadable {
                            spec: spec_text(spec),
                            object: names::snapshot(&u.id),
                            reason: u.reason.clone(),
                        }),
                        None => Err(Error::SnapshotNotFound { spec: spec_text(spec), hint }),
                    };
                };
                let at = scan.stored_at.get(&chosen.id).copied().unwrap_or(i64::MIN);
                let newer = scan.unreadable.into_iter().filter(|u| u.stored_at >= at).collect();
                // The scan kept headers only; the chosen one whole (a forget since the scan: not found).
                let chosen = match self.load_snapshot(chosen.id).await {
                    Err(Error::Backend(e)) if e.is_not_found() => {
                        return Err(Error::SnapshotNotFound { spec: spec_text(spec), hint: String::new() })
                    }
                    loaded => loaded?,
                };
                Ok((chosen, newer, heads))
            }
        }
    }
}

/// The known name closest to `wanted` (edit distance at most 2, or one contains the other), if `wanted`
/// itself is not known.
pub fn of_name_hint<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for name in known {
        if name == wanted {
            return None;
        }
        let d = if name.contains(wanted) || wanted.contains(name) { 1 } else { edit_distance(wanted, name) };
        if d <= 2 && best.is_none_or(|(b, n)| (d, name) < (b, n)) {
            best = Some((d, name));
        }
    }
    best.map(|(_, n)| n.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn spec_text(spec: &SnapshotSpec) -> String {
    match &spec.selector {
        Selector::IdPrefix(p) => p.clone(),
        Selector::OnDay { name, day } => format!("{name}@{day}"),
        Selector::Latest { name, back: 0 } => format!("{name}:latest"),
        Selector::Latest { name, back } => format!("{name}:latest~{back}"),
    }
}

impl Snapshot {
    /// The stream `name` names, or the only one when `name` is `None`.
    pub fn stream(&self, name: &Option<String>) -> Result<&silo_format::manifest::StreamManifest> {
        let streams = &self.manifest.streams;
        let names = || streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
        match name {
            Some(name) => streams.iter().find(|s| &s.name == name).ok_or_else(|| Error::Input {
                what: format!("snapshot {}", self.id.short()),
                message: format!("has no stream {name:?} (streams: {})", names()),
            }),
            None if streams.len() == 1 => Ok(&streams[0]),
            None => Err(Error::Input {
                what: format!("snapshot {}", self.id.short()),
                message: format!("has several streams ({}); pick one with SNAP:STREAM", names()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selectors() {
        let p = |s: &str| SnapshotSpec::parse(s).unwrap();
        assert_eq!(p("3fa2").selector, Selector::IdPrefix("3fa2".into()));
        assert_eq!(p("shop:latest").selector, Selector::Latest { name: "shop".into(), back: 0 });
        assert_eq!(p("shop@2026-12-06").selector, Selector::OnDay { name: "shop".into(), day: "2026-12-06".into() });
        assert_eq!(
            p("a@b@yesterday:globals").selector,
            Selector::OnDay { name: "a@b".into(), day: "yesterday".into() }
        );
        assert_eq!(p("a@b@yesterday:globals").stream.as_deref(), Some("globals"));
        assert!(SnapshotSpec::parse("team@home").is_err(), "not a day: read as an id prefix, which it is not");
        assert_eq!(p("shop:latest~2").selector, Selector::Latest { name: "shop".into(), back: 2 });
        assert_eq!(p("nightly:latest:shop").stream.as_deref(), Some("shop"));
        assert_eq!(p("3fa2:globals").stream.as_deref(), Some("globals"));
        assert!(SnapshotSpec::parse("shop").is_err());
        assert!(SnapshotSpec::parse("shop:latest~x").is_err());
        assert!(SnapshotSpec::parse("a:latest:b:c").is_err());
        assert!(SnapshotSpec::parse("").is_err());
    }

    #[test]
    fn close_names_are_suggested() {
        let known = ["shop", "crm", "shop-archive"];
        assert_eq!(of_name_hint("shp", known.into_iter()), Some("shop".into()));
        assert_eq!(of_name_hint("CRM", known.into_iter()), None);
        assert_eq!(of_name_hint("shop", known.into_iter()), None);
        assert_eq!(of_name_hint("archive", known.into_iter()), Some("shop-archive".into()));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn names_are_restricted() {
        assert!(validate_name("snapshot name", "shop-db.prod_1").is_ok());
        assert!(validate_name("snapshot name", "a:b").is_err());
        assert!(validate_name("snapshot name", "").is_err());
    }
}
