//! silo at a real terminal (a tmux pane, so stderr is a TTY): the progress line shows percentage, elapsed
//! time and time left for a file on stdin, and is cleared before the summary is printed; logs carry colour
//! only at a terminal and never with NO_COLOR; a log file gets plain text.

mod util;

use std::process::Command;
use std::time::Duration;
use util::*;

fn tmux(socket: &str, args: &[&str]) -> std::process::Output {
    Command::new("tmux").arg("-L").arg(socket).args(args).output().expect("tmux")
}

fn have_tmux() -> bool {
    util::services::require(
        "tmux",
        match Command::new("tmux").arg("-V").output() {
            Ok(o) if o.status.success() => Ok(()),
            _ => Err("tmux is not installed (scripts/setup.sh installs it)".into()),
        },
    )
}

/// What a terminal showed: the raw bytes the pane was sent, and the screen at the end (with attributes).
struct Terminal {
    raw: String,
    screen: String,
}

/// Runs `script` in a fresh tmux pane (a terminal, 200 columns) until it prints an end mark.
fn in_terminal(repo: &TestRepo, script: &str) -> Terminal {
    in_terminal_with(repo, script, |_| {})
}

/// Like `in_terminal`, calling `meanwhile` with what the pane was sent so far until the script ends.
fn in_terminal_with(repo: &TestRepo, script: &str, mut meanwhile: impl FnMut(&str)) -> Terminal {
    let socket = format!("silo-test-{}", random_name());
    let raw = repo.dir.path().join(format!("{socket}.raw"));
    let env: Vec<String> =
        repo.cmd(&[]).get_envs().filter_map(|(k, v)| Some(format!("{}='{}'", k.to_str()?, v?.to_str()?))).collect();
    let mark = format!("END-{}", random_name());
    // The mark is printed in two pieces, so the echoed command line itself never contains it.
    let command = format!("clear; export {}; {script}; echo END-$(echo {})", env.join(" "), &mark[4..]);
    assert!(tmux(&socket, &["new-session", "-d", "-x", "200", "-y", "50", "sh"]).status.success());
    tmux(&socket, &["pipe-pane", "-o", &format!("cat >> {}", raw.display())]);
    tmux(&socket, &["send-keys", &command, "Enter"]);
    let mut raw_text = String::new();
    wait_until_within("the command to finish in the terminal", Duration::from_secs(120), || {
        raw_text = String::from_utf8_lossy(&std::fs::read(&raw).unwrap_or_default()).into_owned();
        meanwhile(&raw_text);
        raw_text.contains(&mark)
    });
    let screen = String::from_utf8_lossy(&tmux(&socket, &["capture-pane", "-p", "-e", "-S", "-"]).stdout).into_owned();
    tmux(&socket, &["kill-server"]);
    Terminal { raw: raw_text, screen }
}

/// The line of create's summary (`snapshot 1a2b3c4d: ...`), as the screen shows it.
fn summary_line(screen: &str) -> Option<&str> {
    screen.lines().find(|l| {
        l.find("snapshot ").is_some_and(|i| {
            let rest = &l[i + 9..];
            rest.len() > 9 && rest[..8].chars().all(|c| c.is_ascii_hexdigit()) && &rest[8..9] == ":"
        })
    })
}

#[test]
fn progress_at_a_terminal_is_cleared_before_the_summary() {
    if !have_tmux() {
        return;
    }
    let repo = TestRepo::init();
    let file = repo.dir.path().join("dump.sql");
    std::fs::write(&file, dump(200 << 20, 1)).unwrap();
    let t = in_terminal(&repo, &format!("{} snapshot create --name t < {} >/dev/null", silo_bin(), file.display()));
    let line = summary_line(&t.screen).unwrap_or_else(|| panic!("no summary on the screen: {}", t.screen));
    // On its own line, never glued to a progress line ("836.0 MiB/ssnapshot 9eec1928").
    assert!(line.starts_with("snapshot "), "summary not on a clean line: {line:?}");
    // A progress line was drawn (the screen no longer shows it): for a file it says how far and how long.
    if t.raw.contains("\x1b[Kread ") {
        assert!(t.raw.contains("%), ") && t.raw.contains("elapsed"), "{:?}", t.raw);
    }
}

