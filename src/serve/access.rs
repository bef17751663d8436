//! Who may use the dashboard (I26): the guard every request passes (a loopback Host without a login;
//! a session or the bearer token with one), logging in and out, and the form tokens of a session.

use super::auth;
use super::pages;
use super::state::{Access, ApiError, Peer, Shared, Shr};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

/// I26, before any route: without a login (loopback only), a request whose Host header is not a loopback
/// name is refused (421), so a page on another site whose name was re-pointed at 127.0.0.1 cannot read the
/// dashboard; with one, every route but the login page and the stylesheet needs a live session cookie or
/// the bearer token (401 otherwise).
pub(super) async fn guard(State(s): Shr, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
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
    // Who the request is from, worked out once: the handlers take it from the request's extensions.
    let signed = s.signed_in(access, req.headers());
    let path = req.uri().path();
    let open = path == "/login" || path == "/static/style.css";
    if let Some(who) = signed {
        let mut req = req;
        req.extensions_mut().insert(who);
        return next.run(req).await;
    }
    if open {
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
pub(super) enum Signed {
    /// The bearer token (a script: no browser adds it by itself, so its requests need no form token).
    Token,
    /// A session: its user and its form token.
    Session { user: String, form_token: String },
}

impl Shared {
    /// Who the request is from: the bearer token, or a live session.
    pub(super) fn signed_in(&self, access: &Access, headers: &HeaderMap) -> Option<Signed> {
        if let (Some(token), Some(given)) = (&access.token, headers.get(header::AUTHORIZATION)) {
            let given = given.as_bytes().strip_prefix(b"Bearer ").unwrap_or_default();
            if auth::same_secret(given, token) {
                return Some(Signed::Token);
            }
        }
        self.reload_users(access);
        let cookies = headers.get(header::COOKIE).and_then(|c| c.to_str().ok())?;
        let id = auth::cookie(cookies, SESSION_COOKIE)?;
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::time::now_micros() / 1_000_000;
        Some(Signed::Session {
            user: sessions.user(id, now)?.to_string(),
            form_token: sessions.form_token(id, now)?.to_string(),
        })
    }

    /// Reads the auth file again when it changed; the sessions of users whose password changed or who are
    /// gone end. A file that no longer parses keeps the users read last (and says so in the log).
    pub(super) fn reload_users(&self, access: &Access) {
        let Some((path, seen)) = &access.auth_file else { return };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        if modified == *seen {
            return;
        }
        *seen = modified;
        let parsed = std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| auth::Users::parse(&t));
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

    /// The form token the request's pages carry (`signed`: what the guard found): its session's with a
    /// login, the process's without one.
    pub(super) fn form_token(&self, signed: Option<&Signed>) -> Option<String> {
        match (&self.access, signed) {
            (None, _) => Some(self.csrf.clone()),
            (Some(_), Some(Signed::Session { form_token, .. })) => Some(form_token.clone()),
            _ => None,
        }
    }

    /// Whether a form POST may act: with a login, a session whose token the form carries (or the bearer
    /// token); without one, the process's token.
    pub(super) fn form_allowed(&self, signed: Option<&Signed>, body: &str) -> bool {
        match (&self.access, signed) {
            (None, _) => auth::form_has_token(body, &self.csrf),
            (Some(_), Some(Signed::Token)) => true,
            (Some(_), Some(Signed::Session { form_token, .. })) => auth::form_has_token(body, form_token),
            (Some(_), None) => false,
        }
    }

    /// The signed-in user and the session's form token, for the pages' log-out button.
    pub(super) fn session(&self, signed: Option<&Signed>) -> Option<pages::Session> {
        match signed? {
            Signed::Session { user, form_token } => {
                Some(pages::Session { user: user.clone(), csrf: form_token.clone() })
            }
            Signed::Token => None,
        }
    }
}

const SESSION_COOKIE: &str = "silo_session";

pub(super) async fn login_form(State(s): Shr) -> Response {
    match &s.access {
        Some(_) => Html(pages::login(&s.csrf, None).into_string()).into_response(),
        None => (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response(),
    }
}

/// A login: the form's token, then the limiter (per address and per user), then the password (argon2id,
/// off the async threads). A success starts a session and sets its cookie (HttpOnly, SameSite=Strict,
/// Secure over TLS).
pub(super) async fn login(
    State(s): Shr,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<Peer>,
    body: String,
) -> Response {
    let Some(access) = s.access.clone() else { return StatusCode::NOT_FOUND.into_response() };
    s.reload_users(&access);
    let field =
        |name: &str| url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    if !auth::form_has_token(&body, &s.csrf) {
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
        let retry = auth::WINDOW_SECONDS.to_string();
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
    let cookie =
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", auth::SESSION_SECONDS);
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// Ends the session (needs the page's token, like every form).
pub(super) async fn logout(
    State(s): Shr,
    signed: Option<axum::Extension<Signed>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !s.form_allowed(signed.map(|e| e.0).as_ref(), &body) {
        return (StatusCode::FORBIDDEN, "the form's token is missing or wrong\n").into_response();
    }
    if let Some(id) =
        headers.get(header::COOKIE).and_then(|c| c.to_str().ok()).and_then(|c| auth::cookie(c, SESSION_COOKIE))
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
