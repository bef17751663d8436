//! Commands silo starts (stream producers, drill consumers): without silo's secrets in their environment
//! (a `pg_dump` or a shell has no business reading the repository password), in their own process group
//! so a failing create stops a whole `a | b` pipeline at once (I9), their stderr forwarded with its tail
//! kept for the error message, and their end described in one way (`describe_status`).
//!
//! I21 children get an allow-listed environment: `ChildEnv` builds a child's environment from a list (never
//! a copy of silo's); `silo run` confines every command it starts (`confine_children`), and a stream of a
//! preset gets exactly what its tool reads (`Source::Tool`). Without confinement (`snapshot create -- CMD`,
//! typed by the user) a child keeps the caller's environment minus silo's own secrets (I12).

use crate::{Error, Result};
use crossbeam_channel::{bounded, Receiver};
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Environment variables that hold silo's secrets (docs/usage.md): the passwords and the S3 credential's
/// secret half; removed from every child's environment, a command typed after `--` included.
pub const SECRET_VARIABLES: [&str; 5] =
    ["SILO_PASSWORD", "SILO_FROM_PASSWORD", "SILO_TO_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// More environment variables that hold secrets: those a jobs file names (`password_env`).
static MORE_SECRET_VARIABLES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps the environment variable `name` (a secret) from every command silo starts from now on.
pub fn add_secret_variable(name: &str) {
    let mut more = MORE_SECRET_VARIABLES.lock().unwrap_or_else(|p| p.into_inner());
    if !more.iter().any(|n| n == name) {
        more.push(name.to_string());
    }
}

/// The umask silo's caller had (silo itself runs with 077), for the commands silo starts; `u32::MAX` while
/// unset (a library user that changed nothing).
static CHILD_UMASK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// Remembers the caller's umask: commands silo starts get it back (a `pg_dump -f` makes files as the
/// caller expects).
pub fn set_child_umask(mask: libc::mode_t) {
    CHILD_UMASK.store(mask, Ordering::SeqCst);
}

/// Whether `name` holds one of silo's secrets (docs/usage.md, or a name the jobs file gave).
fn is_secret(name: &str) -> bool {
    SECRET_VARIABLES.contains(&name)
        || MORE_SECRET_VARIABLES.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|n| n == name)
}

/// A child's environment, built from an allow-list (I21): the variables every program needs (`BASE`,
/// `LC_*`), those its tool reads (`PG*` for PostgreSQL's, `MYSQL_*`/`MARIADB_*` for MariaDB's,
/// `REDISCLI_AUTH` for redis-cli) and those named explicitly, with the values silo's own environment has.
/// silo's secrets are never on it, even when named. `apply` (or `command_with`) gives a command exactly
/// this environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildEnv {
    names: std::collections::BTreeSet<String>,
    prefixes: std::collections::BTreeSet<String>,
}

impl ChildEnv {
    /// What any program may need to run as the caller expects.
    pub const BASE: [&'static str; 10] =
        ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "LANG", "LANGUAGE", "TERM"];

    /// `BASE` and the locale's `LC_*`.
    pub fn base() -> Self {
        let mut env = ChildEnv::default();
        env.names.extend(Self::BASE.iter().map(|n| n.to_string()));
        env.prefixes.insert("LC_".into());
        env
    }

    /// PostgreSQL's client tools (psql, pg_dump, pg_dumpall, pg_restore): `PG*` (PGHOST, PGPASSFILE, ...).
    pub fn postgres(mut self) -> Self {
        self.prefixes.insert("PG".into());
        self
    }

    /// MariaDB's/MySQL's client tools: `MYSQL_*` (MYSQL_HOST, MYSQL_TCP_PORT, MYSQL_PWD, ...), `MARIADB_*`.
    pub fn mariadb(mut self) -> Self {
        self.prefixes.extend(["MYSQL_".to_string(), "MARIADB_".to_string()]);
        self
    }

    /// redis-cli: `REDISCLI_AUTH`.
    pub fn redis(mut self) -> Self {
        self.names.insert("REDISCLI_AUTH".into());
        self
    }

    /// And these variables by name (a jobs file's `env = [...]`).
    pub fn with_names<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.names.extend(names.into_iter().map(|n| n.as_ref().to_string()));
        self
    }

    /// Everything `other` allows too.
    pub fn union(mut self, other: &ChildEnv) -> Self {
        self.names.extend(other.names.iter().cloned());
        self.prefixes.extend(other.prefixes.iter().cloned());
        self
    }

    /// Whether a variable of this name may pass.
    pub fn allows(&self, name: &str) -> bool {
        !is_secret(name) && (self.names.contains(name) || self.prefixes.iter().any(|p| name.starts_with(p.as_str())))
    }

    /// The variables of silo's environment that pass, with their values.
    pub fn vars(&self) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(|k| self.allows(k))).collect()
    }

    /// Gives `c` exactly this environment (what was set on it before is dropped).
    pub fn apply(&self, c: &mut std::process::Command) {
        c.env_clear().envs(self.vars());
    }
}

/// The environment of every command silo starts from now on (`silo run`), when set.
static CONFINED: Mutex<Option<ChildEnv>> = Mutex::new(None);

/// From now on, every command silo starts through `command` gets `env` and nothing else (I21).
pub fn confine_children(env: ChildEnv) {
    *CONFINED.lock().unwrap_or_else(|p| p.into_inner()) = Some(env);
}

/// `command(program)` with exactly the environment `env` allows.
pub fn command_with(program: &str, env: &ChildEnv) -> std::process::Command {
    let mut c = command(program);
    env.apply(&mut c);
    c
}

