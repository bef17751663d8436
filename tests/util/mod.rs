//! The one harness every integration test uses: a temporary repository, a `silo` command builder with the
//! repository, password and cache set, and deterministic data generators.
#![allow(dead_code)]

mod dumpgen;
pub mod faultproxy;
pub mod garage;
pub mod inproc;
pub mod ldap;
pub mod mail;
pub mod receiver;
pub mod services;

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

/// The binary under test: this build's, or `SILO_TEST_BIN` (to show that a new test fails on an older
/// build: `SILO_TEST_BIN=/path/to/old/silo cargo test --test NAME`). A switch of the harness, not the binary.
pub fn silo_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| std::env::var("SILO_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_silo").to_string()))
}

pub struct TestRepo {
    pub dir: tempfile::TempDir,
    /// The repository's location: `path()`, or an `s3:` prefix when SILO_TEST_BACKEND=s3.
    pub location: String,
}

/// The Garage node the whole test process shares when SILO_TEST_BACKEND=s3 (the same suites then run
/// against S3 instead of a local directory).
pub fn shared_s3() -> Option<&'static garage::Garage> {
    static GARAGE: std::sync::OnceLock<garage::Garage> = std::sync::OnceLock::new();
    if std::env::var("SILO_TEST_BACKEND").as_deref() != Ok("s3") {
        return None;
    }
    Some(GARAGE.get_or_init(|| {
        garage::Garage::start(1, 1).unwrap_or_else(|e| panic!("SILO_TEST_BACKEND=s3 but Garage did not start: {e}"))
    }))
}

/// A random hex name (S3 prefixes, database names).
pub fn random_name() -> String {
    (0..8).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

impl TestRepo {
    /// A fresh repository with cheap argon2 parameters (tests run many commands).
    pub fn init() -> Self {
        Self::init_with(&[])
    }

    /// A place for a repository, not initialised: `dir/repo`, or a fresh S3 prefix when SILO_TEST_BACKEND=s3.
    pub fn uninitialised() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = match shared_s3() {
            Some(g) => g.location(0, &random_name()),
            None => dir.path().join("repo").display().to_string(),
        };
        TestRepo { dir, location }
    }

    pub fn init_with(extra: &[&str]) -> Self {
        let repo = Self::uninitialised();
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

    /// A local repository (not yet initialised) in `dir/repo`, whatever SILO_TEST_BACKEND says.
    pub fn local_in(dir: tempfile::TempDir) -> Self {
        let location = dir.path().join("repo").display().to_string();
        TestRepo { dir, location }
    }

    pub fn is_s3(&self) -> bool {
        self.location.starts_with("s3:")
    }

    /// For tests that edit the repository's files: true (and a printed reason) when running on S3.
    pub fn skip_unless_local(&self, why: &str) -> bool {
        if self.is_s3() {
            eprintln!("SKIPPED on S3: {why}");
        }
        self.is_s3()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(silo_bin());
        if let Some(g) = shared_s3() {
            c.envs(g.env());
        }
        c.args(args)
            .env("SILO_REPO", &self.location)
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

    /// `silo snapshot restore SPEC | consumer`: both must succeed; returns the consumer's output.
    pub fn restore_into(&self, spec: &str, mut consumer: Command) -> Output {
        let mut silo = self.cmd(&["snapshot", "restore", spec]);
        let mut restore = silo.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn silo");
        let pipe = restore.stdout.take().expect("stdout");
        let out = consumer.stdin(pipe).stdout(Stdio::piped()).stderr(Stdio::piped()).output().expect("consumer");
        let restored = restore.wait_with_output().expect("wait silo");
        assert!(restored.status.success(), "silo restore {spec} failed: {}", stderr(&restored));
        assert!(out.status.success(), "{:?} failed: {}", consumer.get_program(), stderr(&out));
        out
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

    /// Paths of the objects below `dir` (e.g. `packs`), sorted: files of a local repository, object names
    /// on S3.
    pub fn objects(&self, dir: &str) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        if self.is_s3() {
            let creds = shared_s3().expect("s3").credentials();
            let backend = silo::backend::s3::S3Backend::connect(&self.location, &creds).expect("backend");
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            use silo::backend::ReadBackend;
            let found = rt.block_on(backend.list(&format!("{dir}/"))).expect("list");
            paths.extend(found.into_iter().map(|o| PathBuf::from(o.name)));
        } else {
            list(&self.path().join(dir), &mut paths);
        }
        paths.sort();
        paths
    }
}

/// Waits (up to a minute, looking every 10 ms) until `done` holds; fails naming `what` otherwise.
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_until_within(what, std::time::Duration::from_secs(60), done);
}

/// Waits up to `limit`, looking every 10 ms, until `done` holds; fails naming `what` otherwise.
pub fn wait_until_within(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "waited {} s for {what}", limit.as_secs());
        std::thread::sleep(std::time::Duration::from_millis(10));
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

/// Whether process `pid` is stopped (SIGSTOP; state `T` in /proc).
pub fn is_stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.split_whitespace().nth(2) == Some("T")
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
    assert_no_secret(&out, &cmd);
    out
}

/// Issue 18: no secret in any output. Every command the suite runs through the harness is checked: neither
/// its stdout nor its stderr holds a secret it was given (the passwords and the S3 secret key in its
/// environment), whatever the command, its exit status or its verbosity.
pub fn assert_no_secret(out: &Output, cmd: &Command) {
    const SECRET_VARIABLES: [&str; 4] =
        ["SILO_PASSWORD", "SILO_FROM_PASSWORD", "SILO_TO_PASSWORD", "AWS_SECRET_ACCESS_KEY"];
    let secrets: Vec<Vec<u8>> = cmd
        .get_envs()
        .filter(|(k, _)| SECRET_VARIABLES.iter().any(|s| k == s))
        .filter_map(|(_, v)| v.map(|v| v.as_encoded_bytes().to_vec()))
        .filter(|v| v.len() >= 6) // shorter test values ("x") would match by chance
        .collect();
    for (what, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for secret in &secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_slice());
            let args: Vec<_> = cmd.get_args().collect();
            assert!(!found, "the {what} of silo {args:?} shows a secret it was given");
        }
    }
}

/// Copies a directory tree (a pristine repository, before a fault is injected into the copy).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (p, t) = (e.path(), to.join(e.file_name()));
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
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

/// A jobs file `silo.toml` in `repo`'s directory: `[repository]` at `location` with the test password in an
/// owner-only file, then `rest` (jobs, notifiers) as written.
pub fn write_jobs_file(repo: &TestRepo, location: &str, rest: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let pw = repo.dir.path().join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).expect("write password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod password");
    let file = repo.dir.path().join("silo.toml");
    let text = format!("[repository]\nlocation = \"{location}\"\npassword_file = \"{}\"\n\n{rest}", pw.display());
    std::fs::write(&file, text).expect("write jobs file");
    file
}
