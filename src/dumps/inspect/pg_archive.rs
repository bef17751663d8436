//! pg_dump archives: the custom format (`-Fc`) and the tar format (`-Ft`). Layout as pg_dump writes it
//! (PostgreSQL's `pg_backup_archiver.c` WriteHead/WriteToc, `pg_backup_custom.c`, `pg_backup_tar.c`; archive
//! versions 1.12 to 1.16, PostgreSQL 9.0 to 18): a header, a table of contents, then — custom format written
//! to a pipe — one data block per TOC entry that has data, each a run of length-prefixed chunks ended by a
//! zero length. The tar format is `toc.dat` (the same header and TOC, naming a member file per data entry),
//! the members, `restore.sql`, and the end-of-archive zero blocks.
//!
//! Complete when the header and TOC parse, every entry that has data has its block (custom) or member (tar)
//! present in full, nothing follows that the TOC does not list, and the stream ends on a boundary. Rows are
//! counted for tar members (uncompressed COPY text); custom archives' blocks are compressed, so their tables
//! carry bytes only. Archive versions outside 1.12-1.16 are recognised but their contents are not checked.

use super::{record, shown, Scanner, Tables, Verdict};
use silo_format::manifest::dump_format;
use std::collections::{HashMap, HashSet};

/// The archive format byte of the header (pg_backup.h ArchiveFormat).
pub(super) const FORMAT_CUSTOM: u8 = 1;
const FORMAT_TAR: u8 = 3;
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const K_OFFSET_NO_DATA: u8 = 3;
/// Largest string or chunk length believed (a longer one means a damaged archive, not a huge allocation).
const MAX_LEN: i64 = 1 << 30;

type Version = (u8, u8);
const OLDEST: Version = (1, 12);
const NEWEST: Version = (1, 16);

/// Why parsing stopped: it needs more bytes, or the archive is malformed.
enum Stop {
    More,
    Bad(String),
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    int_size: usize,
    off_size: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::More)?;
        let s = self.buf.get(self.pos..end).ok_or(Stop::More)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    /// pg_dump's ReadInt: a sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> Result<i64, Stop> {
        let size = self.int_size;
        let sign = self.byte()?;
        let bytes = self.take(size)?;
        let mut v: i64 = 0;
        for (i, b) in bytes.iter().enumerate().take(8) {
            v |= (*b as i64) << (8 * i);
        }
        match sign {
            0 => Ok(v),
            1 => Ok(-v),
            s => Err(Stop::Bad(format!("invalid integer sign byte {s}"))),
        }
    }

    /// ReadStr: a length (-1 for NULL), then the bytes.
    fn string(&mut self) -> Result<Option<&[u8]>, Stop> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        if len > MAX_LEN {
            return Err(Stop::Bad(format!("a string of {len} bytes")));
        }
        Ok(Some(self.take(len as usize)?))
    }

    fn text(&mut self) -> Result<String, Stop> {
        Ok(self.string()?.map(shown).unwrap_or_default())
    }
}

struct Header {
    version: Version,
    int_size: usize,
    off_size: usize,
    format: u8,
    /// Data blocks are compressed (custom archives; then their rows are not counted).
    compressed: bool,
    tool_version: String,
}

fn parse_header(c: &mut Cursor) -> Result<Header, Stop> {
    if c.take(5)? != b"PGDMP" {
        return Err(Stop::Bad("no PGDMP magic".into()));
    }
    let version = (c.byte()?, c.byte()?);
    c.byte()?; // revision
    let int_size = c.byte()? as usize;
    let off_size = c.byte()? as usize;
    if !(1..=8).contains(&int_size) || !(1..=16).contains(&off_size) {
        return Err(Stop::Bad(format!("integer size {int_size} / offset size {off_size}")));
    }
    let format = c.byte()?;
    let mut h = Header { version, int_size, off_size, format, compressed: true, tool_version: String::new() };
    if !(OLDEST..=NEWEST).contains(&version) {
        return Ok(h);
    }
    (c.int_size, c.off_size) = (int_size, off_size);
    h.compressed = if version >= (1, 15) {
        c.byte()? != 0 // compression algorithm; 0 is none
    } else {
        c.int()? != 0 // compression level; 0 is none
    };
    for _ in 0..7 {
        c.int()?; // creation time fields
    }
    c.string()?; // database name
    c.string()?; // server version
    h.tool_version = c.text()?;
    Ok(h)
}

