//! The operator at 3 a.m. (issue 30), through the real binary: the messages that guide a tired person to the
//! right command say the right thing — `silo restore` points at `snapshot restore` first, a mistyped
//! repository path is never answered with "run `silo init`", and a wrong password says where it came from
//! (never what it was).

mod util;

use util::*;

#[test]
fn silo_restore_points_at_snapshot_restore_first() {
    let repo = TestRepo::init();
    let out = repo.run(&["restore", "shop:latest"], b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE));
    let err = stderr(&out);
    let (plain, live) = (err.find("silo snapshot restore"), err.find("silo restore-database"));
    assert!(plain.is_some() && live.is_some() && plain < live, "{err}");
}

#[test]
fn a_mistyped_repository_path_is_never_answered_with_init() {
    let repo = TestRepo::init();
    let mut c = repo.cmd(&["snapshot", "restore", "shop:latest"]);
    c.env("SILO_REPO", repo.dir.path().join("rpeo"));
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    assert!(!stderr(&out).contains("silo init"), "{}", stderr(&out));
    assert!(stderr(&out).contains("SILO_REPO"), "{}", stderr(&out));
}

#[test]
fn a_wrong_password_says_where_it_came_from() {
    let repo = TestRepo::init();
    let mut c = repo.cmd(&["snapshot", "list"]);
    c.env("SILO_PASSWORD", "not the password");
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_AUTH));
    assert!(stderr(&out).contains("SILO_PASSWORD") && !stderr(&out).contains("not the password"), "{}", stderr(&out));

    let file = repo.dir.path().join("pw");
    std::fs::write(&file, "also wrong\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut c = repo.cmd(&["--password-file", file.to_str().unwrap(), "snapshot", "list"]);
    c.env_remove("SILO_PASSWORD");
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_AUTH));
    let err = stderr(&out);
    assert!(err.contains(file.to_str().unwrap()) && !err.contains("also wrong"), "{err}");
}

/// A jobs file whose repository is this test's, with its password in a file.
fn jobs_file(repo: &TestRepo, extra: &str) -> std::path::PathBuf {
    let job = format!("[jobs.shop]\nstreams = [{{ command = \"cat /dev/null\", name = \"x\" }}]\n{extra}");
    write_jobs_file(repo, &repo.location, &job)
}

/// Issue 30: with no --repo and no SILO_REPO, every command takes the repository and its password from the
/// jobs file (flag, then environment, then the jobs file).
#[test]
fn the_jobs_file_gives_every_command_its_repository_and_password() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("the jobs file names a local path") {
        return;
    }
    repo.create("shop", &dump(1 << 16, 5));
    let file = jobs_file(&repo, "");
    for args in [vec!["snapshot", "list"], vec!["check"], vec!["stats"], vec!["forget", "--keep-last", "5"]] {
        let mut c = repo.cmd(&args);
        c.env_remove("SILO_REPO").env_remove("SILO_PASSWORD").env("SILO_CONFIG", &file);
        let out = run_with_input(c, b"");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let mut c = repo.cmd(&["snapshot", "restore", "shop:latest"]);
    c.env_remove("SILO_REPO").env_remove("SILO_PASSWORD").env("SILO_CONFIG", &file);
    assert_eq!(run_with_input(c, b"").stdout, dump(1 << 16, 5));
}

/// Issue 30: `silo status` judges the jobs of a jobs file even when SILO_REPO is exported (as README says
/// to): a job past its freshness limit is stale (exit 8), with its freshness metric.
#[test]
fn status_judges_the_jobs_even_with_silo_repo_exported() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("the jobs file names a local path") {
        return;
    }
    let file = jobs_file(&repo, "freshness = \"1s\"\n");
    let mut c = repo.cmd(&["--json", "status"]);
    c.env("SILO_CONFIG", &file);
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.to_string().contains("\"shop\""), "{v}");
}

