//! docs/config.md cannot drift from the code (issue 30; borgmatic's schema as the model): for every table of
//! the jobs file, silo itself is asked which keys it accepts — a key it does not know is refused with the
//! list of those it does — and the page must list exactly those.

mod util;

use std::collections::BTreeSet;
use util::*;

const BASE: &str = "[repository]\nlocation = \"/nonexistent/silo\"\npassword = \"p\"\n";

/// The jobs file for each table of docs/config.md, with an unknown key `zzz_unknown` in that table.
fn probes() -> Vec<(&'static str, String)> {
    let job = |extra: &str| format!("{BASE}[jobs.j]\nstreams = [{{ command = \"true\" }}]\n{extra}\n");
    let stream = |entry: &str| format!("{BASE}[jobs.j]\nstreams = [{{ {entry} }}]\n");
    let target = |body: &str| format!("{BASE}[notify.n]\n{body}\n");
    vec![
        ("top", format!("zzz_unknown = 1\n{BASE}")),
        ("repository", format!("{BASE}zzz_unknown = 1\n")),
        ("job", job("zzz_unknown = 1")),
        ("stream", stream("command = \"true\", zzz_unknown = 1")),
        ("database", stream("postgres = { database = \"d\", zzz_unknown = 1 }")),
        ("server", stream("redis = { zzz_unknown = 1 }")),
        ("ldap", stream("ldap = { zzz_unknown = 1 }")),
        ("keep", job("keep = { zzz_unknown = 1 }")),
        ("check", job("check = { zzz_unknown = 1 }")),
        ("drill", job("drill = { command = \"x\", zzz_unknown = 1 }")),
        ("target", target("zzz_unknown = 1")),
        ("secret", target("webhook = { url = \"https://x\", secret = { zzz_unknown = 1 } }")),
        ("webhook", target("webhook = { url = \"https://x\", zzz_unknown = 1 }")),
        ("ntfy", target("ntfy = { url = \"https://x\", zzz_unknown = 1 }")),
        ("pushover", target("pushover = { zzz_unknown = 1 }")),
        ("healthchecks", target("healthchecks = { url = \"https://x\", zzz_unknown = 1 }")),
        ("email", target("email = { zzz_unknown = 1 }")),
    ]
}

/// The keys silo lists after "expected" in its refusal of `zzz_unknown`.
fn keys_silo_accepts(repo: &TestRepo, name: &str, text: &str) -> BTreeSet<String> {
    let file = repo.dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = repo.run(&["--config", file.to_str().unwrap(), "run", "--dry-run", "--all"], b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{name}: {err}");
    let after = err.split("zzz_unknown").nth(1).and_then(|t| t.split_once("expected")).map(|(_, t)| t);
    let after = after.unwrap_or_else(|| panic!("{name}: no list of known keys in {err:?}"));
    after.split('`').skip(1).step_by(2).map(String::from).collect()
}

/// The keys docs/config.md lists in the table marked `<!-- table: NAME -->`.
fn keys_documented(doc: &str, name: &str) -> BTreeSet<String> {
    let marker = format!("<!-- table: {name} -->");
    let start = doc.find(&marker).unwrap_or_else(|| panic!("docs/config.md has no {marker}"));
    doc[start + marker.len()..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.strip_prefix("| `").and_then(|r| r.split('`').next()))
        .map(String::from)
        .collect()
}

#[test]
fn every_key_silo_accepts_is_documented_and_nothing_else() {
    let repo = TestRepo::init();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.md")).unwrap();
    let mut checked = 0;
    for (name, text) in probes() {
        let accepted = keys_silo_accepts(&repo, name, &text);
        assert!(!accepted.is_empty(), "{name}");
        assert_eq!(keys_documented(&doc, name), accepted, "docs/config.md, table {name}, against silo's own list");
        checked += accepted.len();
    }
    eprintln!("{checked} keys in {} tables checked against docs/config.md", probes().len());
}
