//! `silo doctor`: checks what a real `silo run` needs, one line per check, before 3 a.m. finds out: the jobs
//! file, each repository's password (readable, owner-only) and the repository itself (reachable, opens with
//! it), each stream's dump tool (on PATH, its version) and database server (answers), and each notification
//! target's host (resolves). Changes nothing; exit 1 when any check fails. The commands it starts get an
//! allow-listed environment (I21) and names only as arguments (I22).

use super::context::Invocation;
use super::jobs_file;
use super::output::{emit, Report};
use anyhow::Result;
use serde::Serialize;
use silo::inputs::process::ChildEnv;
use silo::jobs::presets::Preset;
use silo::jobs::{Job, JobsFile};
use silo::notify::Target;
use std::process::Stdio;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these jobs (default: every job).
    jobs: Vec<String>,
    /// Also send one test notification through every notification target of the jobs (reported per target,
    /// sent or failed); the payload says it is a test (event `test`). A healthchecks target gets a `/log`
    /// ping, which changes no check's state.
    #[arg(long)]
    send_test: bool,
}

#[derive(Serialize)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    pub detail: String,
}

impl Check {
    fn of(what: impl Into<String>, result: std::result::Result<String, String>) -> Check {
        match result {
            Ok(detail) => Check { ok: true, what: what.into(), detail },
            Err(detail) => Check { ok: false, what: what.into(), detail },
        }
    }
}

#[derive(Serialize)]
struct Doctor {
    checks: Vec<Check>,
    failed: usize,
}

/// The checks as lines of the answer: `ok    what: detail` / `FAIL  what: detail`, and a count.
pub fn say_checks(checks: &[Check]) -> Result<()> {
    for c in checks {
        say!("{}  {}: {}", if c.ok { "ok  " } else { "FAIL" }, c.what, c.detail);
    }
    match checks.iter().filter(|c| !c.ok).count() {
        0 => say!("{} checks passed", checks.len()),
        n => say!("{n} of {} checks failed", checks.len()),
    }
    Ok(())
}

impl Report for Doctor {
    fn human(&self) -> Result<()> {
        say_checks(&self.checks)
    }
}

