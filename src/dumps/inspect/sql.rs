//! A statement lexer for SQL dumps (pure): it follows each dialect's quoting the way its client does
//! (psql's psqlscan, the mysql client's line reader, sqlite3's `sqlite3_complete`), so text inside strings,
//! quoted identifiers, comments, dollar-quoted or `BEGIN ATOMIC` function bodies, trigger bodies and COPY data
//! is never taken for structure. What it reports:
//!
//! - `Event::Line`: a line between statements that the client, not the server, reads: a comment (`--`,
//!   MySQL's `#`), a psql meta-command (`\connect`, `\restrict`), MySQL's `DELIMITER`;
//! - `Event::Statement`: a complete statement, its first bytes, length and the rows of an INSERT (the
//!   parenthesised tuples after `VALUES` at depth 0);
//! - `Event::CopyRows` / `Event::CopyEnd`: PostgreSQL `COPY ... FROM stdin` data lines (counted in bulk,
//!   one event per piece of input) and the `\.` ending them.
//!
//! Followed: PostgreSQL `'...'` (backslash escapes only in `E'...'` or with `standard_conforming_strings`
//! off), `"..."`, `$tag$...$tag$`, nested `/* */`, `--`, and psql's rule that `;` inside `BEGIN ... END` of
//! `CREATE FUNCTION/PROCEDURE` does not end it; MySQL `'...'` and `"..."` with backslash escapes, `` `...` ``,
//! `-- `, `#`, `/* */` and the executable `/*! ... */` (read as SQL), `DELIMITER`; SQLite `'...'`, `"..."`,
//! `` `...` ``, `[...]`, comments, and a `CREATE TRIGGER` ending only at `END;`. Limits: psql meta-commands
//! are recognised between statements only (pg_dump writes them nowhere else), a `/* */` comment between
//! statements is read as the start of the next statement.

use super::lines::HEAD;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
}

