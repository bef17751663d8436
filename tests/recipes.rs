//! Runs docs/recipes.md: its setup and restore blocks as they are, its scripts installed in a temporary
//! bin directory, and the command of every cron line and every `ExecStart=` of its systemd units, against
//! the local database servers. The results are then compared with the databases they came from.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
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

struct Env {
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
}

impl Env {
    fn new(scripts: &[&Block]) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        for b in scripts {
            let name = b.info.split("file=").nth(1).expect("file=").trim();
            let path = bin.join(name);
            std::fs::write(&path, &b.text).expect("write script");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let silo_dir = Path::new(silo_bin()).parent().expect("bin dir").to_path_buf();
        let path = format!("{}:{}:{}", silo_dir.display(), bin.display(), std::env::var("PATH").unwrap_or_default());
        let at = |p: &str| dir.path().join(p).display().to_string();
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
        Env { dir, vars }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// Runs `script` with `sh -eu` in the temporary directory; it must succeed.
    fn sh(&self, script: &str, extra: &[(&str, &str)]) -> String {
        let script = script.replace("/usr/local/sbin/", &format!("{}/", self.bin().display()));
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

    /// `silo` on the main (or, with `offsite`, the offsite) repository of this environment.
    fn silo_json(&self, offsite: bool, args: &[&str]) -> serde_json::Value {
        let mut c = Command::new(silo_bin());
        c.env_remove("SILO_PASSWORD").envs(&self.vars).arg("--json");
        if offsite {
            c.args(["--repo", &self.vars["OFFSITE"], "--password-file", &self.vars["OFFSITE_PASSWORD_FILE"]]);
        }
        let out = c.args(args).output().expect("silo");
        assert!(out.status.success(), "silo {args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    fn snapshots(&self, offsite: bool, name: &str) -> Vec<serde_json::Value> {
        let list = self.silo_json(offsite, &["snapshot", "list", "--name", name]);
        list.as_array().expect("array").clone()
    }
}

/// Runs every scheduled command of `section` (cron lines, then unit ExecStarts) and returns how many.
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
    let scripts: Vec<&Block> = all.iter().filter(|b| b.info.starts_with("sh file=")).collect();
    assert_eq!(scripts.len(), 3, "one script per workflow");
    for b in &all {
        assert!(
            ["sh setup", "sh restore", "cron", "ini"].contains(&b.info.as_str()) || b.info.starts_with("sh file="),
            "a block the test does not run: {:?}",
            b.info
        );
    }
    let env = Env::new(&scripts);
    let setup: Vec<_> = all.iter().filter(|b| b.info == "sh setup").collect();
    assert_eq!(setup.len(), 1);
    env.sh(&setup[0].text, &[]);
    (all, env)
}

#[test]
fn the_recipes_parse_into_commands() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/recipes.md")).expect("recipes");
    let all = blocks(&doc);
    let mariadb: Vec<String> = all
        .iter()
        .filter(|b| b.section.contains("MariaDB") && (b.info == "cron" || b.info == "ini"))
        .flat_map(|b| if b.info == "cron" { cron_commands(&b.text) } else { unit_commands(&b.text) })
        .collect();
    assert_eq!(
        mariadb,
        [
            "/usr/local/sbin/silo-mariadb hourly",
            "/usr/local/sbin/silo-mariadb daily",
            "/usr/local/sbin/silo-mariadb hourly",
            "/usr/local/sbin/silo-mariadb daily"
        ]
    );
    let sqlite_units: Vec<String> = all
        .iter()
        .filter(|b| b.section.contains("SQLite") && b.info == "ini")
        .flat_map(|b| unit_commands(&b.text))
        .collect();
    assert_eq!(sqlite_units, ["/usr/local/sbin/silo-sqlite daily", "/usr/local/sbin/silo-sqlite event"]);
}

#[test]
fn mariadb_recipe_runs_and_restores_from_both_repositories() {
    if !services::mariadb() {
        return;
    }
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
    let extra = [("DB", db)];
    assert_eq!(run_schedules(&env, &all, "MariaDB", &extra), 4);
    // Four runs within one hour: retention keeps the newest of the hour (and day, week, month).
    let main = env.snapshots(false, db);
    assert_eq!(main.len(), 1, "{main:?}");
    // Each daily run copied the newest snapshot; the offsite retention keeps the newest of the day.
    let offsite = env.snapshots(true, db);
    assert_eq!(offsite.len(), 1, "{offsite:?}");
    assert_eq!(offsite[0]["started"], main[0]["started"], "the offsite copy is the newest snapshot");
    assert_eq!(offsite[0]["streams"][0]["blake3"], main[0]["streams"][0]["blake3"]);
    run_restores(&env, &all, "MariaDB", &extra);
    let original = services::mysqldump(db);
    assert!(services::mysqldump(&format!("{db}_restored")) == original, "restored from the main repository");
    assert!(services::mysqldump(&format!("{db}_offsite")) == original, "restored from the offsite copy");
    run_restores(&env, &all, "Watching", &extra);
    for d in [db.to_string(), format!("{db}_restored"), format!("{db}_offsite")] {
        services::my_drop(&d);
    }
}

#[test]
fn postgres_recipe_keeps_three_and_restores() {
    if !services::postgres() {
        return;
    }
    let db = "silo_t_recipe_app";
    for d in [db.to_string(), format!("{db}_restored"), format!("{db}_drill")] {
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
    let extra = [("DB", db)];
    assert_eq!(run_schedules(&env, &all, "PostgreSQL", &extra), 2);
    run_schedules(&env, &all, "PostgreSQL", &extra);
    let kept = env.snapshots(false, db);
    assert_eq!(kept.len(), 3, "four runs, --keep-last 3");
    assert_eq!(kept[0]["streams"].as_array().map(Vec::len), Some(2), "database and globals");
    run_restores(&env, &all, "PostgreSQL", &extra);
    let original = services::pg_dump(db);
    assert!(services::pg_dump(&format!("{db}_restored")) == original, "pg_restore of the newest snapshot");
    assert!(services::pg_dump(&format!("{db}_drill")) == original, "the drill restored it too");
    let globals = std::fs::read_to_string(env.dir.path().join("globals.sql")).expect("globals.sql");
    assert!(globals.contains("CREATE ROLE"));
    let show = env.silo_json(false, &["snapshot", "show", &format!("{db}:latest")]);
    assert_eq!(show["drills"][0]["ok"], true, "the drill is recorded: {show}");
    for d in [db.to_string(), format!("{db}_restored"), format!("{db}_drill")] {
        services::pg_drop(&d);
    }
}

#[test]
fn sqlite_recipe_runs_daily_and_on_change_and_restores_the_file() {
    if !services::sqlite() {
        return;
    }
    let (all, env) = recipes();
    let db = env.dir.path().join("notes.db");
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
    let db_text = db.display().to_string();
    let extra = [("DB", db_text.as_str()), ("NAME", "notes")];
    assert_eq!(run_schedules(&env, &all, "SQLite", &extra), 3);
    let snaps = env.snapshots(false, "notes");
    assert_eq!(snaps.len(), 3);
    let tags: Vec<_> = snaps.iter().map(|s| s["tags"][0].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(tags, ["daily", "daily", "event"]);
    run_restores(&env, &all, "SQLite", &extra);
    let dump = |p: &Path| Command::new("sqlite3").arg(p).arg(".dump").output().expect("dump").stdout;
    assert!(dump(&env.dir.path().join("restored.db")) == dump(&db), "restored file holds the same data");
}