/// Issue 30: a snapshot picked by its day — `NAME@YYYY-MM-DD`, `NAME@today`, `NAME@yesterday` (UTC): the
/// newest of that name finished by the end of that day.
#[test]
fn a_snapshot_is_picked_by_its_day() {
    let repo = TestRepo::init();
    let (old, new) = (dump(1 << 15, 6), dump(1 << 15, 7));
    repo.create("shop", &old);
    repo.create("shop", &new);
    assert_eq!(repo.restore("shop@today"), new);
    let today = repo.json(&["snapshot", "list"])[0]["finished"].as_str().unwrap()[..10].to_string();
    assert_eq!(repo.restore(&format!("shop@{today}")), new);
    let out = repo.run(&["snapshot", "restore", "shop@yesterday"], b"");
    assert!(
        !out.status.success() && stderr(&out).contains("no snapshot of shop finished by the end of yesterday"),
        "{}",
        stderr(&out)
    );
    let out = repo.run(&["snapshot", "restore", "shop@2026-02-30"], b"");
    assert!(!out.status.success(), "not a day: an id prefix that matches nothing");
}

/// Issue 30: shell completions and the manual page come from the same definitions the commands parse with.
#[test]
fn completions_and_the_manual_page_name_every_command() {
    let repo = TestRepo::init();
    for shell in ["bash", "zsh", "fish"] {
        let out = repo.run(&["completions", shell], b"");
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("restore-database") && text.contains("snapshot"), "{shell}");
    }
    let out = repo.run(&["man"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    // roff escapes hyphens (`\-`): compared without the escapes.
    let page = String::from_utf8_lossy(&out.stdout).replace('\\', "");
    assert!(page.contains(".TH silo"), "roff");
    for command in ["SILO RESTORE-DATABASE", "SILO KEY", "SILO UNLOCK", "--drop-previous", "--suspect-shrink"] {
        assert!(page.contains(command), "the manual page has {command}");
    }
    assert!(!page.contains("SILO RESTORE\n"), "the hidden `restore` is not documented as a command");
}

/// Issue 30: `silo doctor` checks what a real run needs, one line per check, and fails when one fails: here
/// a PostgreSQL database that does not exist and an SQLite file that is not there, beside a repository that
/// opens.
#[test]
fn doctor_says_what_a_run_would_need_one_line_per_check() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("the jobs file names a local path") || !services::postgres() {
        return;
    }
    let file = jobs_file(
        &repo,
        "\n[jobs.db]\nstreams = [{ postgres = { database = \"silo_t_doctor_missing\" } }, { sqlite = \"/nonexistent/app.db\" }]\n",
    );
    let mut c = repo.cmd(&["--json", "doctor"]);
    c.env_remove("SILO_REPO").env_remove("SILO_PASSWORD").env("SILO_CONFIG", &file).envs(services::PG_ENV);
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = |what: &str| {
        report["checks"].as_array().unwrap().iter().find(|c| c["what"].as_str().unwrap().contains(what)).cloned()
    };
    assert_eq!(line("[repository]").unwrap()["ok"], true, "{report}");
    assert_eq!(line("postgres tool pg_dump").unwrap()["ok"], true, "{report}");
    let pg = line("job db: postgres answers").unwrap();
    assert!(pg["ok"] == false && pg["detail"].as_str().unwrap().contains("silo_t_doctor_missing"), "{report}");
    assert_eq!(line("job db: sqlite answers").unwrap()["ok"], false, "{report}");
    assert_eq!(report["failed"], 2, "{report}");
}

