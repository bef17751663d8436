//! README's quick start, walked as written (issue 30): the code blocks are taken from README.md itself and
//! run with bash against the test PostgreSQL, so README and behaviour cannot drift. Only the places are
//! swapped for the test's own: the repository and password paths, and the database names (`shop` becomes a
//! test database; the snapshot name follows it).

mod util;

use std::process::Command;
use util::*;

/// The indented code lines of README's section `heading` (up to the next `## `), comments stripped.
fn section_commands(readme: &str, heading: &str) -> Vec<String> {
    let start = readme.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
    let body = &readme[start + heading.len()..];
    let end = body.find("\n## ").unwrap_or(body.len());
    body[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .map(|l| l.split("  #").next().unwrap_or(l).trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The TOML block of README's section `heading`.
fn section_toml(readme: &str, heading: &str) -> String {
    let start = readme.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
    let body = &readme[start..];
    let open = body.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let close = body[open..].find("```").expect("the block ends");
    body[open..open + close].to_string()
}

fn bash(script: &str, path: &str) -> std::process::Output {
    let mut c = Command::new("bash");
    c.args(["-e", "-o", "pipefail", "-c", script]).env("PATH", path).envs(services::PG_ENV);
    c.env_remove("SILO_REPO").env_remove("SILO_PASSWORD").env_remove("SILO_CONFIG");
    c.output().expect("bash")
}

#[test]
fn the_quick_start_runs_as_written() {
    if !services::postgres() {
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (repo, pw, cache) = (dir.path().join("repo"), dir.path().join("password"), dir.path().join("cache"));
    std::fs::write(&pw, "quick start password\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (db, restored) = ("silo_t_readme_shop", "silo_t_readme_shop_restored");
    for d in [db, restored] {
        services::pg_drop(d);
    }
    services::pg_fresh(db);
    services::psql(db, "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 500) g");
    let swap = |line: &str| {
        line.replace("/srv/backup/silo", repo.to_str().unwrap())
            .replace("/backup/silo", repo.to_str().unwrap())
            .replace("/etc/silo/password", pw.to_str().unwrap())
            .replace("shop_restored", "\u{1}")
            .replace("shop", db)
            .replace('\u{1}', restored)
    };
    let commands: Vec<String> = section_commands(&readme, "## Quick start").iter().map(|l| swap(l)).collect();
    assert!(commands.len() >= 6 && commands[0].starts_with("export SILO_REPO="), "{commands:?}");
    let bin_dir = std::path::Path::new(silo_bin()).parent().unwrap().display().to_string();
    let path = format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let script = format!("export SILO_CACHE_DIR={}\n{}", cache.display(), commands.join("\n"));
    let out = bash(&script, &path);
    assert!(out.status.success(), "the quick start failed:\n{script}\n{}", stderr(&out));
    assert_eq!(services::psql(restored, "SELECT count(*) FROM orders"), "500", "restored as README says");

    // The jobs file of "Five minutes with a jobs file", with this test's repository and database.
    let jobs = swap(&section_toml(&readme, "## Five minutes with a jobs file"));
    let file = dir.path().join("silo.toml");
    std::fs::write(&file, jobs).unwrap();
    let lines: Vec<String> = section_commands(&readme, "## Five minutes with a jobs file")
        .iter()
        .map(|l| swap(l))
        // `schedule install` writes system timers: tests/jobs.rs covers it in a private directory.
        .filter(|l| !l.contains("schedule install"))
        .collect();
    let script =
        format!("export SILO_CACHE_DIR={} SILO_CONFIG={}\n{}", cache.display(), file.display(), lines.join("\n"));
    let out = bash(&script, &path);
    assert!(
        out.status.success(),
        "the jobs quick start failed:\n{script}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    for d in [db, restored] {
        services::pg_drop(d);
    }
}
