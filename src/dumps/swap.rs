//! `silo restore-database` decisions (pure; issue 17 part 3, design.md "Restoring into a live database"):
//! the names of the scratch and rollback databases, identifier quoting, which restore tool a dump needs, the
//! row-count verdict, and the statements that swap databases in one atomic step.
//!
//! Upholds: nothing is dropped before the new database is verified; the swap is one transaction
//! (PostgreSQL: two or three `ALTER DATABASE ... RENAME` in one transaction; MariaDB: one multi-table
//! `RENAME TABLE`), so at every instant the live name holds either the old or the new database.

use silo_format::manifest::{dump_format, DumpRecord};
use std::collections::HashMap;

/// The comment restore-database gives every database it creates or keeps aside (PostgreSQL database comment,
/// MariaDB schema comment): it drops only databases that carry it, never one a user made under such a name.
pub const MARK: &str = "silo restore-database";

/// Whether a database's comment is restore-database's mark.
pub fn is_marked(comment: &str) -> bool {
    comment.starts_with(MARK)
}

/// Suffixes of the databases restore-database keeps beside the live one.
pub const NEW_SUFFIX: &str = "__silo_new";
pub const PREV_SUFFIX: &str = "__silo_prev";
pub const SWAP_SUFFIX: &str = "__silo_swap";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mariadb,
    Sqlite,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::Mariadb => "MariaDB",
            Engine::Sqlite => "SQLite",
        }
    }

    /// The longest database name the server accepts (bytes).
    fn max_name(self) -> usize {
        match self {
            Engine::Postgres => 63,
            Engine::Mariadb => 64,
            Engine::Sqlite => 4096,
        }
    }
}

/// The live, scratch, rollback and swap names for `target` (a database name, or an SQLite file path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub live: String,
    pub new: String,
    pub prev: String,
    pub swap: String,
}

pub fn names(engine: Engine, target: &str) -> Result<Names, String> {
    if target.is_empty() {
        return Err("the target database name is empty".into());
    }
    let (new, prev, swap) = match engine {
        Engine::Sqlite => (format!("{target}.silo-new"), format!("{target}.silo-prev"), format!("{target}.silo-swap")),
        _ => (format!("{target}{NEW_SUFFIX}"), format!("{target}{PREV_SUFFIX}"), format!("{target}{SWAP_SUFFIX}")),
    };
    if [&new, &prev, &swap].iter().any(|n| n.len() > engine.max_name()) {
        return Err(format!(
            "{} names are at most {} bytes, and {target:?} leaves no room for the {SWAP_SUFFIX} suffix",
            engine.name(),
            engine.max_name()
        ));
    }
    Ok(Names { live: target.to_string(), new, prev, swap })
}

/// How the stream is loaded into the scratch database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    /// `psql -v ON_ERROR_STOP=1` reading plain SQL.
    Psql,
    /// `pg_restore --exit-on-error` reading a custom or tar archive.
    PgRestore,
    /// `mysql` reading mysqldump SQL.
    Mysql,
    /// `sqlite3 -bail` reading `.dump` SQL.
    Sqlite3,
    /// The stream is the database file itself.
    SqliteFile,
}

/// The loader for a stream recognised as `dump` (None: not recognised) into `engine`.
pub fn loader(engine: Engine, dump: Option<&DumpRecord>) -> Result<Loader, String> {
    let Some(d) = dump else {
        return Err(format!(
            "the stream was not recognised as a dump when it was stored (no dump record), so silo cannot tell how \
             to load and verify it: restore it with `silo snapshot restore ... | <{} client>`",
            engine.name()
        ));
    };
    if let Some(problem) = &d.invalid {
        return Err(format!("the stream failed validation when it was stored ({problem}); it is not restored"));
    }
    let loader = match (engine, d.format) {
        (Engine::Postgres, dump_format::PG_DUMP_PLAIN) => Loader::Psql,
        (Engine::Postgres, dump_format::PG_DUMP_CUSTOM | dump_format::PG_DUMP_TAR) => Loader::PgRestore,
        (Engine::Mariadb, dump_format::MYSQLDUMP) => Loader::Mysql,
        (Engine::Sqlite, dump_format::SQLITE_DUMP) => Loader::Sqlite3,
        (Engine::Sqlite, dump_format::SQLITE_FILE) => Loader::SqliteFile,
        (_, format) => {
            return Err(format!(
                "the stream is a {}, which restore-database does not load into {} (it takes one database's \
                 dump: pg_dump for PostgreSQL, mysqldump of one database for MariaDB, sqlite3 .dump or a \
                 database file for SQLite)",
                dump_format::name(format),
                engine.name()
            ))
        }
    };
    Ok(loader)
}

