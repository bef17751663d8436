//! Plain-SQL `pg_dump` and `pg_dumpall` output: complete when it ends with the tool's completion trailer
//! (and, since PostgreSQL 17.6/16.10/15.14/14.19/13.22, the `\unrestrict` line whose key matches the opening
//! `\restrict`), no COPY block is left open, and — for pg_dumpall — every database dump that opened also
//! completed. Tables are the COPY blocks (rows = data lines) or, for `--inserts` dumps, INSERT lines.

use super::sql::{starts_with_word, Dialect, End, Event, Lexer};
use super::{record, shown, trim_end, Scanner, Tables, Tail, Verdict};
use silo_format::manifest::dump_format;

const DUMP_OPENING: &[u8] = b"-- PostgreSQL database dump";
const DUMP_COMPLETE: &[u8] = b"-- PostgreSQL database dump complete";
const CLUSTER_COMPLETE: &[u8] = b"-- PostgreSQL database cluster dump complete";

pub(super) struct PgPlain {
    lexer: Lexer,
    tail: Tail,
    found: Found,
    /// Where the stream ended, set by `finish`.
    open_statement: Option<String>,
    in_copy: bool,
}

/// What the lexer's events told.
struct Found {
    all: bool,
    tables: Tables,
    /// The table whose COPY data is being read.
    copy: Option<usize>,
    tool_version: String,
    /// The key of a `\restrict` line not yet closed by its `\unrestrict` (psql refuses to run the rest).
    restricted: Option<Vec<u8>>,
    /// A `\unrestrict` whose key was not the open one.
    wrong_key: bool,
    /// pg_dumpall: the database the following statements run in (`\connect`).
    database: Option<String>,
    opened: u64,
    completed: u64,
    /// The table the last INSERT named, as written, and its index.
    last_insert: Option<(Vec<u8>, usize)>,
}

impl PgPlain {
    pub(super) fn new(all: bool) -> Self {
        PgPlain {
            lexer: Lexer::new(Dialect::Postgres),
            tail: Tail::new(1024),
            found: Found {
                all,
                tables: Tables::default(),
                copy: None,
                tool_version: String::new(),
                restricted: None,
                wrong_key: false,
                database: None,
                opened: 0,
                completed: 0,
                last_insert: None,
            },
            open_statement: None,
            in_copy: false,
        }
    }

    fn problem(&self) -> Option<String> {
        let f = &self.found;
        let what = if f.all { "pg_dumpall" } else { "pg_dump" };
        if let (true, Some(i)) = (self.in_copy, f.copy) {
            return Some(format!(
                "the data of table {} ends without its \\. line: the dump was cut short",
                f.tables.list[i].name
            ));
        }
        if let Some(head) = &self.open_statement {
            return Some(format!("the dump ends inside a statement ({head:.60}): it was cut short or {what} failed"));
        }
        if f.restricted.is_some() || f.wrong_key {
            return Some(format!(
                "the dump does not close its \\restrict line with the matching \\unrestrict: it was cut short or \
                 {what} failed"
            ));
        }
        let mut end = trim_end(self.tail.get());
        // pg_dump ends with its \unrestrict line, after the trailer.
        if let Some(nl) = end.iter().rposition(|&b| b == b'\n') {
            if end[nl + 1..].starts_with(b"\\unrestrict ") {
                end = trim_end(&end[..nl]);
            }
        }
        let trailer = if f.all { CLUSTER_COMPLETE } else { DUMP_COMPLETE };
        let mut expected = trailer.to_vec();
        expected.extend_from_slice(b"\n--");
        if !end.ends_with(&expected) {
            return Some(format!(
                "the dump does not end with {what}'s \"{}\" trailer: it was cut short or {what} failed",
                shown(&trailer[3..])
            ));
        }
        if f.all && f.completed < f.opened {
            return Some(format!(
                "{} of the {} database dumps inside this pg_dumpall output did not complete",
                f.opened - f.completed,
                f.opened
            ));
        }
        None
    }
}

