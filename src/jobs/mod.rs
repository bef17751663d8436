//! The jobs file (`silo.toml`): repositories and backup jobs, parsed and validated in full before anything
//! runs (a bad key, type or value is one error line `FILE:LINE: what; what is allowed`). Pure: the caller
//! reads the file and checks who may read it (a file that holds a password must be owner-only, I12).
//!
//! ```toml
//! [repository]
//! location = "/srv/silo"
//! password_file = "/etc/silo/password"     # or password_env = "NAME", or password = "..." (owner-only file)
//!
//! [offsite]                                # optional: where `offsite = true` jobs copy each snapshot
//! location = "s3:https://s3.example.net/backups"
//! password_file = "/etc/silo/offsite-password"
//!
//! [jobs.shop]
//! streams = [{ postgres = { database = "shop" } }, { sqlite = "/srv/app/app.db" }]
//! keep = { hourly = 24, daily = 7, monthly = 12 }
//! offsite = true
//! freshness = "26h"                        # `silo status`: stale after this long without a success
//! min_size = "1 MB"                        # a snapshot smaller than this fails the run
//! shrink_alert = 50                        # percent: `silo status` flags a drop this large
//! schedule = "daily 02:00"                 # `silo schedule install`: a systemd timer or a cron line
//! ```

pub mod facts;
pub mod metrics;
pub mod presets;
pub mod run;
pub mod schedule;
pub mod status;

use crate::retention::{Evaluate, Policy};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the jobs file is looked for: `--config`, `SILO_CONFIG`, `/etc/silo/silo.toml`, then
/// `$XDG_CONFIG_HOME/silo/silo.toml` (or `~/.config/silo/silo.toml`).
pub fn default_paths() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/etc/silo/silo.toml")];
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = xdg {
        out.push(dir.join("silo").join("silo.toml"));
    }
    out
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobsFile {
    pub repository: RepoConfig,
    pub offsite: Option<RepoConfig>,
    #[serde(default)]
    pub jobs: BTreeMap<String, Job>,
    /// Named notification targets (crate::notify), used by jobs' `notify = [...]`.
    #[serde(default)]
    pub notify: BTreeMap<String, crate::notify::Target>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub location: String,
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable that holds the password.
    pub password_env: Option<String>,
    /// The password itself: only in an owner-only file (the caller checks).
    pub password: Option<Secret>,
    pub cache_dir: Option<PathBuf>,
}

/// A password written in the file; never printed (Debug shows `***`).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where a repository's password comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PasswordSource {
    File(PathBuf),
    Env(String),
    Inline(Secret),
}