/// Issue 30: `snapshot list` shows each snapshot's age and filters by host, tag and day.
#[test]
fn snapshot_list_shows_age_and_filters_by_host_tag_and_day() {
    let repo = TestRepo::init();
    repo.ok(&["snapshot", "create", "--name", "shop", "--tag", "prod"], &dump(1 << 14, 8));
    repo.ok(&["snapshot", "create", "--name", "shop", "--host", "other"], &dump(1 << 14, 9));
    let all = repo.json(&["snapshot", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert!(all[0]["age_seconds"].as_i64().is_some_and(|a| (0..600).contains(&a)), "{all}");
    let count = |args: &[&str]| repo.json(&[&["snapshot", "list"][..], args].concat()).as_array().unwrap().len();
    assert_eq!(count(&["--tag", "prod"]), 1);
    assert_eq!(count(&["--host", "other"]), 1);
    assert_eq!(count(&["--after", "today"]), 2);
    assert_eq!(count(&["--before", "yesterday"]), 0);
    let human = String::from_utf8_lossy(&repo.ok(&["snapshot", "list"], b"").stdout).into_owned();
    assert!(human.lines().next().unwrap().contains("age"), "{human}");
    assert_eq!(repo.run(&["snapshot", "list", "--before", "someday"], b"").status.code(), Some(EXIT_USAGE));
}

/// Issue 30: `--job NAME` and `--offsite` pick a repository of the jobs file, with the password the file
/// names for it, over SILO_REPO and SILO_PASSWORD (exported for another repository); a job that does not
/// exist or has no offsite is one line naming it, exit 2; and a command that opens no repository refuses them.
#[test]
fn job_and_offsite_pick_the_jobs_files_repositories() {
    let (main, offsite, elsewhere) = (TestRepo::init(), TestRepo::init(), TestRepo::init());
    if main.skip_unless_local("the jobs file names a local path") {
        return;
    }
    main.create("shop", &dump(1 << 14, 11));
    offsite.create("far", &dump(1 << 14, 12));
    let pw = main.dir.path().join("offsite-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let extra = format!(
        "offsite = true\n\n[jobs.plain]\nstreams = [{{ command = \"true\", name = \"x\" }}]\n\n[offsite]\nlocation = \"{}\"\npassword_file = \"{}\"\n",
        offsite.location,
        pw.display()
    );
    let file = jobs_file(&main, &extra);
    // SILO_REPO names a third repository and SILO_PASSWORD is wrong for all of them: only the file counts.
    let silo = |args: &[&str]| {
        let mut c = elsewhere.cmd(args);
        c.env("SILO_CONFIG", &file).env("SILO_PASSWORD", "not the password at all");
        run_with_input(c, b"")
    };
    let names = |args: &[&str]| {
        let out = silo(&[&["--json"][..], args, &["snapshot", "list"]].concat());
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(&["--job", "shop"]), ["shop"]);
    assert_eq!(names(&["--job", "plain"]), ["shop"], "every job's repository is the file's [repository]");
    assert_eq!(names(&["--offsite"]), ["far"]);
    assert_eq!(names(&["--job", "shop", "--offsite"]), ["far"]);
    for args in [
        vec!["--offsite", "check"],
        vec!["--offsite", "stats"],
        vec!["--offsite", "key", "list"],
        vec!["--offsite", "gc", "--dry-run"],
        vec!["--offsite", "forget", "--keep-last", "3", "--dry-run"],
        vec!["--job", "shop", "snapshot", "show", "shop:latest"],
    ] {
        let out = silo(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(silo(&["--offsite", "snapshot", "restore", "far:latest"]).stdout, dump(1 << 14, 12));

    let refused = |args: &[&str], names: &str| {
        let out = silo(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{args:?}: {err}");
        assert!(err.trim().lines().count() == 1 && err.contains(names), "{args:?}: {err}");
    };
    refused(&["--job", "nope", "snapshot", "list"], "nope");
    refused(&["--job", "plain", "--offsite", "snapshot", "list"], "plain");
    refused(&["--job", "shop", "run", "shop"], "--job");
    let no_offsite = jobs_file(&main, "");
    let mut c = elsewhere.cmd(&["--offsite", "stats"]);
    c.env("SILO_CONFIG", &no_offsite);
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("no [offsite]"), "{}", stderr(&out));
}

/// Issue 30: `snapshot restore NAME:latest[~N] --before DAY / --after DAY` restores the newest (N-th newest)
/// snapshot of the name in that window, the days read as `snapshot list` reads them; an empty window is a
/// usage error naming the name and the bounds, and an id cannot be combined with a window.
#[test]
fn snapshot_restore_picks_the_newest_before_or_after_a_day() {
    let repo = TestRepo::init();
    let (old, new) = (dump(1 << 14, 21), dump(1 << 14, 22));
    repo.create("shop", &old);
    let id = repo.create("shop", &new);
    repo.create("other", &dump(1 << 12, 23));
    let today = repo.json(&["snapshot", "list"])[0]["finished"].as_str().unwrap()[..10].to_string();
    let restored = |args: &[&str]| repo.ok(&[&["snapshot", "restore"][..], args].concat(), b"").stdout;
    assert_eq!(restored(&["shop:latest", "--before", "today"]), new);
    assert_eq!(restored(&["shop:latest", "--after", &today]), new);
    assert_eq!(restored(&["shop:latest~1", "--after", "yesterday", "--before", &today]), old);
    for (args, says) in [
        (vec!["shop:latest", "--before", "yesterday"], "before the end of yesterday"),
        (vec!["shop:latest", "--after", "2099-01-01"], "on or after 2099-01-01"),
        (vec!["shop:latest~2", "--before", "today"], "of shop, 2 finished"),
        (vec![&id[..12], "--before", "today"], "NAME:latest"),
        (vec!["shop:latest", "--before", "someday"], "--before \"someday\""),
    ] {
        let out = repo.run(&[&["snapshot", "restore"][..], &args].concat(), b"");
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says) && out.stdout.is_empty(), "{args:?}: {}", stderr(&out));
    }
}

/// Issue 30: `silo run` says every step as it ends, one line each on stderr — create, forget with the
/// snapshots it removed — and `--json` carries the same steps (kind, outcome, detail, the removed snapshots'
/// ids and times). A run that forgot three snapshots used to say only "ok".
#[test]
fn run_says_every_step_and_which_snapshots_forget_removed() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("the jobs file names a local path") {
        return;
    }
    let data = repo.dir.path().join("dump.sql");
    std::fs::write(&data, dump(1 << 15, 31)).unwrap();
    let old: Vec<String> = (0..3).map(|_| repo.create("nightly", &dump(1 << 15, 31))).collect();
    let file = jobs_file(
        &repo,
        &format!(
            "\n[jobs.nightly]\nstreams = [{{ command = \"cat {}\", name = \"db\" }}]\nkeep = {{ last = 1 }}\n",
            data.display()
        ),
    );
    let mut c = repo.cmd(&["--json", "run", "nightly"]);
    c.env_remove("SILO_REPO").env_remove("SILO_PASSWORD").env("SILO_CONFIG", &file);
    let out = run_with_input(c, b"");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let line =
        |prefix: &str| err.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {err}"));
    assert!(line("silo: nightly: create ok: snapshot ").contains("read"), "{err}");
    let forget = line("silo: nightly: forget ok: removed 3: ");
    assert!(old.iter().all(|id| forget.contains(&id[..8])) && forget.contains("kept 1"), "{forget}");

    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = report["jobs"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.iter().map(|s| s["step"].as_str().unwrap()).collect::<Vec<_>>(), ["create", "forget"]);
    assert!(steps.iter().all(|s| s["outcome"] == "ok"), "{steps:?}");
    let removed = steps[1]["removed"].as_array().unwrap();
    let mut ids: Vec<&str> = removed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want: Vec<&str> = old.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(ids, want, "{removed:?}");
    assert!(
        removed.iter().all(|r| r["finished"].as_str().unwrap().ends_with('Z') && r["name"] == "nightly"),
        "{removed:?}"
    );
    assert_eq!(repo.snapshot_count(), 1);
}

/// Issue 30: a run whose repository cannot be reached sends one "failed" alert per target and job, not two
/// within the same second: the cooldown is judged from the repository's run records, which it cannot read,
/// so a job run twice by one invocation (`silo run shop shop`; the second fails at once on the repository
/// already found unreachable) alerted twice. The receiver counts the requests.
#[test]
fn an_unreachable_repository_alerts_once_per_target() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("the jobs file names a local path") {
        return;
    }
    let http = util::receiver::Receiver::start();
    let missing = repo.dir.path().join("no-such-repository");
    let job = format!(
        "[jobs.shop]\nstreams = [{{ command = \"echo hi\", name = \"x\" }}]\nkeep = {{ last = 2 }}\nnotify = [\"hook\", \"topic\"]\n\n[notify.hook]\nwebhook = {{ url = \"{}\" }}\n\n[notify.topic]\nntfy = {{ url = \"{}\" }}\n",
        http.url("/hook"),
        http.url("/topic")
    );
    let file = write_jobs_file(&repo, &missing.display().to_string(), &job);
    let mut c = repo.cmd(&["--json", "run", "shop", "shop"]);
    c.env_remove("SILO_REPO").env_remove("SILO_PASSWORD").env("SILO_CONFIG", &file);
    let out = run_with_input(c, b"");
    assert_eq!(out.status.code(), Some(EXIT_UNREACHABLE), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = report["jobs"][1]["steps"].as_array().unwrap();
    let hook = second.iter().find(|s| s["step"] == "notify:hook:failed").unwrap();
    assert!(hook["outcome"] == "skipped" && hook["detail"].as_str().unwrap().contains("sent already"), "{hook}");
    let got = http.take();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths.iter().filter(|p| **p == "/hook").count(), 1, "{paths:?}\n{}", stderr(&out));
    assert_eq!(paths.iter().filter(|p| **p == "/topic").count(), 1, "{paths:?}\n{}", stderr(&out));
    let body: serde_json::Value =
        serde_json::from_slice(&got.iter().find(|r| r.path == "/hook").unwrap().body).unwrap();
    assert_eq!(body["event"], "failed", "{body}");
}

