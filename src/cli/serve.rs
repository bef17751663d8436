//! `silo serve [--listen 127.0.0.1:8470]`: the dashboard, JSON API and metrics (src/serve/) over the
//! repository `ctx.open()`'s rule picks, with the jobs file's jobs and limits when there is one. Loopback
//! only (I26): an address anyone else can reach is refused until credentials and TLS exist.

use super::context::Invocation;
use super::jobs_file;
use anyhow::{Context, Result};
use silo::serve::auth::Users;
use silo::serve::server::Access;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<ServeCommand>,
    /// Address and port to listen on (a loopback address; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8470", value_name = "ADDR:PORT")]
    listen: String,
    /// How often the repository is read again (e.g. 60s, 5m): pages show what was read last.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    refresh: String,
    /// Offer "Run now" for each job of the jobs file and "Check now": a POST with the page's token starts
    /// `silo run JOB` or `silo check` (one at a time), recorded in the run history like any run.
    #[arg(long)]
    allow_actions: bool,
    /// Users who may log in (lines `user:$argon2id$...`, written by `silo serve passwd USER`). With it,
    /// every page needs a login; listening off loopback needs it (or --token-file).
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// A bearer token for scripts and Prometheus (`Authorization: Bearer TOKEN`): the file's first line,
    /// at least 32 characters, the file owner-only.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); with --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP off loopback (behind a TLS-terminating proxy); without it, off loopback needs TLS.
    #[arg(long, conflicts_with = "tls_cert")]
    insecure_http: bool,
}

#[derive(clap::Subcommand, Debug)]
enum ServeCommand {
    /// Set USER's password in an auth file (read twice at a terminal, else the first line of standard
    /// input); other users' lines are kept. The file is written owner-only.
    Passwd {
        /// The user name (1-64 of A-Z a-z 0-9 . _ -).
        user: String,
        /// The auth file to write (created owner-only; other users' lines kept).
        #[arg(long, value_name = "FILE")]
        auth_file: PathBuf,
    },
}

/// `silo serve passwd USER --auth-file FILE`.
fn passwd(user: &str, file: &Path) -> Result<()> {
    if !silo::serve::auth::valid_user(user) {
        return Err(silo::Error::Input {
            what: format!("user {user:?}"),
            message: "use 1-64 characters from A-Z a-z 0-9 . _ -".into(),
        }
        .into());
    }
    let password = if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(format!("new password for {user}: ")).context("reading the password")?;
        if rpassword::prompt_password("repeat it: ").context("reading the password")? != p {
            anyhow::bail!("the passwords do not match; nothing was changed");
        }
        p
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.trim().chars().count() < 12 {
        return Err(silo::Error::Input {
            what: format!("the password for {user}"),
            message: "is shorter than 12 characters (spaces around it not counted); nothing was changed".into(),
        }
        .into());
    }
    if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(silo::Error::Input {
            what: format!("--auth-file {}", file.display()),
            message: "is a symbolic link; give the file it points to (it is replaced, not written through)".into(),
        }
        .into());
    }
    let old = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    silo::serve::auth::Users::parse(&old)
        .map_err(|e| silo::Error::Input { what: format!("--auth-file {}", file.display()), message: e })?;
    let text =
        silo::serve::auth::Users::with_password(&old, user, password.as_bytes()).map_err(silo::Error::Invalid)?;
    super::files::replace_atomically(file, text.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", file.display()))?;
    note!("silo: {user}'s password is set in {}", file.display());
    Ok(())
}