impl RepoConfig {
    pub fn password_source(&self) -> Option<PasswordSource> {
        match (&self.password_file, &self.password_env, &self.password) {
            (Some(f), _, _) => Some(PasswordSource::File(f.clone())),
            (_, Some(e), _) => Some(PasswordSource::Env(e.clone())),
            (_, _, Some(p)) => Some(PasswordSource::Inline(p.clone())),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub streams: Vec<presets::StreamEntry>,
    pub keep: Option<Keep>,
    #[serde(default)]
    pub offsite: bool,
    #[serde(default, deserialize_with = "duration")]
    pub freshness: Option<u64>,
    #[serde(default, deserialize_with = "size")]
    pub min_size: Option<u64>,
    /// Percent: a snapshot this much smaller than the previous one of the job is flagged by `status`.
    #[serde(default = "default_shrink")]
    pub shrink_alert: u8,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Verify the repository's data when due: `check = { subset = "5%", every = "7d" }`.
    pub check: Option<CheckCadence>,
    /// Restore the newest snapshot into a command when due, timed and recorded:
    /// `drill = { command = "psql -q -d scratch", every = "7d" }`.
    pub drill: Option<DrillCadence>,
    /// Notification targets (names of [notify.NAME] tables).
    #[serde(default)]
    pub notify: Vec<String>,
    /// One notification per (job, event) per this long (default 6h).
    #[serde(default, deserialize_with = "duration")]
    pub cooldown: Option<u64>,
    /// When `silo schedule install` runs the job (schedule.rs has the forms).
    #[serde(default, deserialize_with = "schedule")]
    pub schedule: Option<schedule::Schedule>,
    /// Environment variables (names) passed on from silo's to the job's commands, beyond what each preset's
    /// tool reads (I21: nothing else is).
    #[serde(default)]
    pub env: Vec<String>,
}

fn schedule<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<schedule::Schedule>, D::Error> {
    schedule::Schedule::parse(&String::deserialize(d)?).map(Some).map_err(serde::de::Error::custom)
}

fn default_shrink() -> u8 {
    50
}

/// Default cadence of a job's check and drill.
pub const DEFAULT_EVERY: u64 = 7 * 86_400;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckCadence {
    /// `--read-data-subset`'s forms (`5%`, `2/7`); without it, all data is read.
    #[serde(default, deserialize_with = "subset")]
    pub subset: Option<crate::repo::check::DataCheck>,
    #[serde(default, deserialize_with = "duration")]
    pub every: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DrillCadence {
    /// Run by `sh -c` with the stream on its standard input.
    pub command: String,
    /// The stream to restore (default: the snapshot's first).
    pub stream: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub every: Option<u64>,
}

fn subset<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<crate::repo::check::DataCheck>, D::Error> {
    let text = String::deserialize(d)?;
    crate::repo::check::DataCheck::parse_subset(&text)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?}: expected a percentage like 5% or a slice like 2/7")))
}

/// Whether a cadence of `every` seconds is due at `now` (µs), given when it last ran.
pub fn cadence_due(last: Option<i64>, now: i64, every: u64) -> bool {
    last.is_none_or(|t| now.saturating_sub(t) >= i64::try_from(every).unwrap_or(i64::MAX / 2_000_000) * 1_000_000)
}

/// Default `cooldown`: one notification per (job, event) per 6 hours.
pub const DEFAULT_COOLDOWN: u64 = 6 * 3600;

/// A job's retention policy: forget's `--keep-*` rules.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    pub within: Option<u64>,
}

impl Keep {
    /// The first rule that is 0 (a rule that would keep nothing; retention refuses it at every run).
    pub fn zero_rule(&self) -> Option<&'static str> {
        [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
            ("within", self.within.map(|w| u32::from(w != 0))),
        ]
        .into_iter()
        .find_map(|(rule, n)| (n == Some(0)).then_some(rule))
    }

    pub fn policy(&self) -> Policy {
        Policy {
            last: self.last,
            hourly: self.hourly,
            daily: self.daily,
            weekly: self.weekly,
            monthly: self.monthly,
            yearly: self.yearly,
            within: self.within,
        }
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    crate::retention::parse_duration(&text).map(Some).map_err(|why| {
        serde::de::Error::custom(format!(
            "{text:?}: {why}; expected a duration like 26h, 7d, 30min or 1y6mo (units y mo w d h min s)"
        ))
    })
}

fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(b) => Ok(Some(b)),
        Size::Text(t) => parse_size(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Bytes from `"1 MB"`, `"500KiB"`, `"2G"` or `"4096"` (k/M/G/T: powers of 1000; KiB/MiB/GiB/TiB: of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = (t[..split].trim(), t[split..].trim());
    let value: f64 = number.parse().map_err(|_| format!("{text:?}: expected a size like 1 MB, 500 KiB or 4096"))?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("{text:?}: unknown unit {unit:?}; use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB")),
    };
    Ok((value * factor as f64).round() as u64)
}