/// Issue 30: `silo run --dry-run` runs `silo doctor`'s checks for the jobs it would run (repositories, the
/// offsite when a job copies there, passwords, tools, notification targets), one line each, exit 1 when one
/// fails; `--send-test` (on `run --dry-run` and `doctor`) sends one test notification through each target
/// and says per target whether it was sent — the payload says it is a test, and a healthchecks target gets a
/// `/log` ping, which changes no check's state.
#[test]
fn run_dry_run_checks_what_the_run_needs_and_send_test_reaches_every_target() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("the jobs file names a local path") {
        return;
    }
    let http = util::receiver::Receiver::start();
    http.answer("/gone", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    let targets = format!(
        "notify = [\"hook\", \"hc\", \"gone\"]\n\n[notify.hook]\nwebhook = {{ url = \"{}\" }}\n\n[notify.hc]\nhealthchecks = {{ url = \"{}\" }}\n\n[notify.gone]\nntfy = {{ url = \"{}\" }}\n",
        http.url("/hook"),
        http.url("/hc"),
        http.url("/gone")
    );
    let file = jobs_file(&repo, &targets);
    let silo = |args: &[&str]| {
        let mut c = repo.cmd(args);
        c.env_remove("SILO_REPO").env_remove("SILO_PASSWORD").env("SILO_CONFIG", &file);
        run_with_input(c, b"")
    };
    // Everything there: the plan, then one line per check, exit 0, and nothing sent.
    let out = silo(&["run", "--dry-run", "shop"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("job shop:") && text.contains("ok    [repository] ") && text.contains("checks passed"),
        "{text}"
    );
    assert!(http.take().is_empty(), "a dry run without --send-test sends nothing");

    for args in [vec!["--json", "run", "--dry-run", "--send-test", "shop"], vec!["--json", "doctor", "--send-test"]] {
        let out = silo(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let check = |what: &str| {
            v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["what"] == what)
                .cloned()
                .unwrap_or_else(|| panic!("{what}: {v}"))
        };
        assert_eq!(check("notify hook: test notification")["ok"], true, "{v}");
        assert_eq!(check("notify hc: test notification")["ok"], true, "{v}");
        let gone = check("notify gone: test notification");
        assert!(gone["ok"] == false && gone["detail"].as_str().unwrap().contains("404"), "{gone}");
        let got = http.take();
        let hook = got.iter().find(|r| r.path == "/hook").expect("the webhook got the test");
        let body: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
        assert!(body["event"] == "test" && body["message"].as_str().unwrap().contains("TEST"), "{body}");
        let hc = got.iter().find(|r| r.path.starts_with("/hc")).expect("the healthchecks target got the test");
        assert_eq!(hc.path, "/hc/log", "a test changes no check's state");
        assert!(String::from_utf8_lossy(&hc.body).contains("TEST"));
        assert_eq!(got.iter().filter(|r| r.path == "/gone").count(), 1, "a 404 is not retried");
    }

    // A job copying offsite: the offsite is checked too, and one that does not open fails the dry run.
    let offsite = format!(
        "offsite = true\n\n[offsite]\nlocation = \"{}\"\npassword_env = \"SILO_TEST_NOTHING\"\n",
        repo.dir.path().join("no-offsite").display()
    );
    let file = jobs_file(&repo, &offsite);
    let mut c = repo.cmd(&["run", "--dry-run", "shop"]);
    c.env_remove("SILO_REPO").env_remove("SILO_PASSWORD").env("SILO_CONFIG", &file);
    let out = run_with_input(c, b"");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.lines().any(|l| l.starts_with("FAIL  [offsite] password") && l.contains("SILO_TEST_NOTHING")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("ok    [repository] ")), "{text}");
}

