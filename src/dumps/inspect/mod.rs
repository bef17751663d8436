//! Dump validation while a stream is stored (pure; issue 17 part 1, design.md "Dump validation"): the first
//! bytes say which tool wrote the stream, and a scanner for that format follows every byte once, on the
//! thread beside the stream hasher (no second pass), to learn whether the dump is complete — a plain SQL dump's
//! completion trailer, every data block a custom archive's table of contents lists, an SQLite file's page
//! count, an RDB's CRC64 — and what it holds (tool version, tables with rows and bytes).
//!
//! Upholds: an unrecognised stream is never an error (`finish` gives `None`); a recognised one that is not
//! whole gives a problem naming what is missing, which create turns into a refusal before commit (I2: a
//! refused stream leaves no snapshot). A stream that ends inside a signature is treated as that format cut
//! short, so a dump cut in its first bytes is not waved through as "unknown".

mod compressed;
mod ldif;
mod lines;
mod pg_archive;
mod pg_plain;
mod rdb;
mod sql;
mod sql_lexer;
mod sqlite_file;

use silo_format::manifest::{dump_format, DumpRecord, TableStat};
pub use sql::{Dialect, SwitchWatch};

/// What inspection found in a recognised stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The record for the manifest (`invalid` is None here; create fills it in when it commits anyway).
    pub record: DumpRecord,
    /// Why the stream is not a complete dump of its format; None when every check passed.
    pub problem: Option<String>,
}

impl Verdict {
    pub fn format_name(&self) -> &'static str {
        dump_format::name(self.record.format)
    }
}

/// Bytes looked at before deciding the format (a tar header's `ustar` magic sits at offset 257).
const SNIFF: usize = 512;

