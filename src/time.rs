//! Wall-clock helpers: silo stores times as microseconds since the Unix epoch (UTC).

use std::time::{SystemTime, UNIX_EPOCH};

/// This machine's time. A `Repository` reads the time through its injected `crate::clock::Clock` instead.
pub fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// RFC 3339 in UTC with second precision, e.g. `2026-11-22T18:30:26Z`.
pub fn format_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A duration as people say it, largest units first: `1d 2h`, `26min`, `45s`.
pub fn format_seconds(seconds: u64) -> String {
    let parts = [(seconds / 86_400, "d"), (seconds % 86_400 / 3600, "h"), (seconds % 3600 / 60, "min")];
    let shown: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, u)| format!("{n}{u}")).collect();
    if shown.is_empty() {
        format!("{seconds}s")
    } else {
        shown.join(" ")
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, UTC).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations() {
        assert_eq!(format_seconds(45), "45s");
        assert_eq!(format_seconds(26 * 3600), "1d 2h");
        assert_eq!(format_seconds(3660), "1h 1min");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_micros(1_795_372_226_000_000), "2026-11-22T18:30:26Z");
        assert_eq!(format_micros(951_782_400_000_000), "2000-02-29T00:00:00Z");
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of `civil_from_days`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The end (µs, exclusive) of the UTC day `text` names — `YYYY-MM-DD`, `today` or `yesterday` — seen from
/// `now`; None when `text` is none of them.
pub fn end_of_day(text: &str, now: i64) -> Option<i64> {
    const DAY: i64 = 86_400_000_000;
    let today = now.div_euclid(DAY);
    let day = match text {
        "today" => today,
        "yesterday" => today - 1,
        _ => {
            let mut it = text.splitn(3, '-');
            let (y, m, d) = (it.next()?, it.next()?, it.next()?);
            if y.len() != 4 || m.len() != 2 || d.len() != 2 {
                return None;
            }
            let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
            let days = days_from_civil(y, m, d);
            // A date that does not exist (2026-02-30) does not round-trip.
            (civil_from_days(days) == (y, m, d)).then_some(days)?
        }
    };
    Some((day + 1) * DAY)
}

#[cfg(test)]
mod day_tests {
    use super::*;

    #[test]
    fn days_name_the_end_of_their_utc_day() {
        const DAY: i64 = 86_400_000_000;
        let now = days_from_civil(2026, 12, 7) * DAY + 3 * 3_600_000_000;
        assert_eq!(end_of_day("today", now), Some(days_from_civil(2026, 12, 8) * DAY));
        assert_eq!(end_of_day("yesterday", now), Some(days_from_civil(2026, 12, 7) * DAY));
        assert_eq!(end_of_day("2026-12-06", now), Some(days_from_civil(2026, 12, 7) * DAY));
        assert_eq!(end_of_day("2026-02-30", now), None);
        assert_eq!(end_of_day("2026-1-06", now), None);
        assert_eq!(end_of_day("latest", now), None);
        for d in [-1000, 0, 59, 60, 365, 20_000, 30_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
