//! Runs docs/recipes.md against the local servers: the setup and restore blocks as they are; each jobs file
//! installed with its paths moved into a temporary directory and its alert endpoints pointed at receivers
//! of the test; each job run with `silo run`; each `setup-JOB` block (schedules installed into a directory
//! of the test, checked by `systemd-analyze verify`); the command of every cron line and every
//! `ExecStart=` written by hand. The results are compared with the databases they came from.

mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use util::services;
use util::*;

/// A fenced block of the document: its info string (`sh file=x`, `cron`, `ini`, ...), the section heading
/// above it, and its text.
#[derive(Debug)]
struct Block {
    info: String,
    section: String,
    text: String,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut open: Option<Block> = None;
    for line in doc.lines() {
        if let Some(b) = open.as_mut() {
            if line.trim_start().starts_with("```") {
                out.push(open.take().expect("open block"));
            } else {
                b.text.push_str(line);
                b.text.push('\n');
            }
        } else if let Some(info) = line.strip_prefix("```") {
            open = Some(Block { info: info.trim().to_string(), section: section.clone(), text: String::new() });
        } else if let Some(h) = line.strip_prefix("## ") {
            section = h.to_string();
        }
    }
    assert!(open.is_none(), "unterminated code block in docs/recipes.md");
    out
}

/// The commands a cron block runs (fields after the five time fields and the user).
fn cron_commands(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('='))
        .map(|l| l.split_whitespace().skip(6).collect::<Vec<_>>().join(" "))
        .collect()
}

/// The commands the units of an ini block run: each `ExecStart=`, with `%i` replaced by every instance a
/// timer or path unit of the block starts (`Unit=name@instance.service`).
fn unit_commands(text: &str) -> Vec<String> {
    let instances: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Unit="))
        .filter_map(|u| u.split_once('@').map(|(_, rest)| rest.trim_end_matches(".service")))
        .collect();
    let mut out = Vec::new();
    for exec in text.lines().filter_map(|l| l.trim().strip_prefix("ExecStart=")) {
        if exec.contains("%i") {
            assert!(!instances.is_empty(), "a templated unit without a timer naming an instance: {exec}");
            out.extend(instances.iter().map(|i| exec.replace("%i", i)));
        } else {
            out.push(exec.to_string());
        }
    }
    out
}

