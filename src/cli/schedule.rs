//! `silo schedule install|uninstall|list`: each job's `schedule` as a systemd timer + service (default) or a
//! cron.d file, running `silo --config FILE run JOB`. The unit text is the library's (jobs/schedule.rs).
//! Only files silo wrote (first line `schedule::MARKER`) are ever replaced or removed. A path or user that
//! would inject a line into a unit or cron file is refused before anything is written (I23).

use super::context::Invocation;
use super::jobs_file;
use super::output::{emit, Report};
use anyhow::{Context, Result};
use serde::Serialize;
use silo::jobs::schedule::{cron_file, systemd_units, unit_name, watch_units, Schedule, MARKER, WATCH};
use silo::jobs::{Job, JobsFile};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Write timers (or cron.d files) for the jobs' schedules, and enable the timers.
    Install(Args),
    /// Disable and remove the timers (or cron.d files) silo wrote for the jobs.
    Uninstall(Args),
    /// Each job's schedule, as systemd and cron say it, and whether it is installed.
    List(Args),
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs (default, or with --all: every job that has a schedule).
    #[arg(conflicts_with = "all")]
    jobs: Vec<String>,
    /// Every job that has a schedule.
    #[arg(long)]
    all: bool,
    /// systemd timers (the default).
    #[arg(long, conflicts_with = "cron")]
    systemd: bool,
    /// cron.d files instead of systemd timers.
    #[arg(long)]
    cron: bool,
    /// Where the files go (default: /etc/systemd/system, or /etc/cron.d with --cron). With a directory of
    /// your own, silo only writes the files and says what to run.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The user cron runs the job as (cron.d lines name one).
    #[arg(long, default_value = "root")]
    user: String,
    /// How often the freshness watch (`silo status --notify`) runs, installed beside the jobs so that a job
    /// whose timer died still alerts.
    #[arg(long, default_value = "hourly", value_name = "SCHEDULE")]
    watch: String,
    /// Install no freshness watch.
    #[arg(long)]
    no_watch: bool,
}

#[derive(Serialize)]
struct ScheduleReport {
    action: &'static str,
    kind: &'static str,
    dir: String,
    jobs: Vec<JobSchedule>,
    /// Commands silo ran (systemctl) or that are left for you to run.
    next_steps: Vec<String>,
}

#[derive(Serialize)]
struct JobSchedule {
    job: String,
    schedule: String,
    on_calendar: String,
    cron: String,
    files: Vec<String>,
    installed: bool,
}

impl Report for ScheduleReport {
    fn human(&self) -> Result<()> {
        for j in &self.jobs {
            let state = if j.installed { "installed" } else { "not installed" };
            say!("{:<20} {:<18} {state}  {}", j.job, j.schedule, j.files.join(" "));
        }
        for s in &self.next_steps {
            say!("{s}");
        }
        Ok(())
    }
}

fn written_by_silo(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(MARKER))
}

/// The jobs to act on, each with its schedule.
fn chosen<'a>(file: &'a JobsFile, names: &[String]) -> Result<Vec<(&'a String, &'a Job, Schedule)>> {
    let selected = file
        .select(names, names.is_empty())
        .map_err(|m| silo::Error::Input { what: "silo schedule".into(), message: m })?;
    let mut out = Vec::new();
    for (name, job) in selected {
        match job.schedule {
            Some(s) => out.push((name, job, s)),
            None if names.is_empty() => {}
            None => {
                return Err(silo::Error::Input {
                    what: format!("job {name}"),
                    message: "has no schedule; add e.g. schedule = \"daily 02:00\" to its table".into(),
                }
                .into())
            }
        }
    }
    Ok(out)
}

/// Writes the freshness watch's unit files (or cron.d file).
fn write_watch(a: &Args, dir: &Path, watch: Schedule, command: &[String]) -> Result<()> {
    let files = watch_files(a.cron, dir);
    let refused = |message: String| silo::Error::Input { what: "silo schedule, the freshness watch".into(), message };
    if a.cron {
        let text = cron_file(&[(WATCH.to_string(), watch, command.to_vec())], &a.user).map_err(refused)?;
        write(&files[0], &text)
    } else {
        let (service, timer) = watch_units(watch, command).map_err(refused)?;
        write(&files[0], &service)?;
        write(&files[1], &timer)
    }
}

/// The freshness watch's files.
fn watch_files(cron: bool, dir: &Path) -> Vec<PathBuf> {
    if cron {
        vec![dir.join(WATCH)]
    } else {
        vec![dir.join(format!("{WATCH}.service")), dir.join(format!("{WATCH}.timer"))]
    }
}

fn files_of(job: &str, cron: bool, dir: &Path) -> Vec<PathBuf> {
    if cron {
        vec![dir.join(format!("silo-job-{job}"))]
    } else {
        vec![dir.join(unit_name(job, "service")), dir.join(unit_name(job, "timer"))]
    }
}

