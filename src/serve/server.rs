//! `silo serve`'s HTTP server (axum): the pages (pages.rs), the same data as JSON under `/api/v1/`, and
//! `/metrics` in the text format `silo status --prometheus` writes. Upholds I26 (loopback only, read-only,
//! no secret in any response, security headers on every response, a Host header that is not loopback is
//! refused so a DNS-rebound page cannot read it) and I27 (one judgement with `silo status`; a failed refresh
//! keeps the last view under an error panel).
//!
//! The repository is read by one task on a refresh interval into an immutable `View` (a page is a render of
//! it, never a repository read), so a page costs the same at 10 000 snapshots as at 10, and a slow or
//! failing store never blocks a request.

use super::model::View;
use super::pages::{self, Failure};
use crate::jobs::status::Limits;
use crate::repo::Repository;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where the repository is and how to open it (the password stays in this process: I26).
pub struct Source {
    pub location: String,
    pub password: Vec<u8>,
    pub cache_dir: Option<std::path::PathBuf>,
}

/// `--allow-actions`: how to start a run of a job or a check (this silo binary, with the arguments that
/// pick the same repository and jobs file), and which jobs may be run.
pub struct Actions {
    pub exe: std::path::PathBuf,
    pub args: Vec<std::ffi::OsString>,
    pub jobs: Vec<String>,
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

/// `--auth-file` / `--token-file`: the users who may log in, and a bearer token for scripts.
pub struct Access {
    pub users: RwLock<super::auth::Users>,
    /// The auth file and the modification time last read: a changed file is read again (a new password
    /// works, the old one and its sessions end, without a restart).
    pub auth_file: Option<(std::path::PathBuf, std::sync::Mutex<Option<std::time::SystemTime>>)>,
    pub token: Option<Vec<u8>>,
    /// Session cookies are marked `Secure` (HTTPS, or a TLS proxy in front with --insecure-http).
    pub secure_cookie: bool,
}

#[derive(Default)]
struct Shared {
    view: RwLock<Option<Arc<View>>>,
    failure: RwLock<Option<Failure>>,
    /// With `--allow-actions`: what may be started, the form token, the action running and the last one.
    actions: Option<Actions>,
    csrf: String,
    action: std::sync::Mutex<ActionState>,
    /// Wakes the refresher when an action ended (its run record is then on the page at once).
    wake: tokio::sync::Notify,
    access: Option<Arc<Access>>,
    sessions: std::sync::Mutex<super::auth::Sessions>,
    limiter: std::sync::Mutex<super::auth::Limiter>,
}

impl Shared {
    fn get(&self) -> (Option<Arc<View>>, Option<Failure>) {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner()).clone();
        let failure = self.failure.read().unwrap_or_else(|p| p.into_inner()).clone();
        (view, failure)
    }
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

/// The client's address (for the login limiter), over TCP or TLS.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, super::tls::TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, super::tls::TlsListener>) -> Self {
        Peer(*stream.remote_addr())
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
    let groups = crate::repo::forget::plan_groups(
        gathered.snapshots.clone(),
        &crate::repo::forget::Filter::default(),
        None,
        &policies,
        gathered.now_us,
        crate::retention::SUSPECT_SHRINK_PERCENT,
    );
    view.set_retention(&groups, &from);
    Ok(view)
}

fn app(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    if shared.actions.is_some() {
        router = router
            .route("/actions/run/{job}", axum::routing::post(action_run))
            .route("/actions/check", axum::routing::post(action_check));
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
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .fallback(|| async { (StatusCode::NOT_FOUND, Html(pages::not_found("No such page.").into_string())) })
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(shared)
}

/// I26, before any route: without a login (loopback only), a request whose Host header is not a loopback
/// name is refused (421), so a page on another site whose name was re-pointed at 127.0.0.1 cannot read the
/// dashboard; with one, every route but the login page and the stylesheet needs a live session cookie or
/// the bearer token (401 otherwise).
async fn guard(State(s): Shr, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let Some(access) = &s.access else {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !host_is_loopback(host) {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "silo serve answers only requests addressed to a loopback host\n",
            )
                .into_response();
        }
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/login" || path == "/static/style.css" || s.signed_in(access, req.headers()).is_some() {
        return next.run(req).await;
    }
    if path.starts_with("/api/") || path == "/metrics" {
        let body = Json(ApiError {
            api_version: 1,
            error: "log in, or send Authorization: Bearer TOKEN".into(),
            pending: false,
        });
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
    }
    (StatusCode::UNAUTHORIZED, Html(pages::login(&s.csrf, None).into_string())).into_response()
}

/// How a request is signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Signed {
    /// The bearer token (a script: no browser adds it by itself, so its requests need no form token).
    Token,
    /// A session: its user and its form token.
    Session { user: String, form_token: String },
}

