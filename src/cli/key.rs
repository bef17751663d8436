//! `silo key list|add|passwd|remove`: the repository's key files (repo/keys.rs). A new password comes from
//! `--new-password-file` (owner-only, first line) or is asked twice on the terminal; it is never printed.

use super::context::Invocation;
use super::output::{emit, Report};
use super::password;
use anyhow::{Context, Result};
use serde::Serialize;
use silo::format::keyfile::KdfParams;
use silo::repo::keys::KeyInfo;
use silo::time::format_micros;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List the key files: id, host, user, created, and which one your password opened.
    List,
    /// Add a key file: the same repository opens with a second password.
    Add {
        #[command(flatten)]
        key: NewKey,
        /// A writer key (append-only): silo holding it creates, copies to and reads snapshots, but never
        /// deletes or overwrites (no gc, forget, repair index, key changes). For database hosts.
        #[arg(long)]
        writer: bool,
    },
    /// Change the password: add a key for the new one (proven to open), then remove the one you used.
    Passwd(NewKey),
    /// Remove a key file: never the last owner key proven to open (the one your password opened only with
    /// --force and --other-password-file).
    Remove {
        /// Key id or a unique prefix of it (`silo key list`).
        id: String,
        /// Also remove the key your password opened (you then need another password).
        #[arg(long)]
        force: bool,
        /// The password of another owner key (first line; owner-only), proving it opens before the key your
        /// password opened is removed. A damaged key file or a writer key never counts as the one left.
        #[arg(long, value_name = "FILE")]
        other_password_file: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
pub struct NewKey {
    /// Read the new password from this file (first line; owner-only). Without it, silo asks on the terminal.
    #[arg(long)]
    new_password_file: Option<PathBuf>,
    /// argon2id memory in KiB for the new key (default: the current key's).
    #[arg(long)]
    kdf_memory: Option<u32>,
    /// argon2id passes for the new key (default: the current key's).
    #[arg(long)]
    kdf_iterations: Option<u32>,
    /// argon2id lanes for the new key (default: the current key's).
    #[arg(long)]
    kdf_parallelism: Option<u32>,
}

impl NewKey {
    fn password(&self) -> Result<Vec<u8>> {
        if let Some(file) = &self.new_password_file {
            return password::read_file(file);
        }
        if std::io::stderr().is_terminal() {
            let p = rpassword::prompt_password("new password: ").context("reading the new password")?;
            if rpassword::prompt_password("repeat new password: ").context("reading the new password")? != p {
                anyhow::bail!("the new passwords do not match");
            }
            return Ok(p.into_bytes());
        }
        Err(silo::Error::Input {
            what: "no new password".into(),
            message: "pass --new-password-file FILE (chmod 600), or run on a terminal".into(),
        }
        .into())
    }

    fn kdf(&self, current: KdfParams) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf_memory.unwrap_or(current.memory_kib),
            iterations: self.kdf_iterations.unwrap_or(current.iterations),
            parallelism: self.kdf_parallelism.unwrap_or(current.parallelism),
        }
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Keys(Vec<KeyInfo>);

impl Report for Keys {
    fn human(&self) -> Result<()> {
        say!("{:<8}  {:<20}  {:<16}  {:<12}  {:<6}  {:>14}  ", "id", "created", "host", "user", "role", "argon2id");
        for k in &self.0 {
            let kdf = format!("{} MiB x{} /{}", k.kdf_memory_kib / 1024, k.kdf_iterations, k.kdf_parallelism);
            let user = if k.user.is_empty() { "-" } else { k.user.as_str() };
            say!(
                "{:<8}  {:<20}  {:<16}  {:<12}  {:<6}  {:>14}  {}",
                k.id.short(),
                format_micros(k.created),
                k.host,
                user,
                k.role,
                kdf,
                if k.current { "(current)" } else { "" }
            );
        }
        say!("{} keys", self.0.len());
        Ok(())
    }
}

#[derive(Serialize)]
struct Changed {
    /// The key file added (add, passwd), full id.
    added: Option<String>,
    /// The key file removed (passwd, remove), full id.
    removed: Option<String>,
}

impl Report for Changed {
    fn human(&self) -> Result<()> {
        if let Some(a) = &self.added {
            say!("added key {}", &a[..8]);
        }
        if let Some(r) = &self.removed {
            say!("removed key {}", &r[..8]);
        }
        Ok(())
    }
}

pub fn run(ctx: &Invocation, c: &Command) -> Result<()> {
    let repo = ctx.open()?;
    match c {
        Command::List => emit(&Keys(ctx.rt.block_on(repo.list_keys())?), ctx.json()),
        Command::Add { key: n, writer } => {
            let kdf = n.kdf(ctx.rt.block_on(repo.current_kdf())?);
            let role = if *writer { silo::format::keyfile::ROLE_WRITER } else { silo::format::keyfile::ROLE_OWNER };
            let key = ctx.rt.block_on(repo.add_key(&n.password()?, kdf, role))?;
            emit(&Changed { added: Some(key.id.to_hex()), removed: None }, ctx.json())
        }
        Command::Passwd(n) => {
            let kdf = n.kdf(ctx.rt.block_on(repo.current_kdf())?);
            let id = ctx.rt.block_on(repo.change_password(&n.password()?, kdf))?;
            emit(&Changed { added: Some(id.to_hex()), removed: Some(repo.key_id().to_hex()) }, ctx.json())
        }
        Command::Remove { id, force, other_password_file } => {
            let id = ctx.rt.block_on(repo.resolve_key(id))?;
            let proven = match other_password_file {
                Some(file) => vec![ctx.rt.block_on(repo.prove_other_key(&password::read_file(file)?, id))?],
                None => Vec::new(),
            };
            ctx.rt.block_on(repo.remove_key(id, *force, &proven))?;
            emit(&Changed { added: None, removed: Some(id.to_hex()) }, ctx.json())
        }
    }
}