/// A PostgreSQL identifier, quoted.
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL connection string naming only `database`, for `--dbname=`: a name holding `=` or starting
/// `postgresql://` is otherwise read by libpq as a connection string of its own (I22).
pub fn pg_conninfo(database: &str) -> String {
    format!("dbname='{}'", database.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// MariaDB: the tables found in the live database after the swap that the swap did not bring (created by a
/// client between the listing and `RENAME TABLE`): they belong with the replaced database.
pub fn strays(brought: &[String], live_now: &[String]) -> Vec<String> {
    live_now.iter().filter(|t| !brought.contains(t)).cloned().collect()
}

/// A MariaDB identifier, quoted.
pub fn my_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// An SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A table name as a dump records it, ready for `SELECT count(*) FROM ...` in the engine: PostgreSQL names
/// are already written as SQL (`public."Order Lines"`); MariaDB and SQLite names are bare and get quoted.
pub fn table_sql(engine: Engine, recorded: &str) -> String {
    match engine {
        Engine::Postgres => recorded.to_string(),
        Engine::Mariadb => my_ident(recorded),
        Engine::Sqlite => pg_ident(recorded),
    }
}

/// The query counting a recorded table's rows as the dump holds them. PostgreSQL counts a table's own rows
/// (`ONLY`: an inheritance parent's count would include its children's, which the dump holds as their own
/// tables), except for a partitioned table, which holds no rows of its own and whose dump rows
/// (`--load-via-partition-root`) went to its partitions.
pub fn count_sql(engine: Engine, recorded: &str) -> String {
    let table = table_sql(engine, recorded);
    match engine {
        Engine::Postgres => format!(
            "SELECT CASE WHEN (SELECT relkind FROM pg_class WHERE oid = {}::regclass) = 'p' THEN (SELECT count(*) FROM \
             {table}) ELSE (SELECT count(*) FROM ONLY {table}) END;",
            literal(recorded)
        ),
        _ => format!("SELECT count(*) FROM {table};"),
    }
}

/// The tables whose rows the dump counted, as (name as recorded, rows).
pub fn counted_tables(dump: &DumpRecord) -> Vec<(String, u64)> {
    dump.tables.iter().filter_map(|t| t.rows.map(|r| (t.name.clone(), r))).collect()
}

/// Compares the rows found in the scratch database with those the dump held. Err names every table that
/// differs (up to five) and how.
pub fn verify_counts(expected: &[(String, u64)], found: &HashMap<String, u64>) -> Result<(), String> {
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(name, rows)| match found.get(name) {
            Some(n) if n == rows => None,
            Some(n) => Some(format!("{name} has {n} rows, the dump {rows}")),
            None => Some(format!("{name} is missing")),
        })
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = wrong.iter().take(5).map(String::as_str).collect();
    Err(format!(
        "{} of {} tables do not match the dump: {}{}",
        wrong.len(),
        expected.len(),
        shown.join("; "),
        if wrong.len() > 5 { "; ..." } else { "" }
    ))
}

/// Whether a check query's output says yes: it ran, returned a row, and its first value is not false, 0 or
/// NULL (empty).
pub fn check_passed(output: &str) -> bool {
    let first = output.lines().next().map(str::trim).unwrap_or("");
    !matches!(first.to_ascii_lowercase().as_str(), "" | "f" | "false" | "0" | "null")
}

/// PostgreSQL: the one transaction that puts `new` in place of `live` and keeps `live` as `prev` (`prev` must
/// not exist). Without a live database (first restore) it only renames.
/// The kept-aside database is marked as silo's (so a later restore may drop it), the live one unmarked.
pub fn pg_swap_in(n: &Names, live_exists: bool) -> String {
    let mut sql = String::from("BEGIN;\n");
    if live_exists {
        sql += &format!("ALTER DATABASE {} RENAME TO {};\n", pg_ident(&n.live), pg_ident(&n.prev));
        sql += &format!("COMMENT ON DATABASE {} IS {};\n", pg_ident(&n.prev), literal(&format!("{MARK}: replaced")));
    }
    sql += &format!(
        "ALTER DATABASE {} RENAME TO {};\nCOMMENT ON DATABASE {} IS NULL;\nCOMMIT;\n",
        pg_ident(&n.new),
        pg_ident(&n.live),
        pg_ident(&n.live)
    );
    sql
}

/// PostgreSQL: the one transaction that exchanges `live` and `prev` (a rollback; run again, it undoes it).
pub fn pg_exchange(n: &Names) -> String {
    format!(
        "BEGIN;\nALTER DATABASE {live} RENAME TO {swap};\nALTER DATABASE {prev} RENAME TO {live};\n\
         ALTER DATABASE {swap} RENAME TO {prev};\nCOMMENT ON DATABASE {prev} IS {mark};\n\
         COMMENT ON DATABASE {live} IS NULL;\nCOMMIT;\n",
        live = pg_ident(&n.live),
        prev = pg_ident(&n.prev),
        swap = pg_ident(&n.swap),
        mark = literal(&format!("{MARK}: rolled back"))
    )
}

/// MariaDB: one `RENAME TABLE` statement (atomic over all its tables) moving every table of `from_a` to
/// `to_a` and then every table of `from_b` to `to_b`, and so on, in order.
pub fn my_rename(moves: &[(&str, &str, &[String])]) -> Option<String> {
    let parts: Vec<String> = moves
        .iter()
        .flat_map(|(from, to, tables)| {
            tables
                .iter()
                .map(move |t| format!("{}.{} TO {}.{}", my_ident(from), my_ident(t), my_ident(to), my_ident(t)))
        })
        .collect();
    (!parts.is_empty()).then(|| format!("RENAME TABLE {};", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_format::manifest::TableStat;

    #[test]
    fn names_fit_the_server_limits() {
        let n = names(Engine::Postgres, "shop").unwrap();
        assert_eq!((n.new.as_str(), n.prev.as_str()), ("shop__silo_new", "shop__silo_prev"));
        assert!(names(Engine::Postgres, &"x".repeat(52)).is_ok());
        assert!(names(Engine::Postgres, &"x".repeat(53)).is_err());
        assert!(names(Engine::Mariadb, &"x".repeat(53)).is_ok());
        assert!(names(Engine::Postgres, "").is_err());
        assert_eq!(names(Engine::Sqlite, "/srv/app.db").unwrap().prev, "/srv/app.db.silo-prev");
    }

    #[test]
    fn a_database_name_is_never_read_as_a_connection_string() {
        assert_eq!(pg_conninfo("shop"), "dbname='shop'");
        assert_eq!(pg_conninfo("dbname=x host=evil"), "dbname='dbname=x host=evil'");
        assert_eq!(pg_conninfo("it's\\"), "dbname='it\\'s\\\\'");
        assert!(pg_conninfo("postgresql://evil/db").starts_with("dbname='"));
    }

    #[test]
    fn strays_are_the_live_tables_the_swap_did_not_bring() {
        let new = vec!["a".to_string(), "b".to_string()];
        assert_eq!(strays(&new, &["a".into(), "b".into()]), Vec::<String>::new());
        assert_eq!(strays(&new, &["a".into(), "b".into(), "made_meanwhile".into()]), vec!["made_meanwhile"]);
    }

    #[test]
    fn loaders_by_format_and_engine() {
        let rec =
            |format| DumpRecord { format, tool_version: String::new(), invalid: None, entries: 0, tables: vec![] };
        assert_eq!(loader(Engine::Postgres, Some(&rec(dump_format::PG_DUMP_PLAIN))), Ok(Loader::Psql));
        assert_eq!(loader(Engine::Postgres, Some(&rec(dump_format::PG_DUMP_TAR))), Ok(Loader::PgRestore));
        assert_eq!(loader(Engine::Sqlite, Some(&rec(dump_format::SQLITE_FILE))), Ok(Loader::SqliteFile));
        assert!(loader(Engine::Postgres, Some(&rec(dump_format::PG_DUMPALL))).unwrap_err().contains("pg_dumpall"));
        assert!(loader(Engine::Mariadb, Some(&rec(dump_format::PG_DUMP_PLAIN))).is_err());
        assert!(loader(Engine::Mariadb, None).unwrap_err().contains("not recognised"));
        let mut invalid = rec(dump_format::MYSQLDUMP);
        invalid.invalid = Some("cut".into());
        assert!(loader(Engine::Mariadb, Some(&invalid)).unwrap_err().contains("failed validation"));
    }

    #[test]
    fn counts_must_match_table_by_table() {
        let rec = DumpRecord {
            format: 1,
            tool_version: String::new(),
            invalid: None,
            entries: 0,
            tables: vec![
                TableStat { name: "a".into(), rows: Some(3), bytes: 0 },
                TableStat { name: "b".into(), rows: None, bytes: 9 },
                TableStat { name: "c".into(), rows: Some(0), bytes: 0 },
            ],
        };
        let expected = counted_tables(&rec);
        assert_eq!(expected, [("a".to_string(), 3), ("c".to_string(), 0)]);
        let found: HashMap<String, u64> = [("a".to_string(), 3), ("c".to_string(), 0)].into();
        assert_eq!(verify_counts(&expected, &found), Ok(()));
        let short: HashMap<String, u64> = [("a".to_string(), 2)].into();
        let e = verify_counts(&expected, &short).unwrap_err();
        assert!(e.contains("2 of 2 tables") && e.contains("a has 2 rows, the dump 3") && e.contains("c is missing"));
    }

    #[test]
    fn postgres_counts_a_table_without_its_children() {
        let q = count_sql(Engine::Postgres, "public.\"Ev'ents\"");
        assert!(q.contains("FROM ONLY public.\"Ev'ents\"") && q.contains("'public.\"Ev''ents\"'::regclass"), "{q}");
        assert_eq!(count_sql(Engine::Mariadb, "my table"), "SELECT count(*) FROM `my table`;");
    }

    #[test]
    fn check_output_verdicts() {
        for yes in ["t", "1", "ok", "42\n"] {
            assert!(check_passed(yes), "{yes}");
        }
        for no in ["", "f", "FALSE", "0", "\n"] {
            assert!(!check_passed(no), "{no:?}");
        }
    }

    #[test]
    fn swaps_are_single_statements_or_transactions() {
        let n = names(Engine::Postgres, "sh\"op").unwrap();
        let sql = pg_swap_in(&n, true);
        assert!(sql.starts_with("BEGIN;") && sql.ends_with("COMMIT;\n"));
        assert!(sql.contains("ALTER DATABASE \"sh\"\"op\" RENAME TO \"sh\"\"op__silo_prev\""));
        assert!(sql.contains("COMMENT ON DATABASE \"sh\"\"op__silo_prev\" IS 'silo restore-database: replaced'"));
        assert!(!pg_swap_in(&n, false).contains("__silo_prev"));
        assert!(is_marked("silo restore-database: replaced") && !is_marked("") && !is_marked("mine"));
        assert_eq!(pg_exchange(&n).matches("RENAME").count(), 3);
        let tables = vec!["a".to_string(), "b`c".to_string()];
        let one = vec!["x".to_string()];
        let sql = my_rename(&[("shop", "shop__silo_prev", &tables), ("shop__silo_new", "shop", &one)]).unwrap();
        assert_eq!(
            sql,
            "RENAME TABLE `shop`.`a` TO `shop__silo_prev`.`a`, `shop`.`b``c` TO `shop__silo_prev`.`b``c`, \
             `shop__silo_new`.`x` TO `shop`.`x`;"
        );
        assert_eq!(my_rename(&[("a", "b", &[])]), None);
    }
}