impl Shared {
    /// Who the request is from: the bearer token, or a live session.
    fn signed_in(&self, access: &Access, headers: &HeaderMap) -> Option<Signed> {
        if let (Some(token), Some(given)) = (&access.token, headers.get(header::AUTHORIZATION)) {
            let given = given.as_bytes().strip_prefix(b"Bearer ").unwrap_or_default();
            if super::auth::same_secret(given, token) {
                return Some(Signed::Token);
            }
        }
        self.reload_users(access);
        let cookies = headers.get(header::COOKIE).and_then(|c| c.to_str().ok())?;
        let id = super::auth::cookie(cookies, SESSION_COOKIE)?;
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::time::now_micros() / 1_000_000;
        Some(Signed::Session {
            user: sessions.user(id, now)?.to_string(),
            form_token: sessions.form_token(id, now)?.to_string(),
        })
    }

    /// Reads the auth file again when it changed; the sessions of users whose password changed or who are
    /// gone end. A file that no longer parses keeps the users read last (and says so in the log).
    fn reload_users(&self, access: &Access) {
        let Some((path, seen)) = &access.auth_file else { return };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        if modified == *seen {
            return;
        }
        *seen = modified;
        let parsed =
            std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| super::auth::Users::parse(&t));
        match parsed {
            Ok(new) => {
                let mut users = access.users.write().unwrap_or_else(|p| p.into_inner());
                let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                for user in users.changed(&new) {
                    sessions.end_user(&user);
                }
                *users = new;
            }
            Err(e) => {
                tracing::warn!("silo serve: the auth file {} did not read ({e}); keeping its users", path.display())
            }
        }
    }

    /// The form token the request's pages carry: its session's with a login, the process's without one.
    fn form_token(&self, headers: &HeaderMap) -> Option<String> {
        match &self.access {
            None => Some(self.csrf.clone()),
            Some(a) => match self.signed_in(a, headers) {
                Some(Signed::Session { form_token, .. }) => Some(form_token),
                _ => None,
            },
        }
    }

    /// Whether a form POST may act: with a login, a session whose token the form carries (or the bearer
    /// token); without one, the process's token.
    fn form_allowed(&self, headers: &HeaderMap, body: &str) -> bool {
        match &self.access {
            None => token_ok(body, &self.csrf),
            Some(a) => match self.signed_in(a, headers) {
                Some(Signed::Token) => true,
                Some(Signed::Session { form_token, .. }) => token_ok(body, &form_token),
                None => false,
            },
        }
    }
}

const SESSION_COOKIE: &str = "silo_session";

async fn login_form(State(s): Shr) -> Response {
    match &s.access {
        Some(_) => Html(pages::login(&s.csrf, None).into_string()).into_response(),
        None => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
    }
}

/// A login: the form's token, then the limiter (per address and per user), then the password (argon2id,
/// off the async threads). A success starts a session and sets its cookie (HttpOnly, SameSite=Strict,
/// Secure over TLS).
async fn login(
    State(s): Shr,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<Peer>,
    body: String,
) -> Response {
    let Some(access) = s.access.clone() else { return StatusCode::NOT_FOUND.into_response() };
    s.reload_users(&access);
    let field =
        |name: &str| url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    if !token_ok(&body, &s.csrf) {
        return (
            StatusCode::FORBIDDEN,
            Html(pages::login(&s.csrf, Some("The form expired: try again.")).into_string()),
        )
            .into_response();
    }
    let (user, password) = (field("user").unwrap_or_default(), field("password").unwrap_or_default());
    let now = crate::time::now_micros() / 1_000_000;
    let ip = peer.0.ip();
    if !s.limiter.lock().unwrap_or_else(|p| p.into_inner()).allows(ip, &user, now) {
        let text = "Too many wrong passwords from here or for this user: try again in 15 minutes.";
        let retry = super::auth::WINDOW_SECONDS.to_string();
        let page = Html(pages::login(&s.csrf, Some(text)).into_string());
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry)], page).into_response();
    }
    let checked = {
        let (access, user) = (access.clone(), user.clone());
        tokio::task::spawn_blocking(move || {
            let users = access.users.read().unwrap_or_else(|p| p.into_inner()).clone();
            users.verify(&user, password.as_bytes())
        })
        .await
    };
    if !checked.unwrap_or(false) {
        s.limiter.lock().unwrap_or_else(|p| p.into_inner()).failed(ip, &user, now);
        let shown: String = user.chars().take(64).collect();
        tracing::warn!("silo serve: a wrong password for user {shown:?} from {ip}");
        let text = "Wrong user name or password.";
        return (StatusCode::UNAUTHORIZED, Html(pages::login(&s.csrf, Some(text)).into_string())).into_response();
    }
    let id = s.sessions.lock().unwrap_or_else(|p| p.into_inner()).start(&user, now);
    let secure = if access.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        super::auth::SESSION_SECONDS
    );
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Ends the session (needs the page's token, like every form).
async fn logout(State(s): Shr, headers: HeaderMap, body: String) -> Response {
    if !s.form_allowed(&headers, &body) {
        return (StatusCode::FORBIDDEN, "the form's token is missing or wrong\n").into_response();
    }
    if let Some(id) =
        headers.get(header::COOKIE).and_then(|c| c.to_str().ok()).and_then(|c| super::auth::cookie(c, SESSION_COOKIE))
    {
        s.sessions.lock().unwrap_or_else(|p| p.into_inner()).end(id);
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&clear) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// `127.0.0.1`, `localhost`, `[::1]`, with or without a port (pure).
pub fn host_is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, port)| if port.bytes().all(|b| b.is_ascii_digit()) { n } else { host })
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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

