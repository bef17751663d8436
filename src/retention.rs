//! Retention policy evaluation (pure: no I/O, no clock). restic's semantics: within one group (snapshots of
//! one name and host), newest first, each `keep-<period> N` rule keeps the newest snapshot of each of the N
//! newest periods that have one; `keep-last N` keeps the N newest; `keep-within D` keeps everything within D
//! of the newest snapshot. A snapshot is kept if any rule keeps it. Periods are UTC calendar buckets (no DST).

pub use silo_format::maintenance::Policy;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<T> {
    pub item: T,
    pub time: i64,
    pub keep: bool,
    /// The rules that kept it (`last`, `hourly`, ..., `within`), empty when removed.
    pub reasons: Vec<&'static str>,
}

/// Evaluation of a policy over one group.
pub trait Evaluate {
    fn is_empty(&self) -> bool;
    /// A rule with a count of 0 keeps nothing: refused (restic treats it as "no policy"; silo says so
    /// rather than deleting every snapshot). Returns the offending rule's flag.
    fn zero_rule(&self) -> Option<&'static str>;
    fn apply<T: Clone>(&self, items: &[(T, i64)]) -> Vec<Decision<T>>;
}

impl Evaluate for Policy {
    fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    fn zero_rule(&self) -> Option<&'static str> {
        [
            ("--keep-last", self.last),
            ("--keep-hourly", self.hourly),
            ("--keep-daily", self.daily),
            ("--keep-weekly", self.weekly),
            ("--keep-monthly", self.monthly),
            ("--keep-yearly", self.yearly),
        ]
        .into_iter()
        .find(|(_, n)| *n == Some(0))
        .map(|(flag, _)| flag)
        .or_else(|| (self.within == Some(0)).then_some("--keep-within"))
    }

    /// Decides for one group. `items` are (item, time in µs since the epoch) in any order; the result is
    /// newest first. Ties in time keep input order (stable), so equal timestamps are deterministic.
    fn apply<T: Clone>(&self, items: &[(T, i64)]) -> Vec<Decision<T>> {
        let mut sorted: Vec<(T, i64)> = items.to_vec();
        sorted.sort_by_key(|item| std::cmp::Reverse(item.1));
        let newest = sorted.first().map(|x| x.1).unwrap_or(0);
        type Bucket = fn(i64) -> i64;
        let rules: [(&'static str, Option<u32>, Bucket); 6] = [
            ("last", self.last, |_| i64::MIN), // placeholder bucket; handled below
            ("hourly", self.hourly, |t| t.div_euclid(3_600_000_000)),
            ("daily", self.daily, |t| t.div_euclid(86_400_000_000)),
            ("weekly", self.weekly, iso_week),
            ("monthly", self.monthly, |t| month(t)),
            ("yearly", self.yearly, |t| month(t).div_euclid(12)),
        ];
        let mut remaining: Vec<u32> = rules.iter().map(|r| r.1.unwrap_or(0)).collect();
        let mut last_bucket: Vec<Option<i64>> = vec![None; rules.len()];
        sorted
            .into_iter()
            .map(|(item, time)| {
                let mut reasons = Vec::new();
                for (i, (name, count, bucket)) in rules.iter().enumerate() {
                    if count.is_none() || remaining[i] == 0 {
                        continue;
                    }
                    if i == 0 {
                        remaining[0] -= 1;
                        reasons.push(*name);
                        continue;
                    }
                    let b = bucket(time);
                    if last_bucket[i] != Some(b) {
                        last_bucket[i] = Some(b);
                        remaining[i] -= 1;
                        reasons.push(*name);
                    }
                }
                if let Some(within) = self.within {
                    if newest - time <= within as i64 * 1_000_000 {
                        reasons.push("within");
                    }
                }
                Decision { item, time, keep: !reasons.is_empty(), reasons }
            })
            .collect()
    }
}

/// Whatever the policy says, the newest snapshot that holds data (`is_real`) stays: empty or failed runs
/// can never push the last real backup out of retention. `decisions` is newest first.
pub fn keep_newest_real<T>(decisions: &mut [Decision<T>], is_real: impl Fn(&T) -> bool) {
    if let Some(d) = decisions.iter_mut().find(|d| is_real(&d.item)) {
        if !d.keep {
            d.keep = true;
            d.reasons.push("newest-with-data");
        }
    }
}

