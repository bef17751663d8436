//! Content sanity (pure; issue 17 part 2): the tables a dump holds against those of the previous snapshot of
//! the same name — a table that is gone, or one that shrank by the threshold or more — as one line each for
//! create's warnings and `status`'s reasons (and so the jobs' size-drop alert).
//!
//! Small tables are left out of the shrink rule (a 3-row table losing 2 rows is not news): below
//! `MIN_ROWS` rows, or `MIN_BYTES` bytes where rows are not counted. A table that disappears is reported
//! whatever its size.

use silo_format::manifest::DumpRecord;

pub const MIN_ROWS: u64 = 100;
pub const MIN_BYTES: u64 = 64 * 1024;

/// One finding about one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub table: String,
    pub line: String,
}

/// What changed between `previous` and `current` (the same stream of two snapshots of one name) that a user
/// should hear about; `threshold` is the shrink percentage that counts.
pub fn compare(stream: &str, previous: &DumpRecord, current: &DumpRecord, threshold: u8) -> Vec<Finding> {
    let mut out = Vec::new();
    for before in &previous.tables {
        let Some(now) = current.tables.iter().find(|t| t.name == before.name) else {
            let size = before.rows.map_or_else(|| format!("{} bytes", before.bytes), |r| format!("{r} rows"));
            out.push(Finding {
                table: before.name.clone(),
                line: format!(
                    "table {} of stream {stream} is gone (it had {size} in the previous snapshot)",
                    before.name
                ),
            });
            continue;
        };
        let (from, to, unit) = match (before.rows, now.rows) {
            (Some(a), Some(b)) if a >= MIN_ROWS => (a, b, "rows"),
            (Some(_), Some(_)) => continue,
            _ if before.bytes >= MIN_BYTES => (before.bytes, now.bytes, "bytes"),
            _ => continue,
        };
        if to >= from {
            continue;
        }
        let drop = (from - to) as f64 * 100.0 / from as f64;
        if drop >= f64::from(threshold) {
            out.push(Finding {
                table: before.name.clone(),
                line: format!(
                    "table {} of stream {stream} shrank by {drop:.0}% ({from} -> {to} {unit}) since the previous snapshot",
                    before.name
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_format::manifest::TableStat;

    fn rec(tables: &[(&str, Option<u64>, u64)]) -> DumpRecord {
        DumpRecord {
            format: 1,
            tool_version: String::new(),
            invalid: None,
            entries: 0,
            tables: tables.iter().map(|(n, r, b)| TableStat { name: n.to_string(), rows: *r, bytes: *b }).collect(),
        }
    }

    #[test]
    fn gone_and_shrunk_tables_are_found_and_small_or_growing_ones_are_not() {
        let before = rec(&[
            ("a", Some(1000), 10),
            ("b", Some(1000), 10),
            ("tiny", Some(3), 1),
            ("gone", Some(2), 5),
            ("grew", Some(500), 10),
            ("archive", None, 1 << 20),
        ]);
        let after = rec(&[
            ("a", Some(400), 4),
            ("b", Some(600), 6),
            ("tiny", Some(0), 0),
            ("grew", Some(900), 10),
            ("archive", None, 1 << 18),
            ("new", Some(5), 1),
        ]);
        let found = compare("data", &before, &after, 50);
        let tables: Vec<&str> = found.iter().map(|f| f.table.as_str()).collect();
        assert_eq!(tables, ["a", "gone", "archive"]);
        assert!(found[0].line.contains("shrank by 60% (1000 -> 400 rows)"), "{}", found[0].line);
        assert!(found[1].line.contains("is gone (it had 2 rows"), "{}", found[1].line);
        assert!(found[2].line.contains("bytes"), "{}", found[2].line);
        assert_eq!(compare("data", &before, &after, 70).len(), 2, "a higher threshold drops the 60% shrink");
        assert!(compare("data", &after, &after, 1).is_empty());
    }
}
