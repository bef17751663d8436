//! One table out of a plain SQL dump (`snapshot restore --table`): its DDL and data as a loadable SQL stream,
//! the rest of the dump left out. Pure: a line filter fed the restored stream in order; memory holds the
//! schema part of a PostgreSQL dump (small), never the data.
//!
//! Both dump tools mark each object with a comment block (`--` / `-- TITLE` / `--`):
//! - pg_dump: `-- Name: accounts; Type: TABLE; Schema: public; Owner: postgres`, `-- Data for Name: accounts;
//!   Type: TABLE DATA; ...`. Kept: the table, its data, the sequences it owns (and their values), its column
//!   defaults, constraints, indexes and triggers. Left out: foreign keys (they name other tables, which an
//!   empty database does not have). The header (SET statements, `\restrict`) and the trailer (`\unrestrict`)
//!   are kept.
//! - mysqldump / mariadb-dump: `-- Table structure for table `t``, `-- Dumping data for table `t``: both kept
//!   (with the triggers that follow the data); the header and the trailer that restores the session are kept.

/// The dumps `--table` understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    /// Recognises a dump by its first lines (`None`: not a plain pg_dump or mysqldump).
    pub fn detect(head: &[u8]) -> Option<Dialect> {
        let text = String::from_utf8_lossy(&head[..head.len().min(4096)]);
        let mut lines = text.lines().take(6);
        if lines.any(|l| l == "-- PostgreSQL database dump") {
            return Some(Dialect::Postgres);
        }
        let mut lines = text.lines().take(6);
        lines.any(|l| l.starts_with("-- MySQL dump") || l.starts_with("-- MariaDB dump")).then_some(Dialect::MySql)
    }
}

/// What a section is, from its title.
#[derive(Clone, Debug, PartialEq)]
struct Title {
    name: String,
    kind: String,
    schema: String,
}

fn pg_title(line: &str) -> Option<Title> {
    let rest = line.strip_prefix("-- Name: ").or_else(|| line.strip_prefix("-- Data for Name: "))?;
    let mut fields = rest.split("; ");
    let name = fields.next()?.to_string();
    let kind = fields.next()?.strip_prefix("Type: ")?.to_string();
    let schema = fields.next()?.strip_prefix("Schema: ")?.to_string();
    Some(Title { name, kind, schema })
}

fn my_table(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("-- Table structure for table `")
        .or_else(|| line.strip_prefix("-- Dumping data for table `"))?;
    rest.strip_suffix('`')
}

/// A section being read: its header block and body so far.
struct Section {
    title: Option<Title>,
    lines: Vec<Vec<u8>>,
}

/// Decides which sections to keep and writes them out.
pub struct TableFilter {
    dialect: Dialect,
    /// `schema.table` or `table` (any schema).
    table: String,
    /// The last lines read that may open a header block (`--`, then `-- ...`).
    held: Vec<Vec<u8>>,
    /// PostgreSQL: the schema part before the first data section, decided as a whole when it ends.
    pre_data: Vec<Section>,
    in_pre_data: bool,
    /// The section being read: kept (streamed out), dropped, or buffered until it ends (post-data DDL).
    current: Option<Section>,
    mode: Mode,
    /// Sequences the table owns (`SEQUENCE OWNED BY`).
    owned: Vec<String>,
    /// Everything from the trailer on is kept.
    trailer: bool,
    /// Inside a COPY block's rows (a row may look like a comment block).
    in_copy: bool,
    /// MySQL: the header, held until the table's first section (nothing is written for a missing table).
    header: Vec<Vec<u8>>,
    found: bool,
    tables: Vec<String>,
    out: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Keep,
    Drop,
    Buffer,
}

impl TableFilter {
    pub fn new(dialect: Dialect, table: &str) -> TableFilter {
        TableFilter {
            dialect,
            table: table.to_string(),
            held: Vec::new(),
            pre_data: vec![Section { title: None, lines: Vec::new() }],
            in_pre_data: true,
            current: None,
            mode: Mode::Buffer,
            owned: Vec::new(),
            trailer: false,
            in_copy: false,
            header: Vec::new(),
            found: false,
            tables: Vec::new(),
            out: Vec::new(),
        }
    }

    fn matches(&self, schema: &str, name: &str) -> bool {
        match self.table.split_once('.') {
            Some((s, t)) => s == schema && t == name,
            None => self.table == name,
        }
    }

