//! Where a snapshot's streams come from, apart from the pipeline that stores them (repo/write.rs): standard
//! input (cut through read-only mappings when it is a regular file: mapped.rs), a command's standard output
//! (process.rs: started without silo's secrets, in its own process group so a failing create can stop it,
//! its stderr forwarded and its tail kept for the error), or a reader (a stream copied from another
//! repository, or a test's bytes). I2 all-or-nothing: `Ending::finish` says whether the input ended cleanly.

pub mod mapped;
pub mod process;
pub mod readahead;

use crate::{Error, Result};
use silo_format::chunker::{Window, Windows};
use std::io::Read;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Source {
    Stdin,
    /// argv of a command whose standard output is the stream.
    Command(Vec<String>),
    /// A dump tool's argv (a jobs file's preset) and exactly the environment it gets (I21).
    Tool {
        argv: Vec<String>,
        env: process::ChildEnv,
    },
    /// A reader's bytes (a stream copied from another repository, a test's data), recorded with the command
    /// and exit status given here.
    Reader {
        reader: SharedReader,
        command: Option<Vec<String>>,
        exit_status: Option<i32>,
    },
}

impl Source {
    /// The command recorded in the manifest for this stream (`None`: standard input or a plain reader).
    pub fn recorded_command(&self) -> Option<Vec<String>> {
        match self {
            Source::Stdin => None,
            Source::Command(argv) | Source::Tool { argv, .. } => Some(argv.clone()),
            Source::Reader { command, .. } => command.clone(),
        }
    }

    /// A stream of `bytes`, as if piped in.
    pub fn bytes(bytes: Vec<u8>) -> Self {
        Source::Reader { reader: SharedReader::new(std::io::Cursor::new(bytes)), command: None, exit_status: None }
    }
}

/// A reader handed to exactly one stream of a create (taken on first use).
#[derive(Clone)]
pub struct SharedReader(Arc<Mutex<Option<Box<dyn Read + Send>>>>);

impl SharedReader {
    pub fn new(reader: impl Read + Send + 'static) -> Self {
        SharedReader(Arc::new(Mutex::new(Some(Box::new(reader)))))
    }

    fn take(&self) -> Option<Box<dyn Read + Send>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

impl std::fmt::Debug for SharedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedReader")
    }
}

#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: String,
    pub source: Source,
}

/// An opened input's bytes, as windows for the chunker.
pub enum InputWindows {
    Mapped(mapped::MappedFile),
    Read(readahead::ReadAhead),
}

impl Windows for InputWindows {
    fn next_window(&mut self, tail: &[u8], at: u64, block: usize) -> std::io::Result<(Window, bool)> {
        match self {
            InputWindows::Mapped(m) => m.next_window(tail, at, block),
            InputWindows::Read(r) => r.next_window(tail, at, block),
        }
    }
}

/// How an opened input ends: at end of file, or with its command's exit.
pub enum Ending {
    /// Standard input or a reader: the exit status recorded is this.
    Fixed(Option<i32>),
    Command(process::Running),
}

impl Ending {
    /// Once the windows are consumed (or the read `failed`): the exit status to record, or why the input
    /// did not end cleanly (a command that failed, or that `stop` killed because another stream failed).
    pub fn finish(self, failed: bool, stop: &process::StopSwitch) -> Result<Option<i32>> {
        match self {
            Ending::Fixed(status) => Ok(status),
            Ending::Command(running) => running.finish(failed, stop),
        }
    }
}

/// Opens stream `index`'s source. A command is started here, in its own process group registered with
/// `stop`. A piped input is read ahead on a thread of its own; `max_chunk` is the chunker's largest chunk.
pub fn open(
    index: usize,
    spec: &StreamSpec,
    stop: &process::StopSwitch,
    max_chunk: usize,
) -> Result<(InputWindows, Ending)> {
    let ahead = |reader: Box<dyn Read + Send>| {
        readahead::ReadAhead::new(reader, max_chunk)
            .map(InputWindows::Read)
            .map_err(|e| Error::io(format!("starting the reader of stream {}", spec.name), e))
    };
    match &spec.source {
        Source::Stdin => {
            let stdin = std::io::stdin();
            if let Some(file) = mapped::MappedFile::open(std::os::fd::AsFd::as_fd(&stdin)) {
                return Ok((InputWindows::Mapped(file), Ending::Fixed(None)));
            }
            enlarge_pipe(0);
            Ok((ahead(Box::new(stdin))?, Ending::Fixed(None)))
        }
        Source::Command(argv) => {
            let (running, stdout) = process::Running::start(index, argv, None, stop)?;
            Ok((ahead(Box::new(stdout))?, Ending::Command(running)))
        }
        Source::Tool { argv, env } => {
            let (running, stdout) = process::Running::start(index, argv, Some(env), stop)?;
            Ok((ahead(Box::new(stdout))?, Ending::Command(running)))
        }
        Source::Reader { reader, exit_status, .. } => {
            let reader = reader.take().ok_or_else(|| Error::Invalid(format!("stream {} read twice", spec.name)))?;
            Ok((ahead(reader)?, Ending::Fixed(*exit_status)))
        }
    }
}

