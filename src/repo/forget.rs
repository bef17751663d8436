//! Stored retention policies and `forget`: deciding, per (name, host) group, which snapshot manifests to
//! remove, and removing them. Only manifests are deleted here; their data is reclaimed by gc.
//!
//! Upholds I10 (retention keeps a real backup) and I19 (a suspect snapshot — empty, stored invalid, or
//! shrunk by the threshold against the plausible one before it — never counts toward a rule for the
//! plausible ones: the policy is applied to suspects on their own, so planted snapshots from a writer key
//! cannot push real ones out, and are themselves kept only as the rules keep them among suspects).

use super::snapshots::Snapshot;
use super::Repository;
use crate::backend::names;
use crate::retention::{
    keep_newest_real, set_aside_future, split_suspects, Decision, Evaluate, Plausibility, Policy,
    SUSPECT_SHRINK_PERCENT,
};
use crate::{Error, Result};
use silo_format::maintenance::{StoredPolicy, MAINTENANCE_VERSION};
use silo_format::ObjectId;
use std::collections::BTreeMap;

/// Which snapshots `forget` considers.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub name: Option<String>,
    pub host: Option<String>,
    pub tag: Option<String>,
}

impl Filter {
    fn matches(&self, s: &Snapshot) -> bool {
        let m = &s.manifest;
        self.name.as_ref().is_none_or(|n| &m.name == n)
            && self.host.as_ref().is_none_or(|h| &m.host == h)
            && self.tag.as_ref().is_none_or(|t| m.tags.contains(t))
    }
}

#[derive(Clone, Debug)]
pub struct ForgetGroup {
    pub name: String,
    pub host: String,
    /// The policy applied; `None` when the group had no stored policy (everything kept).
    pub policy: Option<Policy>,
    pub decisions: Vec<Decision<Snapshot>>,
}

impl Repository {
    /// Every stored policy, the newest per name.
    pub async fn policies(&self) -> Result<BTreeMap<String, StoredPolicy>> {
        Ok(self.policy_objects().await?.into_iter().map(|(name, (_, p))| (name, p)).collect())
    }

    async fn policy_objects(&self) -> Result<BTreeMap<String, (ObjectId, StoredPolicy)>> {
        let mut out: BTreeMap<String, (ObjectId, StoredPolicy)> = BTreeMap::new();
        for (id, _, p) in self.load_all::<StoredPolicy>().await? {
            let newer = out.get(&p.name).is_none_or(|(old_id, old)| (p.set_at, id) > (old.set_at, *old_id));
            if newer {
                out.insert(p.name.clone(), (id, p));
            }
        }
        Ok(out)
    }

    /// Stores `policy` for `name`, then removes the policies it replaces. An empty policy removes the entry.
    pub async fn set_policy(&self, name: &str, policy: Policy) -> Result<()> {
        let store = self.owner_store("policy set")?;
        refuse_zero_rules(&policy, &format!("policy for {name}"))?;
        let replaced: Vec<String> = self
            .load_all::<StoredPolicy>()
            .await?
            .into_iter()
            .filter(|(_, _, p)| p.name == name)
            .map(|(_, object, _)| object)
            .collect();
        if !policy.is_empty() {
            let id = ObjectId::random();
            let stored =
                StoredPolicy { version: MAINTENANCE_VERSION, name: name.to_string(), policy, set_at: self.now() };
            self.save(id, &stored).await?;
        }
        for obj in replaced {
            store.delete(&obj).await?;
        }
        Ok(())
    }

    /// Decides which snapshots to forget: `policy` for every group if given, else each name's stored
    /// policy (groups without one keep everything). Deletes nothing.
    pub async fn plan_forget(&self, filter: &Filter, policy: Option<&Policy>) -> Result<Vec<ForgetGroup>> {
        self.plan_forget_with(filter, policy, SUSPECT_SHRINK_PERCENT).await
    }

    /// `plan_forget` with the shrink percentage that makes a snapshot suspect (I19; 100: only empty and
    /// invalid ones are).
    pub async fn plan_forget_with(
        &self,
        filter: &Filter,
        policy: Option<&Policy>,
        shrink: u8,
    ) -> Result<Vec<ForgetGroup>> {
        if let Some(p) = policy {
            refuse_zero_rules(p, "forget")?;
        }
        let stored = if policy.is_none() { self.policies().await? } else { BTreeMap::new() };
        for (name, p) in &stored {
            refuse_zero_rules(
                &p.policy,
                &format!("the stored policy of {name} (fix it with `silo policy set {name}`)"),
            )?;
        }
        // Headers only: retention needs names, hosts, tags and times, never chunks.
        let heads = self.list_snapshot_heads().await?;
        Ok(plan_groups(heads, filter, policy, &stored, self.now(), shrink))
    }

