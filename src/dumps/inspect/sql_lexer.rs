//! mysqldump / mariadb-dump and `sqlite3 .dump` output, read statement by statement through the dialect's
//! lexer (sql.rs), so data, trigger and routine bodies are never taken for structure; an INSERT's rows are
//! the tuples after VALUES at depth 0.
//!
//! Complete when: no statement is left open, and mysqldump's last line is its `-- Dump completed` trailer
//! (written only after every table); sqlite3's last statement is `COMMIT;` (it writes `ROLLBACK; -- due to
//! errors` when reading the database failed).

use super::pg_plain::relation_name;
use super::sql::{starts_with_word, Dialect, End, Event, Lexer};
use super::{record, shown, trim_end, Scanner, Tables, Tail, Verdict};
use silo_format::manifest::dump_format;

pub(super) struct SqlDump {
    dialect: Dialect,
    lexer: Lexer,
    tail: Tail,
    found: Found,
    open_statement: Option<Vec<u8>>,
}

struct Found {
    dialect: Dialect,
    tables: Tables,
    tool_version: String,
    database: Option<String>,
}

impl SqlDump {
    fn new(dialect: Dialect) -> Self {
        SqlDump {
            dialect,
            lexer: Lexer::new(dialect),
            tail: Tail::new(1024),
            found: Found { dialect, tables: Tables::default(), tool_version: String::new(), database: None },
            open_statement: None,
        }
    }

    pub(super) fn mysql() -> Self {
        Self::new(Dialect::Mysql)
    }

    pub(super) fn sqlite() -> Self {
        Self::new(Dialect::Sqlite)
    }

    fn problem(&self) -> Option<String> {
        if let Some(head) = &self.open_statement {
            if let Some(table) = insert_table(self.dialect, head) {
                return Some(format!(
                    "the data of table {} ends inside an INSERT: the dump was cut short",
                    self.found.qualified(table)
                ));
            }
            return Some(format!("the dump ends inside a statement ({:.60}): it was cut short", shown(head)));
        }
        let end = trim_end(self.tail.get());
        let last_line = end.rsplit(|&b| b == b'\n').next().unwrap_or(end);
        match self.dialect {
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
            _ => {
                if !last_line.starts_with(b"-- Dump completed") {
                    return Some(
                        "the dump does not end with mysqldump's \"-- Dump completed\" line: it was cut short or \
                         mysqldump failed"
                            .into(),
                    );
                }
            }
        }
        None
    }
}

/// The table an INSERT (or MySQL REPLACE) statement writes, as written.
fn insert_table(dialect: Dialect, head: &[u8]) -> Option<String> {
    let mut rest = if starts_with_word(head, b"insert") {
        &head[7..]
    } else if dialect == Dialect::Mysql && starts_with_word(head, b"replace") {
        &head[8..]
    } else {
        return None;
    };
    rest = rest.trim_ascii_start();
    for word in [&b"low_priority"[..], b"delayed", b"high_priority", b"ignore", b"into"] {
        if starts_with_word(rest, word) {
            rest = rest[word.len()..].trim_ascii_start();
        }
    }
    Some(unquote(&relation_name(rest)))
}

impl Found {
    fn event(&mut self, e: Event) {
        match e {
            Event::Statement { head, len, rows } => {
                if let Some(name) = insert_table(self.dialect, head) {
                    let name = self.qualified(name);
                    let t = self.tables.get(&name, true);
                    t.rows = t.rows.map(|r| r + rows);
                    t.bytes += len + 1;
                } else if starts_with_word(head, b"create")
                    && head.len() > 13
                    && head[7..13].eq_ignore_ascii_case(b"table ")
                {
                    let mut rest = head[13..].trim_ascii_start();
                    if rest.len() > 14 && rest[..14].eq_ignore_ascii_case(b"if not exists ") {
                        rest = rest[14..].trim_ascii_start();
                    }
                    let name = self.qualified(unquote(&relation_name(rest)));
                    self.tables.get(&name, true);
                } else if self.dialect == Dialect::Mysql && starts_with_word(head, b"use") {
                    let t = shown(trim_end(&head[4..]));
                    self.database = Some(unquote(t.trim_end_matches(';')));
                }
            }
            Event::Line(head) => {
                if self.dialect == Dialect::Mysql && self.tool_version.is_empty() {
                    for banner in [&b"-- MariaDB dump "[..], b"-- MySQL dump "] {
                        if head.starts_with(banner) {
                            let text = shown(&head[3..]);
                            self.tool_version = text.split(", for ").next().unwrap_or(&text).trim().to_string();
                        }
                    }
                }
            }
            Event::CopyRows { .. } | Event::CopyEnd => {}
        }
    }

    fn qualified(&self, name: String) -> String {
        match &self.database {
            Some(db) => format!("{db}.{name}"),
            None => name,
        }
    }
}

impl Scanner for SqlDump {
    fn feed(&mut self, data: &[u8]) {
        self.tail.feed(data);
        let found = &mut self.found;
        self.lexer.feed(data, &mut |e| found.event(e));
    }

    fn finish(mut self: Box<Self>) -> Verdict {
        let found = &mut self.found;
        if let End::InStatement(head) = self.lexer.finish(&mut |e| found.event(e)) {
            self.open_statement = Some(head.to_vec());
        }
        let problem = self.problem();
        let format = match self.dialect {
            Dialect::Sqlite => dump_format::SQLITE_DUMP,
            _ => dump_format::MYSQLDUMP,
        };
        let mut r = record(format, self.found.tool_version);
        r.tables = self.found.tables.list;
        Verdict { record: r, problem }
    }
}

/// A name without its identifier quotes: `` `a` `` → `a`, `"we ird"` → `we ird`, `[x]` → `x`.
pub(super) fn unquote(name: &str) -> String {
    let t = name.trim();
    for q in ['`', '"'] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].replace(&format!("{q}{q}"), &q.to_string());
        }
    }
    if t.len() >= 2 && t.starts_with('[') && t.ends_with(']') {
        return t[1..t.len() - 1].to_string();
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
        let long = "x".repeat(3 * super::super::lines::HEAD);
        let dump = format!(
            "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\nINSERT INTO `t` VALUES (1,'{long}'),(2,'a;b'),(3,'{long}\\'');\n\
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
        // (Before its banner's version, a stream identifies no tool: stored unjudged.)
        for cut in MARIADB.find(" Distrib ").unwrap() + 9..bytes.len() - 1 {
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
        for cut in 44..dump.len() - 1 {
            assert!(inspect_all(&dump.as_bytes()[..cut], 3).unwrap().problem.is_some(), "cut at {cut}");
        }
        let failed = dump.replace("COMMIT;", "ROLLBACK; -- due to errors");
        assert!(inspect_all(failed.as_bytes(), 4).unwrap().problem.unwrap().contains("ROLLBACK"));
    }
}