/// Formats with a fixed opening, for recognising a stream cut short inside it: the opening, and how many of
/// its first bytes identify the tool (a shorter stream could be anything: `--`, `RE`). Openings no prefix of
/// which identifies a tool (mysqldump's banner needs its version, an RDB its first opcode) are not listed.
const SIGNATURES: &[(&[u8], usize, u8)] = &[
    (b"--\n-- PostgreSQL database dump\n--\n", 16, dump_format::PG_DUMP_PLAIN),
    (b"--\n-- PostgreSQL database cluster dump\n--\n", 16, dump_format::PG_DUMPALL),
    (b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n", usize::MAX, dump_format::SQLITE_DUMP),
    (b"SQLite format 3\0", 13, dump_format::SQLITE_FILE),
    (b"PGDMP", 5, dump_format::PG_DUMP_CUSTOM),
    (b"toc.dat\0", 8, dump_format::PG_DUMP_TAR),
];

/// Openings of dumps: a stream that begins with one, or is shorter and begins like one (`--`, `RE`), but
/// identifies no tool is stored unjudged with a note. Other streams (a README, a script) get no note.
const LOOK_ALIKES: &[&[u8]] = &[
    b"--\n-- PostgreSQL database",
    b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n",
    b"SQLite format 3\0",
    b"PGDMP",
    b"toc.dat\0",
    b"-- MySQL dump",
    b"-- MariaDB dump",
    b"/*M!999999\\- enable the sandbox mode */",
    b"REDIS",
    b"dn:",
    b"version: 1\n",
];

/// Per-format scanners share this interface: bytes in order, then the verdict at the end of the stream.
trait Scanner {
    fn feed(&mut self, data: &[u8]);
    /// Why the stream, though it opened like this format, is not positively this tool's output (then it is
    /// stored unjudged with a note instead of judged).
    fn unjudged(&self) -> Option<String> {
        None
    }
    fn finish(self: Box<Self>) -> Verdict;
}

enum State {
    Sniffing(Vec<u8>),
    Scanning(Box<dyn Scanner + Send>),
    /// gzip or zstd, decoded into an inner inspector.
    Compressed(Box<compressed::Compressed>),
    /// Not recognised; the opening is kept for the note on look-alikes.
    Unknown(Vec<u8>),
}

/// Follows one stream. `feed` every byte in order, then `finish`.
pub struct Inspector {
    state: State,
    format: Option<u8>,
}

impl Default for Inspector {
    fn default() -> Self {
        Inspector { state: State::Sniffing(Vec::with_capacity(SNIFF)), format: None }
    }
}

impl Inspector {
    pub fn feed(&mut self, mut data: &[u8]) {
        if let State::Sniffing(head) = &mut self.state {
            let take = (SNIFF - head.len()).min(data.len());
            head.extend_from_slice(&data[..take]);
            data = &data[take..];
            if head.len() < SNIFF {
                return;
            }
            let head = std::mem::take(head);
            (self.state, self.format) = start(&head);
        }
        match &mut self.state {
            State::Scanning(s) if !data.is_empty() => s.feed(data),
            State::Compressed(c) => c.feed(data),
            _ => {}
        }
    }

    /// `Some(Some(format))` once the opening was recognised, `Some(None)` once it was not, `None` while
    /// the first bytes are still being gathered.
    pub fn format(&self) -> Option<Option<u8>> {
        match self.state {
            State::Sniffing(_) => None,
            _ => Some(self.format),
        }
    }

    /// The verdict on the whole stream; None when the format was not recognised.
    pub fn finish(self) -> Option<Verdict> {
        self.conclude().0
    }

    /// The verdict on the whole stream (None when no tool's dump was recognised), and for a stream that
    /// looks like a dump but could not be identified as one tool's, a note saying it was stored unjudged.
    pub fn conclude(self) -> (Option<Verdict>, Option<String>) {
        let mut opening = Vec::new();
        let state = match self.state {
            State::Sniffing(head) => {
                if let Some(format) = cut_in_signature(&head) {
                    let v = Verdict {
                        record: record(format, String::new()),
                        problem: Some(format!(
                            "the stream is {} bytes long and ends inside the opening of a {} (it was cut short)",
                            head.len(),
                            dump_format::name(format)
                        )),
                    };
                    return (Some(v), None);
                }
                let (state, _) = start(&head);
                opening = head;
                state
            }
            State::Unknown(head) => {
                opening = head;
                State::Unknown(Vec::new())
            }
            other => other,
        };
        match state {
            State::Compressed(c) => c.conclude(),
            State::Scanning(s) => match s.unjudged() {
                Some(why) => (None, Some(unjudged_note(&why))),
                None => (Some(s.finish()), None),
            },
            _ => (None, look_alike(&opening).map(|why| unjudged_note(&why))),
        }
    }
}

fn unjudged_note(why: &str) -> String {
    format!("{why}: stored unjudged (silo cannot tell whether it is whole, and restore-database cannot load it)")
}

/// Why an unrecognised opening looks like a dump, if it does.
fn look_alike(head: &[u8]) -> Option<String> {
    if head.starts_with(b"/*!40") || head.starts_with(b"/*M!999999") {
        return Some(
            "it looks like mysqldump output without its header and trailer (--compact or --skip-comments), \
             whose completeness cannot be checked; dump without those options to have it checked"
                .into(),
        );
    }
    if head.len() < 2
        || !LOOK_ALIKES.iter().any(|l| head.starts_with(l) || (head.len() < l.len() && l.starts_with(head)))
    {
        return None;
    }
    Some(format!(
        "it begins like a dump ({:?}) but is no dump silo can identify ({} bytes seen)",
        shown(&head[..head.len().min(24)]),
        head.len()
    ))
}

/// Picks the scanner for a stream that begins with `head` (all of it, when shorter than `SNIFF`) and feeds it.
fn start(head: &[u8]) -> (State, Option<u8>) {
    use dump_format as f;
    let codec = if compressed::is_gzip(head) {
        Some(compressed::Compressed::gzip())
    } else if compressed::is_zstd(head) {
        compressed::Compressed::zstd()
    } else {
        None
    };
    if let Some(mut c) = codec {
        c.feed(head);
        return (State::Compressed(Box::new(c)), None);
    }
    let (format, mut scanner): (u8, Box<dyn Scanner + Send>) = if head.starts_with(SIGNATURES[0].0) {
        (f::PG_DUMP_PLAIN, Box::new(pg_plain::PgPlain::new(false)))
    } else if head.starts_with(SIGNATURES[1].0) {
        (f::PG_DUMPALL, Box::new(pg_plain::PgPlain::new(true)))
    } else if head.starts_with(SIGNATURES[2].0) {
        (f::SQLITE_DUMP, Box::new(sql_lexer::SqlDump::sqlite()))
    } else if head.starts_with(SIGNATURES[3].0) {
        (f::SQLITE_FILE, Box::new(sqlite_file::SqliteFile::default()))
    } else if head.starts_with(b"PGDMP") && head.get(10).is_none_or(|&f| f == pg_archive::FORMAT_CUSTOM) {
        (f::PG_DUMP_CUSTOM, Box::new(pg_archive::Custom::default()))
    } else if is_pg_tar(head) {
        (f::PG_DUMP_TAR, Box::new(pg_archive::Tar::default()))
    } else if is_mysqldump(head) {
        (f::MYSQLDUMP, Box::new(sql_lexer::SqlDump::mysql()))
    } else if rdb::is_rdb(head) {
        (f::REDIS_RDB, Box::new(rdb::Rdb::default()))
    } else if ldif::is_ldif(head) {
        (f::LDIF, Box::new(ldif::Ldif::default()))
    } else {
        return (State::Unknown(head.to_vec()), None);
    };
    scanner.feed(head);
    (State::Scanning(scanner), Some(format))
}

/// A pg_dump tar archive: its first member is `toc.dat` in a POSIX tar header.
fn is_pg_tar(head: &[u8]) -> bool {
    head.starts_with(b"toc.dat\0") && head.get(257..262).is_none_or(|magic| magic == b"ustar")
}

fn is_mysqldump(head: &[u8]) -> bool {
    let mut rest = head;
    // MariaDB 10.11+ opens with a sandbox-mode comment line before its banner (its --compact output too, so
    // the line alone identifies no whole dump).
    if rest.starts_with(b"/*M!999999") {
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => rest = &rest[n + 1..],
            None => return false,
        }
    }
    // The banner names the tool's version and distribution (`-- MySQL dump 10.13  Distrib 8.0.36, for ...`):
    // a hand-written `-- MySQL dump` comment is not taken for the tool's output.
    let line = &rest[..rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())];
    [&b"-- MySQL dump "[..], b"-- MariaDB dump "].iter().any(|banner| {
        line.starts_with(banner)
            && line.get(banner.len()).is_some_and(u8::is_ascii_digit)
            && memchr::memmem::find(line, b" Distrib ").is_some()
    })
}