struct TocEntry {
    dump_id: i64,
    desc: String,
    /// `schema.tag`, for TABLE DATA entries.
    name: String,
    has_data: bool,
    /// Tar: the member holding the data.
    file: Option<String>,
}

fn parse_entry(c: &mut Cursor, h: &Header) -> Result<TocEntry, Stop> {
    let dump_id = c.int()?;
    c.int()?; // had dumper
    c.string()?; // table oid
    c.string()?; // oid
    let tag = c.text()?;
    let desc = c.text()?;
    c.int()?; // section
    c.string()?; // definition
    c.string()?; // drop statement
    c.string()?; // copy statement
    let namespace = c.text()?;
    c.string()?; // tablespace
    if h.version >= (1, 14) {
        c.string()?; // table access method
    }
    if h.version >= (1, 16) {
        c.int()?; // relkind
    }
    c.string()?; // owner
    c.string()?; // "false" (with oids)
    while c.string()?.is_some() {} // dependencies, ended by NULL
    let (has_data, file) = match h.format {
        FORMAT_CUSTOM => {
            let flag = c.byte()?;
            c.take(h.off_size)?;
            (flag != K_OFFSET_NO_DATA, None)
        }
        _ => {
            // No data: NULL, or (entries such as large-object metadata) an empty name.
            let file = c.string()?.map(shown).filter(|f| !f.is_empty());
            (file.is_some(), file)
        }
    };
    let name = if namespace.is_empty() { ident(&tag) } else { format!("{}.{}", ident(&namespace), ident(&tag)) };
    Ok(TocEntry { dump_id, desc, name, has_data, file })
}

