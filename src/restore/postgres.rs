//! restore-database into PostgreSQL: psql and pg_restore load the scratch database, created like the live one
//! (encoding, collation) and marked by its database comment; the swap is one transaction of renames after
//! ending other sessions (retried while clients reconnect). Upholds I15, I18, I21 (PG* only), I22
//! (`--dbname=` with a conninfo string).

use super::{fail, Connection, Engine, Failure, Kind, Result, Target};
use crate::dumps::swap::{self, Loader};
use crate::inputs::process::ChildEnv;
use std::process::Command;

/// The maintenance database commands about other databases run in.
const ADMIN: &str = "postgres";

pub(super) struct Postgres;

impl Engine for Postgres {
    fn kind(&self) -> Kind {
        Kind::Postgres
    }

    fn env(&self) -> ChildEnv {
        ChildEnv::base().postgres()
    }

    fn connect(&self, c: &mut Command, conn: &Connection) {
        c.args(conn.host.iter().flat_map(|h| ["-h".to_string(), h.clone()]));
        c.args(conn.port.iter().flat_map(|p| ["-p".to_string(), p.to_string()]));
        c.args(conn.user.iter().flat_map(|u| ["-U".to_string(), u.clone()]));
        c.arg("--no-password");
    }

    fn endpoint(&self, conn: &Connection) -> (Option<String>, String) {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        (
            conn.host.clone().or_else(|| env("PGHOST")),
            conn.port.map(|p| p.to_string()).or_else(|| env("PGPORT")).unwrap_or_else(|| "5432".into()),
        )
    }

    fn sql_client(&self, t: &Target, database: &str) -> Command {
        let mut c = t.client("psql");
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        c.arg(format!("--dbname={}", swap::pg_conninfo(database)));
        c
    }

    fn exists(&self, t: &Target, name: &str) -> Result<bool> {
        Ok(!t.sql(ADMIN, &format!("SELECT 1 FROM pg_database WHERE datname = {}", swap::literal(name)))?.is_empty())
    }

    fn ours(&self, t: &Target, name: &str) -> Result<bool> {
        let comment = t.sql(
            ADMIN,
            &format!(
                "SELECT 'x' || coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = \
                 {}",
                swap::literal(name)
            ),
        )?;
        t.ours_by_comment(name, &comment, || {
            let n = t.sql(
                name,
                "SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname NOT \
                 IN ('pg_catalog', 'information_schema', 'pg_toast')",
            )?;
            Ok(n.trim() == "0")
        })
    }

    fn drop(&self, t: &Target, name: &str) -> Result<()> {
        t.sql(ADMIN, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", swap::pg_ident(name)))?;
        Ok(())
    }

    fn create_scratch(&self, t: &Target) -> Result<()> {
        let (live, new) = (&t.names.live, &t.names.new);
        let like = t.sql(
            ADMIN,
            &format!(
                "SELECT 'ENCODING ' || quote_literal(pg_encoding_to_char(encoding)) || ' LC_COLLATE ' || \
                 quote_literal(datcollate) || ' LC_CTYPE ' || quote_literal(datctype) FROM pg_database WHERE \
                 datname = {}",
                swap::literal(live)
            ),
        )?;
        t.sql(ADMIN, &format!("CREATE DATABASE {} TEMPLATE template0 {like}", swap::pg_ident(new)))?;
        let mark = swap::literal(&format!("{}: scratch", swap::MARK));
        t.sql(ADMIN, &format!("COMMENT ON DATABASE {} IS {mark}", swap::pg_ident(new)))?;
        Ok(())
    }

    fn loader(&self, t: &Target, loader: Loader) -> Command {
        let new = &t.names.new;
        let mut c = if loader == Loader::PgRestore {
            let mut c = t.client("pg_restore");
            c.arg("--exit-on-error");
            c
        } else {
            let mut c = t.client("psql");
            c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
            c
        };
        c.arg(format!("--dbname={}", swap::pg_conninfo(new)));
        c
    }

    fn hook_env(&self, c: &mut Command, database: &str) {
        c.env("PGDATABASE", database);
    }

    fn exchange_in(&self, t: &Target, live_exists: bool) -> Result<()> {
        let n = &t.names;
        if live_exists {
            let owner = t.sql(
                ADMIN,
                &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {}", swap::literal(&n.live)),
            )?;
            if !owner.is_empty() {
                t.sql(
                    ADMIN,
                    &format!("ALTER DATABASE {} OWNER TO {}", swap::pg_ident(&n.new), swap::pg_ident(&owner)),
                )?;
            }
        }
        renames(t, &swap::pg_swap_in(n, live_exists), &[&n.live])
    }

    fn exchange_back(&self, t: &Target) -> Result<()> {
        let n = &t.names;
        renames(t, &swap::pg_exchange(n), &[&n.live, &n.prev])
    }
}

/// Runs a rename transaction, first ending other sessions on the databases it renames (PostgreSQL refuses to
/// rename a database in use); retried when a client reconnects in between.
fn renames(t: &Target, sql: &str, in_use: &[&str]) -> Result<()> {
    let list: Vec<String> = in_use.iter().map(|d| swap::literal(d)).collect();
    let terminate = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ({}) AND pid <> \
         pg_backend_pid()",
        list.join(", ")
    );
    let mut last = None;
    for _ in 0..50 {
        t.sql(ADMIN, &terminate)?;
        match t.sql(ADMIN, sql) {
            Ok(_) => return Ok(()),
            Err(e) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
    Err(last
        .unwrap_or_else(|| fail(Failure::Failed, "rename failed"))
        .context("the swap did not happen; the live database is unchanged"))
}