/// The shrink (percent of the snapshot before) beyond which retention calls a snapshot suspect (I19);
/// the same default as a job's `shrink_alert`.
pub const SUSPECT_SHRINK_PERCENT: u8 = 50;

/// What retention weighs to call a snapshot plausible: its size, whether its dump was stored invalid, and
/// whether every stream was recognised as a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plausibility {
    pub size: u64,
    pub invalid: bool,
    pub recognised: bool,
}

/// How many plausible snapshots before an item make its reference: the largest of them. A chain of
/// snapshots each a little smaller than the last (a writer planting 55% of the one before, again and again)
/// is measured against the largest of the recent real ones, not against its own previous link.
pub const SUSPECT_WINDOW: usize = 10;

/// I19: why each item is suspect (`None`: plausible), aligned with `items` (any order). Oldest first, an
/// item is suspect when it holds no data, its dump was stored invalid (`--accept-invalid`), it is not a
/// recognised dump while the plausible ones before it were, or it is `shrink` percent or more smaller than
/// the largest of the last `SUSPECT_WINDOW` plausible items before it (100: size alone never makes one
/// suspect). Suspects never become a reference, so a run of planted snapshots stays suspect.
pub fn suspects(items: &[(Plausibility, i64)], shrink: u8) -> Vec<Option<String>> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].1);
    let mut out = vec![None; items.len()];
    let mut recent: std::collections::VecDeque<Plausibility> = std::collections::VecDeque::new();
    for i in order {
        let p = items[i].0;
        let largest = recent.iter().map(|r| r.size).max();
        let why = if p.size == 0 {
            Some("holds no data".to_string())
        } else if p.invalid {
            Some("its dump was stored invalid".to_string())
        } else if !p.recognised && recent.back().is_some_and(|r| r.recognised) {
            Some("not a recognised dump, unlike the snapshots before it".to_string())
        } else {
            match largest {
                Some(r) if shrink < 100 && u128::from(p.size) * 100 <= u128::from(r) * u128::from(100 - shrink) => {
                    let drop = 100.0 - p.size as f64 * 100.0 / r as f64;
                    Some(format!("{drop:.0}% smaller than the recent plausible snapshots ({r} -> {} bytes)", p.size))
                }
                _ => None,
            }
        };
        if why.is_none() {
            recent.push_back(p);
            if recent.len() > SUSPECT_WINDOW {
                recent.pop_front();
            }
        }
        out[i] = why;
    }
    out
}

/// Items with their times (µs), as a policy takes them.
pub type Timed<T> = Vec<(T, i64)>;

/// Splits the items into those a policy counts and the suspects (`suspects`, I19). The policy is applied to
/// each part on its own: a suspect never takes a plausible snapshot's place in a rule, and suspects are
/// kept in addition — as many as the same rules keep among suspects (so planted ones are not kept without
/// bound, and the newest stay as evidence). Returns (plausible, suspect).
pub fn split_suspects<T: Clone>(
    items: Vec<(T, i64)>,
    facts: impl Fn(&T) -> Plausibility,
    shrink: u8,
) -> (Timed<T>, Timed<T>) {
    let judged: Vec<(Plausibility, i64)> = items.iter().map(|(t, time)| (facts(t), *time)).collect();
    let (mut plausible, mut suspect) = (Vec::new(), Vec::new());
    for (item, why) in items.into_iter().zip(suspects(&judged, shrink)) {
        match why {
            None => plausible.push(item),
            Some(_) => suspect.push(item),
        }
    }
    (plausible, suspect)
}

/// How far past now a snapshot may be dated before retention sets it aside: twice the clock skew gc
/// tolerates (repo/session.rs), so a writer with a slightly fast clock is still counted.
pub const FUTURE_TOLERANCE_MICROS: i64 = 600_000_000;

