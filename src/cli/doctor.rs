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
use silo::jobs::JobsFile;
use std::process::Stdio;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these jobs (default: every job).
    jobs: Vec<String>,
}

#[derive(Serialize)]
struct Check {
    ok: bool,
    what: String,
    detail: String,
}

#[derive(Serialize)]
struct Doctor {
    checks: Vec<Check>,
    failed: usize,
}

impl Report for Doctor {
    fn human(&self) -> Result<()> {
        for c in &self.checks {
            say!("{}  {}: {}", if c.ok { "ok  " } else { "FAIL" }, c.what, c.detail);
        }
        match self.failed {
            0 => say!("{} checks passed", self.checks.len()),
            n => say!("{n} of {} checks failed", self.checks.len()),
        }
        Ok(())
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

fn repository_checks(ctx: &Invocation, file: &JobsFile, checks: &mut Vec<Check>) {
    for (which, cfg) in
        std::iter::once(("repository", &file.repository)).chain(file.offsite.iter().map(|o| ("offsite", o)))
    {
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

fn stream_checks(file: &JobsFile, names: &[String], checks: &mut Vec<Check>) -> Result<()> {
    let selected = file
        .select(names, names.is_empty())
        .map_err(|m| silo::Error::Input { what: "silo doctor".into(), message: m })?;
    for (job, j) in selected {
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
    Ok(())
}

/// Each notification target's host resolves (nothing is sent).
fn target_checks(file: &JobsFile, checks: &mut Vec<Check>) {
    for (name, t) in &file.notify {
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
    repository_checks(ctx, &loaded.file, &mut checks);
    stream_checks(&loaded.file, &a.jobs, &mut checks)?;
    target_checks(&loaded.file, &mut checks);
    let failed = checks.iter().filter(|c| !c.ok).count();
    emit(&Doctor { checks, failed }, ctx.json())?;
    if failed > 0 {
        return Err(super::exit::RunFailed {
            code: super::exit::FAILURE,
            message: format!("{failed} check(s) failed: a `silo run` would fail there"),
        }
        .into());
    }
    Ok(())
}