/// Recipe tests share the database servers (recipe 4 dumps every database on them).
static SERVERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Env {
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
    /// Text replacements that move the recipes' paths and endpoints into the test.
    moves: Vec<(String, String)>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let silo_dir = Path::new(silo_bin()).parent().expect("bin dir").to_path_buf();
        let path = format!("{}:{}", silo_dir.display(), std::env::var("PATH").unwrap_or_default());
        let at = |p: &str| dir.path().join(p).display().to_string();
        for d in ["srv/app", "etc/silo", "mnt/nas", "units"] {
            std::fs::create_dir_all(at(d)).expect("dirs");
        }
        let mut vars: BTreeMap<String, String> = [
            ("PATH", path),
            ("SILO_REPO", at("srv/silo")),
            ("SILO_PASSWORD_FILE", at("etc/silo/password")),
            ("OFFSITE", at("mnt/nas/silo")),
            ("OFFSITE_PASSWORD_FILE", at("etc/silo/offsite-password")),
            ("SILO_CACHE_DIR", at("cache")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in services::PG_ENV.iter().chain(services::MY_ENV.iter()) {
            vars.insert(k.to_string(), v.to_string());
        }
        let moves = vec![
            ("/usr/local/bin/silo".to_string(), silo_bin().to_string()),
            ("/srv/".into(), at("srv/")),
            ("/etc/silo/".into(), at("etc/silo/")),
            ("/mnt/nas/".into(), at("mnt/nas/")),
        ];
        Env { dir, vars, moves }
    }

    fn moved(&self, text: &str) -> String {
        self.moves.iter().fold(text.to_string(), |t, (from, to)| t.replace(from, to))
    }

    /// Runs `script` with `sh -eu` in the temporary directory; it must succeed.
    fn sh(&self, script: &str, extra: &[(&str, &str)]) -> String {
        let script = self.moved(script);
        let out = Command::new("sh")
            .args(["-euc", &script])
            .current_dir(self.dir.path())
            .env_remove("SILO_PASSWORD")
            .envs(&self.vars)
            .envs(extra.iter().copied())
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "recipe failed: {script}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Installs the jobs file `name` of the recipes, moved into the test, with `edits` applied.
    fn jobs_file(&self, all: &[Block], name: &str, edits: &[(&str, &str)]) -> String {
        let block = all.iter().find(|b| b.info == format!("toml file={name}")).expect("jobs file in recipes");
        let text = edits.iter().fold(self.moved(&block.text), |t, (from, to)| {
            assert!(t.contains(from), "{name} has {from:?}");
            t.replace(from, to)
        });
        let path = self.dir.path().join("etc/silo").join(name);
        std::fs::write(&path, text).expect("jobs file");
        path.display().to_string()
    }

    /// `silo --json ARGS` with this environment: exit code and report.
    fn silo(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let mut c = Command::new(silo_bin());
        c.env_remove("SILO_PASSWORD").envs(&self.vars).arg("--json").args(args).current_dir(self.dir.path());
        let out = c.output().expect("silo");
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("silo {args:?}: {e}: {}", stderr(&out)));
        (out.status.code().unwrap_or(-1), v)
    }

    /// `silo run JOB` with jobs file `config`, as its timer would; must succeed.
    fn run(&self, config: &str, job: &str) -> serde_json::Value {
        let (code, report) = self.silo(&["--config", config, "run", job]);
        assert_eq!(code, 0, "silo run {job}: {report}");
        report
    }

    fn snapshots(&self, offsite: bool, name: &str) -> Vec<serde_json::Value> {
        let mut args = vec![];
        if offsite {
            args = vec!["--repo", &self.vars["OFFSITE"], "--password-file", &self.vars["OFFSITE_PASSWORD_FILE"]];
        }
        args.extend(["snapshot", "list", "--name", name]);
        let (code, list) = self.silo(&args);
        assert_eq!(code, 0, "{list}");
        list.as_array().expect("array").clone()
    }

    /// Runs the recipe's `setup-JOB` block with schedules installed into the test's unit directory, then
    /// has systemd verify what it wrote.
    fn install_schedule(&self, all: &[Block], job: &str) {
        let block = all.iter().find(|b| b.info == format!("sh setup-{job}")).expect("setup block");
        let units = self.dir.path().join("units");
        let script = block.text.replace("schedule install", &format!("schedule install --dir {}", units.display()));
        self.sh(&script, &[]);
        let timer = units.join(format!("silo-job-{job}.timer"));
        assert!(timer.exists(), "the timer of {job}");
        if services::require("systemd-analyze", services::tool("systemd-analyze", "--version")) {
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(&timer)
                .arg(units.join(format!("silo-job-{job}.service")))
                .output()
                .expect("systemd-analyze");
            assert!(out.status.success(), "systemd-analyze verify: {}", stderr(&out));
        }
    }
}

/// Runs every hand-written cron line and unit `ExecStart=` of `section`; returns how many.
fn run_schedules(env: &Env, all: &[Block], section: &str, extra: &[(&str, &str)]) -> usize {
    let mut n = 0;
    for b in all.iter().filter(|b| b.section.contains(section)) {
        let commands = match b.info.as_str() {
            "cron" => cron_commands(&b.text),
            "ini" => unit_commands(&b.text),
            _ => continue,
        };
        for c in commands {
            env.sh(&c, extra);
            n += 1;
        }
    }
    n
}

fn run_restores(env: &Env, all: &[Block], section: &str, extra: &[(&str, &str)]) {
    let restores: Vec<_> = all.iter().filter(|b| b.section.contains(section) && b.info == "sh restore").collect();
    assert!(!restores.is_empty(), "section {section} has a restore block");
    for b in restores {
        env.sh(&b.text, extra);
    }
}

fn recipes() -> (Vec<Block>, Env) {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/recipes.md")).expect("recipes");
    let all = blocks(&doc);
    for b in &all {
        assert!(
            ["sh setup", "sh restore", "cron", "ini"].contains(&b.info.as_str())
                || b.info.starts_with("toml file=")
                || b.info.starts_with("sh setup-"),
            "a block the test does not run: {:?}",
            b.info
        );
    }
    let env = Env::new();
    let setup: Vec<_> = all.iter().filter(|b| b.info == "sh setup").collect();
    assert_eq!(setup.len(), 1);
    env.sh(&setup[0].text, &[]);
    (all, env)
}

#[test]
fn every_jobs_file_of_the_recipes_is_valid_and_every_block_is_run_by_a_test() {
    let (all, env) = recipes();
    let files: Vec<&str> = all.iter().filter_map(|b| b.info.strip_prefix("toml file=")).collect();
    assert_eq!(files, ["mariadb.toml", "postgres.toml", "sqlite.toml", "everything.toml", "crm.toml"]);
    for f in files {
        let config = env.jobs_file(&all, f, &[]);
        // Valid: planned (exit 0 or 1, never 2). A dry run also checks what the run needs (issue 30): the
        // repositories, which the test set up, open; the recipes' databases and hosts are not all here.
        let (code, plan) = env.silo(&["--config", &config, "run", "--all", "--dry-run"]);
        assert!(code == 0 || code == 1, "{f}: {plan}");
        assert!(!plan["jobs"].as_array().unwrap().is_empty(), "{f}: {plan}");
        let failed_repository = plan["checks"].as_array().unwrap().iter().find(|c| {
            c["ok"] == false
                && (c["what"].as_str().unwrap().starts_with("[repository]")
                    || c["what"].as_str().unwrap().starts_with("[offsite]"))
        });
        assert!(failed_repository.is_none(), "{f}: {plan}");
    }
    let units: Vec<String> = all.iter().filter(|b| b.info == "ini").flat_map(|b| unit_commands(&b.text)).collect();
    assert_eq!(units, ["/usr/local/bin/silo --config /etc/silo/sqlite.toml run notes"]);
    let cron: Vec<String> = all.iter().filter(|b| b.info == "cron").flat_map(|b| cron_commands(&b.text)).collect();
    assert_eq!(cron, ["/usr/local/bin/silo --config /etc/silo/crm.toml status crm"]);
}

#[test]
fn mariadb_recipe_keeps_hourly_copies_offsite_alerts_and_restores_from_both() {
    if !services::mariadb() {
        return;
    }
    let _servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
    let db = "silo_t_recipe_shop";
    for d in [db.to_string(), format!("{db}_restored"), format!("{db}_offsite")] {
        services::my_drop(&d);
    }
    services::my_fresh(db);
    services::mysql(
        Some(db),
        "CREATE TABLE items (id int PRIMARY KEY, name text, price decimal(8,2), added datetime);
         INSERT INTO items SELECT seq, CONCAT('item ', seq), seq / 7, TIMESTAMP('2026-01-01') + INTERVAL seq HOUR
           FROM seq_1_to_20000;",
    );
    let (all, env) = recipes();
    let pushover = util::receiver::Receiver::start();
    for (file, secret) in [("pushover-token", "app-token"), ("pushover-user", "user-key")] {
        use std::os::unix::fs::PermissionsExt;
        let path = env.dir.path().join("etc/silo").join(file);
        std::fs::write(&path, secret).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let url = format!("pushover = {{ url = \"{}\", ", pushover.url("/1/messages.json"));
    let config = env.jobs_file(
        &all,
        "mariadb.toml",
        &[("database = \"shop\"", &format!("database = \"{db}\"")), ("pushover = { ", &url)],
    );
    env.install_schedule(&all, "shop");
    for _ in 0..3 {
        env.run(&config, "shop");
    }
    // Three runs within one hour: retention keeps the newest of the hour, here and offsite.
    let main = env.snapshots(false, "shop");
    assert_eq!(main.len(), 1, "{main:?}");
    let offsite = env.snapshots(true, "shop");
    assert_eq!(offsite.len(), 1, "{offsite:?}");
    assert_eq!(offsite[0]["streams"][0]["blake3"], main[0]["streams"][0]["blake3"]);
    assert!(pushover.take().is_empty(), "nothing to alert");
    run_restores(&env, &all, "MariaDB", &[("DB", db)]);
    let original = services::mysqldump(db);
    assert!(services::mysqldump(&format!("{db}_restored")) == original, "restored from the main repository");
    assert!(services::mysqldump(&format!("{db}_offsite")) == original, "restored from the offsite copy");
    // The database goes away: the run fails, Pushover hears of it once.
    services::my_drop(db);
    let (code, _) = env.silo(&["--config", &config, "run", "shop"]);
    assert_eq!(code, 7);
    let sent = pushover.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(String::from_utf8_lossy(&sent[0].body).contains("token=app-token"));
    let (code, status) = env.silo(&["--config", &config, "status"]);
    assert_eq!((code, status["jobs"][0]["state"].as_str()), (10, Some("failing")), "{status}");
    for d in [format!("{db}_restored"), format!("{db}_offsite")] {
        services::my_drop(&d);
    }
}

#[test]
fn postgres_recipe_keeps_three_drills_and_restores() {
    if !services::postgres() {
        return;
    }
    let _servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
    let db = "silo_t_recipe_app";
    for d in [db.to_string(), format!("{db}_restored"), "app_drill".to_string()] {
        services::pg_drop(&d);
    }
    services::pg_fresh(db);
    services::psql(
        db,
        "CREATE TABLE events (id bigint PRIMARY KEY, payload jsonb, at timestamptz);
         INSERT INTO events SELECT g, jsonb_build_object('n', g), timestamptz '2026-01-01' + g * interval '1 min'
           FROM generate_series(1, 20000) g;",
    );
    let (all, env) = recipes();
    let config = env.jobs_file(&all, "postgres.toml", &[("database = \"app\"", &format!("database = \"{db}\""))]);
    env.install_schedule(&all, "app");
    for _ in 0..4 {
        env.run(&config, "app");
    }
    let kept = env.snapshots(false, "app");
    assert_eq!(kept.len(), 3, "four runs, keep last 3");
    assert_eq!(kept[0]["streams"].as_array().map(Vec::len), Some(2), "database and globals");
    let original = services::pg_dump(db);
    assert!(services::pg_dump("app_drill") == original, "the drill restored the database");
    let (_, status) = env.silo(&["--config", &config, "status", "app"]);
    assert_eq!(status["jobs"][0]["last_drill_ok"].as_bool(), Some(true), "{status}");
    run_restores(&env, &all, "PostgreSQL: every", &[("DB", db)]);
    assert!(services::pg_dump(&format!("{db}_restored")) == original, "restored");
    let globals = std::fs::read_to_string(env.dir.path().join("globals.sql")).expect("globals.sql");
    assert!(globals.contains("CREATE ROLE"));
    for d in [db.to_string(), format!("{db}_restored"), "app_drill".to_string()] {
        services::pg_drop(&d);
    }
}

#[test]
fn sqlite_recipe_runs_daily_and_on_change_and_restores() {
    if !services::sqlite() {
        return;
    }
    let (all, env) = recipes();
    let db = env.dir.path().join("srv/app/notes.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO notes SELECT i, 'note ' || i FROM n;",
        )
        .output()
        .expect("sqlite3");
    assert!(out.status.success());
    let config = env.jobs_file(&all, "sqlite.toml", &[]);
    env.install_schedule(&all, "notes");
    env.run(&config, "notes");
    assert_eq!(run_schedules(&env, &all, "SQLite: daily", &[]), 1, "the on-change unit");
    assert_eq!(env.snapshots(false, "notes").len(), 2);
    run_restores(&env, &all, "SQLite: daily", &[]);
    let dump = |p: &Path| Command::new("sqlite3").arg(p).arg(".dump").output().expect("dump").stdout;
    assert!(dump(&env.dir.path().join("restored.db")) == dump(&db), "restored database holds the same data");
}

#[test]
fn everything_recipe_dumps_every_database_and_redis_and_drills() {
    if !services::postgres() || !services::mariadb() {
        return;
    }
    let _servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
    services::pg_fresh("silo_t_recipe_every");
    services::psql("silo_t_recipe_every", "CREATE TABLE t AS SELECT 1 AS x");
    services::my_fresh("silo_t_recipe_every");
    let (all, env) = recipes();
    let Some(slapd) = util::ldap::Slapd::start(env.dir.path()) else { return };
    let ldap = format!("ldap = {{ config = {:?}, suffix", slapd.config.display().to_string());
    let config = env.jobs_file(&all, "everything.toml", &[("ldap = { suffix", &ldap)]);
    let report = env.run(&config, "everything");
    let steps: Vec<&str> =
        report["jobs"][0]["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["create", "forget", "drill"], "{report}");
    let (_, show) = env.silo(&["snapshot", "show", "everything:latest"]);
    let streams: Vec<&str> = show["streams"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for want in
        ["pg-silo_t_recipe_every", "pg-globals", "pg-postgres", "my-silo_t_recipe_every", "my-mysql", "redis", "ldap"]
    {
        assert!(streams.contains(&want), "{want} in {streams:?}");
    }
    let (code, ldif) = {
        let out = Command::new(silo_bin())
            .env_remove("SILO_PASSWORD")
            .envs(&env.vars)
            .args(["snapshot", "restore", "everything:latest:ldap"])
            .output()
            .unwrap();
        (out.status.code(), out.stdout)
    };
    assert_eq!((code, ldif), (Some(0), slapd.slapcat()), "the directory's LDIF");
    env.install_schedule(&all, "everything");
    let metrics = std::fs::read_to_string(env.dir.path().join("srv/silo-metrics.prom")).expect("metrics");
    assert!(metrics.contains("silo_job_ok{job=\"everything\"} 1"), "{metrics}");
    services::pg_drop("silo_t_recipe_every");
    services::my_drop("silo_t_recipe_every");
}

#[test]
fn crm_recipe_mails_a_failure_and_restores_both_streams() {
    if !services::postgres() || !services::sqlite() {
        return;
    }
    let _servers = SERVERS.lock().unwrap_or_else(|p| p.into_inner());
    let db = "silo_t_recipe_crm";
    services::pg_drop(db);
    services::pg_drop(&format!("{db}_restored"));
    let (all, env) = recipes();
    let Some(mail) = util::mail::MailServer::start(env.dir.path()) else { return };
    let sessions = env.dir.path().join("srv/app/sessions.db");
    let made =
        Command::new("sqlite3").arg(&sessions).arg("CREATE TABLE s(k); INSERT INTO s VALUES ('a');").output().unwrap();
    assert!(made.status.success());
    let smtp =
        "smtp = \"smtp.example.net:587\", username = \"silo\", password = { file = \"/etc/silo/smtp-password\" }";
    let local = format!("smtp = \"127.0.0.1:{}\"", mail.port);
    let config = env.jobs_file(
        &all,
        "crm.toml",
        &[("database = \"crm\"", &format!("database = \"{db}\"")), (&env.moved(smtp), &local)],
    );
    env.install_schedule(&all, "crm");
    // The database does not exist yet: the run fails and ops get an e-mail.
    let (code, _) = env.silo(&["--config", &config, "run", "crm"]);
    assert_eq!(code, 7);
    let mails = mail.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: silo: backup job crm FAILED") && mails[0].contains("To: ops@example.net"),
        "{}",
        mails[0]
    );
    services::pg_fresh(db);
    services::psql(
        db,
        "CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers VALUES (1, 'ada')",
    );
    env.run(&config, "crm");
    assert_eq!(mail.messages().len(), 2, "the recovery is mailed too");
    let (code, _) = env.silo(&["--config", &config, "status", "crm"]);
    assert_eq!(code, 0);
    run_restores(&env, &all, "e-mail alerts", &[("DB", db)]);
    assert!(services::pg_dump(&format!("{db}_restored")) == services::pg_dump(db));
    let restored = Command::new("sqlite3")
        .arg(env.dir.path().join("sessions-restored.db"))
        .arg("SELECT k FROM s")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&restored.stdout).trim(), "a");
    assert_eq!(run_schedules(&env, &all, "e-mail alerts", &[]), 1, "the hourly status line");
    services::pg_drop(db);
    services::pg_drop(&format!("{db}_restored"));
}