/// `std::process::Command::new(program)` without silo's secrets in its environment (confined to the
/// allow-list when `confine_children` set one), with the caller's umask.
pub fn command(program: &str) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(program);
    match CONFINED.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(env) => env.apply(&mut c),
        None => {
            for name in SECRET_VARIABLES {
                c.env_remove(name);
            }
            for name in MORE_SECRET_VARIABLES.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                c.env_remove(name);
            }
        }
    }
    let mask = CHILD_UMASK.load(Ordering::SeqCst);
    if mask != u32::MAX {
        // SAFETY: umask(2) is async-signal-safe; it is all the closure does between fork and exec.
        unsafe {
            c.pre_exec(move || {
                libc::umask(mask);
                Ok(())
            });
        }
    }
    c
}

/// How a command ended, as messages say it: "exited with status 2", "was killed by signal 9".
pub fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_string(),
    }
}

/// A create's stop switch: once any part fails, every other stream stops — readers at their next chunk,
/// and the commands silo runs at once (their whole process group is killed, so `a | b` pipelines inside a
/// `--stream` end too, and a blocked reader sees end of file).
#[derive(Default)]
pub struct StopSwitch {
    flag: AtomicBool,
    /// Process group of each running stream command, by stream index.
    groups: Mutex<BTreeMap<usize, i32>>,
}

impl StopSwitch {
    pub fn set(&self) {
        if !self.flag.swap(true, Ordering::SeqCst) {
            for pgid in self.groups().values() {
                // SAFETY: kill(2) on a process group we created and have not reaped yet.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, i32>> {
        self.groups.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a started command; if the create already failed, kills it at once.
    fn register(&self, index: usize, pid: u32) {
        let mut groups = self.groups();
        groups.insert(index, pid as i32);
        if self.is_set() {
            // SAFETY: as in `set`.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }

    /// Called before the command is reaped, so its process group id cannot be reused while registered.
    fn unregister(&self, index: usize) {
        self.groups().remove(&index);
    }
}

/// A stream's command, running.
pub struct Running {
    index: usize,
    shown: String,
    child: std::process::Child,
    tail: StderrTail,
}

impl Running {
    /// Starts `argv` with its stdout piped to silo, registered with `stop`; returns it and its stdout.
    /// `env`: exactly the environment it gets (else `command`'s).
    pub fn start(
        index: usize,
        argv: &[String],
        env: Option<&ChildEnv>,
        stop: &StopSwitch,
    ) -> Result<(Running, std::process::ChildStdout)> {
        let shown = argv.join(" ");
        let (program, args) = argv.split_first().ok_or_else(|| Error::Invalid("empty command".into()))?;
        use std::os::unix::process::CommandExt;
        let mut child = env
            .map_or_else(|| command(program), |env| command_with(program, env))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io(format!("starting command `{shown}`"), e))?;
        stop.register(index, child.id());
        let stdout = child.stdout.take().ok_or_else(|| Error::Invalid("child has no stdout".into()))?;
        let stderr = child.stderr.take().ok_or_else(|| Error::Invalid("child has no stderr".into()))?;
        {
            use std::os::fd::AsRawFd;
            super::enlarge_pipe(stdout.as_raw_fd());
        }
        let tail = StderrTail::forward(stderr);
        Ok((Running { index, shown, child, tail }, stdout))
    }

    /// Waits for the command (killing it first when reading its output `failed`): its exit status, or
    /// `CommandFailed` with the tail of its stderr, or `Aborted` when `stop` killed it for another stream.
    pub fn finish(mut self, failed: bool, stop: &StopSwitch) -> Result<Option<i32>> {
        if failed {
            // SAFETY: kill(2) on the process group of our child, not reaped yet.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        }
        stop.unregister(self.index);
        let status = self.child.wait().map_err(|e| Error::io(format!("waiting for command `{}`", self.shown), e))?;
        let tail = self.tail.finish();
        use std::os::unix::process::ExitStatusExt;
        if failed {
            return Ok(status.code()); // the read's own error is the one to report
        }
        if stop.is_set() && status.signal() == Some(libc::SIGKILL) {
            return Err(Error::Aborted); // we killed it: another stream's failure is the one to report
        }
        if !status.success() {
            let stderr_tail = if tail.trim().is_empty() {
                String::new()
            } else {
                format!("; its stderr ended with: {}", tail.trim())
            };
            return Err(Error::CommandFailed {
                command: self.shown,
                status: describe_status(&status),
                outcome: "no snapshot was written",
                stderr_tail,
            });
        }
        Ok(status.code())
    }
}

/// The child's stderr, copied to ours as it arrives; its last ~2 KiB are kept for the error message.
pub struct StderrTail {
    tail: Arc<Mutex<VecDeque<u8>>>,
    done: Receiver<()>,
}

impl StderrTail {
    const KEEP: usize = 2048;

    pub fn forward(mut stderr: impl Read + Send + 'static) -> Self {
        use std::io::Write;
        let tail: Arc<Mutex<VecDeque<u8>>> = Arc::default();
        let (done_tx, done) = bounded(1);
        let kept = tail.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = std::io::stderr().write_all(&buf[..n]);
                        let mut t = kept.lock().unwrap_or_else(|p| p.into_inner());
                        t.extend(&buf[..n]);
                        let excess = t.len().saturating_sub(Self::KEEP);
                        t.drain(..excess);
                    }
                }
            }
            let _ = done_tx.send(());
        });
        StderrTail { tail, done }
    }

    /// The last lines, once the pipe is closed — or after a second if a background process the command
    /// left behind still holds it open (its output keeps being forwarded; silo does not wait for it).
    pub fn finish(self) -> String {
        let _ = self.done.recv_timeout(Duration::from_secs(1));
        let bytes: Vec<u8> = self.tail.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        text.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}