#[test]
fn colour_only_for_a_person_at_a_terminal() {
    if !have_tmux() {
        return;
    }
    let repo = TestRepo::init();
    repo.create("t", &dump(1 << 20, 2));
    // -v: info lines from the log. At a terminal they are coloured...
    let coloured =
        in_terminal(&repo, &format!("unset SILO_LOG; {} -v snapshot restore t:latest >/dev/null", silo_bin()));
    assert!(
        coloured.raw.contains("INFO") && coloured.raw.contains("\x1b[3"),
        "a terminal gets colour: {:?}",
        coloured.raw
    );
    // ... not with NO_COLOR ...
    let plain = in_terminal(
        &repo,
        &format!("unset SILO_LOG; NO_COLOR=1 {} -v snapshot restore t:latest >/dev/null", silo_bin()),
    )
    .raw;
    let after_command = &plain[plain.find("INFO").unwrap_or(0).saturating_sub(40)..];
    assert!(plain.contains("INFO") && !after_command.contains("\x1b[3"), "{plain:?}");
    // ... and never in a log file.
    let mut c = repo.cmd(&["-v", "snapshot", "restore", "t:latest"]);
    c.env_remove("SILO_LOG");
    let out = run_with_input(c, b"");
    assert!(out.status.success());
    let log = stderr(&out);
    assert!(log.contains("INFO") && !log.contains('\x1b'), "{log:?}");
}

/// Issue 30: restoring to a terminal is refused like reading one (a dump on the screen is noise and may hold
/// escape sequences); nothing of the dump reaches the screen.
#[test]
fn restoring_to_a_terminal_is_refused() {
    if !have_tmux() {
        return;
    }
    let repo = TestRepo::init();
    repo.create("t", b"-- a line no terminal should show\n");
    let t = in_terminal(&repo, &format!("{} snapshot restore t:latest; echo rc=$?", silo_bin()));
    assert!(t.screen.contains("standard output is a terminal") && t.screen.contains("rc=2"), "{}", t.screen);
    assert!(!t.screen.contains("a line no terminal should show"), "{}", t.screen);
}

/// Issue 30: restore-database at a terminal shows its phase like `snapshot create`'s progress: loading with
/// how far (the load is held half way by a psql that pauses until the test saw the line), then verifying and
/// swapping; the line is cleared before the report.
#[test]
fn restore_database_shows_its_phase_at_a_terminal() {
    if !have_tmux() || !services::postgres() {
        return;
    }
    const DB: &str = "silo_t_rdb_phase";
    for d in [DB, "silo_t_rdb_phase__silo_new", "silo_t_rdb_phase__silo_prev"] {
        services::pg_drop(d);
    }
    services::pg_fresh(DB);
    services::psql(DB, "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 20000) g");
    let repo = TestRepo::init();
    let mut create = repo.cmd(&["snapshot", "create", "--name", "p", "--", "pg_dump", "--no-password", DB]);
    create.envs(services::PG_ENV);
    assert!(run_with_input(create, b"").status.success());
    let (bin, _paused, go) = services::slow_psql(repo.dir.path());
    let env: Vec<String> = services::PG_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let script = format!(
        "PATH={}:$PATH {} {} restore-database p:latest --postgres {DB} --drop-previous >/dev/null",
        bin.display(),
        env.join(" "),
        silo_bin()
    );
    let t = in_terminal_with(&repo, &script, |raw| {
        if raw.contains(&format!("restore-database {DB}: loading ")) && !go.exists() {
            std::fs::write(&go, "").unwrap();
        }
    });
    let loading = t.raw.split(&format!("restore-database {DB}: loading ")).nth(1).unwrap_or_default();
    assert!(loading.contains("%)") && loading.contains("elapsed"), "{:?}", t.raw);
    let report = format!("PostgreSQL {DB}: snapshot ");
    assert!(t.screen.lines().any(|l| l.starts_with(&report)), "the report on a clean line: {}", t.screen);
    for d in [DB, "silo_t_rdb_phase__silo_prev"] {
        services::pg_drop(d);
    }
}

#[test]
fn run_shows_the_job_and_its_phase_at_a_terminal_and_each_step_on_a_clean_line() {
    if !have_tmux() {
        return;
    }
    let repo = TestRepo::init();
    let data = repo.dir.path().join("dump.sql");
    std::fs::write(&data, dump(300 << 20, 3)).unwrap();
    let job = format!("[jobs.shop]\nstreams = [{{ command = \"cat {}\", name = \"dump.sql\" }}]\n", data.display());
    let jobs = write_jobs_file(&repo, &repo.location, &job);
    let t = in_terminal(&repo, &format!("{} --config {} run shop >/dev/null", silo_bin(), jobs.display()));
    assert!(t.raw.contains("\x1b[Kshop: create: read "), "a progress line naming the job and phase: {:?}", t.raw);
    assert!(t.screen.lines().any(|l| l.starts_with("silo: shop: create ok")), "the step on a clean line: {}", t.screen);
}