/// An identifier as SQL, the way plain pg_dump writes it in COPY lines: bare when it is a lower-case word,
/// otherwise double-quoted (so archive and plain dumps name a table alike, and the name can be queried).
fn ident(name: &str) -> String {
    let mut chars = name.chars();
    let bare = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Header and TOC, parsed from the start of a buffer that grows until they are complete.
#[derive(Default)]
struct Toc {
    pos: usize,
    header: Option<Header>,
    count: Option<i64>,
    entries: Vec<TocEntry>,
    /// The archive version is outside what silo knows: contents not checked.
    unchecked: bool,
}

impl Toc {
    /// Parses what `buf` (the archive from its first byte) allows. Ok(true) once the TOC is complete.
    fn advance(&mut self, buf: &[u8]) -> Result<bool, String> {
        loop {
            let (int_size, off_size) = self.header.as_ref().map_or((4, 8), |h| (h.int_size, h.off_size));
            let mut c = Cursor { buf, pos: self.pos, int_size, off_size };
            let step = match (&self.header, self.count) {
                (None, _) => parse_header(&mut c).map(|h| {
                    self.unchecked = !(OLDEST..=NEWEST).contains(&h.version);
                    self.header = Some(h);
                }),
                (Some(_), _) if self.unchecked => return Ok(true),
                (Some(_), None) => c.int().and_then(|n| {
                    if (0..=i32::MAX as i64).contains(&n) {
                        self.count = Some(n);
                        Ok(())
                    } else {
                        Err(Stop::Bad(format!("a table of contents of {n} entries")))
                    }
                }),
                (Some(h), Some(n)) => {
                    if self.entries.len() as i64 >= n {
                        return Ok(true);
                    }
                    parse_entry(&mut c, h).map(|e| self.entries.push(e))
                }
            };
            match step {
                Ok(()) => self.pos = c.pos,
                Err(Stop::More) => return Ok(false),
                Err(Stop::Bad(why)) => return Err(why),
            }
        }
    }

    fn tool_version(&self) -> String {
        self.header.as_ref().map(|h| h.tool_version.clone()).unwrap_or_default()
    }
}

enum Block {
    /// Expecting a block type byte and a dump id (or the end of the archive).
    Start,
    /// Inside the data block of `id` (of table `table`, if a table's): expecting a chunk length.
    Chunks { id: i64, blobs: bool, table: Option<usize> },
    /// Inside a BLOBS block: expecting a large object's oid (0 ends the block).
    BlobOid { id: i64 },
}

/// A custom-format archive written to a pipe.
pub(super) struct Custom {
    pending: Vec<u8>,
    toc: Toc,
    toc_done: bool,
    block: Block,
    /// Bytes of chunk data still to pass over.
    skip: u64,
    tables: Tables,
    /// Dump ids with data: the table stat they feed, and whether their block ended.
    expected: HashMap<i64, (Option<usize>, bool)>,
    /// Uncompressed archives (`-Z0`): the rows of each table's COPY text (by table), and which of them the
    /// data `skip` is (an index into `rows`, found once per block, not per chunk).
    rows: Vec<(usize, CopyRows)>,
    skip_rows: Option<usize>,
    /// The rows entry of the block being read, if its data is COPY text counted.
    block_rows: Option<usize>,
    failed: Option<String>,
}

impl Default for Custom {
    fn default() -> Self {
        Custom {
            pending: Vec::new(),
            toc: Toc::default(),
            toc_done: false,
            block: Block::Start,
            skip: 0,
            tables: Tables::default(),
            expected: HashMap::new(),
            rows: Vec::new(),
            skip_rows: None,
            block_rows: None,
            failed: None,
        }
    }
}

impl Custom {
    fn after_toc(&mut self) {
        for e in &self.toc.entries {
            if e.has_data {
                let table = (e.desc == "TABLE DATA").then(|| {
                    self.tables.get(&e.name, false);
                    self.tables.by_name[&e.name]
                });
                self.expected.insert(e.dump_id, (table, false));
            }
        }
    }

    fn start_block(&mut self, c: &mut Cursor) -> Result<(), Stop> {
        let kind = c.byte()?;
        let id = c.int()?;
        let Some((_, done)) = self.expected.get(&id) else {
            return Err(Stop::Bad(format!("a data block for entry {id}, which the TOC lists without data")));
        };
        if *done {
            return Err(Stop::Bad(format!("a second data block for entry {id}")));
        }
        let table = self.expected.get(&id).and_then(|e| e.0);
        let compressed = self.toc.header.as_ref().is_none_or(|h| h.compressed);
        self.block_rows = match table.filter(|_| !compressed && kind == BLK_DATA) {
            Some(t) => Some(match self.rows.iter().position(|(x, _)| *x == t) {
                Some(i) => i,
                None => {
                    self.rows.push((t, CopyRows::default()));
                    self.rows.len() - 1
                }
            }),
            None => None,
        };
        self.block = match kind {
            BLK_DATA => Block::Chunks { id, blobs: false, table },
            BLK_BLOBS => Block::BlobOid { id },
            k => return Err(Stop::Bad(format!("unknown data block type {k}"))),
        };
        Ok(())
    }

    fn chunk_length(&mut self, c: &mut Cursor, id: i64, blobs: bool, table: Option<usize>) -> Result<(), Stop> {
        let len = c.int()?;
        if !(0..=MAX_LEN).contains(&len) {
            return Err(Stop::Bad(format!("a data chunk of {len} bytes in entry {id}")));
        }
        if len == 0 {
            if blobs {
                self.block = Block::BlobOid { id };
            } else {
                self.end_block(id);
            }
        } else {
            self.skip = len as u64;
            if let Some(t) = table {
                self.tables.list[t].bytes += len as u64;
            }
            self.skip_rows = self.block_rows.filter(|_| !blobs);
        }
        Ok(())
    }

    /// Reads block tokens from `buf` (the unconsumed input); returns how many bytes were consumed.
    fn blocks(&mut self, buf: &[u8]) -> Result<usize, String> {
        let (int_size, off_size) = self.toc.header.as_ref().map_or((4, 8), |h| (h.int_size, h.off_size));
        let mut c = Cursor { buf, pos: 0, int_size, off_size };
        loop {
            if self.skip > 0 {
                let n = (self.skip as usize).min(buf.len() - c.pos);
                if n == 0 {
                    return Ok(c.pos);
                }
                self.count_rows(&buf[c.pos..c.pos + n]);
                c.pos += n;
                self.skip -= n as u64;
                continue;
            }
            if let (Block::Chunks { table, blobs: false, .. }, Some(rows)) = (&self.block, self.block_rows) {
                let table = *table;
                self.whole_row_chunks(&mut c, table, rows);
            }
            let start = c.pos;
            let step = match self.block {
                Block::Start => self.start_block(&mut c),
                Block::Chunks { id, blobs, table } => self.chunk_length(&mut c, id, blobs, table),
                Block::BlobOid { id } => c.int().map(|oid| {
                    if oid == 0 {
                        self.end_block(id);
                    } else {
                        self.block = Block::Chunks { id, blobs: true, table: None };
                    }
                }),
            };
            match step {
                Ok(()) => {}
                Err(Stop::More) => return Ok(start),
                Err(Stop::Bad(why)) => return Err(why),
            }
        }
    }

    /// An uncompressed table's data as pg_dump writes it: a chunk per row. Runs of chunks that lie whole in
    /// `c`, each one line, are counted in this one loop (a chunk per row through the general token loop cost
    /// ~25 ns a row, most of validation's cost on an archive's unchanged re-run); the first chunk that is
    /// anything else (cut by the end of `c`, several lines, the end line, the end of the block) is left to
    /// the general path, untouched.
    fn whole_row_chunks(&mut self, c: &mut Cursor, table: Option<usize>, rows: usize) {
        let counter = &mut self.rows[rows].1;
        let mut bytes = 0u64;
        loop {
            let at = c.pos;
            let len = match c.int() {
                Ok(len) if (1..=MAX_LEN).contains(&len) => len as usize,
                _ => {
                    c.pos = at;
                    break;
                }
            };
            let Some(data) = c.buf.get(c.pos..c.pos + len) else {
                c.pos = at;
                break;
            };
            let one_row = counter.head.is_empty()
                && !counter.ended
                && data[len - 1] == b'\n'
                && data != b"\\.\n"
                && memchr::memchr(b'\n', &data[..len - 1]).is_none();
            if !one_row {
                c.pos = at;
                break;
            }
            counter.lines += 1;
            bytes += len as u64;
            c.pos += len;
        }
        if let Some(t) = table {
            self.tables.list[t].bytes += bytes;
        }
    }

    /// Chunk data passed over: counted as COPY rows when the archive is uncompressed.
    fn count_rows(&mut self, data: &[u8]) {
        if let Some(i) = self.skip_rows {
            self.rows[i].1.feed(data);
        }
    }

    /// Reads the blocks of `buf`; keeps what a token cut short left unread for the next call.
    fn read_blocks(&mut self, buf: &[u8]) {
        match self.blocks(buf) {
            Ok(used) => self.pending.extend_from_slice(&buf[used..]),
            Err(why) => self.failed = Some(why),
        }
    }

    fn end_block(&mut self, id: i64) {
        if let Some(e) = self.expected.get_mut(&id) {
            e.1 = true;
        }
        self.block = Block::Start;
    }

    fn problem(&self) -> Option<String> {
        if let Some(f) = &self.failed {
            return Some(format!("the archive is malformed: {f}"));
        }
        if !self.toc_done {
            return Some("the archive ends inside its header or table of contents: it was cut short".into());
        }
        if self.toc.unchecked {
            return None;
        }
        let missing: Vec<&TocEntry> =
            self.toc.entries.iter().filter(|e| self.expected.get(&e.dump_id).is_some_and(|(_, done)| !done)).collect();
        if let Some(first) = missing.first() {
            return Some(format!(
                "{} of the archive's {} data blocks are missing or cut short (first: {} {}): the dump was cut short",
                missing.len(),
                self.expected.len(),
                first.desc,
                first.name
            ));
        }
        if self.skip > 0 || !self.pending.is_empty() || !matches!(self.block, Block::Start) {
            return Some("the archive ends inside a data block: it was cut short".into());
        }
        None
    }
}

impl Scanner for Custom {
    /// Reads the header and TOC from a buffer that grows until they are whole, then the data blocks straight
    /// from `data`: only a token cut by the end of `data` is kept for the next call (copying every chunk's
    /// data through a buffer cost an unchanged re-run of a 200 MB archive a fifth of its time).
    fn feed(&mut self, data: &[u8]) {
        if self.failed.is_some() || self.toc.unchecked {
            return;
        }
        if !self.toc_done {
            self.pending.extend_from_slice(data);
            match self.toc.advance(&self.pending) {
                Ok(false) => return,
                Ok(true) => {
                    self.toc_done = true;
                    self.pending.drain(..self.toc.pos);
                    if self.toc.unchecked {
                        self.pending = Vec::new();
                        return;
                    }
                    self.after_toc();
                }
                Err(why) => {
                    self.failed = Some(why);
                    return;
                }
            }
            let pending = std::mem::take(&mut self.pending);
            self.read_blocks(&pending);
            return;
        }
        if self.pending.is_empty() {
            self.read_blocks(data);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(data);
            self.read_blocks(&pending);
        }
    }

    fn finish(mut self: Box<Self>) -> Verdict {
        let mut problem = self.problem();
        if self.toc.header.as_ref().is_some_and(|h| !h.compressed) {
            for (t, rows) in &self.rows {
                let stat = &mut self.tables.list[*t];
                stat.rows = Some(rows.lines);
                if !rows.ended && problem.is_none() {
                    problem = Some(format!("the data of table {} has no \\. end line: it was cut short", stat.name));
                }
            }
            // A table whose block held no chunk at all has no rows.
            for e in self.expected.values() {
                if let Some(t) = e.0 {
                    self.tables.list[t].rows.get_or_insert(0);
                }
            }
        }
        let mut r = record(dump_format::PG_DUMP_CUSTOM, self.toc.tool_version());
        r.entries = self.toc.entries.len() as u64;
        r.tables = self.tables.list;
        Verdict { record: r, problem }
    }
}

/// Rows of COPY text (pg_dump's data in a tar member or an uncompressed custom archive): the lines before
/// the `\.` end line.
#[derive(Default)]
struct CopyRows {
    lines: u64,
    ended: bool,
    /// The current line's first bytes (enough to tell `\.` from a row).
    head: Vec<u8>,
}

impl CopyRows {
    /// Counts the lines of `data` before the end line, the line `\.`. The line in progress is finished
    /// byte by byte; the whole lines after it are counted at once (the end line found with one search,
    /// the newlines before it counted in bulk): a COPY row is ~100 bytes, and a call per row cost an
    /// unchanged re-run of a 200 MB archive a third of its time.
    fn feed(&mut self, data: &[u8]) {
        if self.ended {
            return;
        }
        // The line in progress, up to its newline.
        let Some(first) = memchr::memchr(b'\n', data) else {
            self.start_line(data);
            return;
        };
        self.start_line(&data[..first]);
        if self.end_line() {
            return;
        }
        // From here every line starts after a newline: the end line is "\n\\.\n".
        let rest = &data[first..];
        // An uncompressed custom archive holds each row in a block of its own: most calls end right here,
        // and a substring search is not set up for a rest too short to hold the end line.
        let end = if rest.len() >= 4 { memchr::memmem::find(rest, b"\n\\.\n") } else { None };
        match end {
            Some(at) => {
                self.lines += super::lines::newlines(&rest[1..=at]);
                self.ended = true;
            }
            None => {
                let last = memchr::memrchr(b'\n', rest).unwrap_or(0);
                self.lines += super::lines::newlines(&rest[1..=last]);
                self.start_line(&rest[last + 1..]);
            }
        }
    }

    /// Keeps the first bytes of the line in progress (enough to tell `\.` from a row).
    fn start_line(&mut self, part: &[u8]) {
        let take = part.len().min(3 - self.head.len().min(3));
        self.head.extend_from_slice(&part[..take]);
    }

    /// The line in progress has ended: the end line, or one more row.
    fn end_line(&mut self) -> bool {
        if self.head == b"\\." {
            self.ended = true;
        } else {
            self.lines += 1;
            self.head.clear();
        }
        self.ended
    }
}

/// A tar member being read.
struct Member {
    name: String,
    left: u64,
    /// Padding after the data, to the next 512-byte block.
    pad: u64,
    /// The table whose COPY data this member holds.
    table: Option<usize>,
    rows: CopyRows,
}

/// A tar-format archive.
#[derive(Default)]
pub(super) struct Tar {
    pending: Vec<u8>,
    member: Option<Member>,
    toc_bytes: Vec<u8>,
    toc: Toc,
    toc_done: bool,
    files: HashMap<String, Option<usize>>,
    /// Dump ids of BLOBS entries: each needs its blobs TOC member.
    blobs: Vec<i64>,
    present: HashSet<String>,
    tables: Tables,
    zero_blocks: u32,
    failed: Option<String>,
}

impl Tar {
    fn header(&mut self, block: &[u8]) -> Result<(), String> {
        if block.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            return Ok(());
        }
        if self.zero_blocks > 0 {
            return Err("a member after the end-of-archive blocks".into());
        }
        let stored = octal(&block[148..156]).ok_or("a header checksum that is not a number")?;
        let sum: u64 =
            block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u64 }).sum();
        if sum != stored {
            return Err("a member header whose checksum does not match".into());
        }
        let name_end = block[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = shown(&block[..name_end]);
        let size = octal(&block[124..136]).ok_or_else(|| format!("member {name}: a size that is not a number"))?;
        if name != "toc.dat" && !self.toc_done {
            return Err(format!("member {name} before toc.dat"));
        }
        let table = self.files.get(&name).copied().flatten();
        // Large objects are members of their own, listed by the blobs TOC member rather than by toc.dat.
        let large_object = (name.starts_with("blob_") && name.ends_with(".dat"))
            || (name.starts_with("blobs") && name.ends_with(".toc"));
        if name != "toc.dat" && name != "restore.sql" && !large_object && !self.files.contains_key(&name) {
            return Err(format!("member {name}, which the table of contents does not list"));
        }
        self.member =
            Some(Member { name, left: size, pad: (512 - size % 512) % 512, table, rows: CopyRows::default() });
        self.finish_member_if_empty()
    }

    fn finish_member_if_empty(&mut self) -> Result<(), String> {
        if self.member.as_ref().is_some_and(|m| m.left == 0) {
            self.end_member()?;
        }
        Ok(())
    }

    fn member_data(&mut self, data: &[u8]) {
        let Some(m) = self.member.as_mut() else { return };
        if m.name == "toc.dat" {
            self.toc_bytes.extend_from_slice(data);
            return;
        }
        if m.table.is_some() {
            m.rows.feed(data);
        }
    }

    fn end_member(&mut self) -> Result<(), String> {
        let Some(m) = self.member.take() else { return Ok(()) };
        if m.name == "toc.dat" {
            match self.toc.advance(&self.toc_bytes) {
                Ok(true) => {}
                Ok(false) => return Err("toc.dat ends inside its table of contents".into()),
                Err(why) => return Err(format!("toc.dat: {why}")),
            }
            self.toc_done = true;
            if self.toc.header.as_ref().is_some_and(|h| h.format != FORMAT_TAR) {
                return Err("toc.dat does not describe a tar archive".into());
            }
            for e in &self.toc.entries {
                if e.desc == "BLOBS" {
                    // Large objects are written to blobs.toc (PostgreSQL 17: blobs_ID.toc) and blob_OID.dat,
                    // not to the member toc.dat names.
                    self.blobs.push(e.dump_id);
                    continue;
                }
                if let Some(f) = &e.file {
                    let table = (e.desc == "TABLE DATA").then(|| {
                        self.tables.get(&e.name, true);
                        self.tables.by_name[&e.name]
                    });
                    self.files.insert(f.clone(), table);
                }
            }
            self.toc_bytes = Vec::new();
        } else if let Some(t) = m.table {
            let stat = &mut self.tables.list[t];
            stat.rows = Some(m.rows.lines);
            if !m.rows.ended {
                return Err(format!("member {} (data of {}) has no \\. end line", m.name, stat.name));
            }
        }
        self.present.insert(m.name);
        Ok(())
    }

    fn step(&mut self, data: &[u8]) -> Result<(), String> {
        let mut data = data;
        while !data.is_empty() {
            if let Some(m) = self.member.as_mut() {
                if m.left > 0 {
                    let n = (m.left as usize).min(data.len());
                    m.left -= n as u64;
                    if let Some(t) = m.table {
                        self.tables.list[t].bytes += n as u64;
                    }
                    let (now, rest) = data.split_at(n);
                    self.member_data(now);
                    data = rest;
                    continue;
                }
                if m.pad > 0 {
                    let n = (m.pad as usize).min(data.len());
                    m.pad -= n as u64;
                    data = &data[n..];
                    if m.pad > 0 {
                        continue;
                    }
                }
                self.end_member()?;
                continue;
            }
            let take = (512 - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == 512 {
                let block = std::mem::take(&mut self.pending);
                self.header(&block)?;
            }
        }
        // A member whose data and padding are all here ends now, not with the next header.
        if self.member.as_ref().is_some_and(|m| m.left == 0 && m.pad == 0) {
            self.end_member()?;
        }
        Ok(())
    }

    fn problem(&self) -> Option<String> {
        if let Some(f) = &self.failed {
            return Some(format!("the tar archive is malformed: {f}"));
        }
        if let Some(m) = &self.member {
            return Some(format!("the archive ends inside member {}: it was cut short", m.name));
        }
        if !self.toc_done {
            return Some("the archive ends before its toc.dat is complete: it was cut short".into());
        }
        let mut missing: Vec<String> = self.files.keys().filter(|f| !self.present.contains(*f)).cloned().collect();
        for id in &self.blobs {
            if !self.present.contains("blobs.toc") && !self.present.contains(&format!("blobs_{id}.toc")) {
                missing.push(format!("blobs_{id}.toc"));
            }
        }
        missing.sort();
        if let Some(first) = missing.first() {
            return Some(format!(
                "{} of the {} data members the table of contents lists are missing (first: {first}): the dump was \
                 cut short",
                missing.len(),
                self.files.len() + self.blobs.len()
            ));
        }
        if !self.present.contains("restore.sql") {
            return Some("the archive has no restore.sql member: it was cut short".into());
        }
        if self.zero_blocks < 2 || !self.pending.is_empty() {
            return Some("the archive does not end with tar's end-of-archive blocks: it was cut short".into());
        }
        None
    }
}

