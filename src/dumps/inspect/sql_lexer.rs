//! mysqldump / mariadb-dump and `sqlite3 .dump` output. Both write one statement per line, except that
//! MariaDB's mysqldump puts each row of an extended INSERT on its own line; neither writes a raw newline inside
//! a string (mysqldump escapes it, sqlite3 writes `char(10)`). So lines are the unit, and only INSERT lines are
//! read byte by byte, to count a mysqldump INSERT's rows (the parenthesised tuples at depth 0, outside quotes).
//!
//! Complete when: mysqldump's last line is its `-- Dump completed` trailer (written only after every table)
//! and no INSERT is left open; sqlite3's last statement is `COMMIT;` (it writes `ROLLBACK; -- due to errors`
//! when reading the database failed).

use super::lines::HEAD;
use super::pg_plain::relation_name;
use super::{record, shown, trim_end, Scanner, Tables, Tail, Verdict};
use silo_format::manifest::dump_format;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Mysql,
    Sqlite,
}

/// Counts the rows of one extended INSERT across however many lines and pieces it spans.
#[derive(Default)]
struct Tuples {
    quote: Option<u8>,
    escaped: bool,
    depth: u32,
    rows: u64,
    /// Parentheses at depth 0 that are not rows: a column list before VALUES (`--complete-insert`).
    skip: u32,
    /// The statement's closing `;` was seen.
    closed: bool,
}

impl Tuples {
    fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() && !self.closed {
            if let Some(q) = self.quote {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // Inside a string: jump to its quote or the next backslash (most of a row's bytes).
                match memchr::memchr2(q, b'\\', &bytes[i..]) {
                    None => return,
                    Some(p) => {
                        if bytes[i + p] == b'\\' {
                            self.escaped = true;
                        } else {
                            // A doubled quote closes and reopens: the count is unaffected.
                            self.quote = None;
                        }
                        i += p + 1;
                    }
                }
                continue;
            }
            match bytes[i] {
                b'\'' | b'"' | b'`' => self.quote = Some(bytes[i]),
                b'(' => {
                    if self.depth == 0 {
                        if self.skip > 0 {
                            self.skip -= 1;
                        } else {
                            self.rows += 1;
                        }
                    }
                    self.depth += 1;
                }
                b')' => self.depth = self.depth.saturating_sub(1),
                b';' if self.depth == 0 => self.closed = true,
                _ => {}
            }
            i += 1;
        }
    }
}

enum LineKind {
    /// Not decided yet: fewer than `DECIDE` bytes of the line seen.
    Undecided,
    Insert,
    Other,
}

/// Bytes of a line needed to tell an INSERT from anything else.
const DECIDE: usize = b"INSERT INTO ".len();

pub(super) struct SqlDump {
    dialect: Dialect,
    tail: Tail,
    tables: Tables,
    tool_version: String,
    database: Option<String>,
    /// The current line's first bytes (up to `HEAD`), its length, and what it is.
    head: Vec<u8>,
    len: u64,
    kind: LineKind,
    /// The mysqldump INSERT being read, and its table.
    insert: Option<(usize, Tuples)>,
}

impl SqlDump {
    fn new(dialect: Dialect) -> Self {
        SqlDump {
            dialect,
            tail: Tail::new(1024),
            tables: Tables::default(),
            tool_version: String::new(),
            database: None,
            head: Vec::with_capacity(256),
            len: 0,
            kind: LineKind::Undecided,
            insert: None,
        }
    }

    pub(super) fn mysql() -> Self {
        Self::new(Dialect::Mysql)
    }

    pub(super) fn sqlite() -> Self {
        Self::new(Dialect::Sqlite)
    }

    /// Part of the current line (no `\n`).
    fn segment(&mut self, seg: &[u8]) {
        let room = HEAD.saturating_sub(self.head.len());
        let kept = seg.len().min(room);
        self.head.extend_from_slice(&seg[..kept]);
        self.len += seg.len() as u64;
        match self.kind {
            LineKind::Insert => self.count(seg),
            LineKind::Other => {}
            LineKind::Undecided => {
                if self.decidable() {
                    self.decide();
                    if matches!(self.kind, LineKind::Insert) {
                        // Undecided, the line is all in `head` so far (the decision comes within HEAD bytes);
                        // what of this segment did not fit in `head` follows it.
                        let seen = std::mem::take(&mut self.head);
                        self.count(&seen);
                        self.head = seen;
                        self.count(&seg[kept..]);
                    }
                }
            }
        }
    }

    /// Enough of the line is in `head` to tell what it is and, for an INSERT, which table it names.
    fn decidable(&self) -> bool {
        let h = &self.head;
        let continuing = self.insert.as_ref().is_some_and(|(_, t)| !t.closed);
        if h.len() < DECIDE {
            return false;
        }
        if continuing || !h.starts_with(b"INSERT INTO ") {
            return true;
        }
        h.len() >= HEAD || memchr::memmem::find(&h[DECIDE..], b" VALUES").is_some()
    }