/// Sets aside the items dated more than `FUTURE_TOLERANCE_MICROS` after `now`: a policy never counts them
/// (planting future-dated snapshots must not push real ones out of `keep-last`/`keep-daily`, rest-server#292)
/// and never removes them (they are shown as kept, reason `future-dated`; `check` flags them). Returns the
/// items a policy may judge, and the decisions for the ones set aside, newest first.
pub fn set_aside_future<T: Clone>(items: Vec<(T, i64)>, now: i64) -> (Vec<(T, i64)>, Vec<Decision<T>>) {
    let (future, present): (Vec<_>, Vec<_>) =
        items.into_iter().partition(|(_, t)| *t > now.saturating_add(FUTURE_TOLERANCE_MICROS));
    let mut aside: Vec<Decision<T>> = future
        .into_iter()
        .map(|(item, time)| Decision { item, time, keep: true, reasons: vec!["future-dated"] })
        .collect();
    aside.sort_by_key(|d| std::cmp::Reverse(d.time));
    (present, aside)
}

/// Months since January 1970 (UTC).
fn month(micros: i64) -> i64 {
    let (y, m, _) = crate::time::civil_from_days(micros.div_euclid(86_400_000_000));
    y * 12 + i64::from(m) - 1
}

/// ISO-8601 week, numbered from an arbitrary origin: weeks start on Monday, UTC.
fn iso_week(micros: i64) -> i64 {
    let days = micros.div_euclid(86_400_000_000);
    // 1970-01-01 was a Thursday; shifting by 3 makes Monday the first day of each 7-day bucket.
    (days + 3).div_euclid(7)
}