/// What `--auth-file`, `--token-file` and the TLS options ask for, checked before anything listens.
fn access(a: &Args, addr: SocketAddr) -> Result<(Option<Access>, Option<tokio_rustls::TlsAcceptor>)> {
    let refuse = |what: &str, message: String| -> anyhow::Error {
        silo::Error::Input { what: what.to_string(), message }.into()
    };
    let users = match &a.auth_file {
        Some(f) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f)
                .with_context(|| format!("reading --auth-file {}", f.display()))?
                .permissions()
                .mode();
            if mode & 0o022 != 0 {
                return Err(refuse(
                    &format!("--auth-file {}", f.display()),
                    format!("is writable by others (mode {:o}): anyone could add a user; chmod 600 it", mode & 0o777),
                ));
            }
            let text = std::fs::read_to_string(f).with_context(|| format!("reading --auth-file {}", f.display()))?;
            let users = Users::parse(&text).map_err(|e| refuse(&format!("--auth-file {}", f.display()), e))?;
            if users.is_empty() {
                return Err(refuse(
                    &format!("--auth-file {}", f.display()),
                    "has no user: add one with `silo serve passwd USER --auth-file FILE`".into(),
                ));
            }
            Some(users)
        }
        None => None,
    };
    let token = match &a.token_file {
        Some(f) => {
            let t = super::password::read_file(f)?;
            let distinct = t.iter().collect::<std::collections::BTreeSet<_>>().len();
            if t.len() < 32 || distinct < 10 || t.iter().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                return Err(refuse(
                    &format!("--token-file {}", f.display()),
                    "needs a token of at least 32 characters, no spaces, not one repeated character: e.g. \
                     `openssl rand -hex 32`"
                        .into(),
                ));
            }
            Some(t)
        }
        None => None,
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(k).with_context(|| format!("reading --tls-key {}", k.display()))?;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(refuse(
                    &format!("--tls-key {}", k.display()),
                    format!("is open to other users (mode {:o}): chmod 600 it", mode & 0o777),
                ));
            }
            Some(silo::serve::tls::acceptor(c, k).map_err(|e| refuse("--tls-cert/--tls-key", e))?)
        }
        _ => None,
    };
    let login = users.is_some() || token.is_some();
    if !addr.ip().is_loopback() && !login {
        return Err(refuse(
            &format!("--listen {}", a.listen),
            "is reachable from other machines: give --auth-file (users: `silo serve passwd USER --auth-file FILE`) \
             or --token-file, and --tls-cert/--tls-key (or --insecure-http behind a TLS proxy)"
                .into(),
        ));
    }
    if !addr.ip().is_loopback() && tls.is_none() && !a.insecure_http {
        return Err(refuse(
            &format!("--listen {}", a.listen),
            "is reachable from other machines: give --tls-cert and --tls-key, or --insecure-http when a TLS proxy \
             stands in front"
                .into(),
        ));
    }
    let auth_file = match (&a.auth_file, &users) {
        (Some(f), Some(_)) => {
            let seen = std::fs::metadata(f).and_then(|m| m.modified()).ok();
            Some((f.clone(), std::sync::Mutex::new(seen)))
        }
        _ => None,
    };
    // Behind --insecure-http a TLS proxy stands in front: the browser still sees HTTPS.
    let secure_cookie = tls.is_some() || a.insecure_http;
    let access = login.then(|| Access { users: users.unwrap_or_default().into(), auth_file, token, secure_cookie });
    Ok((access, tls))
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    if let Some(ServeCommand::Passwd { user, auth_file }) = &a.command {
        return passwd(user, auth_file);
    }
    let addr: SocketAddr = a.listen.parse().map_err(|_| silo::Error::Input {
        what: format!("--listen {}", a.listen),
        message: "is not an address and port: write e.g. 127.0.0.1:8470 or [::1]:8470".into(),
    })?;
    let (access, tls) = access(a, addr)?;
    let refresh = std::time::Duration::from_secs(super::context::duration_arg("--refresh", &a.refresh)?.max(1));
    let loaded = jobs_file::find(ctx)?;
    let limits = jobs_file::limits(&loaded);
    let target = match &loaded {
        Some(l) if ctx.cli.repo.is_none() && ctx.cli.job.is_none() && !ctx.cli.offsite => {
            let cfg = &l.file.repository;
            super::context::Target {
                location: cfg.location.clone(),
                password: jobs_file::password_of("repository", cfg)?,
                cache_dir: cfg.cache_dir.clone().or_else(|| ctx.cli.cache_dir.clone()),
                from: "the jobs file".into(),
            }
        }
        _ => ctx.target()?,
    };
    let source = silo::serve::server::Source {
        location: target.location,
        password: target.password,
        cache_dir: target.cache_dir,
    };
    let actions = if a.allow_actions {
        let exe = std::env::current_exe().context("finding the silo binary for --allow-actions")?;
        // The children pick the same repository and jobs file as this server.
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(l) = &loaded {
            args.extend(["--config".into(), l.path.clone().into_os_string()]);
        }
        if let Some(r) = &ctx.cli.repo {
            args.extend(["--repo".into(), r.into()]);
        }
        if let Some(c) = &ctx.cli.cache_dir {
            args.extend(["--cache-dir".into(), c.clone().into_os_string()]);
        }
        if let Some(p) = &ctx.cli.password_file {
            args.extend(["--password-file".into(), p.clone().into_os_string()]);
        }
        let jobs = loaded.iter().flat_map(|l| l.file.jobs.keys().cloned()).collect();
        Some(silo::serve::server::Actions { exe, args, jobs })
    } else {
        None
    };
    let policies = loaded
        .iter()
        .flat_map(|l| l.file.jobs.iter())
        .filter_map(|(n, j)| j.keep.as_ref().map(|k| (n.clone(), k.policy())))
        .collect();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let settings = silo::serve::server::Settings {
        access,
        tls,
        policies,
        refresh,
        limits,
        read_timeout: std::time::Duration::from_secs(300).max(refresh),
        actions,
    };
    ctx.rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        note!("silo serve: {scheme}://{bound}/ (repository {})", source.location);
        silo::serve::server::serve(listener, source, settings).await.context("serving")
    })
}