/// Bytes left to read when standard input is a regular file (its size past the current offset), for a
/// progress display.
pub fn stdin_remaining() -> Option<u64> {
    use std::io::Seek;
    use std::os::fd::AsFd;
    // A duplicate shares the offset: asking where it is moves nothing.
    let mut file = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok().filter(|m| m.is_file())?;
    let at = file.stream_position().ok()?;
    Some(meta.len().saturating_sub(at))
}

/// Asks for a 1 MiB pipe buffer (F_SETPIPE_SZ), so the producer is not throttled to 64 KiB per wake-up.
/// Best effort: not a pipe, or an unprivileged limit, just leaves the default.
pub fn enlarge_pipe(fd: i32) {
    // SAFETY: fcntl on a descriptor we own (or stdin/stdout); F_SETPIPE_SZ fails harmlessly on non-pipes.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// What in a stream's command line looks like a password, if anything: `--password=…`, `-p…` glued to a
/// MySQL/MariaDB client, `PGPASSWORD=…`/`MYSQL_PWD=…` assignments, or a `scheme://user:secret@host` URL.
/// Commands are stored in the snapshot as typed (`snapshot show` prints them), so `create` warns; the
/// value itself is never repeated.
pub fn password_in_command(argv: &[String]) -> Option<&'static str> {
    let words: Vec<&str> = argv.iter().flat_map(|a| a.split_whitespace()).collect();
    let mysql_like = |w: &str| {
        let base = w.rsplit('/').next().unwrap_or(w);
        ["mysql", "mysqldump", "mariadb", "mariadb-dump", "mysqlpump"].contains(&base)
    };
    let mut after_mysql = false;
    for w in &words {
        let w = w.trim_matches(|c| c == '\'' || c == '"');
        if w.starts_with("--password=") && w.len() > "--password=".len() {
            return Some("--password=…");
        }
        if ["PGPASSWORD=", "MYSQL_PWD=", "AWS_SECRET_ACCESS_KEY="].iter().any(|p| w.starts_with(p) && w.len() > p.len())
        {
            return Some("a password in an environment assignment");
        }
        if after_mysql && w.starts_with("-p") && w.len() > 2 && !w.starts_with("--") {
            return Some("-p… (a MySQL/MariaDB password glued to -p)");
        }
        if let Some((_, rest)) = w.split_once("://") {
            if rest.split('@').next().is_some_and(|cred| rest.contains('@') && cred.contains(':')) {
                return Some("a user:password@ in a URL");
            }
        }
        if mysql_like(w) {
            after_mysql = true;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::password_in_command;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn passwords_on_command_lines_are_noticed() {
        let found = |w: &[&str]| password_in_command(&argv(w)).is_some();
        assert!(found(&["mysqldump", "-psecret", "shop"]));
        assert!(found(&["/usr/bin/mariadb-dump", "--password=secret", "shop"]));
        assert!(found(&["sh", "-c", "PGPASSWORD=secret pg_dump shop"]));
        assert!(found(&["pg_dump", "postgresql://app:secret@db/shop"]));
        assert!(found(&["sh", "-c", "mysqldump -u root -p'secret' shop | gzip"]));
        assert!(!found(&["pg_dump", "-p", "5433", "shop"]), "pg_dump's -p is a port");
        assert!(!found(&["mysqldump", "-p", "shop"]), "a bare -p prompts");
        assert!(!found(&["pg_dump", "postgresql://app@db/shop"]));
        assert!(!found(&["mysqldump", "--password", "shop"]));
        assert!(!found(&["sh", "-c", "PGPASSFILE=/etc/pgpass pg_dump shop"]));
    }
}