/// The format whose fixed opening the whole (short) stream is a proper prefix of.
fn cut_in_signature(stream: &[u8]) -> Option<u8> {
    // One byte says nothing; a stream of one byte is not taken for a dump.
    if stream.len() < 2 {
        return None;
    }
    SIGNATURES
        .iter()
        .find(|(sig, identifies, _)| stream.len() >= *identifies && stream.len() < sig.len() && sig.starts_with(stream))
        .map(|(_, _, f)| *f)
}

fn record(format: u8, tool_version: String) -> DumpRecord {
    DumpRecord { format, tool_version, invalid: None, entries: 0, tables: Vec::new() }
}

/// Tables in first-seen order, found again by name.
#[derive(Default)]
struct Tables {
    list: Vec<TableStat>,
    by_name: std::collections::HashMap<String, usize>,
}

impl Tables {
    fn get(&mut self, name: &str, counts_rows: bool) -> &mut TableStat {
        let i = match self.by_name.get(name) {
            Some(&i) => i,
            None => {
                self.list.push(TableStat { name: name.to_string(), rows: counts_rows.then_some(0), bytes: 0 });
                self.by_name.insert(name.to_string(), self.list.len() - 1);
                self.list.len() - 1
            }
        };
        &mut self.list[i]
    }
}

