//! Stream presets: what the real dump tools need to produce a restorable, deduplicating stream, so a jobs
//! file names a database instead of a command line. Pure: `specs` turns an entry (and, for `"all"`, the
//! databases the server listed) into stream specs; listing is run.rs's job.
//!
//! - postgres: `pg_dump` plain format, uncompressed (silo compresses; a compressed dump does not
//!   deduplicate); `database = "all"` is one stream per database the server lists, plus the roles and
//!   tablespaces (`pg_dumpall --globals-only`) as stream `globals`.
//! - mariadb: `mysqldump --single-transaction` (a consistent InnoDB snapshot without locking) with routines,
//!   events and triggers, and 8 MB INSERT statements (docs/benchmarks.md: a row that changes size then moves far fewer
//!   statement boundaries, 4-6x less stored a day).
//! - sqlite: `sqlite3 -readonly FILE .dump`, one read transaction: consistent while the application writes,
//!   unlike a copy of the live file.
//! - redis: `redis-cli --rdb -`, the server's own snapshot.
//! - ldap: `slapcat` of an OpenLDAP database (its LDIF; `slapadd -l` restores it), by suffix or the first
//!   database, from the server's `slapd.d` directory or a `slapd.conf` file.
//! - directory: a tar stream of the tree. command: anything, through `sh -c`.
//!
//! No password is ever put on a command line (it would be in every snapshot and in `ps`): the tools read
//! ~/.pgpass / PGPASSFILE, ~/.my.cnf, REDISCLI_AUTH.
//!
//! I21: each tool gets an allow-listed environment (`Preset::child_env`): the base, the variables its tool
//! reads (PG*, MYSQL_*, REDISCLI_AUTH) and the job's `env = [...]`, never silo's own.
//! I22: a database name goes behind `--dbname=dbname='…'` (pg_dump: quoted as a connection string, so
//! `=` or a URI is still a name) or `--` (mysqldump); a name starting with `-` or holding a control
//! character is refused when the jobs file is checked (`unsafe_name`), and one in an `"all"` listing is
//! skipped and reported (`Listing`) while the others are dumped.

use crate::inputs::process::ChildEnv;
use crate::inputs::{Source, StreamSpec};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamEntry {
    /// The stream's name (default: the database, the file's stem, the directory's name, `redis`, `data`).
    /// With `database = "all"`, a prefix: `name = "pg"` gives streams `pg-shop`, `pg-globals`, ...
    pub name: Option<String>,
    pub postgres: Option<Database>,
    pub mariadb: Option<Database>,
    pub sqlite: Option<PathBuf>,
    pub redis: Option<Server>,
    pub ldap: Option<Ldap>,
    pub directory: Option<PathBuf>,
    pub command: Option<String>,
    /// `validate = false`: store the stream without inspecting it as a dump (default: inspected, and refused
    /// when it is a recognised dump that is not whole).
    pub validate: Option<bool>,
}

/// A database server and the database (`"all"`: every database it has).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub database: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
}

