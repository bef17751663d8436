//! `silo serve`'s HTTP server (axum): the routes, the pages (pages.rs), the same data as JSON under
//! `/api/v1/`, `/metrics` in the text format `silo status --prometheus` writes, and the refresher. Upholds
//! I26 with access.rs (who may look) and actions.rs (what may be started): no secret in any response,
//! security headers on every response; and I27 (one judgement with `silo status`; a failed refresh keeps
//! the last view under an error panel).
//!
//! The repository is read by one task on a refresh interval into an immutable `View` (a page is a render of
//! it, never a repository read), so a page costs the same at 10 000 snapshots as at 10, and a slow or
//! failing store never blocks a request.

use super::access::Signed;
use super::model::View;
use super::pages::{self, Failure};
use super::state::{unavailable, ApiError, Shared, Shr};
pub use super::state::{Access, Actions, Peer};
use crate::jobs::status::Limits;
use crate::repo::Repository;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Where the repository is and how to open it (the password stays in this process: I26).
pub struct Source {
    pub location: String,
    pub password: Vec<u8>,
    pub cache_dir: Option<std::path::PathBuf>,
}

pub struct Settings {
    /// How often the repository is read again.
    pub refresh: Duration,
    /// The jobs file's limits per job (empty without one: every snapshot name is shown).
    pub limits: BTreeMap<String, Limits>,
    /// The longest one read of the repository may take before it counts as failed.
    pub read_timeout: Duration,
    pub actions: Option<Actions>,
    /// The jobs file's `keep` per job (the dashboard previews what forget would remove).
    pub policies: BTreeMap<String, crate::retention::Policy>,
    /// Who may look (None: loopback only, no login).
    pub access: Option<Access>,
    /// Serve HTTPS with this acceptor (the CLI loads the certificate and key).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves until the process ends: reads the repository now and every `refresh`, answers requests from
/// the newest view.
pub async fn serve(listener: tokio::net::TcpListener, source: Source, mut settings: Settings) -> std::io::Result<()> {
    let mut token = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut token);
    let shared = Arc::new(Shared {
        actions: settings.actions.take(),
        access: settings.access.take().map(Arc::new),
        csrf: hex::encode(token),
        ..Shared::default()
    });
    let tls = settings.tls.take();
    tokio::spawn(refresh(shared.clone(), source, settings));
    let app = app(shared).into_make_service_with_connect_info::<Peer>();
    match tls {
        Some(acceptor) => axum::serve(super::tls::TlsListener::new(listener, acceptor), app).await,
        None => axum::serve(listener, app).await,
    }
}

/// Reads the repository into a view, again and again; a failure keeps the last view and records since
/// when reading fails.
async fn refresh(shared: Arc<Shared>, source: Source, settings: Settings) {
    let mut repo: Option<Repository> = None;
    loop {
        let read = tokio::time::timeout(settings.read_timeout, read_view(&mut repo, &source, &settings)).await;
        let outcome = match read {
            Ok(Ok(view)) => Ok(view),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "reading {} took longer than {} s (is the store reachable?)",
                source.location,
                settings.read_timeout.as_secs()
            )),
        };
        match outcome {
            Ok(view) => {
                *shared.view.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(view));
                *shared.failure.write().unwrap_or_else(|p| p.into_inner()) = None;
            }
            Err(error) => {
                tracing::warn!("silo serve: reading the repository failed: {error}");
                // A repository handle that failed once is opened again next time (a password file fixed, a
                // store back up).
                repo = None;
                let mut f = shared.failure.write().unwrap_or_else(|p| p.into_inner());
                let since_us = f.as_ref().map_or_else(crate::time::now_micros, |f| f.since_us);
                *f = Some(Failure { since_us, error });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.refresh) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

async fn read_view(repo: &mut Option<Repository>, source: &Source, settings: &Settings) -> crate::Result<View> {
    if repo.is_none() {
        let backend = crate::backend::open(&source.location)?;
        *repo = Some(Repository::open(backend, &source.password, source.cache_dir.clone()).await?);
    }
    let Some(r) = repo.as_ref() else { unreachable!("opened above") };
    let gathered = crate::jobs::facts::gather(r).await?;
    let mut view = View::build(&gathered, &settings.limits);
    // Retention: the jobs file's keep for its jobs (as `silo run` forgets), else the stored policy.
    let mut policies = r.policies().await?;
    let mut from: BTreeMap<String, String> =
        policies.keys().map(|n| (n.clone(), "silo policy set".to_string())).collect();
    for (name, policy) in &settings.policies {
        let stored = silo_format::maintenance::StoredPolicy {
            version: silo_format::maintenance::MAINTENANCE_VERSION,
            name: name.clone(),
            policy: policy.clone(),
            set_at: 0,
        };
        policies.insert(name.clone(), stored);
        from.insert(name.clone(), "the jobs file's keep".to_string());
    }
    // The view is built: the headers move into the plan (no copy of every header each refresh).
    let now = gathered.now_us;
    let groups = crate::repo::forget::plan_groups(
        gathered.snapshots,
        &crate::repo::forget::Filter::default(),
        None,
        &policies,
        now,
        crate::retention::SUSPECT_SHRINK_PERCENT,
    );
    view.set_retention(&groups, &from);
    Ok(view)
}