/// The last bytes of a stream, for trailer checks.
struct Tail {
    bytes: Vec<u8>,
    keep: usize,
}

impl Tail {
    fn new(keep: usize) -> Self {
        Tail { bytes: Vec::with_capacity(2 * keep), keep }
    }

    fn feed(&mut self, data: &[u8]) {
        if data.len() >= self.keep {
            self.bytes.clear();
            self.bytes.extend_from_slice(&data[data.len() - self.keep..]);
            return;
        }
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > 2 * self.keep {
            let cut = self.bytes.len() - self.keep;
            self.bytes.drain(..cut);
        }
    }

    fn get(&self) -> &[u8] {
        &self.bytes[self.bytes.len().saturating_sub(self.keep)..]
    }
}

/// `text` without trailing ASCII whitespace.
fn trim_end(text: &[u8]) -> &[u8] {
    let end = text.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |p| p + 1);
    &text[..end]
}

/// A lossy, single-line rendering of dump bytes for messages and names.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
pub(crate) fn inspect_all(data: &[u8], piece: usize) -> Option<Verdict> {
    let mut i = Inspector::default();
    for p in data.chunks(piece.max(1)) {
        i.feed(p);
    }
    i.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_streams_are_not_judged() {
        assert_eq!(inspect_all(b"hello world\n", 3), None);
        assert_eq!(inspect_all(&[0u8; 4096], 100), None);
        assert_eq!(inspect_all(b"", 1), None);
    }

    #[test]
    fn a_stream_cut_inside_a_signature_is_that_format_cut_short() {
        let v = inspect_all(b"--\n-- PostgreSQL data", 4).unwrap();
        assert_eq!(v.record.format, dump_format::PG_DUMP_PLAIN);
        assert!(v.problem.unwrap().contains("cut short"));
        let v = inspect_all(b"PGDMP", 1).unwrap();
        assert_eq!(v.record.format, dump_format::PG_DUMP_CUSTOM);
    }

    fn concluded(data: &[u8]) -> (Option<Verdict>, Option<String>) {
        let mut i = Inspector::default();
        i.feed(data);
        i.conclude()
    }

    #[test]
    fn tiny_and_look_alike_streams_are_stored_unjudged_with_a_note() {
        let mysql_by_hand = b"-- MySQL dump\nCREATE TABLE t (a int);\n".to_vec();
        let mut rdb_text = b"REDIS0011 is the RDB version of Redis 7\n".to_vec();
        rdb_text.extend_from_slice(&[b'x'; 600]);
        let ldif_crlf = b"dn: dc=x\r\ndc: x\r\n\r\n".to_vec();
        let ldif_no_blank = b"dn: dc=x\ndc: x\n".to_vec();
        let compact = b"/*!40101 SET @saved_cs_client     = @@character_set_client */;\nCREATE TABLE `t` (a int);\n";
        for s in [
            &b"--\n"[..],
            b"RE",
            b"PGD",
            b"--\n-- Postgre",
            &mysql_by_hand,
            &rdb_text,
            &ldif_crlf,
            &ldif_no_blank,
            compact,
        ] {
            let (v, note) = concluded(s);
            assert!(v.is_none(), "{:?} was judged: {v:?}", shown(s));
            assert!(note.as_deref().is_some_and(|n| n.contains("stored unjudged")), "{:?}: {note:?}", shown(s));
        }
        assert!(concluded(compact).1.unwrap().contains("--compact"));
        assert_eq!(concluded(b"hello world\n"), (None, None));
        for other in [&b"README: how to restore\n"[..], b"# a config\n", b"-- my migration\nCREATE TABLE t (a int);\n"]
        {
            assert_eq!(concluded(other), (None, None), "{:?}", shown(other));
        }
    }

    /// The scanners read untrusted bytes: mutated and cut samples of every format, fed in random pieces, must
    /// never panic or loop (a bounded, deterministic stand-in for fuzzing: this code lives outside the
    /// silo-format crate the cargo-fuzz targets build).
    #[test]
    fn mutated_dumps_of_every_format_never_panic() {
        let mut samples: Vec<Vec<u8>> = vec![
            b"--\n-- PostgreSQL database dump\n--\n\\restrict K\nCOPY public.t (a) FROM stdin;\n1\n\\.\n".to_vec(),
            b"--\n-- PostgreSQL database cluster dump\n--\n\\connect -reuse-previous=on \"dbname='x'\"\n".to_vec(),
            b"-- MariaDB dump 10.19\nINSERT INTO `a` VALUES (1,'x\\'('),(2,\"y\");\n-- Dump completed\n".to_vec(),
            b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nINSERT INTO \"t\" VALUES(1);\nCOMMIT;\n".to_vec(),
            b"REDIS0011\xfa\x09redis-ver\x056.2.0\xfe\x00\xfb\x01\x00\x00\x01a\x01b\xff12345678".to_vec(),
            b"dn: dc=x\ndc: x\n\n".to_vec(),
            pg_archive::tests::custom_archive(),
            compressed::tests::gzip_stored(
                b"--\n-- PostgreSQL database dump\n--\n\nCOPY public.t (a) FROM stdin;\n1\n",
            ),
            zstd::encode_all(&b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCOMMIT;\n"[..], 1).unwrap_or_default(),
        ];
        let mut sqlite = vec![0u8; 1024];
        sqlite[..16].copy_from_slice(b"SQLite format 3\0");
        sqlite[16..18].copy_from_slice(&512u16.to_be_bytes());
        sqlite[31] = 2;
        samples.push(sqlite);
        let mut tar = vec![0u8; 1536];
        tar[..8].copy_from_slice(b"toc.dat\0");
        tar[257..263].copy_from_slice(b"ustar\0");
        tar[124..135].copy_from_slice(b"00000000010");
        samples.push(tar);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for sample in &samples {
            for _ in 0..1500 {
                let mut data = sample.clone();
                for _ in 0..(next() % 4) {
                    let at = (next() as usize) % data.len().max(1);
                    match next() % 4 {
                        0 if !data.is_empty() => data[at] ^= 1 << (next() % 8),
                        1 => data.truncate(at),
                        2 => data.insert(at.min(data.len()), next() as u8),
                        _ if !data.is_empty() => data[at] = [0, 0xff, b'\n', b'\'', b'('][(next() % 5) as usize],
                        _ => {}
                    }
                }
                let piece = 1 + (next() as usize % 97);
                let _ = inspect_all(&data, piece);
            }
        }
    }

    #[test]
    fn the_format_is_known_after_the_opening() {
        let mut i = Inspector::default();
        i.feed(b"SQLite format 3\0");
        assert_eq!(i.format(), None, "still gathering the opening");
        i.feed(&[0; 600]);
        assert_eq!(i.format(), Some(Some(dump_format::SQLITE_FILE)));
        let mut u = Inspector::default();
        u.feed(&[7; 600]);
        assert_eq!(u.format(), Some(None));
    }

    #[test]
    fn tail_keeps_the_last_bytes_across_feeds() {
        let mut t = Tail::new(4);
        for piece in [&b"abc"[..], b"defgh", b"i", b"", b"jk"] {
            t.feed(piece);
        }
        assert_eq!(t.get(), b"hijk");
        t.feed(b"0123456789");
        assert_eq!(t.get(), b"6789");
    }
}