/// Parses `1y6mo2w3d4h30min` (years of 365 days, months of 30 days, weeks, days, hours, minutes, seconds)
/// into seconds. A bare `m` is refused as ambiguous (minutes or months?): write `min` or `mo`.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let mut total = 0u64;
    let mut rest = text;
    if rest.is_empty() {
        return Err("empty".into());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| "number too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "y" => 365 * 86_400,
            "mo" => 30 * 86_400,
            "w" => 7 * 86_400,
            "d" => 86_400,
            "h" => 3_600,
            "min" => 60,
            "s" => 1,
            "m" => return Err("`m` is ambiguous: write `min` for minutes or `mo` for months".into()),
            "" => return Err(format!("{n} has no unit")),
            other => return Err(format!("unknown unit {other:?}")),
        };
        rest = &rest[unit_len..];
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or("duration too long")?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {

    #[test]
    fn future_dated_items_are_neither_counted_nor_removed() {
        const H: i64 = 3_600_000_000;
        let now = 1_000 * H;
        // Three real daily snapshots and three planted a year ahead.
        let mut items: Vec<(u32, i64)> = (0..3).map(|i| (i, now - (3 - i as i64) * 24 * H)).collect();
        items.extend((10..13).map(|i| (i, now + 365 * 24 * H + i as i64)));
        items.push((20, now + FUTURE_TOLERANCE_MICROS)); // a slightly fast writer: still counted
        let (present, aside) = set_aside_future(items, now);
        assert_eq!(aside.iter().map(|d| d.item).collect::<Vec<_>>(), vec![12, 11, 10]);
        assert!(aside.iter().all(|d| d.keep && d.reasons == ["future-dated"]));
        let policy = Policy { last: Some(3), ..Default::default() };
        let kept: Vec<u32> = policy.apply(&present).into_iter().filter(|d| d.keep).map(|d| d.item).collect();
        assert_eq!(kept, vec![20, 2, 1], "the planted ones pushed nothing out");
    }

    use super::*;

    fn p(size: u64) -> Plausibility {
        Plausibility { size, invalid: false, recognised: true }
    }

    #[test]
    fn planted_tiny_snapshots_are_suspect_and_never_the_reference() {
        let items = [(p(1000), 1), (p(1100), 2), (p(1), 3), (p(1), 4), (p(990), 5)];
        let s = suspects(&items, 50);
        assert_eq!(s.iter().map(Option::is_some).collect::<Vec<_>>(), [false, false, true, true, false]);
        assert!(s[2].as_deref().unwrap().contains("100% smaller"), "{s:?}");
        // Any order in, aligned out.
        let mut rev = items;
        rev.reverse();
        let flags: Vec<bool> = suspects(&rev, 50).iter().map(Option::is_some).collect();
        assert_eq!(flags, [false, true, true, false, false]);
    }

    #[test]
    fn empty_and_invalid_are_suspect_whatever_the_threshold() {
        let items = [(p(0), 1), (Plausibility { invalid: true, ..p(50) }, 2), (p(40), 3), (p(10), 4)];
        let flags: Vec<bool> = suspects(&items, 100).iter().map(Option::is_some).collect();
        assert_eq!(flags, [true, true, false, false]);
        // 10 is 75% smaller than 40: suspect at 50%, not at 80%.
        assert!(suspects(&items, 50)[3].is_some());
        assert!(suspects(&items, 80)[3].is_none());
        // Exactly the threshold counts.
        assert!(suspects(&[(p(100), 1), (p(50), 2)], 50)[1].is_some());
        assert!(suspects(&[(p(100), 1), (p(51), 2)], 50)[1].is_none());
    }

    #[test]
    fn a_chain_of_shrinking_plants_is_measured_against_the_largest_recent_real_one() {
        // Four real snapshots, then each plant 55% of the one before (the adversary's chain).
        let mut items: Vec<(Plausibility, i64)> = (1..=4).map(|t| (p(100_000), t)).collect();
        let mut size = 100_000u64;
        for t in 5..=14 {
            size = size * 55 / 100;
            items.push((p(size), t));
        }
        let flags: Vec<bool> = suspects(&items, 50).iter().map(Option::is_some).collect();
        assert_eq!(flags[..5], [false, false, false, false, false], "55% of the real ones is within 50%");
        assert!(flags[5..].iter().all(|s| *s), "{flags:?}");
    }

    #[test]
    fn an_unrecognised_stream_after_recognised_dumps_is_suspect() {
        let unknown = Plausibility { recognised: false, ..p(5000) };
        let s = suspects(&[(p(5000), 1), (unknown, 2), (p(5000), 3)], 50);
        assert!(s[0].is_none() && s[2].is_none());
        assert!(s[1].as_deref().unwrap().contains("not a recognised dump"), "{s:?}");
        // A name that never held recognised dumps judges by size alone.
        assert!(suspects(&[(unknown, 1), (unknown, 2)], 50).iter().all(Option::is_none));
    }

    #[test]
    fn suspects_never_displace_plausible_snapshots() {
        // Four real snapshots, then three planted tiny ones: keep-last 2 keeps the two newest real ones, and
        // among the planted ones the two newest, in addition.
        let items: Vec<(u32, i64)> = (1..=7).map(|i| (i, i64::from(i))).collect();
        let sizes = |i: &u32| p(if *i > 4 { 1 } else { 1000 });
        let (plausible, suspect) = split_suspects(items, sizes, 50);
        let policy = Policy { last: Some(2), ..Policy::default() };
        let kept = |items: &[(u32, i64)]| -> Vec<u32> {
            policy.apply(items).into_iter().filter(|d| d.keep).map(|d| d.item).collect()
        };
        assert_eq!(kept(&plausible), [4, 3]);
        assert_eq!(kept(&suspect), [7, 6]);
    }

    /// I19 as a property: over random histories of real snapshots (sizes within 30% of each other) with
    /// planted tiny ones anywhere, the plausible snapshots a policy keeps are exactly those it keeps when
    /// nothing was planted.
    #[test]
    fn planted_snapshots_never_change_which_real_ones_are_kept() {
        let mut state = 0x1915_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..500 {
            let n = 2 + next() % 30;
            let mut items = Vec::new();
            let mut real = Vec::new();
            for i in 0..n {
                let time = i as i64 * (1 + (next() % 30) as i64) * HOUR;
                let planted = next().is_multiple_of(3);
                let size = if planted { next() % 100 } else { 10_000 + next() % 3_000 };
                items.push(((i, size), time));
                if !planted {
                    real.push(((i, size), time));
                }
            }
            let policy = Policy {
                last: Some(1 + (next() % 4) as u32),
                daily: next().is_multiple_of(2).then(|| 1 + (next() % 5) as u32),
                ..Policy::default()
            };
            let (plausible, _) = split_suspects(items, |&(_, size)| p(size), SUSPECT_SHRINK_PERCENT);
            // A planted one older than every real one has nothing to be measured against and counts; being
            // the oldest, it can take no real one's place in a rule of the newest N.
            let real_ids: Vec<u64> = real.iter().map(|((i, _), _)| *i).collect();
            let keep = |items: &[((u64, u64), i64)]| -> Vec<u64> {
                let kept = policy.apply(items).into_iter().filter(|d| d.keep).map(|d| d.item.0);
                kept.filter(|i| real_ids.contains(i)).collect()
            };
            assert_eq!(keep(&plausible), keep(&real), "round {round}: {policy:?}");
        }
    }

    const HOUR: i64 = 3_600_000_000;
    const DAY: i64 = 24 * HOUR;
    /// 2026-11-02T00:00:00Z, a Monday.
    const MONDAY: i64 = 1_793_577_600_000_000;

    fn kept(policy: &Policy, times: &[i64]) -> Vec<i64> {
        let items: Vec<(usize, i64)> = times.iter().copied().enumerate().collect();
        policy.apply(&items).into_iter().filter(|d| d.keep).map(|d| d.time).collect()
    }

    #[test]
    fn empty_group_and_empty_policy() {
        assert!(Policy { daily: Some(3), ..Default::default() }.apply::<u8>(&[]).is_empty());
        assert!(Policy::default().is_empty());
        assert!(kept(&Policy::default(), &[MONDAY, MONDAY + HOUR]).is_empty(), "no rule keeps nothing");
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let times: Vec<i64> = (0..5).map(|i| MONDAY + i * HOUR).collect();
        assert_eq!(
            kept(&Policy { last: Some(2), ..Default::default() }, &times),
            vec![MONDAY + 4 * HOUR, MONDAY + 3 * HOUR]
        );
        assert_eq!(kept(&Policy { last: Some(9), ..Default::default() }, &times).len(), 5);
    }

    #[test]
    fn hourly_keeps_the_newest_of_each_hour() {
        let times = [MONDAY, MONDAY + 10, MONDAY + HOUR + 5, MONDAY + HOUR + 9, MONDAY + 3 * HOUR];
        let p = Policy { hourly: Some(2), ..Default::default() };
        assert_eq!(kept(&p, &times), vec![MONDAY + 3 * HOUR, MONDAY + HOUR + 9]);
    }

    #[test]
    fn daily_buckets_are_utc_days_and_skip_empty_days() {
        // Snapshots every 8 hours over 4 days, but none on day 2: daily 3 keeps days 3, 1 and 0.
        let mut times = Vec::new();
        for day in [0, 1, 3] {
            for h in [0, 8, 16] {
                times.push(MONDAY + day * DAY + h * HOUR);
            }
        }
        let p = Policy { daily: Some(3), ..Default::default() };
        assert_eq!(kept(&p, &times), vec![MONDAY + 3 * DAY + 16 * HOUR, MONDAY + DAY + 16 * HOUR, MONDAY + 16 * HOUR]);
        // 23:59:59 and 00:00:00 UTC are different days.
        let edge = [MONDAY - 1_000_000, MONDAY];
        assert_eq!(kept(&p, &edge).len(), 2);
    }

    #[test]
    fn weekly_weeks_start_on_monday() {
        let sunday = MONDAY - DAY;
        let p = Policy { weekly: Some(5), ..Default::default() };
        assert_eq!(kept(&p, &[sunday, MONDAY, MONDAY + 6 * DAY]), vec![MONDAY + 6 * DAY, sunday]);
    }

    #[test]
    fn monthly_and_yearly_use_calendar_months() {
        // 2026-10-31 and 2026-11-01 are different months; 2025-12-31 and 2026-01-01 different years.
        let oct31 = MONDAY - 2 * DAY;
        let nov1 = MONDAY - DAY;
        let p = Policy { monthly: Some(12), ..Default::default() };
        assert_eq!(kept(&p, &[oct31, nov1, MONDAY]), vec![MONDAY, oct31]);
        let dec31_2025 = 1_767_139_200_000_000; // 2025-12-31T00:00:00Z
        let y = Policy { yearly: Some(3), ..Default::default() };
        assert_eq!(kept(&y, &[dec31_2025, dec31_2025 + DAY, MONDAY]), vec![MONDAY, dec31_2025]);
    }

    #[test]
    fn within_is_relative_to_the_newest_snapshot() {
        let times = [MONDAY - 10 * DAY, MONDAY - 2 * DAY, MONDAY];
        let p = Policy { within: Some(3 * 86_400), ..Default::default() };
        assert_eq!(kept(&p, &times), vec![MONDAY, MONDAY - 2 * DAY]);
    }

    #[test]
    fn rules_combine_and_report_every_reason() {
        let times: Vec<i64> = (0..30).map(|d| MONDAY + d * DAY).collect();
        let p = Policy { last: Some(1), daily: Some(7), weekly: Some(4), monthly: Some(2), ..Default::default() };
        let items: Vec<(usize, i64)> = times.iter().copied().enumerate().collect();
        let decisions = p.apply(&items);
        assert_eq!(decisions[0].reasons, vec!["last", "daily", "weekly", "monthly"]);
        let kept: Vec<&Decision<usize>> = decisions.iter().filter(|d| d.keep).collect();
        // Series Nov 2 .. Dec 1 2026 (Dec 1 is a Tuesday). daily: Dec 1 .. Nov 25 (7). weekly: Dec 1, Nov 29
        // (both already kept), Nov 22, Nov 15. monthly: Dec 1, Nov 30 (both already kept). Total 9.
        assert_eq!(kept.len(), 9, "{kept:?}");
        assert_eq!(kept[7].time, MONDAY + 20 * DAY);
        assert_eq!(kept[8].time, MONDAY + 13 * DAY);
        assert!(decisions.iter().filter(|d| !d.keep).all(|d| d.reasons.is_empty()));
    }

    #[test]
    fn ties_are_deterministic() {
        let items = [("a", MONDAY), ("b", MONDAY), ("c", MONDAY)];
        let p = Policy { last: Some(1), ..Default::default() };
        let d = p.apply(&items);
        assert_eq!(d.iter().filter(|d| d.keep).map(|d| d.item).collect::<Vec<_>>(), vec!["a"]);
        let p = Policy { daily: Some(1), ..Default::default() };
        assert_eq!(p.apply(&items).iter().filter(|d| d.keep).count(), 1, "one bucket keeps one snapshot");
    }

    #[test]
    fn zero_counts_are_named() {
        assert_eq!(Policy { last: Some(0), ..Default::default() }.zero_rule(), Some("--keep-last"));
        assert_eq!(Policy { last: Some(3), daily: Some(0), ..Default::default() }.zero_rule(), Some("--keep-daily"));
        assert_eq!(Policy { within: Some(0), ..Default::default() }.zero_rule(), Some("--keep-within"));
        assert_eq!(Policy { last: Some(1), ..Default::default() }.zero_rule(), None);
    }

    #[test]
    fn the_newest_snapshot_with_data_is_always_kept() {
        // Newest first: three empty runs, then the one real dump, then an older real one.
        let items = [
            (0u64, MONDAY + 4 * HOUR),
            (0, MONDAY + 3 * HOUR),
            (0, MONDAY + 2 * HOUR),
            (9, MONDAY + HOUR),
            (7, MONDAY),
        ];
        let mut d = Policy { last: Some(3), ..Default::default() }.apply(&items);
        keep_newest_real(&mut d, |size| *size > 0);
        let kept: Vec<i64> = d.iter().filter(|d| d.keep).map(|d| d.time).collect();
        assert_eq!(kept, vec![MONDAY + 4 * HOUR, MONDAY + 3 * HOUR, MONDAY + 2 * HOUR, MONDAY + HOUR]);
        assert_eq!(d[3].reasons, vec!["newest-with-data"]);
        // Already kept by the policy: no second reason.
        let mut d = Policy { last: Some(1), ..Default::default() }.apply(&items[3..]);
        keep_newest_real(&mut d, |size| *size > 0);
        assert_eq!(d[0].reasons, vec!["last"]);
        assert!(!d[1].keep);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert_eq!(
            parse_duration("1y2mo3w4d5h"),
            Ok(365 * 86_400 + 60 * 86_400 + 21 * 86_400 + 4 * 86_400 + 5 * 3_600)
        );
        assert_eq!(parse_duration("30min"), Ok(1800));
        assert_eq!(parse_duration("1h30min15s"), Ok(5415));
        for bad in ["", "5", "d", "3x", "-1d", "1d2", "99999999999999999999d", "999999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("30m").unwrap_err().contains("ambiguous"));
    }
}