    /// A plan that removes exactly the snapshots `specs` name (`forget ID...`), one group per snapshot.
    pub async fn plan_forget_ids(&self, specs: &[super::snapshots::SnapshotSpec]) -> Result<Vec<ForgetGroup>> {
        let mut groups: Vec<ForgetGroup> = Vec::new();
        for spec in specs {
            let s = self.resolve(spec).await?;
            if groups.iter().any(|g| g.decisions.iter().any(|d| d.item.id == s.id)) {
                continue;
            }
            let (name, host, time) = (s.manifest.name.clone(), s.manifest.host.clone(), s.manifest.finished);
            let decisions = vec![Decision { item: s, time, keep: false, reasons: Vec::new() }];
            groups.push(ForgetGroup { name, host, policy: None, decisions });
        }
        Ok(groups)
    }

    /// Deletes the manifests `plan` decided to remove.
    pub async fn forget(&self, plan: &[ForgetGroup]) -> Result<usize> {
        let doomed: Vec<_> = plan.iter().flat_map(|g| &g.decisions).filter(|d| !d.keep).collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let store = self.owner_store("forget")?;
        let mut removed = 0;
        for d in doomed {
            match store.delete(&names::snapshot(&d.item.id)).await {
                Ok(()) => removed += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }
}

/// What I19 weighs of a snapshot: its size, whether a stream's dump was stored invalid, and whether every
/// stream was recognised as a dump.
pub fn plausibility(s: &Snapshot) -> Plausibility {
    let streams = &s.manifest.streams;
    let invalid = streams.iter().any(|st| st.dump.as_ref().is_some_and(|d| d.invalid.is_some()));
    let recognised = !streams.is_empty() && streams.iter().all(|st| st.dump.is_some());
    Plausibility { size: s.manifest.total_size(), invalid, recognised }
}

/// Per snapshot id, why it is suspect (I19), judged within its (name, host) group as forget judges it.
pub fn suspect_reasons(snapshots: &[Snapshot], shrink: u8) -> std::collections::HashMap<ObjectId, String> {
    let mut groups: BTreeMap<(&str, &str), Vec<&Snapshot>> = BTreeMap::new();
    for s in snapshots {
        groups.entry((&s.manifest.name, &s.manifest.host)).or_default().push(s);
    }
    let mut out = std::collections::HashMap::new();
    for members in groups.values() {
        let facts: Vec<(Plausibility, i64)> = members.iter().map(|s| (plausibility(s), s.manifest.finished)).collect();
        for (s, why) in members.iter().zip(crate::retention::suspects(&facts, shrink)) {
            if let Some(why) = why {
                out.insert(s.id, why);
            }
        }
    }
    out
}

fn refuse_zero_rules(policy: &Policy, what: &str) -> Result<()> {
    match policy.zero_rule() {
        Some(flag) => Err(Error::Input {
            what: what.to_string(),
            message: format!("{flag} 0 keeps nothing, so every snapshot would be removed; leave the rule out"),
        }),
        None => Ok(()),
    }
}

/// The forget plan of `snapshots` (pure): `policy` for every group if given, else each name's policy in
/// `stored` (groups without one keep everything), with I19's suspects judged apart and snapshots from the
/// future set aside. `plan_forget` reads the repository and calls this; so does the dashboard's preview.
pub fn plan_groups(
    snapshots: Vec<Snapshot>,
    filter: &Filter,
    policy: Option<&Policy>,
    stored: &BTreeMap<String, StoredPolicy>,
    now: i64,
    shrink: u8,
) -> Vec<ForgetGroup> {
    let mut groups: BTreeMap<(String, String), Vec<(Snapshot, i64)>> = BTreeMap::new();
    for s in snapshots.into_iter().filter(|s| filter.matches(s)) {
        let key = (s.manifest.name.clone(), s.manifest.host.clone());
        let t = s.manifest.finished;
        groups.entry(key).or_default().push((s, t));
    }
    groups
        .into_iter()
        .map(|((name, host), items)| {
            let chosen = policy.cloned().or_else(|| stored.get(&name).map(|p| p.policy.clone()));
            let decisions = match &chosen {
                Some(p) => {
                    let (items, mut aside) = set_aside_future(items, now);
                    let (items, suspect) = split_suspects(items, plausibility, shrink);
                    let mut d = p.apply(&items);
                    keep_newest_real(&mut d, |s: &Snapshot| s.manifest.total_size() > 0);
                    // Suspects are judged among themselves: kept in addition, never in a plausible one's place.
                    let mut s = p.apply(&suspect);
                    s.iter_mut().filter(|d| d.keep).for_each(|d| d.reasons.push("suspect"));
                    aside.extend(s);
                    aside.extend(d);
                    aside.sort_by_key(|d| std::cmp::Reverse(d.time));
                    aside
                }
                None => {
                    let mut all: Vec<Decision<Snapshot>> = items
                        .into_iter()
                        .map(|(item, time)| Decision { item, time, keep: true, reasons: vec!["no policy"] })
                        .collect();
                    all.sort_by_key(|d| std::cmp::Reverse(d.time));
                    all
                }
            };
            ForgetGroup { name, host, policy: chosen, decisions }
        })
        .collect()
}