    fn decide(&mut self) {
        let continuing = self.insert.as_ref().is_some_and(|(_, t)| !t.closed);
        self.kind = if self.dialect == Dialect::Mysql && (continuing || self.head.starts_with(b"INSERT INTO ")) {
            if !continuing {
                let name = self.qualified(unquote(&relation_name(&self.head[DECIDE..])));
                self.tables.get(&name, true);
                let i = self.tables.by_name[&name];
                // A column list before VALUES (--complete-insert) is one parenthesis more, not a row.
                let mut t = Tuples::default();
                if memchr::memmem::find(&self.head, b") VALUES").is_some() {
                    t.skip = 1;
                }
                self.insert = Some((i, t));
            }
            LineKind::Insert
        } else {
            LineKind::Other
        };
    }

    fn count(&mut self, bytes: &[u8]) {
        if let Some((i, t)) = &mut self.insert {
            t.feed(bytes);
            self.tables.list[*i].bytes += bytes.len() as u64;
        }
    }

    fn end_line(&mut self) {
        if matches!(self.kind, LineKind::Undecided) {
            self.decide();
            if matches!(self.kind, LineKind::Insert) {
                let seen = std::mem::take(&mut self.head);
                self.count(&seen);
                self.head = seen;
            }
        }
        match self.kind {
            LineKind::Insert => self.end_insert_line(),
            _ => self.other_line(),
        }
        self.head.clear();
        self.len = 0;
        self.kind = LineKind::Undecided;
    }

    fn end_insert_line(&mut self) {
        let Some((i, t)) = &mut self.insert else { return };
        self.tables.list[*i].bytes += 1;
        if t.closed {
            let rows = t.rows;
            let table = &mut self.tables.list[*i];
            table.rows = table.rows.map(|r| r + rows);
            self.insert = None;
        }
    }

    fn other_line(&mut self) {
        let head = std::mem::take(&mut self.head);
        match self.dialect {
            Dialect::Mysql => {
                if let Some(rest) = head.strip_prefix(b"CREATE TABLE ") {
                    let rest = rest.strip_prefix(b"IF NOT EXISTS ").unwrap_or(rest);
                    let name = self.qualified(unquote(&relation_name(rest)));
                    self.tables.get(&name, true);
                } else if let Some(rest) = head.strip_prefix(b"USE ") {
                    self.database = Some(unquote(shown(rest).trim_end_matches(';')));
                } else if self.tool_version.is_empty() {
                    for banner in [&b"-- MariaDB dump "[..], b"-- MySQL dump "] {
                        if head.starts_with(banner) {
                            let text = shown(&head[3..]);
                            self.tool_version = text.split(", for ").next().unwrap_or(&text).trim().to_string();
                        }
                    }
                }
            }
            Dialect::Sqlite => {
                if let Some(rest) = head.strip_prefix(b"INSERT INTO ") {
                    let name = unquote(&relation_name(rest));
                    let t = self.tables.get(&name, true);
                    t.rows = t.rows.map(|r| r + 1);
                    t.bytes += self.len + 1;
                } else if let Some(rest) = head.strip_prefix(b"CREATE TABLE ") {
                    let rest = rest.strip_prefix(b"IF NOT EXISTS ").unwrap_or(rest);
                    self.tables.get(&unquote(&relation_name(rest)), true);
                }
            }
        }
        self.head = head;
    }

    fn qualified(&self, name: String) -> String {
        match &self.database {
            Some(db) => format!("{db}.{name}"),
            None => name,
        }
    }

    fn problem(&self) -> Option<String> {
        let end = trim_end(self.tail.get());
        let last_line = end.rsplit(|&b| b == b'\n').next().unwrap_or(end);
        match self.dialect {
            Dialect::Mysql => {
                if let Some((i, t)) = &self.insert {
                    if !t.closed {
                        return Some(format!(
                            "the data of table {} ends inside an INSERT: the dump was cut short",
                            self.tables.list[*i].name
                        ));
                    }
                }
                if !last_line.starts_with(b"-- Dump completed") {
                    return Some(
                        "the dump does not end with mysqldump's \"-- Dump completed\" line: it was cut short or \
                         mysqldump failed"
                            .into(),
                    );
                }
            }
            Dialect::Sqlite => {
                if last_line.starts_with(b"ROLLBACK;") {
                    return Some("sqlite3 reported errors while dumping (the dump ends with ROLLBACK)".into());
                }
                if last_line != b"COMMIT;" {
                    return Some(
                        "the dump does not end with sqlite3's COMMIT; line: it was cut short or sqlite3 failed".into(),
                    );
                }
            }
        }
        None
    }
}

impl Scanner for SqlDump {
    fn feed(&mut self, data: &[u8]) {
        self.tail.feed(data);
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            self.segment(&data[start..nl]);
            self.end_line();
            start = nl + 1;
        }
        if start < data.len() {
            self.segment(&data[start..]);
        }
    }

    fn finish(self: Box<Self>) -> Verdict {
        let problem = self.problem();
        let format = match self.dialect {
            Dialect::Mysql => dump_format::MYSQLDUMP,
            Dialect::Sqlite => dump_format::SQLITE_DUMP,
        };
        let mut r = record(format, self.tool_version);
        r.tables = self.tables.list;
        Verdict { record: r, problem }
    }
}