/// An OpenLDAP server's configuration (`slapd.d` directory, or a file ending in `.conf`) and the suffix of
/// the database to dump (default: the first database).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ldap {
    pub config: Option<PathBuf>,
    pub suffix: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// The one preset an entry names.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Preset<'a> {
    Postgres(&'a Database),
    MariaDb(&'a Database),
    Sqlite(&'a PathBuf),
    Redis(&'a Server),
    Ldap(&'a Ldap),
    Directory(&'a PathBuf),
    Command(&'a str),
}

const KINDS: &str = "postgres, mariadb, sqlite, redis, ldap, directory, command";

impl Preset<'_> {
    /// The preset's name as the jobs file spells it (`postgres`, `mariadb`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Preset::Postgres(_) => "postgres",
            Preset::MariaDb(_) => "mariadb",
            Preset::Sqlite(_) => "sqlite",
            Preset::Redis(_) => "redis",
            Preset::Ldap(_) => "ldap",
            Preset::Directory(_) => "directory",
            Preset::Command(_) => "command",
        }
    }
}

impl StreamEntry {
    pub fn preset(&self) -> Result<Preset<'_>, String> {
        let mut found = Vec::new();
        if let Some(d) = &self.postgres {
            found.push(Preset::Postgres(d));
        }
        if let Some(d) = &self.mariadb {
            found.push(Preset::MariaDb(d));
        }
        if let Some(p) = &self.sqlite {
            found.push(Preset::Sqlite(p));
        }
        if let Some(s) = &self.redis {
            found.push(Preset::Redis(s));
        }
        if let Some(l) = &self.ldap {
            found.push(Preset::Ldap(l));
        }
        if let Some(p) = &self.directory {
            found.push(Preset::Directory(p));
        }
        if let Some(c) = &self.command {
            found.push(Preset::Command(c));
        }
        match found[..] {
            [one] => {
                one.check()?;
                Ok(one)
            }
            _ => Err(format!("a stream needs exactly one of {KINDS} (and optionally name)")),
        }
    }
}

impl Preset<'_> {
    fn check(&self) -> Result<(), String> {
        match self {
            Preset::Postgres(d) | Preset::MariaDb(d) if d.database.trim().is_empty() => {
                Err("database is empty; name one, or \"all\"".into())
            }
            Preset::Postgres(d) | Preset::MariaDb(d) if unsafe_name(&d.database).is_some() => Err(format!(
                "database {:?} {}; a database name cannot start with '-' or hold control characters",
                d.database,
                unsafe_name(&d.database).unwrap_or_default()
            )),
            Preset::Ldap(Ldap { suffix: Some(s), .. }) if unsafe_name(s).is_some() => {
                Err(format!("suffix {s:?} {}", unsafe_name(s).unwrap_or_default()))
            }
            Preset::Sqlite(p) | Preset::Directory(p) if !p.is_absolute() => {
                Err(format!("{} is not an absolute path", p.display()))
            }
            Preset::Command(c) if c.trim().is_empty() => Err("command is empty".into()),
            _ => Ok(()),
        }
    }

    /// Whether the stream list is known only once the server lists its databases.
    pub fn lists_databases(&self) -> bool {
        matches!(self, Preset::Postgres(d) | Preset::MariaDb(d) if d.database == "all")
    }

    /// The stream names known before anything runs (none for `"all"`).
    pub fn static_names(&self, name: Option<&str>) -> Vec<String> {
        if self.lists_databases() {
            return Vec::new();
        }
        vec![name.map_or_else(|| self.default_name(), str::to_string)]
    }

    fn default_name(&self) -> String {
        let stem = |p: &PathBuf| p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match self {
            Preset::Postgres(d) | Preset::MariaDb(d) => d.database.clone(),
            Preset::Sqlite(p) => stem(p),
            Preset::Redis(_) => "redis".into(),
            Preset::Ldap(_) => "ldap".into(),
            Preset::Directory(p) => p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or("root".into()),
            Preset::Command(_) => "data".into(),
        }
    }

    /// The command that lists the server's databases, one per line (`"all"` only).
    pub fn list_command(&self) -> Option<Vec<String>> {
        match self {
            Preset::Postgres(d) if self.lists_databases() => Some(
                ["psql", "--no-password", "-X", "-A", "-t"]
                    .into_iter()
                    .map(String::from)
                    .chain(pg_connection(d))
                    .chain(
                        [
                            "--dbname=postgres",
                            "--command=SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate \
                             ORDER BY 1",
                        ]
                        .map(String::from),
                    )
                    .collect(),
            ),
            Preset::MariaDb(d) if self.lists_databases() => Some(
                ["mysql", "--batch", "--skip-column-names"]
                    .into_iter()
                    .map(String::from)
                    .chain(my_connection(d))
                    .chain(["--execute=SHOW DATABASES"].map(String::from))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Databases of a listing worth dumping (the servers' own schemas are not), and those skipped because no
    /// tool can take their name safely or it makes no valid stream name (with `name` as the prefix), each
    /// with why (I22).
    pub fn dumpable(&self, name: Option<&str>, listed: &str) -> Listing {
        const SYSTEM: [&str; 3] = ["information_schema", "performance_schema", "sys"];
        let mut out = Listing::default();
        for db in listed.lines().filter(|l| !l.trim().is_empty()) {
            if matches!(self, Preset::MariaDb(_)) && SYSTEM.contains(&db) {
                continue;
            }
            let why = match unsafe_name(db) {
                Some(why) => Some(why.to_string()),
                None => crate::repo::snapshots::validate_name("stream name", &listed_name(name, db))
                    .err()
                    .map(|_| "makes no stream name (use A-Z a-z 0-9 . _ - @ +)".to_string()),
            };
            match why {
                Some(why) => out.skipped.push((db.to_string(), why)),
                None => out.databases.push(db.to_string()),
            }
        }
        out
    }

    /// What this preset's tool gets as its environment (I21): the base, the variables it reads, and the
    /// job's `env` names.
    pub fn child_env(&self, job_env: &[String]) -> ChildEnv {
        let env = ChildEnv::base().with_names(job_env);
        match self {
            Preset::Postgres(_) => env.postgres(),
            Preset::MariaDb(_) => env.mariadb(),
            Preset::Redis(_) => env.redis(),
            _ => env,
        }
    }

    /// The stream specs of this entry; `databases` is the server's listing for `"all"`; `job_env` the
    /// variables the job passes on.
    pub fn specs(&self, name: Option<&str>, databases: &[String], job_env: &[String]) -> Vec<StreamSpec> {
        let env = self.child_env(job_env);
        let spec = |stream: String, argv: Vec<String>| StreamSpec {
            name: stream,
            source: Source::Tool { argv, env: env.clone() },
        };
        let listed = |db: &str| listed_name(name, db);
        let named = |default: String| name.map_or(default, str::to_string);
        match self {
            Preset::Postgres(d) if self.lists_databases() => {
                let mut out: Vec<StreamSpec> = databases.iter().map(|db| spec(listed(db), pg_dump(d, db))).collect();
                let mut globals = vec!["pg_dumpall".to_string(), "--no-password".into(), "--globals-only".into()];
                globals.extend(pg_connection(d));
                out.push(spec(listed("globals"), globals));
                out
            }
            Preset::MariaDb(d) if self.lists_databases() => {
                databases.iter().map(|db| spec(listed(db), mysqldump(d, db))).collect()
            }
            Preset::Postgres(d) => vec![spec(named(d.database.clone()), pg_dump(d, &d.database))],
            Preset::MariaDb(d) => vec![spec(named(d.database.clone()), mysqldump(d, &d.database))],
            Preset::Sqlite(p) => vec![spec(
                named(self.default_name()),
                vec!["sqlite3".into(), "-readonly".into(), p.to_string_lossy().into_owned(), ".dump".into()],
            )],
            Preset::Redis(s) => {
                let mut argv = vec!["redis-cli".to_string()];
                argv.extend(["-h".into(), s.host.clone().unwrap_or_else(|| "127.0.0.1".into())]);
                argv.extend(["-p".into(), s.port.unwrap_or(6379).to_string()]);
                argv.extend(["--rdb".into(), "-".into()]);
                vec![spec(named(self.default_name()), argv)]
            }
            Preset::Ldap(l) => {
                let config = l.config.clone().unwrap_or_else(|| PathBuf::from("/etc/ldap/slapd.d"));
                let flag = if config.extension().is_some_and(|e| e == "conf") { "-f" } else { "-F" };
                let mut argv = vec!["slapcat".to_string(), flag.into(), config.to_string_lossy().into_owned()];
                match &l.suffix {
                    Some(suffix) => argv.extend(["-b".into(), suffix.clone()]),
                    None => argv.extend(["-n".into(), "1".into()]),
                }
                vec![spec(named(self.default_name()), argv)]
            }
            Preset::Directory(p) => vec![spec(
                named(self.default_name()),
                vec![
                    "tar".into(),
                    "--create".into(),
                    "--file=-".into(),
                    format!("--directory={}", p.display()),
                    ".".into(),
                ],
            )],
            Preset::Command(c) => vec![spec(named(self.default_name()), vec!["sh".into(), "-c".into(), c.to_string()])],
        }
    }
}

/// A server's listing of databases, sorted into those to dump and those skipped (with why).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    pub databases: Vec<String>,
    pub skipped: Vec<(String, String)>,
}

/// The stream name of listed database `db` (`name` is a prefix with `"all"`).
fn listed_name(name: Option<&str>, db: &str) -> String {
    name.map_or(db.to_string(), |prefix| format!("{prefix}-{db}"))
}

/// Why a name from data cannot go on a tool's command line (I22): a tool would read `-x` as an option, and
/// a control character has no business in a name.
pub fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.starts_with('-') {
        Some("starts with '-' (a tool would read it as an option)")
    } else if name.chars().any(char::is_control) {
        Some("holds a control character")
    } else {
        None
    }
}

/// `dbname='…'`: a libpq connection string naming just the database, so a name with `=` or a URI prefix
/// stays a name (pg_dump reads a `--dbname` that contains `=` as a connection string).
fn pg_dbname(db: &str) -> String {
    if !db.is_empty() && db.chars().all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c)) {
        return db.to_string();
    }
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `--host`, `--port` and the user flag (`--username` for PostgreSQL's tools, `--user` for MariaDB's).
fn connection(d: &Database, user_flag: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = &d.host {
        out.push(format!("--host={h}"));
    }
    if let Some(p) = d.port {
        out.push(format!("--port={p}"));
    }
    if let Some(u) = &d.user {
        out.push(format!("{user_flag}={u}"));
    }
    out
}

fn pg_connection(d: &Database) -> Vec<String> {
    connection(d, "--username")
}

fn pg_dump(d: &Database, db: &str) -> Vec<String> {
    let mut argv = vec!["pg_dump".to_string(), "--no-password".into()];
    argv.extend(pg_connection(d));
    argv.push(format!("--dbname={}", pg_dbname(db)));
    argv
}

fn my_connection(d: &Database) -> Vec<String> {
    connection(d, "--user")
}

fn mysqldump(d: &Database, db: &str) -> Vec<String> {
    let mut argv: Vec<String> = [
        "mysqldump",
        "--single-transaction",
        "--quick",
        "--routines",
        "--events",
        "--triggers",
        "--net-buffer-length=8M",
    ]
    .map(String::from)
    .into();
    argv.extend(my_connection(d));
    argv.extend(["--".to_string(), db.to_string()]);
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> Database {
        Database {
            database: name.into(),
            host: Some("127.0.0.1".into()),
            port: Some(5432),
            user: Some("postgres".into()),
        }
    }

    fn argv(s: &StreamSpec) -> Vec<String> {
        match &s.source {
            Source::Tool { argv, .. } => argv.clone(),
            other => panic!("not a command: {other:?}"),
        }
    }

    #[test]
    fn postgres_dumps_plain_and_all_adds_globals() {
        let d = db("shop");
        let one = Preset::Postgres(&d).specs(None, &[], &[]);
        assert_eq!(one[0].name, "shop");
        assert_eq!(
            argv(&one[0]),
            ["pg_dump", "--no-password", "--host=127.0.0.1", "--port=5432", "--username=postgres", "--dbname=shop"]
        );
        let all = db("all");
        let p = Preset::Postgres(&all);
        assert!(p.lists_databases() && p.static_names(None).is_empty());
        assert!(p.list_command().unwrap().iter().any(|a| a.contains("datistemplate")));
        let specs = p.specs(None, &p.dumpable(None, "a\nb\n\n").databases, &[]);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "globals"]);
        assert!(argv(&specs[2]).contains(&"--globals-only".to_string()));
        let prefixed: Vec<String> = p.specs(Some("pg"), &["a".into()], &[]).into_iter().map(|s| s.name).collect();
        assert_eq!(prefixed, ["pg-a", "pg-globals"], "with \"all\", name is a prefix");
    }

    #[test]
    fn mariadb_is_consistent_with_large_statements_and_skips_system_schemas() {
        let d = Database { database: "all".into(), host: None, port: None, user: Some("root".into()) };
        let p = Preset::MariaDb(&d);
        let dbs = p.dumpable(None, "information_schema\nmysql\nperformance_schema\nshop\nsys\n").databases;
        assert_eq!(dbs, ["mysql", "shop"]);
        let a = argv(&p.specs(None, &dbs, &[])[1]);
        assert!(a.contains(&"--single-transaction".into()) && a.contains(&"--net-buffer-length=8M".into()));
        assert_eq!((a[0].as_str(), &a[a.len() - 2..]), ("mysqldump", &["--".to_string(), "shop".into()][..]));
    }

    #[test]
    fn file_presets_and_names() {
        let p = PathBuf::from("/srv/app/app.db");
        let s = &Preset::Sqlite(&p).specs(None, &[], &[])[0];
        assert_eq!(
            (s.name.as_str(), argv(s)),
            ("app", vec!["sqlite3".into(), "-readonly".into(), "/srv/app/app.db".into(), ".dump".into()])
        );
        let dir = PathBuf::from("/srv/www");
        assert_eq!(Preset::Directory(&dir).specs(Some("site"), &[], &[])[0].name, "site");
        assert_eq!(Preset::Directory(&dir).static_names(None), ["www"]);
        let r = Server::default();
        assert_eq!(argv(&Preset::Redis(&r).specs(None, &[], &[])[0])[5..], ["--rdb".to_string(), "-".into()]);
        assert_eq!(argv(&Preset::Command("echo hi").specs(None, &[], &[])[0]), ["sh", "-c", "echo hi"]);
        let ldap = Ldap { config: None, suffix: Some("dc=example,dc=net".into()) };
        assert_eq!(
            argv(&Preset::Ldap(&ldap).specs(None, &[], &[])[0]),
            ["slapcat", "-F", "/etc/ldap/slapd.d", "-b", "dc=example,dc=net"]
        );
        let file = Ldap { config: Some("/etc/ldap/slapd.conf".into()), suffix: None };
        assert_eq!(
            argv(&Preset::Ldap(&file).specs(None, &[], &[])[0]),
            ["slapcat", "-f", "/etc/ldap/slapd.conf", "-n", "1"]
        );
    }

    #[test]
    fn an_entry_names_exactly_one_valid_preset() {
        assert!(StreamEntry::default().preset().is_err());
        let two = StreamEntry { command: Some("x".into()), sqlite: Some("/a.db".into()), ..Default::default() };
        assert!(two.preset().unwrap_err().contains("exactly one"));
        let relative = StreamEntry { sqlite: Some("a.db".into()), ..Default::default() };
        assert!(relative.preset().unwrap_err().contains("absolute"));
        let empty = StreamEntry {
            postgres: Some(Database { database: " ".into(), host: None, port: None, user: None }),
            ..Default::default()
        };
        assert!(empty.preset().is_err());
    }

    #[test]
    fn names_from_data_are_never_options() {
        for bad in ["--version", "-rvictim", "a\nb"] {
            for entry in [
                StreamEntry {
                    mariadb: Some(Database { database: bad.into(), host: None, port: None, user: None }),
                    ..Default::default()
                },
                StreamEntry {
                    postgres: Some(Database { database: bad.into(), host: None, port: None, user: None }),
                    ..Default::default()
                },
            ] {
                let e = entry.preset().unwrap_err();
                assert!(e.contains("cannot start with '-'"), "{bad:?}: {e}");
            }
        }
        let d = Database { database: "all".into(), host: None, port: None, user: None };
        let my = argv(&Preset::MariaDb(&d).specs(None, &["-rvictim".into()], &[])[0]);
        assert_eq!(my[my.len() - 2..], ["--".to_string(), "-rvictim".into()], "behind --");
        let pg = |db: &str| argv(&Preset::Postgres(&d).specs(None, &[db.into()], &[])[0]).last().unwrap().clone();
        assert_eq!(pg("shop-2"), "--dbname=shop-2");
        assert_eq!(pg("host=evil dbname=x"), "--dbname=dbname='host=evil dbname=x'");
        assert_eq!(pg("it's\\"), "--dbname=dbname='it\\'s\\\\'");
        let all = Database { database: "all".into(), host: None, port: None, user: None };
        for p in [Preset::MariaDb(&all), Preset::Postgres(&all)] {
            let listing = p.dumpable(None, "shop\n-rvictim\nwe ird\na=b\nn\u{e4}me\nok.2\n");
            assert_eq!(listing.databases, ["shop", "ok.2"]);
            let skipped: Vec<&str> = listing.skipped.iter().map(|(d, _)| d.as_str()).collect();
            assert_eq!(skipped, ["-rvictim", "we ird", "a=b", "n\u{e4}me"]);
            assert!(listing.skipped[0].1.contains("option"), "{:?}", listing.skipped);
        }
    }

    #[test]
    fn each_tool_gets_only_what_it_reads() {
        let d = db("shop");
        let env = Preset::Postgres(&d).child_env(&["MY_VAR".into()]);
        assert!(env.allows("PGPASSFILE") && env.allows("PATH") && env.allows("LC_ALL") && env.allows("MY_VAR"));
        assert!(!env.allows("MYSQL_PWD") && !env.allows("AWS_SECRET_ACCESS_KEY") && !env.allows("SILO_PASSWORD"));
        let m = Preset::MariaDb(&d).child_env(&[]);
        assert!(m.allows("MYSQL_PWD") && !m.allows("PGPASSWORD") && !m.allows("REDISCLI_AUTH"));
        let c = Preset::Command("true").child_env(&[]);
        assert!(!c.allows("PGPASSWORD") && !c.allows("MYSQL_PWD") && !c.allows("REDISCLI_AUTH") && c.allows("HOME"));
        assert!(Preset::Redis(&Server::default()).child_env(&[]).allows("REDISCLI_AUTH"));
        let s = &Preset::Command("true").specs(None, &[], &[])[0];
        assert!(matches!(&s.source, Source::Tool { env, .. } if *env == c));
    }
}