/// Runs `argv` with `env`, no input, bounded output; its first output line, or why it failed.
fn probe(argv: &[String], env: &ChildEnv) -> std::result::Result<String, String> {
    let Some((program, args)) = argv.split_first() else { return Err("no command".into()) };
    let out = silo::inputs::process::command_with(program, env)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    let first =
        |b: &[u8]| String::from_utf8_lossy(b).lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    if out.status.success() {
        Ok(first(&out.stdout))
    } else {
        let err = first(&out.stderr);
        Err(format!("{program} {}: {err}", silo::inputs::process::describe_status(&out.status)))
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The tool a preset runs and how to ask its version; and, for a server, a command that asks it to answer.
fn preset_probes(p: &Preset) -> (Vec<String>, Option<Vec<String>>) {
    match p {
        Preset::Postgres(d) => {
            let mut ping = argv(&["psql", "-X", "-A", "-t", "--no-password", "-c", "SELECT 1"]);
            ping.extend(d.host.iter().map(|h| format!("--host={h}")));
            ping.extend(d.port.iter().map(|p| format!("--port={p}")));
            ping.extend(d.user.iter().map(|u| format!("--username={u}")));
            let db = if d.database == "all" { "postgres" } else { d.database.as_str() };
            ping.push(format!("--dbname={}", silo::dumps::swap::pg_conninfo(db)));
            (argv(&["pg_dump", "--version"]), Some(ping))
        }
        Preset::MariaDb(d) => {
            let mut ping = argv(&["mysql", "-N", "-B", "-e", "SELECT 1"]);
            ping.extend(d.host.iter().map(|h| format!("--host={h}")));
            ping.extend(d.port.iter().map(|p| format!("--port={p}")));
            ping.extend(d.user.iter().map(|u| format!("--user={u}")));
            if d.database != "all" {
                ping.push(format!("--database={}", d.database));
            }
            (argv(&["mysqldump", "--version"]), Some(ping))
        }
        Preset::Sqlite(file) => {
            let ping = vec!["sqlite3".into(), "-readonly".into(), file.display().to_string(), "SELECT 1".into()];
            (argv(&["sqlite3", "-version"]), Some(ping))
        }
        Preset::Redis(s) => {
            let mut ping = argv(&["redis-cli"]);
            ping.extend(s.host.iter().flat_map(|h| ["-h".to_string(), h.clone()]));
            ping.extend(s.port.iter().flat_map(|p| ["-p".to_string(), p.to_string()]));
            ping.push("ping".into());
            (argv(&["redis-cli", "--version"]), Some(ping))
        }
        Preset::Ldap(_) => (argv(&["slapcat", "-VV"]), None),
        Preset::Directory(dir) => {
            (argv(&["tar", "--version"]), Some(argv(&["test", "-r", &dir.display().to_string()])))
        }
        Preset::Command(_) => (argv(&["sh", "-c", "true"]), None),
    }
}

/// Each repository's password and the repository itself: `[repository]`, and `[offsite]` when `offsite` (a
/// selected job copies there).
fn repository_checks(ctx: &Invocation, file: &JobsFile, offsite: bool, checks: &mut Vec<Check>) {
    let offsite = file.offsite.iter().filter(|_| offsite).map(|o| ("offsite", o));
    for (which, cfg) in std::iter::once(("repository", &file.repository)).chain(offsite) {
        let what = format!("[{which}] {}", cfg.location);
        match jobs_file::password_of(which, cfg) {
            Err(e) => checks.push(Check { ok: false, what: format!("[{which}] password"), detail: format!("{e:#}") }),
            Ok(_) => checks.push(Check { ok: true, what: format!("[{which}] password"), detail: "readable".into() }),
        }
        match jobs_file::open(ctx, which, cfg) {
            Ok(repo) => {
                let role = if repo.is_writer_only() { "a writer key" } else { "an owner key" };
                checks.push(Check { ok: true, what, detail: format!("reachable, opens with {role}") })
            }
            Err(e) => checks.push(Check { ok: false, what, detail: format!("{e:#}") }),
        }
    }
}

fn stream_checks(file: &JobsFile, selected: &[(&String, &Job)], checks: &mut Vec<Check>) {
    for &(job, j) in selected {
        for entry in &j.streams {
            let preset = match entry.preset() {
                Ok(p) => p,
                Err(e) => {
                    checks.push(Check { ok: false, what: format!("job {job}: a stream"), detail: e });
                    continue;
                }
            };
            let env = preset.child_env(&j.env);
            let (tool, ping) = preset_probes(&preset);
            let what = format!("job {job}: {} tool {}", preset.kind(), tool[0]);
            match probe(&tool, &env) {
                Ok(version) => checks.push(Check { ok: true, what, detail: version }),
                Err(e) => checks.push(Check { ok: false, what, detail: format!("{e} (is it installed and on PATH?)") }),
            }
            if let Some(ping) = ping {
                let what = format!("job {job}: {} answers", preset.kind());
                match probe(&ping, &env) {
                    Ok(_) => checks.push(Check { ok: true, what, detail: "yes".into() }),
                    Err(e) => checks.push(Check { ok: false, what, detail: e }),
                }
            }
        }
        for target in &j.notify {
            let what = format!("job {job}: notify {target}");
            if !file.notify.contains_key(target) {
                checks.push(Check { ok: false, what, detail: format!("no [notify.{target}] table") });
            }
        }
    }
}

/// The notification targets `selected` jobs name, each with the jobs that name it.
fn targets_of<'a>(file: &'a JobsFile, selected: &[(&String, &Job)]) -> Vec<(&'a String, &'a Target, Vec<String>)> {
    file.notify
        .iter()
        .map(|(name, t)| {
            let jobs: Vec<String> =
                selected.iter().filter(|(_, j)| j.notify.contains(name)).map(|(n, _)| n.to_string()).collect();
            (name, t, jobs)
        })
        .filter(|(_, _, jobs)| !jobs.is_empty())
        .collect()
}

/// Each notification target's host resolves (nothing is sent).
fn target_checks(targets: &[(&String, &Target, Vec<String>)], checks: &mut Vec<Check>) {
    for &(name, t, _) in targets {
        let url = t
            .webhook
            .as_ref()
            .map(|w| w.url.clone())
            .or_else(|| t.ntfy.as_ref().map(|n| n.url.clone()))
            .or_else(|| t.healthchecks.as_ref().map(|h| h.url.clone()))
            .or_else(|| {
                t.pushover.as_ref().map(|p| p.url.clone().unwrap_or_else(|| "https://api.pushover.net/".into()))
            })
            .or_else(|| t.email.as_ref().and_then(|e| e.smtp.as_ref().map(|s| format!("smtp://{s}"))));
        let Some(url) = url else { continue };
        let authority = url.split("://").nth(1).unwrap_or(&url).split('/').next().unwrap_or("");
        let host_port = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{}", if url.starts_with("http://") { 80 } else { 443 })
        };
        let what = format!("notify {name}: {}", authority);
        let check = match std::net::ToSocketAddrs::to_socket_addrs(&host_port).map(|a| a.count()) {
            Ok(0) => Check { ok: false, what, detail: "resolves to no address".into() },
            Ok(_) => Check { ok: true, what, detail: "resolves".into() },
            Err(e) => Check { ok: false, what, detail: e.to_string() },
        };
        checks.push(check);
    }
}

