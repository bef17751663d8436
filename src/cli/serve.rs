//! `silo serve [--listen 127.0.0.1:8470]`: the dashboard, JSON API and metrics (src/serve/) over the
//! repository `ctx.open()`'s rule picks, with the jobs file's jobs and limits when there is one. Loopback
//! only (I26): an address anyone else can reach is refused until credentials and TLS exist.

use super::context::Invocation;
use super::jobs_file;
use anyhow::{Context, Result};
use std::net::SocketAddr;

#[derive(clap::Args, Debug)]
pub struct Args {
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
}

pub fn run(ctx: &Invocation, a: &Args) -> Result<()> {
    let addr: SocketAddr = a.listen.parse().map_err(|_| silo::Error::Input {
        what: format!("--listen {}", a.listen),
        message: "is not an address and port: write e.g. 127.0.0.1:8470 or [::1]:8470".into(),
    })?;
    if !addr.ip().is_loopback() {
        return Err(silo::Error::Input {
            what: format!("--listen {}", a.listen),
            message: "is reachable from other machines, and silo serve has no login or TLS yet: listen on \
                      127.0.0.1 (or [::1]) and reach it through an SSH tunnel or a reverse proxy with its own login"
                .into(),
        }
        .into());
    }
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
    let settings = silo::serve::server::Settings {
        policies,
        refresh,
        limits,
        read_timeout: std::time::Duration::from_secs(300).max(refresh),
        actions,
    };
    ctx.rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
        let bound = listener.local_addr().context("reading the bound address")?;
        note!("silo serve: http://{bound}/ (repository {})", source.location);
        silo::serve::server::serve(listener, source, settings).await.context("serving")
    })
}