fn app(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    if shared.actions.is_some() {
        router = router
            .route("/actions/run/{job}", axum::routing::post(super::actions::run))
            .route("/actions/check", axum::routing::post(super::actions::check));
    }
    router
        .route("/", get(overview))
        .route("/name/{name}", get(name_page))
        .route("/repository", get(repository_page))
        .route("/api/v1/status", get(api_status))
        .route("/api/v1/names/{name}", get(api_name))
        .route("/api/v1/repository", get(api_repository))
        .route("/metrics", get(metrics))
        .route("/static/style.css", get(style))
        .route("/login", get(super::access::login_form).post(super::access::login))
        .route("/logout", axum::routing::post(super::access::logout))
        .fallback(|| async { (StatusCode::NOT_FOUND, Html(pages::not_found("No such page.").into_string())) })
        .layer(axum::middleware::from_fn_with_state(shared.clone(), super::access::guard))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(shared)
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    res
}

async fn overview(State(s): Shr, signed: Option<Extension<Signed>>) -> Html<String> {
    let signed = signed.map(|e| e.0);
    let (view, failure) = s.get();
    let controls = s.controls(signed.as_ref());
    let session = s.session(signed.as_ref());
    Html(match &view {
        Some(v) => pages::overview(v, failure.as_ref(), controls.as_ref(), session.as_ref()).into_string(),
        None => pages::waiting(failure.as_ref(), session.as_ref()).into_string(),
    })
}

async fn name_page(State(s): Shr, Path(name): Path<String>, signed: Option<Extension<Signed>>) -> Response {
    let (view, failure) = s.get();
    let session = s.session(signed.map(|e| e.0).as_ref());
    let Some(v) = view else {
        return Html(pages::waiting(failure.as_ref(), session.as_ref()).into_string()).into_response();
    };
    match v.names.get(&name) {
        Some(d) => {
            Html(pages::name_page(&v, &name, d, failure.as_ref(), session.as_ref()).into_string()).into_response()
        }
        None => (StatusCode::NOT_FOUND, Html(pages::not_found("No job or snapshot has that name.").into_string()))
            .into_response(),
    }
}

async fn repository_page(State(s): Shr, signed: Option<Extension<Signed>>) -> Html<String> {
    let (view, failure) = s.get();
    let session = s.session(signed.map(|e| e.0).as_ref());
    Html(match &view {
        Some(v) => pages::repository_page(v, failure.as_ref(), session.as_ref()).into_string(),
        None => pages::waiting(failure.as_ref(), session.as_ref()).into_string(),
    })
}

/// `/api/v1/status`: the fields of `silo status --json` (state, exit_code, jobs, snapshots,
/// repository_bytes, run_records, damaged_run_records), plus when the view was read and the refresh error.
#[derive(Serialize)]
struct ApiStatus<'a> {
    api_version: u32,
    state: crate::jobs::status::State,
    exit_code: u8,
    jobs: &'a [crate::jobs::status::JobStatus],
    snapshots: usize,
    repository_bytes: u64,
    run_records: usize,
    damaged_run_records: usize,
    refreshed_us: i64,
    error: Option<String>,
}

async fn api_status(State(s): Shr) -> Response {
    let (view, failure) = s.get();
    let Some(v) = view else { return unavailable(failure) };
    Json(ApiStatus {
        api_version: 1,
        state: v.state,
        exit_code: crate::jobs::status::exit_code(v.state),
        jobs: &v.jobs,
        snapshots: v.repository.snapshots,
        repository_bytes: v.repository.stored_bytes,
        run_records: v.repository.run_records,
        damaged_run_records: v.repository.damaged_run_records,
        refreshed_us: v.refreshed_us,
        error: failure.map(|f| f.error),
    })
    .into_response()
}

async fn api_name(State(s): Shr, Path(name): Path<String>) -> Response {
    let (view, failure) = s.get();
    let Some(v) = view else { return unavailable(failure) };
    match v.names.get(&name) {
        Some(d) => Json(d).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(ApiError { api_version: 1, error: format!("no name {name:?}"), pending: false }),
        )
            .into_response(),
    }
}

async fn api_repository(State(s): Shr) -> Response {
    let (view, failure) = s.get();
    let Some(v) = view else { return unavailable(failure) };
    Json(&v.repository).into_response()
}

async fn metrics(State(s): Shr) -> Response {
    let (view, failure) = s.get();
    let Some(v) = view else { return unavailable(failure) };
    let text = crate::jobs::metrics::text(&v.jobs, v.repository.stored_bytes, v.refreshed_us);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], pages::STYLE)
}

#[cfg(test)]
mod tests {
    use super::super::access::host_is_loopback;

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in ["127.0.0.1:8470", "127.0.0.1", "localhost:8470", "LOCALHOST", "[::1]:8470", "[::1]", "127.1.2.3:1"] {
            assert!(host_is_loopback(ok), "{ok}");
        }
        for bad in ["", "evil.example:8470", "evil.example", "10.0.0.1:8470", "localhost.evil.example", "[::2]:1"] {
            assert!(!host_is_loopback(bad), "{bad}");
        }
    }
}