/// What the lexer saw; heads are at most `HEAD` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A client-side line between statements (leading blanks dropped, no newline).
    Line(&'a [u8]),
    /// A complete statement: its first bytes (from its first non-blank byte, through its delimiter), its
    /// full length, and for an INSERT its rows.
    Statement { head: &'a [u8], len: u64, rows: u64 },
    /// Whole lines of COPY data: how many, and their bytes with their newlines.
    CopyRows { rows: u64, bytes: u64 },
    /// The `\.` line ending COPY data.
    CopyEnd,
}

/// Where the stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End<'a> {
    Clean,
    /// Inside a statement: its first bytes.
    InStatement(&'a [u8]),
    /// Inside COPY data.
    InCopy,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Between statements, skipping blanks.
    Between,
    /// The first bytes of what follows, until it is told a client line from a statement.
    Opening,
    /// A client line (comment, meta-command, DELIMITER), to its end.
    ClientLine,
    Statement,
    /// The rest of the `COPY ... FROM stdin;` line.
    CopyRest,
    Copy,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Q {
    Top,
    /// `-` seen; `--` seen (MySQL wants a blank after it); `/` seen; `/*`, `/*M` seen (MySQL).
    Dash,
    DashDash,
    Slash,
    SlashStar,
    SlashStarM,
    /// `*` inside MySQL's executable comment.
    ExecStar,
    LineComment,
    Block,
    /// Inside a quoted string or identifier closed by `close`; `esc`: backslash escapes; `bs`: the last
    /// byte was an escaping backslash.
    Quoted {
        close: u8,
        esc: bool,
        bs: bool,
    },
    /// The quote that may close it, or be doubled.
    QuoteEnd {
        close: u8,
        esc: bool,
    },
    DollarOpen,
    /// Inside `$tag$`: `m` bytes of the closing `$tag$` matched.
    Dollar {
        m: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Unknown,
    Insert,
    Routine,
    Trigger,
    Other,
}

pub struct Lexer {
    dialect: Dialect,
    mode: Mode,
    top: [bool; 256],
    /// In an INSERT's VALUES (MySQL, SQLite): 0 a byte that changes nothing, 1 `(`, 2 `)`, 3 `'`, 4 a byte
    /// the general path must see.
    values_class: [u8; 256],
    /// PostgreSQL `standard_conforming_strings` (pg_dump sets it on).
    std_strings: bool,
    delimiter: Vec<u8>,
    /// The last two bytes of the previous piece (for `E'` and `$` look-behind).
    last: [u8; 2],
    /// Opening, client-line or statement head.
    head: Vec<u8>,
    len: u64,
    // Statement state.
    q: Q,
    depth: u32,
    rows: u64,
    values: bool,
    kind: Kind,
    words: u32,
    /// The first letters of the first four words (psql's CREATE [OR REPLACE] FUNCTION test).
    firsts: [u8; 4],
    word: [u8; 10],
    word_len: usize,
    begin_depth: u32,
    /// SQLite: the last token was END.
    last_end: bool,
    block_depth: u32,
    block_prev: u8,
    exec: bool,
    dmatch: usize,
    tag: Vec<u8>,
    // COPY data.
    copy_len: u64,
    copy_first: [u8; 2],
}

/// Where `statement` goes on: at a position, or just after the statement's end.
enum Flow {
    At(usize),
    Ended(usize),
}

/// The byte `k` places before `data[i]`, reaching back into the two bytes kept from the previous piece.
fn before(data: &[u8], prev: [u8; 2], i: usize, k: usize) -> u8 {
    if i >= k {
        data[i - k]
    } else {
        prev[2 + i - k]
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80 || b == b'$'
}

impl Lexer {
    pub fn new(dialect: Dialect) -> Self {
        let mut top = [false; 256];
        let mut set = |bytes: &[u8]| bytes.iter().for_each(|&b| top[b as usize] = true);
        set(b"'\"();-/");
        match dialect {
            Dialect::Postgres => set(b"$"),
            Dialect::Mysql => set(b"`#*"),
            Dialect::Sqlite => set(b"`["),
        }
        let mut values_class = [0u8; 256];
        for (b, &t) in top.iter().enumerate() {
            values_class[b] = match b as u8 {
                b'(' => 1,
                b')' => 2,
                b'\'' => 3,
                _ => 4 * u8::from(t),
            };
        }
        Lexer {
            dialect,
            mode: Mode::Between,
            top,
            values_class,
            std_strings: true,
            delimiter: b";".to_vec(),
            last: [b'\n'; 2],
            head: Vec::with_capacity(256),
            len: 0,
            q: Q::Top,
            depth: 0,
            rows: 0,
            values: false,
            kind: Kind::Unknown,
            words: 0,
            firsts: [0; 4],
            word: [0; 10],
            word_len: 0,
            begin_depth: 0,
            last_end: false,
            block_depth: 0,
            block_prev: 0,
            exec: false,
            dmatch: 0,
            tag: Vec::new(),
            copy_len: 0,
            copy_first: [0; 2],
        }
    }

    pub fn feed(&mut self, data: &[u8], sink: &mut impl FnMut(Event)) {
        let mut i = 0;
        while i < data.len() {
            i = match self.mode {
                Mode::Between => match data[i..].iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
                    None => data.len(),
                    Some(p) => {
                        self.mode = Mode::Opening;
                        self.head.clear();
                        self.len = 0;
                        i + p
                    }
                },
                Mode::Opening => self.opening(data, i, sink),
                Mode::ClientLine => match memchr::memchr(b'\n', &data[i..]) {
                    None => {
                        self.keep(&data[i..]);
                        data.len()
                    }
                    Some(p) => {
                        self.keep(&data[i..i + p]);
                        self.client_line(sink);
                        i + p + 1
                    }
                },
                Mode::Statement => {
                    let prev = self.last;
                    self.statement(data, i, prev, sink)
                }
                Mode::CopyRest => match memchr::memchr(b'\n', &data[i..]) {
                    None => data.len(),
                    Some(p) => {
                        self.mode = Mode::Copy;
                        self.copy_len = 0;
                        i + p + 1
                    }
                },
                Mode::Copy => self.copy(data, i, sink),
            };
        }
        match data.len() {
            0 => {}
            1 => self.last = [self.last[1], data[0]],
            n => self.last = [data[n - 2], data[n - 1]],
        }
    }

    /// Where the stream ended; a client line left without its newline is reported first.
    pub fn finish(&mut self, sink: &mut impl FnMut(Event)) -> End<'_> {
        if self.mode == Mode::Opening {
            match self.decide(true) {
                Some(true) => self.mode = Mode::ClientLine,
                _ => return End::InStatement(&self.head),
            }
        }
        match self.mode {
            Mode::ClientLine => {
                self.client_line(sink);
                End::Clean
            }
            Mode::Statement => End::InStatement(&self.head),
            Mode::Copy | Mode::CopyRest => End::InCopy,
            _ => End::Clean,
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.len += bytes.len() as u64;
    }

    /// Whether the opening bytes are a client line (Some(true)), a statement (Some(false)) or not known yet.
    fn decide(&self, at_end: bool) -> Option<bool> {
        let h = &self.head;
        let first = *h.first()?;
        match (self.dialect, first) {
            (Dialect::Postgres, b'\\') | (Dialect::Mysql, b'#') => Some(true),
            (_, b'-') => match h.get(1) {
                None if !at_end => None,
                Some(b'-') if self.dialect != Dialect::Mysql => Some(true),
                Some(b'-') => match h.get(2) {
                    None if at_end => Some(true),
                    None => None,
                    Some(&c) => Some(c <= b' '),
                },
                _ => Some(false),
            },
            (Dialect::Mysql, b'/') => {
                // MariaDB's sandbox-mode line, which its client reads as a command, not a statement.
                const SANDBOX: &[u8] = b"/*M!999999\\-";
                let n = h.len().min(SANDBOX.len());
                if h[..n] != SANDBOX[..n] {
                    Some(false)
                } else if n == SANDBOX.len() {
                    Some(true)
                } else if at_end {
                    Some(false)
                } else {
                    None
                }
            }
            (Dialect::Mysql, b'd' | b'D') => {
                const WORD: &[u8] = b"delimiter";
                let n = h.len().min(WORD.len());
                if !h[..n].eq_ignore_ascii_case(&WORD[..n]) {
                    Some(false)
                } else if h.len() > WORD.len() {
                    Some(matches!(h[WORD.len()], b' ' | b'\t'))
                } else if at_end {
                    Some(false)
                } else {
                    None
                }
            }
            _ => Some(false),
        }
    }

    fn opening(&mut self, data: &[u8], mut i: usize, sink: &mut impl FnMut(Event)) -> usize {
        while i < data.len() {
            let b = data[i];
            if b == b'\n' {
                match self.decide(true) {
                    Some(true) => {
                        self.client_line(sink);
                        return i + 1;
                    }
                    _ => break,
                }
            }
            self.head.push(b);
            self.len += 1;
            i += 1;
            match self.decide(false) {
                None => continue,
                Some(true) => {
                    self.mode = Mode::ClientLine;
                    return i;
                }
                Some(false) => break,
            }
        }
        if i == data.len() && self.decide(false).is_none() {
            return i;
        }
        // A statement: replay what was gathered through the statement lexer (and, should the statement end
        // inside it, the rest through the usual modes).
        // (At most a dozen bytes are gathered before a statement is told from a client line.)
        let mut buf = [0u8; 16];
        let n = self.head.len().min(buf.len());
        buf[..n].copy_from_slice(&self.head[..n]);
        let opened = &buf[..n];
        self.start_statement();
        let end = self.statement(opened, 0, [b' '; 2], sink);
        if end < opened.len() {
            let last = self.last;
            self.feed(&opened[end..], sink);
            self.last = last;
        }
        i
    }

    fn client_line(&mut self, sink: &mut impl FnMut(Event)) {
        let line = std::mem::take(&mut self.head);
        let line_trimmed = super::trim_end(&line);
        if self.dialect == Dialect::Mysql
            && line_trimmed.len() > 9
            && line_trimmed[..9].eq_ignore_ascii_case(b"delimiter")
        {
            let rest = line_trimmed[9..].trim_ascii_start();
            let d = rest.split(|b| b.is_ascii_whitespace()).next().unwrap_or(b";");
            if !d.is_empty() {
                self.delimiter = d.to_vec();
            }
        }
        sink(Event::Line(line_trimmed));
        self.head = line;
        self.head.clear();
        self.len = 0;
        self.mode = Mode::Between;
    }

    fn start_statement(&mut self) {
        self.mode = Mode::Statement;
        self.head.clear();
        self.len = 0;
        self.q = Q::Top;
        self.depth = 0;
        self.rows = 0;
        self.values = false;
        self.kind = Kind::Unknown;
        self.words = 0;
        self.firsts = [0; 4];
        self.word_len = 0;
        self.begin_depth = 0;
        self.last_end = false;
        self.exec = false;
        self.dmatch = 0;
    }

    /// Words are followed at depth 0 until the statement's kind no longer needs them.
    fn tracking(&self) -> bool {
        self.depth == 0
            && match self.kind {
                Kind::Unknown | Kind::Routine | Kind::Trigger => true,
                Kind::Insert => !self.values,
                Kind::Other => false,
            }
    }

    fn end_word(&mut self) {
        if self.word_len == 0 {
            return;
        }
        let n = self.word_len.min(self.word.len());
        let w = &self.word[..n];
        let long = self.word_len > self.word.len();
        self.word_len = 0;
        if self.words < 4 {
            self.firsts[self.words as usize] = w[0];
        }
        self.words += 1;
        let is = |s: &[u8]| !long && w == s;
        if self.kind == Kind::Unknown {
            match (self.words, self.dialect) {
                (1, _) if is(b"insert") => self.kind = Kind::Insert,
                (1, Dialect::Mysql) if is(b"replace") => self.kind = Kind::Insert,
                (1, _) if !is(b"create") => self.kind = Kind::Other,
                (2, Dialect::Postgres) if is(b"function") || is(b"procedure") => self.kind = Kind::Routine,
                (2 | 3, Dialect::Postgres) if is(b"or") || is(b"replace") => {}
                (4, Dialect::Postgres) if (is(b"function") || is(b"procedure")) && self.firsts[1] == b'o' => {
                    self.kind = Kind::Routine
                }
                (2, Dialect::Sqlite) if is(b"temp") || is(b"temporary") => {}
                (2 | 3, Dialect::Sqlite) if is(b"trigger") => self.kind = Kind::Trigger,
                (1, _) => {}
                _ => self.kind = Kind::Other,
            }
            return;
        }
        match self.kind {
            Kind::Insert if is(b"values") => self.values = true,
            Kind::Routine => {
                if is(b"begin") {
                    self.begin_depth += 1;
                } else if is(b"case") {
                    if self.begin_depth >= 1 {
                        self.begin_depth += 1;
                    }
                } else if is(b"end") {
                    self.begin_depth = self.begin_depth.saturating_sub(1);
                }
            }
            Kind::Trigger => self.last_end = is(b"end"),
            _ => {}
        }
    }

    /// Follows a statement from `data[i]`; returns where it stopped (the end of `data`, or just after the
    /// statement's delimiter, then in `Between` or `CopyRest`). One method per kind of place in the text: the
    /// statement's top level, comments, quoted text, dollar quotes.
    fn statement(&mut self, data: &[u8], start: usize, prev: [u8; 2], sink: &mut impl FnMut(Event)) -> usize {
        let mut i = start;
        let slow_delim = self.delimiter != b";";
        while i < data.len() {
            let next = match self.q {
                Q::Top => self.top(data, i, prev, slow_delim),
                Q::Dash | Q::DashDash | Q::Slash | Q::SlashStar | Q::SlashStarM | Q::ExecStar => {
                    Flow::At(self.comment_open(data[i], i))
                }
                Q::LineComment | Q::Block => Flow::At(self.comment(data, i)),
                Q::Quoted { .. } | Q::QuoteEnd { .. } => Flow::At(self.quoted(data, i)),
                Q::DollarOpen | Q::Dollar { .. } => Flow::At(self.dollar(data, i)),
            };
            match next {
                Flow::At(at) => i = at,
                Flow::Ended(at) => {
                    self.end_statement(&data[start..at], sink);
                    return at;
                }
            }
        }
        self.keep(&data[start..]);
        i
    }

    /// At the statement's top level: skips what cannot change the state, collects words, watches the
    /// delimiter, and opens quotes, comments and parentheses.
    fn top(&mut self, data: &[u8], mut i: usize, prev: [u8; 2], slow_delim: bool) -> Flow {
        let b = data[i];
        if self.word_len > 0 && !is_ident(b) {
            self.end_word();
        }
        if !slow_delim && !self.tracking() {
            // Skip what cannot change the state.
            let skip = data[i..].iter().position(|&c| self.top[c as usize]).unwrap_or(data.len() - i);
            if skip > 0 {
                self.dmatch = 0;
                return Flow::At(i + skip);
            }
        }
        if !slow_delim && self.values && self.kind == Kind::Insert && self.word_len == 0 {
            let at = self.values_run(data, i);
            if at != i {
                return Flow::At(at);
            }
        }
        if slow_delim {
            if b == self.delimiter[self.dmatch] {
                self.dmatch += 1;
                if self.dmatch == self.delimiter.len() {
                    return Flow::Ended(i + 1);
                }
            } else {
                self.dmatch = usize::from(b == self.delimiter[0]);
            }
        }
        if self.tracking() && is_ident(b) && !(b == b'$' && self.word_len == 0) {
            // The whole run of identifier bytes at once.
            let run = data[i..].iter().position(|&c| !is_ident(c)).unwrap_or(data.len() - i);
            for &c in &data[i..i + run] {
                if self.word_len < self.word.len() {
                    self.word[self.word_len] = c.to_ascii_lowercase();
                }
                self.word_len += 1;
            }
            return Flow::At(i + run);
        }
        if self.kind == Kind::Trigger && !b.is_ascii_whitespace() && b != b';' {
            self.last_end = false;
        }
        let ended = self.top_byte(data, i, prev, slow_delim);
        i += 1;
        if ended {
            Flow::Ended(i)
        } else {
            Flow::At(i)
        }
    }

    /// The rows of an INSERT's `VALUES` in one tight loop: parentheses counted, MySQL and SQLite strings
    /// passed with one search each, uninteresting bytes skipped; returns where a byte needs the general
    /// path (a delimiter, a comment, another quote, PostgreSQL's strings) or where `data` ends inside a
    /// string (its state kept). A loop turn per row instead of a dozen state transitions: the lexer was
    /// most of validation's cost on an unchanged re-run of a mysqldump.
    fn values_run(&mut self, data: &[u8], mut i: usize) -> usize {
        // PostgreSQL's strings are left to the general path: their escaping depends on what precedes them.
        let esc = match self.dialect {
            Dialect::Mysql => true,
            Dialect::Sqlite => false,
            Dialect::Postgres => return self.values_parens(data, i),
        };
        // Depth and rows in registers for the loop, written back wherever it leaves.
        let (mut depth, mut rows) = (self.depth, self.rows);
        let n = data.len();
        let at = loop {
            // Skip what is neither a parenthesis, a quote nor a byte the general path must see.
            while i < n && self.values_class[data[i] as usize] == 0 {
                i += 1;
            }
            if i == n {
                break n;
            }
            match self.values_class[data[i] as usize] {
                1 => {
                    rows += u64::from(depth == 0);
                    depth += 1;
                    i += 1;
                }
                2 => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                3 => match self.string_end(data, i + 1, esc) {
                    Some(end) => i = end,
                    None => break n,
                },
                _ => break i,
            }
        };
        (self.depth, self.rows) = (depth, rows);
        at
    }

    /// PostgreSQL's VALUES: parentheses counted, anything else for the general path.
    fn values_parens(&mut self, data: &[u8], mut i: usize) -> usize {
        while i < data.len() {
            match data[i] {
                b'(' => {
                    if self.depth == 0 {
                        self.rows += 1;
                    }
                    self.depth += 1;
                }
                b')' => self.depth = self.depth.saturating_sub(1),
                c if self.top[c as usize] => return i,
                _ => {}
            }
            i += 1;
        }
        i
    }

    /// From just inside a `'` string at `i`: the position after its closing quote, or None when `data`
    /// ends first, with the string's state kept in `q` as `quoted` would leave it.
    fn string_end(&mut self, data: &[u8], mut i: usize, esc: bool) -> Option<usize> {
        loop {
            let found = if esc { memchr::memchr2(b'\'', b'\\', &data[i..]) } else { memchr::memchr(b'\'', &data[i..]) };
            let Some(p) = found else {
                self.q = Q::Quoted { close: b'\'', esc, bs: false };
                return None;
            };
            i += p;
            if data[i] == b'\\' {
                if i + 1 >= data.len() {
                    self.q = Q::Quoted { close: b'\'', esc, bs: true };
                    return None;
                }
                i += 2;
                continue;
            }
            // A closing quote, or the first of a doubled one.
            match data.get(i + 1) {
                None => {
                    self.q = Q::QuoteEnd { close: b'\'', esc };
                    return None;
                }
                Some(b'\'') => i += 2,
                Some(_) => return Some(i + 1),
            }
        }
    }

    /// A byte at the top level that is not part of a word; returns whether it ends the statement.
    fn top_byte(&mut self, data: &[u8], i: usize, prev: [u8; 2], slow_delim: bool) -> bool {
        let before = |k: usize| before(data, prev, i, k);
        match data[i] {
            b'\'' => {
                let esc = match self.dialect {
                    Dialect::Mysql => true,
                    Dialect::Sqlite => false,
                    Dialect::Postgres => {
                        !self.std_strings || (matches!(before(1), b'E' | b'e') && !is_ident(before(2)))
                    }
                };
                self.q = Q::Quoted { close: b'\'', esc, bs: false };
            }
            b'"' => self.q = Q::Quoted { close: b'"', esc: self.dialect == Dialect::Mysql, bs: false },
            b'`' if self.dialect != Dialect::Postgres => self.q = Q::Quoted { close: b'`', esc: false, bs: false },
            b'[' if self.dialect == Dialect::Sqlite => self.q = Q::Quoted { close: b']', esc: false, bs: false },
            b'(' => {
                if self.depth == 0 && self.values {
                    self.rows += 1;
                }
                self.depth += 1;
            }
            b')' => self.depth = self.depth.saturating_sub(1),
            b';' if !slow_delim => {
                return match self.dialect {
                    Dialect::Postgres => self.depth == 0 && self.begin_depth == 0,
                    Dialect::Mysql => true,
                    Dialect::Sqlite => self.kind != Kind::Trigger || self.last_end,
                };
            }
            b'-' => self.q = Q::Dash,
            b'/' => self.q = Q::Slash,
            b'#' if self.dialect == Dialect::Mysql => self.q = Q::LineComment,
            b'*' if self.dialect == Dialect::Mysql && self.exec => self.q = Q::ExecStar,
            b'$' if self.dialect == Dialect::Postgres && !is_ident(before(1)) => {
                self.tag.clear();
                self.tag.push(b'$');
                self.q = Q::DollarOpen;
            }
            _ => {}
        }
        false
    }

    /// The byte after a `-`, `/`, `/*`, `/*M` or MySQL's executable comment's `*`: whether a comment opens
    /// (or closes). Returns where to go on.
    fn comment_open(&mut self, b: u8, mut i: usize) -> usize {
        match self.q {
            Q::Dash => {
                self.q = Q::Top;
                if b == b'-' {
                    self.q = if self.dialect == Dialect::Mysql { Q::DashDash } else { Q::LineComment };
                    i += 1;
                }
            }
            Q::DashDash => {
                self.q = Q::Top;
                if b <= b' ' {
                    self.q = Q::LineComment;
                }
            }
            Q::Slash => {
                self.q = Q::Top;
                if b == b'*' {
                    i += 1;
                    self.block_depth = 1;
                    self.block_prev = 0;
                    self.q = if self.dialect == Dialect::Mysql { Q::SlashStar } else { Q::Block };
                }
            }
            Q::SlashStar | Q::SlashStarM => {
                let m = self.q == Q::SlashStar && b == b'M';
                self.q = Q::Block;
                if b == b'!' {
                    self.exec = true;
                    self.q = Q::Top;
                    i += 1;
                } else if m {
                    self.q = Q::SlashStarM;
                    i += 1;
                }
            }
            Q::ExecStar => {
                self.q = Q::Top;
                if b == b'/' {
                    self.exec = false;
                    i += 1;
                }
            }
            _ => {}
        }
        i
    }

    /// Inside a line or block comment (PostgreSQL's nest).
    fn comment(&mut self, data: &[u8], mut i: usize) -> usize {
        if self.q == Q::LineComment {
            return match memchr::memchr(b'\n', &data[i..]) {
                None => data.len(),
                Some(p) => {
                    self.q = Q::Top;
                    i + p + 1
                }
            };
        }
        let Some(p) = memchr::memchr2(b'*', b'/', &data[i..]) else {
            self.block_prev = 0;
            return data.len();
        };
        if p > 0 {
            self.block_prev = 0;
        }
        i += p;
        let c = data[i];
        i += 1;
        if c == b'/' && self.block_prev == b'*' {
            self.block_depth -= 1;
            self.block_prev = 0;
            if self.block_depth == 0 {
                self.q = Q::Top;
            }
        } else if c == b'*' && self.block_prev == b'/' && self.dialect == Dialect::Postgres {
            self.block_depth += 1;
            self.block_prev = 0;
        } else {
            self.block_prev = c;
        }
        i
    }

    /// Inside quotes (with backslash escapes where the dialect has them), or just after a closing quote (a
    /// doubled quote goes on).
    fn quoted(&mut self, data: &[u8], mut i: usize) -> usize {
        match self.q {
            Q::Quoted { close, esc, bs } => {
                if bs {
                    self.q = Q::Quoted { close, esc, bs: false };
                    return i + 1;
                }
                let found =
                    if esc { memchr::memchr2(close, b'\\', &data[i..]) } else { memchr::memchr(close, &data[i..]) };
                match found {
                    None => i = data.len(),
                    Some(p) => {
                        i += p + 1;
                        self.q = if data[i - 1] == close {
                            Q::QuoteEnd { close, esc }
                        } else {
                            Q::Quoted { close, esc, bs: true }
                        };
                    }
                }
            }
            Q::QuoteEnd { close, esc } => {
                if data[i] == close && close != b']' {
                    self.q = Q::Quoted { close, esc, bs: false };
                    i += 1;
                } else {
                    self.q = Q::Top;
                }
            }
            _ => {}
        }
        i
    }

    /// PostgreSQL's dollar quotes: the opening tag, then the text up to the same tag.
    fn dollar(&mut self, data: &[u8], mut i: usize) -> usize {
        let Q::Dollar { mut m } = self.q else {
            let b = data[i];
            if b == b'$' {
                self.tag.push(b'$');
                self.q = Q::Dollar { m: 0 };
                i += 1;
            } else if is_ident(b) && !(self.tag.len() == 1 && b.is_ascii_digit()) {
                self.tag.push(b);
                i += 1;
            } else {
                self.q = Q::Top;
            }
            return i;
        };
        while i < data.len() {
            if m == 0 {
                match memchr::memchr(b'$', &data[i..]) {
                    None => {
                        i = data.len();
                        break;
                    }
                    Some(p) => {
                        i += p + 1;
                        m = 1;
                    }
                }
            } else {
                let c = data[i];
                i += 1;
                if c == self.tag[m] {
                    m += 1;
                    if m == self.tag.len() {
                        m = usize::MAX;
                        break;
                    }
                } else {
                    m = usize::from(c == b'$');
                }
            }
        }
        self.q = if m == usize::MAX { Q::Top } else { Q::Dollar { m } };
        i
    }

    fn end_statement(&mut self, tail: &[u8], sink: &mut impl FnMut(Event)) {
        self.keep(tail);
        self.end_word();
        let head = &self.head;
        // (A COPY whose column list runs past the head is pg_dump's `... FROM stdin;`: it writes no other.)
        let copy = self.dialect == Dialect::Postgres && starts_with_word(head, b"copy") && {
            let t = super::trim_end(head);
            self.len > head.len() as u64 || (t.len() >= 11 && t[t.len() - 11..].eq_ignore_ascii_case(b"from stdin;"))
        };
        if self.dialect == Dialect::Postgres && starts_with_word(head, b"set") {
            let text = String::from_utf8_lossy(head).to_ascii_lowercase().replace(' ', "");
            if text.starts_with("setstandard_conforming_strings=off") {
                self.std_strings = false;
            } else if text.starts_with("setstandard_conforming_strings=on") {
                self.std_strings = true;
            }
        }
        sink(Event::Statement { head, len: self.len, rows: self.rows });
        self.head.clear();
        self.len = 0;
        self.mode = if copy { Mode::CopyRest } else { Mode::Between };
    }

    /// COPY data from `data[i]`: the line in progress finished, then every whole line up to the end line
    /// `\.` counted at once (the end line found with one search, the newlines before it counted in bulk): a
    /// row is ~100 bytes, and a search and an event per row were most of a plain dump's validation cost.
    fn copy(&mut self, data: &[u8], i: usize, sink: &mut impl FnMut(Event)) -> usize {
        let data_i = &data[i..];
        let Some(first) = memchr::memchr(b'\n', data_i) else {
            self.copy_part(data_i);
            return data.len();
        };
        self.copy_part(&data_i[..first]);
        let len = std::mem::take(&mut self.copy_len);
        if len == 2 && self.copy_first == *b"\\." {
            sink(Event::CopyEnd);
            self.mode = Mode::Between;
            return i + first + 1;
        }
        // From here every line starts just after a newline, so the end line is "\n\\.\n".
        let rest = &data_i[first..];
        let (whole, end) = match memchr::memmem::find(rest, b"\n\\.\n") {
            Some(at) => (at, true),
            None => (memchr::memrchr(b'\n', rest).unwrap_or(0), false),
        };
        let rows = 1 + super::lines::newlines(&rest[1..=whole]);
        sink(Event::CopyRows { rows, bytes: len + 1 + whole as u64 });
        if end {
            sink(Event::CopyEnd);
            self.mode = Mode::Between;
            return i + first + whole + 4;
        }
        self.copy_part(&rest[whole + 1..]);
        data.len()
    }

    /// Part of the COPY line in progress: its length, and its first two bytes (to tell `\.` from a row).
    fn copy_part(&mut self, part: &[u8]) {
        let have = self.copy_len.min(2) as usize;
        for (k, &b) in part.iter().take(2 - have).enumerate() {
            self.copy_first[have + k] = b;
        }
        self.copy_len += part.len() as u64;
    }
}

/// Watches SQL on its way into a loader (restore-database) for what would leave the database it loads
/// into: a psql `\connect`/`\c` between statements, `CREATE DATABASE`, MySQL's `USE`. Only statements and
/// client lines count, never data (a COPY row or a string that begins `CREATE DATABASE `).
pub struct SwitchWatch {
    lexer: Lexer,
    found: Option<String>,
}

impl SwitchWatch {
    pub fn new(dialect: Dialect) -> Self {
        SwitchWatch { lexer: Lexer::new(dialect), found: None }
    }

    /// Follows `data`; the first statement or command that switches database, once seen (the caller
    /// stops before passing on the piece that completes it).
    pub fn feed(&mut self, data: &[u8]) -> Option<&str> {
        if self.found.is_none() {
            let postgres = self.lexer.dialect == Dialect::Postgres;
            let found = &mut self.found;
            self.lexer.feed(data, &mut |e| {
                let head = match e {
                    Event::Line(h)
                        if postgres
                            && (h == b"\\c" || starts_with_word(h, b"\\c") || starts_with_word(h, b"\\connect")) =>
                    {
                        h
                    }
                    Event::Statement { head, .. } if switches(head, postgres) => head,
                    _ => return,
                };
                if found.is_none() {
                    *found = Some(super::shown(&head[..head.len().min(80)]));
                }
            });
        }
        self.found.as_deref()
    }
}

fn switches(head: &[u8], postgres: bool) -> bool {
    if !postgres && starts_with_word(head, b"use") {
        return true;
    }
    starts_with_word(head, b"create") && {
        let rest = head[6..].trim_ascii_start();
        starts_with_word(rest, b"database") || (!postgres && starts_with_word(rest, b"schema"))
    }
}

/// Whether `head` starts with `word` (any case) followed by a blank.
pub(super) fn starts_with_word(head: &[u8], word: &[u8]) -> bool {
    head.len() > word.len() && head[..word.len()].eq_ignore_ascii_case(word) && head[word.len()].is_ascii_whitespace()
}

#[cfg(test)]
mod tests {
    use super::super::inspect_all;

    fn rows(dump: &str) -> Vec<(String, Option<u64>)> {
        for piece in [1, 2, 3, 7, 64, 1 << 20] {
            let v = inspect_all(dump.as_bytes(), piece).unwrap();
            assert_eq!(v.problem, None, "pieces of {piece}");
        }
        let v = inspect_all(dump.as_bytes(), 5).unwrap();
        v.record.tables.iter().map(|t| (t.name.clone(), t.rows)).collect()
    }

    fn names(t: &[(&str, u64)]) -> Vec<(String, Option<u64>)> {
        t.iter().map(|(n, r)| (n.to_string(), Some(*r))).collect()
    }

    const PG_HEAD: &str =
        "--\n-- PostgreSQL database dump\n--\n\n\\restrict K1\n\nSET standard_conforming_strings = on;\n";
    const PG_TAIL: &str = "\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict K1\n\n";

    #[test]
    fn postgres_strings_and_bodies_are_not_structure() {
        let body = "INSERT INTO public.t VALUES (1, 'how-to:\nCOPY public.x (a) FROM stdin;\n\\restrict X\n\\.\n');\n\
INSERT INTO public.t VALUES\n\t(2, E'it\\'s\n-- PostgreSQL database dump complete\n--\n'),\n\t(3, 'a''b (c'), (4, $$x$$);\n\
CREATE FUNCTION public.f() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $_$\nBEGIN\n\
INSERT INTO log VALUES (1);\nCOPY t FROM '/dev/null';\nRETURN NEW; END $_$;\n\
CREATE FUNCTION public.g() RETURNS void\n    LANGUAGE sql\n    BEGIN ATOMIC\n\
INSERT INTO log VALUES (2);\nCOPY t FROM '/dev/null';\nEND;\n\
CREATE TABLE public.\"a;b\" (\"x\"\"y\" text DEFAULT '\n-- x\n' /* ; /* nested; */ ; */);\n\
COPY public.u (a) FROM stdin;\nCREATE DATABASE x\n\\.\n";
        let dump = format!("{PG_HEAD}{body}{PG_TAIL}");
        assert_eq!(rows(&dump), names(&[("public.t", 4), ("public.u", 1)]));
        // Cut inside a string or body, the dump is refused even where its last lines look like a trailer.
        let inside = dump.find("--\n'),").unwrap() + 3;
        let p = inspect_all(&dump.as_bytes()[..inside], 9).unwrap().problem.unwrap();
        assert!(p.contains("inside a statement"), "{p}");
        for cut in 16..dump.len() - 2 {
            assert!(inspect_all(&dump.as_bytes()[..cut], 13).unwrap().problem.is_some(), "cut at {cut}");
        }
    }

    #[test]
    fn a_copy_with_a_column_list_longer_than_a_head_starts_data() {
        let cols: Vec<String> = (0..800).map(|i| format!("\"column number {i}\"")).collect();
        let dump = format!("{PG_HEAD}COPY public.wide ({}) FROM stdin;\n1\t'\n2\t\"\n\\.\n{PG_TAIL}", cols.join(", "));
        assert_eq!(rows(&dump), names(&[("public.wide", 2)]));
    }

    #[test]
    fn pg_dumpall_counts_only_real_openings() {
        let inner = format!("{PG_HEAD}INSERT INTO public.t VALUES (1, '\n-- PostgreSQL database dump\n');\n{PG_TAIL}");
        let all = format!(
            "--\n-- PostgreSQL database cluster dump\n--\n\n\\connect shop\n\n{inner}\n--\n-- PostgreSQL database \
             cluster dump complete\n--\n\n"
        );
        let v = inspect_all(all.as_bytes(), 11).unwrap();
        assert_eq!((v.problem, v.record.entries), (None, 1));
    }

    #[test]
    fn mysql_bodies_backquotes_and_escapes() {
        let dump = "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n\
CREATE TABLE `my table` (\n  `a` text\n);\n\
INSERT INTO `my table` VALUES (1,'x\\'\\n(y'),(2,\"a\\\"b;\"),(3,'-- Dump completed');\n\
DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER tr AFTER INSERT ON `my table` FOR EACH ROW BEGIN\n\
INSERT INTO log VALUES (NEW.a);\nEND */;;\nCREATE PROCEDURE p()\nBEGIN\nINSERT INTO log VALUES (1);\nEND ;;\n\
DELIMITER ;\n-- Dump completed on 2026-12-02  4:15:28\n";
        assert_eq!(rows(dump), names(&[("my table", 3)]));
        let cut = &dump[..dump.find("INSERT INTO log VALUES (1)").unwrap()];
        assert!(inspect_all(cut.as_bytes(), 3).unwrap().problem.is_some());
    }

    #[test]
    fn only_statements_switch_database() {
        let mut w = super::SwitchWatch::new(super::Dialect::Postgres);
        assert_eq!(w.feed(b"COPY public.audit (what) FROM stdin;\nCREATE DATABASE x\n\\.\n"), None);
        assert_eq!(w.feed(b"INSERT INTO t VALUES ('\n\\connect other\n');\n"), None);
        assert_eq!(w.feed(b"\\connect other\n"), Some("\\connect other"));
        let mut w = super::SwitchWatch::new(super::Dialect::Postgres);
        assert!(w.feed(b"CREATE DATABASE shop WITH TEMPLATE = template0;\n").is_some());
        let mut w = super::SwitchWatch::new(super::Dialect::Mysql);
        assert_eq!(w.feed(b"INSERT INTO `a` VALUES ('x\nUSE `y`;\n');\n"), None);
        assert!(w.feed(b"USE `y`;\n").is_some());
    }

    #[test]
    fn sqlite_trigger_bodies_are_not_rows() {
        let dump = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(a);\nCREATE TABLE log(x);\n\
INSERT INTO t VALUES('a\nINSERT INTO log VALUES(9);\nCOMMIT;');\n\
CREATE TRIGGER tr AFTER INSERT ON t BEGIN\nINSERT INTO log VALUES (new.a);\nEND;\n\
CREATE TABLE [we ird](x);\nINSERT INTO [we ird] VALUES(1);\nCOMMIT;\n";
        assert_eq!(rows(dump), names(&[("t", 1), ("log", 0), ("we ird", 1)]));
    }
}
