//! restore-database into MariaDB/MySQL: mysql loads the scratch database, created like the live one (character
//! set, collation) with silo's mark as its schema comment. MariaDB has no database rename: one multi-table
//! `RENAME TABLE` moves every table (atomic), so databases with views, triggers, routines or events are refused.
//! Upholds I15, I18, I21 (MYSQL_*/MARIADB_* only), I22 (`--database=`).

use super::{fail, note, Connection, Engine, Failure, Kind, Result, Target};
use crate::dumps::swap::{self, Loader};
use crate::inputs::process::ChildEnv;
use std::process::Command;

/// Commands about other databases run in none.
const ADMIN: &str = "";

pub(super) struct Mariadb;

impl Engine for Mariadb {
    fn kind(&self) -> Kind {
        Kind::Mariadb
    }

    fn env(&self) -> ChildEnv {
        ChildEnv::base().mariadb()
    }

    fn connect(&self, c: &mut Command, conn: &Connection) {
        c.args(conn.host.iter().map(|h| format!("--host={h}")));
        c.args(conn.port.iter().map(|p| format!("--port={p}")));
        c.args(conn.user.iter().map(|u| format!("--user={u}")));
    }

    fn endpoint(&self, conn: &Connection) -> (Option<String>, String) {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        (
            conn.host.clone().or_else(|| env("MYSQL_HOST")),
            conn.port.map(|p| p.to_string()).or_else(|| env("MYSQL_TCP_PORT")).unwrap_or_else(|| "3306".into()),
        )
    }

    fn sql_client(&self, t: &Target, database: &str) -> Command {
        let mut c = t.client("mysql");
        c.args(["-N", "-B"]);
        if !database.is_empty() {
            c.arg(format!("--database={database}"));
        }
        c
    }

    fn exists(&self, t: &Target, name: &str) -> Result<bool> {
        let sql = format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}", swap::literal(name));
        Ok(!t.sql(ADMIN, &sql)?.is_empty())
    }

    fn ours(&self, t: &Target, name: &str) -> Result<bool> {
        let comment = t.sql(
            ADMIN,
            &format!(
                "SELECT CONCAT('x', SCHEMA_COMMENT) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
                swap::literal(name)
            ),
        )?;
        t.ours_by_comment(name, &comment, || {
            let n = t.sql(
                ADMIN,
                &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {}", swap::literal(name)),
            )?;
            Ok(n.trim() == "0")
        })
    }

    fn drop(&self, t: &Target, name: &str) -> Result<()> {
        t.sql(ADMIN, &format!("DROP DATABASE IF EXISTS {}", swap::my_ident(name)))?;
        Ok(())
    }

    fn create_scratch(&self, t: &Target) -> Result<()> {
        let (live, new) = (&t.names.live, &t.names.new);
        let like = charset(t, live)?;
        t.sql(ADMIN, &format!("CREATE DATABASE {} {like} {}", swap::my_ident(new), mark("scratch")))?;
        Ok(())
    }

    fn loader(&self, t: &Target, _loader: Loader) -> Command {
        let mut c = t.client("mysql");
        c.arg(format!("--database={}", t.names.new));
        c
    }

    fn exchange_in(&self, t: &Target, live_exists: bool) -> Result<()> {
        let n = &t.names;
        refuse_non_tables(t)?;
        let old_tables = if live_exists { tables(t, &n.live)? } else { Vec::new() };
        let new_tables = tables(t, &n.new)?;
        if live_exists {
            let sql =
                format!("CREATE DATABASE {} {} {}", swap::my_ident(&n.prev), charset(t, &n.live)?, mark("replaced"));
            t.sql(ADMIN, &sql)?;
        } else {
            t.sql(ADMIN, &format!("CREATE DATABASE {} {}", swap::my_ident(&n.live), charset(t, &n.new)?))?;
        }
        if let Some(sql) = swap::my_rename(&[(&n.live, &n.prev, &old_tables), (&n.new, &n.live, &new_tables)]) {
            t.sql(ADMIN, &sql)?;
        }
        // A table a client created between the listing and the rename stayed behind in the live database: it
        // belongs with the database replaced, so it follows it (the table set is read again after the swap).
        let strays = swap::strays(&new_tables, &tables(t, &n.live)?);
        if !strays.is_empty() && live_exists {
            if let Some(sql) = swap::my_rename(&[(&n.live, &n.prev, &strays)]) {
                t.sql(ADMIN, &sql)?;
            }
            note(format_args!(
                "silo: {} table(s) created in {} during the swap moved to {}: {}",
                strays.len(),
                n.live,
                n.prev,
                strays.join(", ")
            ));
        }
        t.drop_database(&n.new)
    }

    fn exchange_back(&self, t: &Target) -> Result<()> {
        let n = &t.names;
        refuse_non_tables(t)?;
        let live = tables(t, &n.live)?;
        let prev = tables(t, &n.prev)?;
        t.drop_database(&n.swap)?;
        t.sql(ADMIN, &format!("CREATE DATABASE {} {}", swap::my_ident(&n.swap), mark("swap")))?;
        let moves =
            [(n.live.as_str(), n.swap.as_str(), &live[..]), (&n.prev, &n.live, &prev), (&n.swap, &n.prev, &live)];
        if let Some(sql) = swap::my_rename(&moves) {
            t.sql(ADMIN, &sql)?;
        }
        t.drop_database(&n.swap)
    }
}

fn tables(t: &Target, database: &str) -> Result<Vec<String>> {
    let out = t.sql(
        ADMIN,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} ORDER BY TABLE_NAME",
            swap::literal(database)
        ),
    )?;
    Ok(out.lines().filter(|l| !l.is_empty()).map(String::from).collect())
}

fn charset(t: &Target, database: &str) -> Result<String> {
    t.sql(
        ADMIN,
        &format!(
            "SELECT CONCAT('CHARACTER SET ', DEFAULT_CHARACTER_SET_NAME, ' COLLATE ', DEFAULT_COLLATION_NAME) FROM \
             information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            swap::literal(database)
        ),
    )
}

/// The schema comment that marks a MariaDB database as restore-database's.
fn mark(what: &str) -> String {
    format!("COMMENT {}", swap::literal(&format!("{}: {what}", swap::MARK)))
}

/// RENAME TABLE moves tables atomically; views, triggers, routines and events do not move with it, so a
/// database that has them is refused before anything changes.
fn refuse_non_tables(t: &Target) -> Result<()> {
    let n = &t.names;
    let dbs = [&n.live, &n.new, &n.prev].map(|d| swap::literal(d)).join(", ");
    let count = t.sql(
        ADMIN,
        &format!(
            "SELECT (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN ({dbs})) + (SELECT COUNT(*) \
             FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({dbs})) + (SELECT COUNT(*) FROM \
             information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({dbs})) + (SELECT COUNT(*) FROM \
             information_schema.EVENTS WHERE EVENT_SCHEMA IN ({dbs}))"
        ),
    )?;
    if count.trim() != "0" {
        t.drop_scratch();
        return Err(fail(
            Failure::VerifyFailed,
            format!(
                "{} has views, triggers, routines or events ({count}); restore-database swaps MariaDB databases \
                 with one atomic RENAME TABLE, which cannot move them. Nothing was swapped; restore with `silo \
                 snapshot restore ... | mysql` into a database you switch yourself",
                n.live
            ),
        ));
    }
    Ok(())
}
