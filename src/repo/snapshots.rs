//! Listing snapshot manifests and resolving what a user typed (`3fa2c1`, `shop:latest`, `shop:latest~2`,
//! optionally followed by `:STREAM`) to one snapshot.

use super::Repository;
use crate::backend::names;
use crate::{Error, Result};
use futures::StreamExt;
use silo_format::manifest::SnapshotManifest;
use silo_format::ObjectId;
use silo_format::Sealed;

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
        let (selector, stream) = match parts.as_slice() {
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
            _ => return Err(bad("expected ID, ID:STREAM, NAME:latest[~N] or NAME:latest[~N]:STREAM")),
        };
        if let Selector::IdPrefix(p) = &selector {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad("an id is hexadecimal; to pick by name write NAME:latest"));
            }
        }
        Ok(SnapshotSpec { selector, stream })
    }
}

impl Repository {
    /// Every readable snapshot, oldest first. A manifest that cannot be read is reported on stderr and
    /// skipped, so one damaged object does not hide the others.
    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>> {
        let listed = self.backend.list(names::SNAPSHOTS).await?;
        let ids: Vec<ObjectId> = listed.iter().filter_map(|o| names::id_of(&o.name)).collect();
        let results: Vec<Result<Snapshot>> =
            futures::stream::iter(ids).map(|id| self.load_snapshot(id)).buffer_unordered(16).collect().await;
        let mut out = Vec::new();
        for r in results {
            match r {
                Ok(s) => out.push(s),
                Err(e @ (Error::Damaged { .. } | Error::Inconsistent { .. })) => {
                    tracing::warn!("skipping {e}")
                }
                Err(Error::Backend(e)) if e.is_not_found() => {} // removed by forget while listing
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|s| (s.manifest.finished, s.id));
        Ok(out)
    }

    pub async fn load_snapshot(&self, id: ObjectId) -> Result<Snapshot> {
        let name = names::snapshot(&id);
        let bytes = self.backend.get(&name).await?;
        let manifest =
            SnapshotManifest::open(&self.keys, self.repo_id, id, &bytes).map_err(|e| Error::damaged(name, e))?;
        Ok(Snapshot { id, manifest })
    }

    pub async fn resolve(&self, spec: &SnapshotSpec) -> Result<Snapshot> {
        let spec_text = || match &spec.selector {
            Selector::IdPrefix(p) => p.clone(),
            Selector::Latest { name, back: 0 } => format!("{name}:latest"),
            Selector::Latest { name, back } => format!("{name}:latest~{back}"),
        };
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
                    [id] => self.load_snapshot(*id).await,
                    [] => Err(Error::SnapshotNotFound { spec: spec_text() }),
                    many => Err(Error::AmbiguousSnapshot { spec: spec_text(), count: many.len() }),
                }
            }
            Selector::Latest { name, back } => {
                let mut of_name: Vec<Snapshot> =
                    self.list_snapshots().await?.into_iter().filter(|s| &s.manifest.name == name).collect();
                of_name.reverse();
                of_name.into_iter().nth(*back).ok_or_else(|| Error::SnapshotNotFound { spec: spec_text() })
            }
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
        assert_eq!(p("shop:latest~2").selector, Selector::Latest { name: "shop".into(), back: 2 });
        assert_eq!(p("nightly:latest:shop").stream.as_deref(), Some("shop"));
        assert_eq!(p("3fa2:globals").stream.as_deref(), Some("globals"));
        assert!(SnapshotSpec::parse("shop").is_err());
        assert!(SnapshotSpec::parse("shop:latest~x").is_err());
        assert!(SnapshotSpec::parse("a:latest:b:c").is_err());
        assert!(SnapshotSpec::parse("").is_err());
    }

    #[test]
    fn names_are_restricted() {
        assert!(validate_name("snapshot name", "shop-db.prod_1").is_ok());
        assert!(validate_name("snapshot name", "a:b").is_err());
        assert!(validate_name("snapshot name", "").is_err());
    }
}