/// One test notification through each target (`--send-test`), reported per target: sent or why not.
fn send_tests(ctx: &Invocation, targets: &[(&String, &Target, Vec<String>)], checks: &mut Vec<Check>) {
    for (name, t, jobs) in targets {
        let what = format!("notify {name}: test notification");
        let sent = super::notify::send_test(ctx, t, jobs).map(|()| format!("sent (for {})", jobs.join(", ")));
        checks.push(Check::of(what, sent));
    }
}

/// The checks a `silo run` of `names` (all jobs when empty) needs, one per line (see the module): the
/// repositories (the offsite when a job copies there), each stream's tool and server, each target's host,
/// and with `send_test` a test notification through each target. `silo run --dry-run` runs them too.
pub fn checks(ctx: &Invocation, file: &JobsFile, names: &[String], send_test: bool) -> Result<Vec<Check>> {
    let selected =
        file.select(names, names.is_empty()).map_err(|m| silo::Error::Input { what: "jobs".into(), message: m })?;
    let mut checks = Vec::new();
    repository_checks(ctx, file, selected.iter().any(|(_, j)| j.offsite), &mut checks);
    stream_checks(file, &selected, &mut checks);
    let targets = targets_of(file, &selected);
    target_checks(&targets, &mut checks);
    if send_test {
        send_tests(ctx, &targets, &mut checks);
    }
    Ok(checks)
}

/// The error of a check run with failures: exit 1, how many failed.
pub fn failed(checks: &[Check]) -> Result<()> {
    match checks.iter().filter(|c| !c.ok).count() {
        0 => Ok(()),
        n => Err(super::exit::RunFailed {
            code: super::exit::FAILURE,
            message: format!("{n} check(s) failed: a `silo run` would fail there"),
        }
        .into()),
    }
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let mut checks = Vec::new();
    let loaded = match jobs_file::load(ctx) {
        Ok(l) => {
            checks.push(Check { ok: true, what: "jobs file".into(), detail: l.path.display().to_string() });
            l
        }
        Err(e) => {
            checks.push(Check { ok: false, what: "jobs file".into(), detail: format!("{e:#}") });
            emit(&Doctor { failed: 1, checks }, ctx.json())?;
            return Err(super::exit::RunFailed {
                code: super::exit::FAILURE,
                message: "the jobs file cannot be used".into(),
            }
            .into());
        }
    };
    checks.extend(self::checks(ctx, &loaded.file, &a.jobs, a.send_test)?);
    let count = checks.iter().filter(|c| !c.ok).count();
    let result = failed(&checks);
    emit(&Doctor { checks, failed: count }, ctx.json())?;
    result
}
