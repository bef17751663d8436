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