/// The commands `silo ... --help` lists, each as its words (`["snapshot", "list"]`), found by walking the
/// help itself.
fn commands_of(path: &[String]) -> Vec<Vec<String>> {
    let repo_less = std::process::Command::new(silo_bin()).args(path).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&repo_less.stdout).into_owned();
    let Some(list) = text.split("Commands:\n").nth(1) else { return Vec::new() };
    let mut out = Vec::new();
    for line in list.lines().take_while(|l| l.starts_with("  ")) {
        let name = line.split_whitespace().next().unwrap().to_string();
        if name == "help" {
            continue;
        }
        let mut p = path.to_vec();
        p.push(name);
        out.extend(commands_of(&p));
        out.push(p);
    }
    out
}

/// Issue 30: every command's `--help` ends with an example, and the global options are described once, on
/// `silo --help`: a subcommand's help points there in one line instead of repeating their 14-line block.
#[test]
fn every_command_has_an_example_and_the_global_options_are_shown_once() {
    let commands = commands_of(&[]);
    assert!(commands.len() > 30, "{commands:?}");
    let help = |args: &[String]| {
        let out = std::process::Command::new(silo_bin()).args(args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for c in &commands {
        let text = help(c);
        let example = text
            .lines()
            .find(|l| l.starts_with("Example: silo "))
            .unwrap_or_else(|| panic!("{c:?} --help has no example:\n{text}"));
        assert!(!example.contains("TODO"), "{c:?}");
        assert!(
            !text.contains("Global options:") && !text.contains("--password-file <"),
            "{c:?} repeats the global options:\n{text}"
        );
        assert!(text.contains("see silo --help"), "{c:?}:\n{text}");
    }
    let top = help(&[]);
    assert!(
        top.contains("Global options:") && top.contains("--password-file <") && top.contains("--job <NAME>"),
        "{top}"
    );
    // Hidden from a subcommand's help, a global option still works there.
    let repo = TestRepo::init();
    assert!(repo.ok(&["snapshot", "list", "--json"], b"").stdout.starts_with(b"["));
}