/// Writes `text` to `path` unless a file silo did not write is there. Owner-only like every file silo
/// writes (I12): systemd and cron read them as root.
fn write(path: &Path, text: &str) -> Result<()> {
    if path.exists() && !written_by_silo(path) {
        return Err(silo::Error::Input {
            what: path.display().to_string(),
            message: "exists and was not written by silo schedule; nothing was replaced: remove or rename it".into(),
        }
        .into());
    }
    super::files::replace_atomically(path, text.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Runs systemctl when it manages this machine and the units went to its directory; else says what to run.
fn systemctl(own_dir: bool, args: &[&str], steps: &mut Vec<String>) -> Result<()> {
    let line = format!("systemctl {}", args.join(" "));
    if own_dir || !Path::new("/run/systemd/system").exists() {
        steps.push(format!("run: {line}"));
        return Ok(());
    }
    let status = silo::inputs::process::command("systemctl").args(args).status().with_context(|| line.clone())?;
    if !status.success() {
        anyhow::bail!("`{line}` {}", silo::inputs::process::describe_status(&status));
    }
    steps.push(format!("ran: {line}"));
    Ok(())
}

pub fn run(ctx: &Invocation, c: &Command) -> Result<()> {
    let (action, a) = match c {
        Command::Install(a) => ("install", a),
        Command::Uninstall(a) => ("uninstall", a),
        Command::List(a) => ("list", a),
    };
    let loaded = jobs_file::load(ctx)?;
    let config = std::fs::canonicalize(&loaded.path).with_context(|| format!("resolving {}", loaded.path.display()))?;
    let silo = std::env::current_exe().context("finding the silo binary")?;
    let own_dir = a.dir.is_some();
    let dir =
        a.dir.clone().unwrap_or_else(|| PathBuf::from(if a.cron { "/etc/cron.d" } else { "/etc/systemd/system" }));
    let jobs = chosen(&loaded.file, &a.jobs)?;
    // I23: checked before anything is written (cron.d lines carry it; a bad one is a mistake either way).
    if !silo::jobs::schedule::valid_user(&a.user) {
        return Err(silo::Error::Input {
            what: format!("--user {:?}", a.user),
            message: "is not a user name (a-z 0-9 _ -, starting with a letter or _); nothing was written".into(),
        }
        .into());
    }
    let command = |job: &str| -> Vec<String> {
        vec![silo.display().to_string(), "--config".into(), config.display().to_string(), "run".into(), job.to_string()]
    };
    let watch_command = vec![
        silo.display().to_string(),
        "--config".into(),
        config.display().to_string(),
        "status".into(),
        "--notify".into(),
    ];
    let watch = Schedule::parse(&a.watch)
        .map_err(|m| silo::Error::Input { what: format!("--watch {:?}", a.watch), message: m })?;
    // The watch goes with every job (installed with any, removed with all of them).
    let with_watch = !a.no_watch && a.jobs.is_empty();
    let mut steps = Vec::new();
    if action == "install" {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, _, schedule) in &jobs {
            let files = files_of(name, a.cron, &dir);
            let refused = |message: String| silo::Error::Input { what: format!("silo schedule, job {name}"), message };
            if a.cron {
                let text = cron_file(&[((*name).clone(), *schedule, command(name))], &a.user).map_err(refused)?;
                write(&files[0], &text)?;
            } else {
                let (service, timer) = systemd_units(name, *schedule, &command(name)).map_err(refused)?;
                write(&files[0], &service)?;
                write(&files[1], &timer)?;
            }
        }
        if with_watch {
            write_watch(a, &dir, watch, &watch_command)?;
        }
        if !a.cron && !jobs.is_empty() {
            systemctl(own_dir, &["daemon-reload"], &mut steps)?;
            let mut timers: Vec<String> = jobs.iter().map(|(n, _, _)| unit_name(n, "timer")).collect();
            if with_watch {
                timers.push(format!("{WATCH}.timer"));
            }
            let mut args = vec!["enable", "--now"];
            args.extend(timers.iter().map(String::as_str));
            systemctl(own_dir, &args, &mut steps)?;
        }
    } else if action == "uninstall" {
        if !a.cron && !jobs.is_empty() {
            let mut timers: Vec<String> = jobs.iter().map(|(n, _, _)| unit_name(n, "timer")).collect();
            if with_watch {
                timers.push(format!("{WATCH}.timer"));
            }
            timers.retain(|t| written_by_silo(&dir.join(t)));
            if !timers.is_empty() {
                let mut args = vec!["disable", "--now"];
                args.extend(timers.iter().map(String::as_str));
                systemctl(own_dir, &args, &mut steps)?;
            }
        }
        let watch_paths = if with_watch { watch_files(a.cron, &dir) } else { Vec::new() };
        for f in watch_paths.into_iter().chain(jobs.iter().flat_map(|(name, _, _)| files_of(name, a.cron, &dir))) {
            {
                if written_by_silo(&f) {
                    std::fs::remove_file(&f).with_context(|| format!("removing {}", f.display()))?;
                } else if f.exists() {
                    steps.push(format!("left {}: silo did not write it", f.display()));
                }
            }
        }
        if !a.cron && !jobs.is_empty() {
            systemctl(own_dir, &["daemon-reload"], &mut steps)?;
        }
    }
    let report = ScheduleReport {
        action,
        kind: if a.cron { "cron" } else { "systemd" },
        dir: dir.display().to_string(),
        jobs: jobs
            .iter()
            .map(|(name, _, schedule)| ((*name).clone(), *schedule, files_of(name, a.cron, &dir)))
            .chain(with_watch.then(|| ("(freshness watch)".to_string(), watch, watch_files(a.cron, &dir))))
            .map(|(job, schedule, files)| JobSchedule {
                job,
                schedule: schedule.to_string(),
                on_calendar: schedule.on_calendar(),
                cron: schedule.cron(),
                installed: files.iter().all(|f| written_by_silo(f)),
                files: files.iter().map(|f| f.display().to_string()).collect(),
            })
            .collect(),
        next_steps: steps,
    };
    emit(&report, ctx.json())
}