impl Scanner for Tar {
    fn feed(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            if let Err(why) = self.step(data) {
                self.failed = Some(why);
            }
        }
    }

    fn finish(self: Box<Self>) -> Verdict {
        let problem = self.problem();
        let mut r = record(dump_format::PG_DUMP_TAR, self.toc.tool_version());
        r.entries = self.toc.entries.len() as u64;
        r.tables = self.tables.list;
        Verdict { record: r, problem }
    }
}

/// A tar numeric field: octal digits, NUL/space padded.
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_as_pg_dump_quotes_them() {
        assert_eq!(ident("orders"), "orders");
        assert_eq!(ident("Line Items"), "\"Line Items\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("9lives"), "\"9lives\"");
    }

    /// The line counter, fed in pieces of every size, counts as a line-by-line reading does.
    #[test]
    fn copy_rows_fed_in_any_pieces_count_as_a_line_reader_does() {
        let mut text = Vec::new();
        for i in 0..500u32 {
            text.extend_from_slice(format!("{i}\t\\.x\t{}\n", "a".repeat((i % 7) as usize)).as_bytes());
            if i % 50 == 0 {
                text.extend_from_slice(b"\\.\\\n\n");
            }
        }
        let whole_rows = text.iter().filter(|&&b| b == b'\n').count() as u64;
        let mut ended = text.clone();
        ended.extend_from_slice(b"\\.\n\nafter\n\\.\n");
        for (input, lines, end) in [(&text, whole_rows, false), (&ended, whole_rows, true)] {
            for piece in [1usize, 2, 3, 4, 7, 100, 4096, input.len()] {
                let mut rows = CopyRows::default();
                for part in input.chunks(piece) {
                    rows.feed(part);
                }
                assert_eq!((rows.lines, rows.ended), (lines, end), "pieces of {piece}");
            }
        }
    }

    #[test]
    fn octal_fields() {
        assert_eq!(octal(b"00000001750\0"), Some(1000));
        assert_eq!(octal(b"       \0"), Some(0));
        assert_eq!(octal(b"12x\0"), None);
    }

    /// A minimal custom archive: version 1.14, one table with data in two chunks, one entry without.
    pub(crate) fn custom_archive() -> Vec<u8> {
        archive(-1, &[b"x\\y", b"zzzz"])
    }

    /// A version 1.14 archive with compression `level` whose table's data block holds `chunks`.
    fn archive(level: i64, chunks: &[&[u8]]) -> Vec<u8> {
        let mut a = b"PGDMP".to_vec();
        a.extend_from_slice(&[1, 14, 0, 4, 8, FORMAT_CUSTOM]);
        let int = |a: &mut Vec<u8>, v: i64| {
            a.push(u8::from(v < 0));
            a.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        };
        let string = |a: &mut Vec<u8>, s: Option<&str>| match s {
            None => {
                a.push(1);
                a.extend_from_slice(&1u32.to_le_bytes());
            }
            Some(s) => {
                a.push(0);
                a.extend_from_slice(&(s.len() as u32).to_le_bytes());
                a.extend_from_slice(s.as_bytes());
            }
        };
        int(&mut a, level); // compression
        for t in [0, 1, 2, 3, 4, 125, 0] {
            int(&mut a, t);
        }
        string(&mut a, Some("shop"));
        string(&mut a, Some("15.20"));
        string(&mut a, Some("15.20 (Debian)"));
        int(&mut a, 2);
        for (id, desc, data) in [(10, "TABLE", false), (11, "TABLE DATA", true)] {
            int(&mut a, id);
            int(&mut a, i64::from(data));
            for s in [Some("0"), Some("0"), Some("orders"), Some(desc)] {
                string(&mut a, s);
            }
            int(&mut a, 1);
            for s in [Some(""), Some(""), None, Some("public"), Some(""), Some("heap"), Some("postgres"), Some("false")]
            {
                string(&mut a, s);
            }
            string(&mut a, Some("9"));
            string(&mut a, None);
            a.push(if data { 1 } else { K_OFFSET_NO_DATA });
            a.extend_from_slice(&[0; 8]);
        }
        a.push(BLK_DATA);
        int(&mut a, 11);
        for chunk in chunks {
            int(&mut a, chunk.len() as i64);
            a.extend_from_slice(chunk);
        }
        int(&mut a, 0);
        a
    }

    #[test]
    fn a_custom_archive_passes_whole_and_fails_cut_anywhere() {
        let a = custom_archive();
        for piece in [1, 3, 17, 4096] {
            let v = crate::dumps::inspect::inspect_all(&a, piece).unwrap();
            assert_eq!(v.problem, None, "pieces of {piece}");
            assert_eq!(v.record.format, dump_format::PG_DUMP_CUSTOM);
            assert_eq!(v.record.tool_version, "15.20 (Debian)");
            assert_eq!(v.record.entries, 2);
            assert_eq!(v.record.tables[0].name, "public.orders");
            assert_eq!((v.record.tables[0].rows, v.record.tables[0].bytes), (None, 7));
        }
        // (Shorter than `PGDMP`, a stream identifies no tool: stored unjudged.)
        for cut in 5..a.len() {
            let v = crate::dumps::inspect::inspect_all(&a[..cut], 5).unwrap();
            assert!(v.problem.is_some(), "cut at {cut} of {} passed", a.len());
        }
        let mut extra = a.clone();
        extra.extend_from_slice(&[BLK_DATA, 0, 11, 0, 0, 0]);
        assert!(crate::dumps::inspect::inspect_all(&extra, 64).unwrap().problem.is_some());
    }

    #[test]
    fn an_uncompressed_archive_counts_rows_and_needs_the_end_line() {
        let a = archive(0, &[b"1\tx\n2\t", b"y\n3\tz\n\\", b".\n\n\n"]);
        for piece in [1, 2, 7, 4096] {
            let v = crate::dumps::inspect::inspect_all(&a, piece).unwrap();
            assert_eq!(v.problem, None, "pieces of {piece}");
            assert_eq!(v.record.tables[0].rows, Some(3), "pieces of {piece}");
        }
        let cut = archive(0, &[b"1\tx\n2\ty\n"]);
        let p = crate::dumps::inspect::inspect_all(&cut, 5).unwrap().problem.unwrap();
        assert!(p.contains("public.orders has no \\. end line"), "{p}");
    }
}