/// A name without its identifier quotes: `` `a` `` → `a`, `"we ird"` → `we ird`.
fn unquote(name: &str) -> String {
    let t = name.trim();
    for q in ['`', '"'] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].replace(&format!("{q}{q}"), &q.to_string());
        }
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::inspect_all;
    use silo_format::manifest::dump_format;

    const MARIADB: &str = "/*M!999999\\- enable the sandbox mode */ \n\
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n\
CREATE TABLE `a` (\n  `id` int(11) NOT NULL\n);\n\
INSERT INTO `a` VALUES\n(1,'x (y), \\'z\\''),\n(2,'q;');\n\
CREATE TABLE `e` (\n  `x` int\n);\n\
INSERT INTO `b` VALUES (1,'('),(2,\"a\\\"b\"),(3,NULL);\n\
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed on 2026-12-02  4:15:28\n";

    #[test]
    fn mysqldump_rows_are_counted_in_both_insert_layouts() {
        for piece in [1, 2, 5, 13, 4096] {
            let v = inspect_all(MARIADB.as_bytes(), piece).unwrap();
            assert_eq!(v.problem, None, "pieces of {piece}");
            assert_eq!(v.record.format, dump_format::MYSQLDUMP);
            assert_eq!(v.record.tool_version, "MariaDB dump 10.19  Distrib 10.11.19-MariaDB");
            let t: Vec<_> = v.record.tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
            assert_eq!(t, [("a", Some(2)), ("e", Some(0)), ("b", Some(3))], "pieces of {piece}");
        }
    }

    #[test]
    fn rows_longer_than_a_line_head_are_counted_whole() {
        // One-line extended INSERTs (MySQL) and long rows: strings far past the 4 KiB a line head keeps.
        let long = "x".repeat(3 * super::HEAD);
        let dump = format!(
            "-- MySQL dump 10.13\nINSERT INTO `t` VALUES (1,'{long}'),(2,'a;b'),(3,'{long}\\'');\n\
             INSERT INTO `t` VALUES\n(4,'{long}'),\n(5,'(');\n-- Dump completed\n"
        );
        for piece in [1, 5, 4000, 5000, 1 << 20] {
            let v = inspect_all(dump.as_bytes(), piece).unwrap();
            assert_eq!(v.problem, None, "pieces of {piece}");
            assert_eq!(v.record.tables[0].rows, Some(5), "pieces of {piece}");
        }
    }

    #[test]
    fn complete_inserts_and_use_lines() {
        let dump = "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\nUSE `shop`;\n\
INSERT INTO `t` (`a`, `b`) VALUES (1,2),(3,4);\n-- Dump completed\n";
        let v = inspect_all(dump.as_bytes(), 3).unwrap();
        assert_eq!(v.problem, None);
        assert_eq!((v.record.tables[0].name.as_str(), v.record.tables[0].rows), ("shop.t", Some(2)));
    }

    #[test]
    fn every_mysqldump_truncation_is_refused() {
        let bytes = MARIADB.as_bytes();
        for cut in 2..bytes.len() - 1 {
            let v = inspect_all(&bytes[..cut], 7).unwrap();
            // A cut inside the last line's date still leaves "-- Dump completed": the dump is whole by then.
            if cut >= MARIADB.find("-- Dump completed").unwrap() + "-- Dump completed".len() {
                continue;
            }
            assert!(v.problem.is_some(), "cut at {cut} passed");
        }
        let cut = &MARIADB[..MARIADB.find("(2,'q;')").unwrap() + 4];
        assert!(inspect_all(cut.as_bytes(), 5).unwrap().problem.unwrap().contains("table a"));
    }

    #[test]
    fn sqlite_dumps_count_one_row_per_insert() {
        let dump = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(a,b);\n\
INSERT INTO t VALUES(1,replace('a\\nb','\\n',char(10)));\nINSERT INTO t VALUES(2,'it''s');\n\
CREATE TABLE IF NOT EXISTS \"we ird\"(x);\nCOMMIT;\n";
        let v = inspect_all(dump.as_bytes(), 4).unwrap();
        assert_eq!(v.problem, None);
        let t: Vec<_> = v.record.tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
        assert_eq!(t, [("t", Some(2)), ("we ird", Some(0))]);
        for cut in 2..dump.len() - 1 {
            assert!(inspect_all(&dump.as_bytes()[..cut], 3).unwrap().problem.is_some(), "cut at {cut}");
        }
        let failed = dump.replace("COMMIT;", "ROLLBACK; -- due to errors");
        assert!(inspect_all(failed.as_bytes(), 4).unwrap().problem.unwrap().contains("ROLLBACK"));
    }
}