    /// Feeds one line (without its newline); returns what is ready to be written. Lines pass through byte
    /// for byte (a dump need not be UTF-8); only comment blocks and DDL are read as text.
    pub fn line(&mut self, line: &[u8]) -> Vec<u8> {
        if self.trailer {
            if self.found {
                self.emit(line);
            }
            return std::mem::take(&mut self.out);
        }
        if self.in_copy {
            self.in_copy = line != b"\\.";
            self.body(line);
            return std::mem::take(&mut self.out);
        }
        if self.dialect == Dialect::Postgres && line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;") {
            self.in_copy = true;
        }
        match (self.held.len(), line) {
            (0, b"--") => self.held.push(line.to_vec()),
            (1, l) if l.starts_with(b"-- ") => self.held.push(line.to_vec()),
            (2, b"--") => {
                let title = String::from_utf8_lossy(&self.held[1]).into_owned();
                self.held.clear();
                self.open_section(&title);
            }
            _ => {
                for held in std::mem::take(&mut self.held) {
                    self.body(&held);
                }
                if line == b"--" {
                    self.held.push(line.to_vec());
                } else {
                    self.body(line);
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    /// Ends the stream: what is left to write, or why there is nothing (the table is not in the dump).
    pub fn finish(mut self) -> Result<Vec<u8>, String> {
        for held in std::mem::take(&mut self.held) {
            self.body(&held);
        }
        self.close_section();
        if self.in_pre_data {
            self.decide_pre_data();
        }
        if !self.found {
            self.tables.sort();
            self.tables.dedup();
            return Err(format!("table {} is not in this dump; it has: {}", self.table, self.tables.join(", ")));
        }
        Ok(self.out)
    }

    fn emit(&mut self, line: &[u8]) {
        self.out.extend_from_slice(line);
        self.out.push(b'\n');
    }

    fn header_block(title: &str) -> [Vec<u8>; 3] {
        [b"--".to_vec(), title.as_bytes().to_vec(), b"--".to_vec()]
    }

    fn open_section(&mut self, title_line: &str) {
        self.close_section();
        match self.dialect {
            Dialect::Postgres => self.open_pg(title_line),
            Dialect::MySql => self.open_my(title_line),
        }
    }

    fn open_pg(&mut self, title_line: &str) {
        let title = pg_title(title_line);
        let block = Self::header_block(title_line);
        if title_line == "-- PostgreSQL database dump complete" {
            if self.in_pre_data {
                self.decide_pre_data();
            }
            self.trailer = true;
            if self.found {
                block.iter().for_each(|l| self.emit(l));
            }
            return;
        }
        if let Some(t) = title.as_ref().filter(|t| t.kind == "TABLE") {
            self.tables.push(format!("{}.{}", t.schema, t.name));
        }
        let is_data = title.as_ref().is_some_and(|t| t.kind == "TABLE DATA" || t.kind == "SEQUENCE SET");
        if self.in_pre_data && is_data {
            self.decide_pre_data();
        }
        let section = Section { title: title.clone(), lines: block.to_vec() };
        if self.in_pre_data {
            self.pre_data.push(section);
            return;
        }
        let keep_data = title.as_ref().is_some_and(|t| t.kind == "TABLE DATA" && self.matches(&t.schema, &t.name));
        if keep_data {
            block.iter().for_each(|l| self.emit(l));
            self.mode = Mode::Keep;
            self.current = None;
        } else if title.as_ref().is_some_and(|t| t.kind == "TABLE DATA") {
            self.mode = Mode::Drop;
            self.current = None;
        } else {
            self.mode = Mode::Buffer;
            self.current = Some(section);
        }
    }

    fn open_my(&mut self, title_line: &str) {
        let table = my_table(title_line).map(str::to_string);
        if let Some(t) = &table {
            self.tables.push(t.clone());
        }
        let ours = table.as_deref().is_some_and(|t| self.matches("", t));
        if ours && !self.found {
            self.found = true;
            for l in std::mem::take(&mut self.header) {
                self.emit(&l);
            }
        }
        self.in_pre_data = false;
        if ours {
            Self::header_block(title_line).iter().for_each(|l| self.emit(l));
            self.mode = Mode::Keep;
        } else {
            self.mode = Mode::Drop;
        }
    }

    fn body(&mut self, line: &[u8]) {
        if self.dialect == Dialect::MySql
            && line.starts_with(b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;")
            && self.found
        {
            self.trailer = true;
            self.emit(line);
            return;
        }
        if self.dialect == Dialect::MySql && self.in_pre_data {
            self.header.push(line.to_vec());
            return;
        }
        if self.in_pre_data {
            if let Some(s) = self.pre_data.last_mut() {
                s.lines.push(line.to_vec());
            }
            return;
        }
        match self.mode {
            Mode::Keep => self.emit(line),
            Mode::Drop => {}
            Mode::Buffer => {
                if let Some(s) = self.current.as_mut() {
                    s.lines.push(line.to_vec());
                }
            }
        }
    }

    /// A buffered post-data section is complete: keep it if it belongs to the table.
    fn close_section(&mut self) {
        let Some(section) = self.current.take() else { return };
        if self.keeps_post_data(&section) {
            for l in &section.lines {
                self.emit(l);
            }
        }
    }

    fn keeps_post_data(&self, s: &Section) -> bool {
        let Some(t) = &s.title else { return false };
        let qualified = |name: &str| match self.table.split_once('.') {
            Some(_) => format!("{}.{name}", t.schema) == self.table,
            None => name == self.table,
        };
        let first = t.name.split(' ').next().unwrap_or_default();
        match t.kind.as_str() {
            "SEQUENCE SET" => self.owned.contains(&format!("{}.{}", t.schema, t.name)),
            "CONSTRAINT" | "TRIGGER" => qualified(first),
            "INDEX" => {
                let body = String::from_utf8_lossy(&s.lines.join(&b'\n')).into_owned();
                let on = |prefix: &str| {
                    body.match_indices(prefix).any(|(i, _)| {
                        let rest = &body[i + prefix.len()..];
                        let target = rest.split([' ', '(']).next().unwrap_or_default();
                        target.split_once('.').is_some_and(|(schema, name)| self.matches(schema, name))
                    })
                };
                on(" ON ONLY ") || on(" ON ")
            }
            _ => false,
        }
    }

    /// The schema part is complete: the table, its sequences and defaults are kept, the header always.
    fn decide_pre_data(&mut self) {
        self.in_pre_data = false;
        let sections = std::mem::take(&mut self.pre_data);
        for s in &sections {
            if let Some(t) = s.title.as_ref().filter(|t| t.kind == "SEQUENCE OWNED BY") {
                let ours = s.lines.iter().map(|l| String::from_utf8_lossy(l)).any(|l| {
                    l.split(" OWNED BY ").nth(1).and_then(|col| col.rsplit_once('.')).is_some_and(|(table, _)| {
                        table.split_once('.').is_some_and(|(schema, name)| self.matches(schema, name))
                    })
                });
                if ours {
                    self.owned.push(format!("{}.{}", t.schema, t.name));
                }
            }
        }
        self.found = sections
            .iter()
            .filter_map(|s| s.title.as_ref())
            .any(|t| t.kind == "TABLE" && self.matches(&t.schema, &t.name));
        if !self.found {
            return;
        }
        for s in &sections {
            let keep = match &s.title {
                None => true, // the header: SET statements, \restrict
                Some(t) => match t.kind.as_str() {
                    "TABLE" => self.matches(&t.schema, &t.name),
                    "SEQUENCE" | "SEQUENCE OWNED BY" => self.owned.contains(&format!("{}.{}", t.schema, t.name)),
                    "DEFAULT" => t.name.split(' ').next().is_some_and(|n| self.matches(&t.schema, n)),
                    _ => false,
                },
            };
            if keep {
                for l in &s.lines {
                    self.emit(l);
                }
            }
        }
    }
}

/// A writer that passes on only one table of the dump written into it (`TableFilter`), recognising the
/// dump from its first bytes. `finish` must be called: it writes the rest and says whether the table was
/// there.
pub struct TableWriter<W: std::io::Write> {
    inner: W,
    table: String,
    filter: Option<TableFilter>,
    /// Bytes before the dialect is known, then the current incomplete line.
    pending: Vec<u8>,
}

impl<W: std::io::Write> TableWriter<W> {
    pub fn new(inner: W, table: &str) -> Self {
        TableWriter { inner, table: table.to_string(), filter: None, pending: Vec::new() }
    }

    fn lines(&mut self) -> std::io::Result<()> {
        let Some(filter) = self.filter.as_mut() else { return Ok(()) };
        let mut start = 0;
        let mut out = Vec::new();
        while let Some(n) = self.pending[start..].iter().position(|b| *b == b'\n') {
            out.extend(filter.line(&self.pending[start..start + n]));
            start += n + 1;
        }
        self.pending.drain(..start);
        self.inner.write_all(&out)
    }

    /// Writes what is left; an error when the table is not in the dump (or the stream is no known dump).
    pub fn finish(mut self) -> Result<W, String> {
        if self.filter.is_none() {
            self.recognise()?;
        }
        self.lines().map_err(|e| e.to_string())?;
        let mut filter = self.filter.take().ok_or("no dump")?;
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            out.extend(filter.line(&std::mem::take(&mut self.pending)));
        }
        out.extend(filter.finish()?);
        self.inner.write_all(&out).and_then(|()| self.inner.flush()).map_err(|e| e.to_string())?;
        Ok(self.inner)
    }

    fn recognise(&mut self) -> Result<(), String> {
        let dialect = Dialect::detect(&self.pending).ok_or_else(|| {
            "--table needs a plain SQL dump (pg_dump's default format, or mysqldump / mariadb-dump); this stream \
             is not one: restore it whole"
                .to_string()
        })?;
        self.filter = Some(TableFilter::new(dialect, &self.table));
        Ok(())
    }
}

impl<W: std::io::Write> std::io::Write for TableWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.filter.is_none() {
            if self.pending.len() < 4096 {
                return Ok(buf.len());
            }
            self.recognise().map_err(std::io::Error::other)?;
        }
        self.lines()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(dump: &str, table: &str) -> Result<String, String> {
        let dialect = Dialect::detect(dump.as_bytes()).expect("a known dump");
        let mut f = TableFilter::new(dialect, table);
        let mut out = Vec::new();
        for line in dump.lines() {
            out.extend(f.line(line.as_bytes()));
        }
        out.extend(f.finish()?);
        Ok(String::from_utf8(out).unwrap())
    }

    const PG: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict k\n\nSET x = 0;\n\n\
--\n-- Name: a; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE public.a (id integer, v text);\n\n\
--\n-- Name: a_id_seq; Type: SEQUENCE; Schema: public; Owner: postgres\n--\n\nCREATE SEQUENCE public.a_id_seq;\n\n\
--\n-- Name: a_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: postgres\n--\n\nALTER SEQUENCE public.a_id_seq OWNED BY public.a.id;\n\n\
--\n-- Name: b; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE public.b (id integer, a_id integer);\n\n\
--\n-- Name: a id; Type: DEFAULT; Schema: public; Owner: postgres\n--\n\nALTER TABLE ONLY public.a ALTER COLUMN id SET DEFAULT nextval('public.a_id_seq'::regclass);\n\n\
--\n-- Data for Name: a; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\nCOPY public.a (id, v) FROM stdin;\n1\t-- not a header\n--\n-- Name: b; Type: TABLE; Schema: public; Owner: x\n--\n\\.\n\n\n\
--\n-- Data for Name: b; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\nCOPY public.b (id, a_id) FROM stdin;\n1\t1\n\\.\n\n\n\
--\n-- Name: a_id_seq; Type: SEQUENCE SET; Schema: public; Owner: postgres\n--\n\nSELECT pg_catalog.setval('public.a_id_seq', 1, true);\n\n\
--\n-- Name: a a_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres\n--\n\nALTER TABLE ONLY public.a ADD CONSTRAINT a_pkey PRIMARY KEY (id);\n\n\
--\n-- Name: b_w; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE INDEX b_w ON public.b USING btree (a_id);\n\n\
--\n-- Name: a_v; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE INDEX a_v ON public.a USING btree (v);\n\n\
--\n-- Name: b b_a_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres\n--\n\nALTER TABLE ONLY public.b ADD CONSTRAINT b_a_id_fkey FOREIGN KEY (a_id) REFERENCES public.a(id);\n\n\
--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict k\n\n";

    #[test]
    fn postgres_keeps_the_table_its_sequence_default_constraints_and_indexes() {
        let a = filter(PG, "a").unwrap();
        for want in [
            "\\restrict k",
            "SET x = 0;",
            "CREATE TABLE public.a",
            "CREATE SEQUENCE public.a_id_seq",
            "OWNED BY public.a.id",
            "SET DEFAULT nextval",
            "COPY public.a (id, v) FROM stdin;\n1\t-- not a header\n--\n-- Name: b; Type: TABLE; Schema: public; Owner: x\n--\n\\.",
            "setval('public.a_id_seq'",
            "a_pkey PRIMARY KEY",
            "CREATE INDEX a_v ON public.a",
            "\\unrestrict k",
        ] {
            assert!(a.contains(want), "{want:?} in\n{a}");
        }
        for not in ["public.b", "b_w", "b_a_id_fkey"] {
            assert!(!a.contains(not), "{not:?} must be left out:\n{a}");
        }
        let b = filter(PG, "public.b").unwrap();
        assert!(b.contains("CREATE TABLE public.b") && b.contains("COPY public.b") && b.contains("CREATE INDEX b_w"));
        assert!(!b.contains("FOREIGN KEY") && !b.contains("a_id_seq") && !b.contains("COPY public.a"), "{b}");
    }

    #[test]
    fn a_missing_table_writes_nothing_and_names_the_tables() {
        let mut f = TableFilter::new(Dialect::Postgres, "c");
        let written: Vec<u8> = PG.lines().flat_map(|l| f.line(l.as_bytes())).collect();
        assert!(written.is_empty(), "{}", String::from_utf8_lossy(&written));
        let e = filter(PG, "c").unwrap_err();
        assert!(e.contains("table c is not in this dump") && e.contains("public.a, public.b"), "{e}");
        assert!(filter(PG, "other.a").is_err(), "schema-qualified names match their schema only");
    }

    const MY: &str = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\n--\n-- Host: h    Database: d\n\
-- ------------------------------------------------------\n\n/*!40101 SET NAMES utf8mb4 */;\n/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n\n\
--\n-- Table structure for table `a`\n--\n\nDROP TABLE IF EXISTS `a`;\nCREATE TABLE `a` (`id` int);\n\n\
--\n-- Dumping data for table `a`\n--\n\nLOCK TABLES `a` WRITE;\nINSERT INTO `a` VALUES\n(1);\nUNLOCK TABLES;\n\n\
--\n-- Table structure for table `b`\n--\n\nCREATE TABLE `b` (`id` int);\n\n\
--\n-- Dumping data for table `b`\n--\n\nINSERT INTO `b` VALUES\n(2);\n\n\
--\n-- Dumping routines for database 'd'\n--\n/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n\n/*!40101 SET NAMES x */;\n\n-- Dump completed on 2026-12-02\n";

    #[test]
    fn mysql_keeps_the_table_structure_data_header_and_trailer() {
        let b = filter(MY, "b").unwrap();
        for want in [
            "sandbox mode",
            "SET NAMES utf8mb4",
            "CREATE TABLE `b`",
            "INSERT INTO `b` VALUES\n(2);",
            "SET TIME_ZONE=@OLD_TIME_ZONE",
            "Dump completed",
        ] {
            assert!(b.contains(want), "{want:?} in\n{b}");
        }
        assert!(!b.contains("`a`"), "{b}");
        assert!(filter(MY, "c").unwrap_err().contains("it has: a, b"));
    }

    #[test]
    fn the_writer_gives_the_same_as_the_filter_whatever_the_write_sizes() {
        use std::io::Write;
        for size in [1, 7, 100, 5000] {
            let mut w = TableWriter::new(Vec::new(), "a");
            for piece in PG.as_bytes().chunks(size) {
                w.write_all(piece).unwrap();
            }
            assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), filter(PG, "a").unwrap(), "writes of {size}");
        }
        let mut w = TableWriter::new(Vec::new(), "a");
        w.write_all(b"SQLite format 3\0").unwrap();
        assert!(w.finish().unwrap_err().contains("needs a plain SQL dump"));
    }

    #[test]
    fn only_plain_dumps_are_recognised() {
        assert_eq!(Dialect::detect(PG.as_bytes()), Some(Dialect::Postgres));
        assert_eq!(Dialect::detect(MY.as_bytes()), Some(Dialect::MySql));
        assert_eq!(Dialect::detect(b"PGDMP\x01\x0e"), None);
        assert_eq!(Dialect::detect(b"SQLite format 3\0"), None);
    }
}