impl Found {
    fn event(&mut self, e: Event) {
        match e {
            Event::CopyRows { rows, bytes } => {
                if let Some(i) = self.copy {
                    let t = &mut self.tables.list[i];
                    t.rows = t.rows.map(|r| r + rows);
                    t.bytes += bytes;
                }
            }
            Event::CopyEnd => self.copy = None,
            Event::Statement { head, len, rows } => {
                if starts_with_word(head, b"copy") {
                    let name = self.qualified(relation_name(&head[5..]));
                    self.tables.get(&name, true);
                    self.copy = self.tables.by_name.get(&name).copied();
                } else if head.starts_with(b"INSERT INTO ") {
                    // Consecutive INSERTs name the same table: found again by its bytes, without a lookup.
                    let i = match &self.last_insert {
                        Some((raw, i))
                            if head[12..].starts_with(raw)
                                && head.get(12 + raw.len()).is_some_and(|&b| b == b' ' || b == b'(') =>
                        {
                            *i
                        }
                        _ => {
                            let raw = relation_name(&head[12..]);
                            let name = self.qualified(raw.clone());
                            self.tables.get(&name, true);
                            let i = self.tables.by_name[&name];
                            self.last_insert = Some((raw.into_bytes(), i));
                            i
                        }
                    };
                    let t = &mut self.tables.list[i];
                    t.rows = t.rows.map(|r| r + rows);
                    t.bytes += len + 1;
                }
            }
            Event::Line(head) => self.line(head),
        }
    }

    fn line(&mut self, head: &[u8]) {
        if head == DUMP_OPENING {
            self.opened += 1;
        } else if head == DUMP_COMPLETE {
            self.completed += 1;
        } else if let Some(rest) = head
            .strip_prefix(b"-- Dumped by pg_dump version ")
            .or(head.strip_prefix(b"-- Dumped by pg_dumpall version "))
        {
            if self.tool_version.is_empty() {
                self.tool_version = shown(rest);
            }
        } else if let Some(key) = head.strip_prefix(b"\\restrict ") {
            self.restricted = Some(key.to_vec());
        } else if let Some(key) = head.strip_prefix(b"\\unrestrict ") {
            if self.restricted.as_deref() == Some(key) {
                self.restricted = None;
            } else {
                self.wrong_key = true;
            }
        } else if let Some(target) = head.strip_prefix(b"\\connect ") {
            if self.all {
                self.database = Some(connect_target(target));
                self.last_insert = None;
            }
        }
    }

    fn qualified(&self, name: String) -> String {
        match &self.database {
            Some(db) if self.all => format!("{db}.{name}"),
            _ => name,
        }
    }
}

impl Scanner for PgPlain {
    fn feed(&mut self, data: &[u8]) {
        self.tail.feed(data);
        let found = &mut self.found;
        self.lexer.feed(data, &mut |e| found.event(e));
    }

    fn finish(mut self: Box<Self>) -> Verdict {
        let found = &mut self.found;
        match self.lexer.finish(&mut |e| found.event(e)) {
            End::Clean => {}
            End::InCopy => self.in_copy = true,
            End::InStatement(head) => self.open_statement = Some(shown(head)),
        }
        let problem = self.problem();
        let f = self.found;
        let format = if f.all { dump_format::PG_DUMPALL } else { dump_format::PG_DUMP_PLAIN };
        let mut r = record(format, f.tool_version);
        r.entries = if f.all { f.opened } else { 0 };
        r.tables = f.tables.list;
        Verdict { record: r, problem }
    }
}

/// The relation a `COPY`/`INSERT INTO` statement names: everything up to the first blank or `(` outside
/// identifier quotes (`"`, `` ` ``, `[...]`), as the dump writes it (`public.orders`, `public."Order Lines"`,
/// `` `my table` ``).
pub(super) fn relation_name(rest: &[u8]) -> String {
    let mut quote: Option<u8> = None;
    let end = rest
        .iter()
        .position(|&b| {
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None => match b {
                    b'"' | b'`' => quote = Some(b),
                    b'[' => quote = Some(b']'),
                    _ => return b.is_ascii_whitespace() || b == b'(' || b == b';',
                },
            }
            false
        })
        .unwrap_or(rest.len());
    shown(&rest[..end])
}