/// Whether `name` is an environment variable's name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_variable_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why a repository location that is not `s3:` would be refused when opened: it looks like a URL (the local
/// backend takes only directories), so the check says it instead of every run.
fn url_like_location(location: &str) -> Option<String> {
    if location.starts_with("s3:") || location.starts_with('/') || location.starts_with('.') {
        return None;
    }
    let (scheme, rest) = location.split_once(':')?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) {
        return None;
    }
    Some(if rest.starts_with("//") && matches!(scheme, "http" | "https") {
        format!("is a URL; for S3 write s3:{location}")
    } else {
        format!("is not a directory or s3:http[s]://...; for a directory named so, write ./{location}")
    })
}

/// The largest jobs file read (a jobs file is a few KiB; `--config /dev/zero` must not fill memory).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Parses a jobs file from its bytes: as `parse`, and a file that is not UTF-8 is one line naming the line
/// of its first bad byte.
pub fn parse_bytes(bytes: &[u8], file: &str) -> Result<JobsFile, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, file),
        Err(e) => Err(ConfigError {
            file: file.to_string(),
            line: bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1,
            message: "is not UTF-8 text (a TOML file must be); save it as UTF-8".into(),
        }),
    }
}

/// A jobs file that cannot be used: one line naming the file, the line and what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Parses and validates a whole jobs file. `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<JobsFile, ConfigError> {
    let at = |offset: usize, message: String| ConfigError {
        file: file.to_string(),
        line: text[..offset.min(text.len())].matches('\n').count() + 1,
        message,
    };
    let parsed: JobsFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        at(offset, e.message().trim().replace('\n', "; "))
    })?;
    // Semantic checks, each located at the line of what it is about.
    let line_of = |needle: &str| text.find(needle).unwrap_or(0);
    for (name, repo) in
        std::iter::once(("repository", &parsed.repository)).chain(parsed.offsite.iter().map(|o| ("offsite", o)))
    {
        let sources = [repo.password_file.is_some(), repo.password_env.is_some(), repo.password.is_some()];
        let offset = line_of(&format!("[{name}]"));
        match sources.iter().filter(|s| **s).count() {
            0 => return Err(at(offset, format!("[{name}] needs password_file, password_env or password"))),
            1 => {}
            _ => return Err(at(offset, format!("[{name}]: give one of password_file, password_env, password"))),
        }
        if repo.location.trim().is_empty() {
            return Err(at(offset, format!("[{name}]: location is empty")));
        }
        if let Some(why) = url_like_location(&repo.location) {
            return Err(at(offset, format!("[{name}]: location {:?} {why}", repo.location)));
        }
        if let Some(var) = &repo.password_env {
            if !is_variable_name(var) {
                return Err(at(
                    offset,
                    format!("[{name}]: password_env {var:?} is not a variable name (A-Z a-z 0-9 _, not empty)"),
                ));
            }
        }
    }
    for (name, target) in &parsed.notify {
        target.check().map_err(|m| at(line_of(&format!("[notify.{name}]")), format!("notify {name}: {m}")))?;
    }
    if parsed.jobs.is_empty() {
        return Err(at(text.len(), "no jobs: add a [jobs.NAME] table with streams = [...]".into()));
    }
    for (name, job) in &parsed.jobs {
        let offset = line_of(&format!("[jobs.{name}]"));
        crate::repo::snapshots::validate_name("job name", name).map_err(|e| at(offset, e.to_string()))?;
        if job.streams.is_empty() {
            return Err(at(
                offset,
                format!("job {name}: streams is empty; add e.g. {{ postgres = {{ database = \"{name}\" }} }}"),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        let streams_at = text[offset..].find("streams").map_or(offset, |o| offset + o);
        for s in &job.streams {
            let preset = s.preset().map_err(|m| at(streams_at, format!("job {name}: {m}")))?;
            for stream_name in preset.static_names(s.name.as_deref()) {
                crate::repo::snapshots::validate_name("stream name", &stream_name)
                    .map_err(|e| at(streams_at, format!("job {name}: {e}")))?;
                if !seen.insert(stream_name.clone()) {
                    return Err(at(
                        streams_at,
                        format!("job {name}: two streams are named {stream_name:?}; set name = \"...\" on one"),
                    ));
                }
            }
        }
        if job.offsite && parsed.offsite.is_none() {
            return Err(at(offset, format!("job {name} has offsite = true but the file has no [offsite] repository")));
        }
        if job.keep.as_ref().is_some_and(|k| k.policy().is_empty()) {
            return Err(at(
                offset,
                format!("job {name}: keep has no rule; use last, hourly, daily, weekly, monthly, yearly or within"),
            ));
        }
        if let Some(rule) = job.keep.as_ref().and_then(Keep::zero_rule) {
            let keep_at = text[offset..].find("keep").map_or(offset, |o| offset + o);
            return Err(at(
                keep_at,
                format!("job {name}: keep {rule} = 0 would keep nothing (I10); remove the rule or give at least 1"),
            ));
        }
        if let Some(unknown) = job.notify.iter().find(|n| !parsed.notify.contains_key(*n)) {
            let known: Vec<&str> = parsed.notify.keys().map(String::as_str).collect();
            return Err(at(
                offset,
                format!(
                    "job {name}: notify {unknown:?} is not a [notify.NAME] table (there are: {})",
                    known.join(", ")
                ),
            ));
        }
        if job.shrink_alert == 0 || job.shrink_alert > 100 {
            return Err(at(offset, format!("job {name}: shrink_alert is a percent from 1 to 100")));
        }
        for t in &job.tags {
            crate::repo::snapshots::validate_name("tag", t).map_err(|e| at(offset, format!("job {name}: {e}")))?;
        }
        let secrets = parsed.secret_variables();
        for var in &job.env {
            if !is_variable_name(var) {
                return Err(at(offset, format!("job {name}: env {var:?} is not a variable name (A-Z a-z 0-9 _)")));
            }
            if secrets.iter().any(|s| s == var) {
                return Err(at(
                    offset,
                    format!("job {name}: env {var:?} holds one of silo's secrets; no command silo starts gets it"),
                ));
            }
        }
    }
    Ok(parsed)
}

impl JobsFile {
    /// The environment variables that hold secrets: silo's own, the repositories' `password_env`, the
    /// notification targets' `env` (I21: kept from every command silo starts).
    pub fn secret_variables(&self) -> Vec<String> {
        let mut out: Vec<String> = crate::inputs::process::SECRET_VARIABLES.iter().map(|s| s.to_string()).collect();
        out.extend(std::iter::once(&self.repository).chain(self.offsite.iter()).filter_map(|r| r.password_env.clone()));
        out.extend(self.notify.values().flat_map(|t| t.secrets()).filter_map(|s| s.env.clone()));
        out
    }

    /// Whether the file itself holds a password (it must then be owner-only).
    pub fn holds_password(&self) -> bool {
        self.repository.password.is_some() || self.offsite.as_ref().is_some_and(|o| o.password.is_some())
    }

    /// The jobs named, or all of them; an unknown name is an error naming the known ones.
    pub fn select(&self, names: &[String], all: bool) -> Result<Vec<(&String, &Job)>, String> {
        if all {
            return Ok(self.jobs.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.jobs.get_key_value(n).ok_or_else(|| {
                    let known: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
                    format!("no job {n:?} in the jobs file; it has {}", known.join(", "))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[repository]
location = "/srv/silo"
password_file = "/etc/silo/password"

[offsite]
location = "s3:http://127.0.0.1:3900/offsite"
password_env = "OFFSITE_PASSWORD"

[jobs.shop]
streams = [{ postgres = { database = "shop" } }, { sqlite = "/srv/app/app.db" }]
keep = { hourly = 24, daily = 7, within = "2d" }
offsite = true
freshness = "26h"
min_size = "1 MB"
schedule = "every 8h"

[jobs.files]
streams = [{ directory = "/srv/app", name = "app" }, { command = "echo hi" }]
"#;

    #[test]
    fn a_good_file_parses_with_every_value() {
        let f = parse(GOOD, "silo.toml").unwrap();
        let shop = &f.jobs["shop"];
        assert_eq!(shop.freshness, Some(26 * 3600));
        assert_eq!(shop.min_size, Some(1_000_000));
        assert_eq!(shop.shrink_alert, 50);
        assert_eq!(shop.keep.as_ref().unwrap().policy().within, Some(2 * 86_400));
        assert!(shop.offsite && !f.jobs["files"].offsite);
        assert_eq!(f.offsite.unwrap().password_source(), Some(PasswordSource::Env("OFFSITE_PASSWORD".into())));
        assert!(!parse(GOOD, "x").unwrap().holds_password());
        assert_eq!(shop.schedule.map(|s| s.to_string()).as_deref(), Some("every 8h"));
    }

    fn error_of(text: &str) -> ConfigError {
        parse(text, "silo.toml").expect_err("must be refused")
    }

    #[test]
    fn every_mistake_is_one_line_with_its_line_number() {
        let cases: &[(&str, &str, usize, &str)] = &[
            ("offsite = true", "ofsite = true", 13, "unknown field `ofsite`"),
            ("freshness = \"26h\"", "freshness = \"26 hours-ish\"", 14, "expected a duration"),
            ("min_size = \"1 MB\"", "min_size = \"1 parsec\"", 15, "unknown unit"),
            ("database = \"shop\"", "database = 5", 11, "invalid type"),
            ("[jobs.files]", "[jobs.files", 18, ""),
            ("every 8h", "every 5h", 16, "every Nh (N = 1, 2, 3, 4, 6, 8 or 12)"),
        ];
        for (from, to, line, want) in cases {
            let e = error_of(&GOOD.replacen(from, to, 1));
            assert_eq!(e.line, *line, "{to}: {e}");
            assert!(e.to_string().contains(want), "{to}: {e}");
            assert!(!e.to_string().contains('\n'), "{to}: one line: {e}");
            assert!(e.to_string().starts_with(&format!("silo.toml:{line}: ")), "{to}: {e}");
        }
    }

    #[test]
    fn semantic_mistakes_are_refused() {
        let no_offsite = GOOD.replace(
            "[offsite]\nlocation = \"s3:http://127.0.0.1:3900/offsite\"\npassword_env = \"OFFSITE_PASSWORD\"\n",
            "",
        );
        assert!(error_of(&no_offsite).message.contains("no [offsite] repository"));
        let two =
            GOOD.replace("password_file = \"/etc/silo/password\"", "password_file = \"/p\"\npassword_env = \"P\"");
        assert!(error_of(&two).message.contains("give one of"));
        let none = GOOD.replace("password_file = \"/etc/silo/password\"", "");
        assert_eq!(error_of(&none).line, 2);
        let clash = GOOD.replace("name = \"app\"", "name = \"data\"");
        assert!(error_of(&clash).message.contains("two streams are named \"data\""), "{}", error_of(&clash));
        let two_presets = GOOD.replace("{ command = \"echo hi\" }", "{ command = \"echo hi\", directory = \"/x\" }");
        assert!(error_of(&two_presets).message.contains("exactly one of"));
        let empty_keep = GOOD.replace("keep = { hourly = 24, daily = 7, within = \"2d\" }", "keep = {}");
        assert!(error_of(&empty_keep).message.contains("keep has no rule"));
        let no_jobs = &GOOD[..GOOD.find("[jobs.shop]").unwrap()];
        assert!(error_of(no_jobs).message.contains("no jobs"));
        let inline = GOOD.replace("password_file = \"/etc/silo/password\"", "password = \"hunter2\"");
        let f = parse(&inline, "x").unwrap();
        assert!(f.holds_password());
        assert!(!format!("{f:?}").contains("hunter2"), "Debug never shows the password");
    }

    #[test]
    fn what_would_fail_every_run_is_refused_at_check_time() {
        for (rule, want) in [
            ("keep = { hourly = 24, daily = 7, within = \"2d\" }", ""),
            ("keep = { last = 0 }", "keep last = 0 would keep nothing"),
            ("keep = { hourly = 24, daily = 0 }", "keep daily = 0"),
            ("keep = { within = \"0s\" }", "keep within = 0"),
        ] {
            let text = GOOD.replace("keep = { hourly = 24, daily = 7, within = \"2d\" }", rule);
            match parse(&text, "silo.toml") {
                Ok(_) => assert!(want.is_empty(), "{rule} must be refused"),
                Err(e) => {
                    assert!(!want.is_empty() && e.message.contains(want), "{rule}: {e}");
                    assert_eq!(e.line, 12, "{rule}: at the keep line");
                }
            }
        }
        let e = error_of(&GOOD.replace("password_env = \"OFFSITE_PASSWORD\"", "password_env = \"\""));
        assert!(e.message.contains("password_env \"\" is not a variable name") && e.line == 6, "{e}");
        let e = error_of(&GOOD.replace("location = \"/srv/silo\"", "location = \"http://minio:9000/b\""));
        assert!(e.message.contains("for S3 write s3:http://minio:9000/b") && e.line == 2, "{e}");
        let e = error_of(&GOOD.replace("location = \"/srv/silo\"", "location = \"sftp:host/x\""));
        assert!(e.message.contains("./sftp:host/x"), "{e}");
        assert!(parse(&GOOD.replace("location = \"/srv/silo\"", "location = \"./a:b\""), "x").is_ok());
        let mut bytes = GOOD.as_bytes().to_vec();
        let at = GOOD.find("echo hi").unwrap();
        bytes[at] = 0xff;
        let e = parse_bytes(&bytes, "silo.toml").unwrap_err();
        assert_eq!((e.line, e.to_string().starts_with("silo.toml:19: ")), (19, true), "{e}");
        assert!(e.message.contains("not UTF-8"));
        let e = error_of(&GOOD.replace("[jobs.files]", "[jobs.files]\nenv = [\"OFFSITE_PASSWORD\"]"));
        assert!(e.message.contains("holds one of silo's secrets"), "{e}");
        let e = error_of(&GOOD.replace("[jobs.files]", "[jobs.files]\nenv = [\"A=B\"]"));
        assert!(e.message.contains("not a variable name"), "{e}");
    }

    #[test]
    fn cadences() {
        const D: i64 = 86_400_000_000;
        assert!(cadence_due(None, 10 * D, DEFAULT_EVERY));
        assert!(!cadence_due(Some(4 * D), 10 * D, DEFAULT_EVERY));
        assert!(cadence_due(Some(3 * D), 10 * D, DEFAULT_EVERY));
        let with = GOOD.replace("min_size = \"1 MB\"", "min_size = \"1 MB\"\ncheck = { subset = \"5%\" }\ndrill = { command = \"psql -q -d scratch\", every = \"30d\" }");
        let f = parse(&with, "x").unwrap();
        assert_eq!(f.jobs["shop"].check.as_ref().unwrap().subset, Some(crate::repo::check::DataCheck::Percent(0.05)));
        assert_eq!(f.jobs["shop"].drill.as_ref().unwrap().every, Some(30 * 86_400));
        let bad = GOOD.replace("min_size = \"1 MB\"", "check = { subset = \"lots\" }");
        assert!(error_of(&bad).message.contains("expected a percentage"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5 kB"), Ok(1500));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert!(parse_size("MB").is_err());
        assert!(parse_size("3 furlongs").is_err());
    }

    #[test]
    fn selecting_jobs() {
        let f = parse(GOOD, "x").unwrap();
        assert_eq!(f.select(&[], true).unwrap().len(), 2);
        assert_eq!(f.select(&["shop".into()], false).unwrap()[0].0, "shop");
        assert!(f.select(&["nope".into()], false).unwrap_err().contains("files, shop"));
    }
}