type Shr = State<Arc<Shared>>;

/// The action running, and how the last one ended.
#[derive(Clone, Debug, Default)]
pub struct ActionState {
    pub running: Option<(String, i64)>,
    pub last: Option<(String, i64, Option<i32>)>,
}

impl Shared {
    /// What the pages show of actions: None without `--allow-actions`.
    fn controls(&self, headers: &HeaderMap) -> Option<pages::Controls> {
        let a = self.actions.as_ref()?;
        let csrf = self.form_token(headers)?;
        let state = self.action.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(pages::Controls { csrf, jobs: a.jobs.clone(), state })
    }

    /// The signed-in user and the session's form token, for the pages' log-out button.
    fn session(&self, headers: &HeaderMap) -> Option<pages::Session> {
        match self.signed_in(self.access.as_ref()?, headers)? {
            Signed::Session { user, form_token } => Some(pages::Session { user, csrf: form_token }),
            Signed::Token => None,
        }
    }
}

/// Whether a form's body carries this server's token (compared in constant time).
fn token_ok(body: &str, csrf: &str) -> bool {
    let given = url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
    given.is_some_and(|g| super::auth::same_secret(g.as_bytes(), csrf.as_bytes()))
}

async fn action_run(State(s): Shr, Path(job): Path<String>, headers: HeaderMap, body: String) -> Response {
    let known = s.actions.as_ref().is_some_and(|a| a.jobs.contains(&job));
    if !known {
        return (StatusCode::NOT_FOUND, Html(pages::not_found("The jobs file has no such job.").into_string()))
            .into_response();
    }
    start_action(s, format!("run {job}"), vec!["run".into(), job.into()], &headers, &body)
}

async fn action_check(State(s): Shr, headers: HeaderMap, body: String) -> Response {
    start_action(s, "check".into(), vec!["check".into()], &headers, &body)
}

/// Starts `silo ARGS` for an action: refused without the form's token (403) or while another action runs
/// (409); otherwise back to the overview (303), where it shows as running. The child records its own run.
fn start_action(
    s: Arc<Shared>,
    what: String,
    args: Vec<std::ffi::OsString>,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    if !s.form_allowed(headers, body) {
        return (StatusCode::FORBIDDEN, "the form's token is missing or wrong: reload the page and try again\n")
            .into_response();
    }
    let Some(a) = s.actions.as_ref() else { return StatusCode::NOT_FOUND.into_response() };
    {
        let mut state = s.action.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((running, _)) = &state.running {
            return (StatusCode::CONFLICT, format!("{running} is running; one action at a time\n")).into_response();
        }
        let mut cmd = std::process::Command::new(&a.exe);
        cmd.args(&a.args).args(&args).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, format!("starting silo {what} failed: {e}\n"))
                    .into_response()
            }
        };
        state.running = Some((what.clone(), crate::time::now_micros()));
        let shared = s.clone();
        tokio::task::spawn_blocking(move || {
            let code = child.wait().ok().and_then(|st| st.code());
            let mut state = shared.action.lock().unwrap_or_else(|p| p.into_inner());
            state.running = None;
            state.last = Some((what, crate::time::now_micros(), code));
            drop(state);
            shared.wake.notify_one();
        });
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}

async fn overview(State(s): Shr, headers: HeaderMap) -> Html<String> {
    let (view, failure) = s.get();
    let controls = s.controls(&headers);
    let session = s.session(&headers);
    Html(match &view {
        Some(v) => pages::overview(v, failure.as_ref(), controls.as_ref(), session.as_ref()).into_string(),
        None => pages::waiting(failure.as_ref(), session.as_ref()).into_string(),
    })
}

async fn name_page(State(s): Shr, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let (view, failure) = s.get();
    let session = s.session(&headers);
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

async fn repository_page(State(s): Shr, headers: HeaderMap) -> Html<String> {
    let (view, failure) = s.get();
    let session = s.session(&headers);
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

#[derive(Serialize)]
struct ApiError {
    api_version: u32,
    error: String,
    /// The first read is still running (try again), rather than failed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pending: bool,
}

fn unavailable(failure: Option<Failure>) -> Response {
    let (error, pending) = match failure {
        Some(f) => (f.error, false),
        None => ("the repository has not been read yet".to_string(), true),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(ApiError { api_version: 1, error, pending })).into_response()
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
    use super::{host_is_loopback, token_ok};

    #[test]
    fn only_the_exact_token_passes() {
        let t = "a1b2c3";
        assert!(token_ok("csrf=a1b2c3", t));
        assert!(token_ok("x=1&csrf=a1b2c3", t));
        for bad in ["", "csrf=", "csrf=a1b2c", "csrf=a1b2c3d", "csrf=A1B2C3", "token=a1b2c3"] {
            assert!(!token_ok(bad, t), "{bad}");
        }
    }

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