/// The database a `\connect` line switches to: `\connect shop`, `\connect "my db"`, or
/// `\connect -reuse-previous=on "dbname='shop'"`.
fn connect_target(target: &[u8]) -> String {
    let text = shown(target);
    if let Some(start) = text.find("dbname='") {
        let rest = &text[start + 8..];
        return rest.split('\'').next().unwrap_or(rest).to_string();
    }
    text.trim().trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::super::inspect_all;
    use silo_format::manifest::dump_format;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict K1\n\n\
-- Dumped from database version 15.20\n-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)\n\n\
CREATE TABLE public.t (a integer);\n\
COPY public.t (a) FROM stdin;\n1\n2\n3\n\\.\n\n\
COPY public.\"we ird\" (x) FROM stdin;\n\\.\n\n\
--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict K1\n\n";

    #[test]
    fn a_whole_dump_passes_with_its_tables() {
        for piece in [1, 5, 64, 4096] {
            let v = inspect_all(DUMP.as_bytes(), piece).unwrap();
            assert_eq!(v.problem, None, "pieces of {piece}");
            assert_eq!(v.record.format, dump_format::PG_DUMP_PLAIN);
            assert_eq!(v.record.tool_version, "15.20 (Debian 15.20-0+deb12u1)");
            let t: Vec<_> = v.record.tables.iter().map(|t| (t.name.as_str(), t.rows, t.bytes)).collect();
            assert_eq!(t, [("public.t", Some(3), 6), ("public.\"we ird\"", Some(0), 0)]);
        }
    }

    #[test]
    fn copy_rows_are_counted_across_every_piece_boundary() {
        // Rows that begin like the end line (`\.x`, `\\.`), empty rows, and the end line at every offset
        // of a piece: the bulk count must agree with one row per line.
        let dump = DUMP.replace("1\n2\n3\n", "\\.x\n\n\\\\.\nlong row\tvalue\n");
        for piece in 1..=40 {
            let v = inspect_all(dump.as_bytes(), piece).unwrap();
            assert_eq!(v.problem, None, "pieces of {piece}");
            let t = &v.record.tables[0];
            assert_eq!((t.rows, t.bytes), (Some(4), 4 + 1 + 4 + 15), "pieces of {piece}");
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = DUMP.as_bytes();
        // Dropping only the final newlines leaves a complete dump.
        let whole = bytes.len() - "\n\n".len();
        // (Shorter than `--\n-- PostgreSQL`, a stream identifies no tool: stored unjudged.)
        for cut in 16..whole {
            let v = inspect_all(&bytes[..cut], 7).unwrap();
            assert!(v.problem.is_some(), "cut at {cut} of {} passed", bytes.len());
        }
    }

    #[test]
    fn a_dump_without_restrict_lines_needs_only_the_trailer() {
        let old = DUMP.replace("\\restrict K1\n", "").replace("\\unrestrict K1\n", "");
        assert_eq!(inspect_all(old.as_bytes(), 9).unwrap().problem, None);
        let wrong_key = DUMP.replace("\\unrestrict K1", "\\unrestrict K2");
        assert!(inspect_all(wrong_key.as_bytes(), 9).unwrap().problem.unwrap().contains("unrestrict"));
    }

    #[test]
    fn an_open_copy_block_is_named() {
        let cut = &DUMP[..DUMP.find("3\n").unwrap()];
        let p = inspect_all(cut.as_bytes(), 3).unwrap().problem.unwrap();
        assert!(p.contains("public.t"), "{p}");
    }

    #[test]
    fn pg_dumpall_needs_every_database_dump_complete() {
        let inner = DUMP.replace("K1", "K2");
        let all = format!(
            "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict K0\n\nCREATE ROLE app;\n\n\\unrestrict K0\n\n\
             \\connect shop\n\n{inner}\n--\n-- PostgreSQL database cluster dump complete\n--\n\n"
        );
        let v = inspect_all(all.as_bytes(), 11).unwrap();
        assert_eq!(v.problem, None);
        assert_eq!((v.record.format, v.record.entries), (dump_format::PG_DUMPALL, 1));
        assert_eq!(v.record.tables[0].name, "shop.public.t");
        let broken = all.replace("-- PostgreSQL database dump complete\n", "");
        assert!(inspect_all(broken.as_bytes(), 11).unwrap().problem.unwrap().contains("did not complete"));
    }
}
