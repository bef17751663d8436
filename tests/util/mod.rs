//! The one harness every integration test uses: a temporary repository, a `silo` command builder with the
//! repository, password and cache set, and deterministic data generators.
#![allow(dead_code)]

mod dumpgen;

pub use dumpgen::DumpGen;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const PASSWORD: &str = "test password";
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;
pub const EXIT_AUTH: i32 = 4;
pub const EXIT_DAMAGED: i32 = 5;
pub const EXIT_COMMAND_FAILED: i32 = 7;

pub fn silo_bin() -> &'static str {
    env!("CARGO_BIN_EXE_silo")
}

pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    /// A fresh repository with cheap argon2 parameters (tests run many commands).
    pub fn init() -> Self {
        Self::init_with(&[])
    }

    pub fn init_with(extra: &[&str]) -> Self {
        let repo = TestRepo { dir: tempfile::tempdir().expect("tempdir") };
        let mut args = vec!["init", "--kdf-memory", "64", "--kdf-iterations", "1"];
        args.extend_from_slice(extra);
        repo.ok(&args, b"");
        repo
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(silo_bin());
        c.args(args)
            .env("SILO_REPO", self.path())
            .env("SILO_PASSWORD", PASSWORD)
            .env("SILO_CACHE_DIR", self.cache())
            .env_remove("SILO_PASSWORD_FILE")
            .env("SILO_LOG", std::env::var("SILO_TEST_LOG").unwrap_or_else(|_| "warn".into()));
        c
    }

    /// Runs silo with `stdin` as standard input and returns its output.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_input(self.cmd(args), stdin)
    }

    /// Like `run`, but the command must succeed.
    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.run(args, stdin);
        assert!(out.status.success(), "silo {args:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Stores `data` as a snapshot named `name`; returns the full snapshot id.
    pub fn create(&self, name: &str, data: &[u8]) -> String {
        let out = self.ok(&["snapshot", "create", "--name", name], data);
        String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
    }

    /// `snapshot create --json` report.
    pub fn create_json(&self, name: &str, data: &[u8]) -> serde_json::Value {
        let out = self.ok(&["--json", "snapshot", "create", "--name", name], data);
        serde_json::from_slice(&out.stdout).expect("json report")
    }

    pub fn restore(&self, spec: &str) -> Vec<u8> {
        self.ok(&["snapshot", "restore", spec], b"").stdout
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_slice(&self.ok(&a, b"").stdout).expect("json output")
    }

    /// Full ids of the snapshots `snapshot list` shows, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.json(&["snapshot", "list"])
            .as_array()
            .expect("array")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_string())
            .collect()
    }

    pub fn snapshot_count(&self) -> usize {
        self.json(&["snapshot", "list"]).as_array().expect("array").len()
    }

    /// Every file of the repository with its content, to prove a command changed nothing.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        collect(&self.path(), &mut out);
        out.sort();
        out
    }

    /// Paths of the objects below `dir` (e.g. `packs`), sorted.
    pub fn objects(&self, dir: &str) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        list(&self.path().join(dir), &mut paths);
        paths.sort();
        paths
    }
}

fn list(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            list(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            let data = std::fs::read(&p).unwrap_or_default();
            out.push((p, data));
        }
    }
}

/// One xorshift64 step: deterministic pseudo-random choices (kill points, byte offsets) for the tests.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

pub fn run_with_input(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn silo");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait silo");
    writer.join().expect("writer thread");
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn dump(len: usize, seed: u64) -> Vec<u8> {
    DumpGen::new(seed).bytes(len)
}

/// Streams `len` generated bytes into `child`'s stdin from a thread; returns the BLAKE3 of what was sent.
pub fn feed_generated(child: &mut Child, len: u64, seed: u64) -> std::thread::JoinHandle<[u8; 32]> {
    let mut input = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let mut gen = DumpGen::new(seed);
        let mut hasher = blake3::Hasher::new();
        let mut sent = 0u64;
        let mut buf = Vec::with_capacity(1 << 20);
        while sent < len {
            buf.clear();
            while buf.len() < 1 << 20 {
                gen.line(&mut buf);
            }
            buf.truncate((len - sent).min(buf.len() as u64) as usize);
            hasher.update(&buf);
            if input.write_all(&buf).is_err() {
                break;
            }
            sent += buf.len() as u64;
        }
        *hasher.finalize().as_bytes()
    })
}

/// Reads all of `r`, returning its length and BLAKE3 without holding it in memory.
pub fn hash_reader(mut r: impl Read) -> (u64, [u8; 32]) {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                hasher.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading: {e}"),
        }
    }
    (n, *hasher.finalize().as_bytes())
}
