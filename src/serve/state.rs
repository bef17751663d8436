//! What the server's handlers share (pure data and locks, no handler): the view and the refresh failure,
//! who may look (`Access`), what may be started (`Actions`), sessions and the login limiter, and the
//! answers the API gives when there is no view.

use super::model::{ActionState, View};
use super::pages::Failure;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::{Arc, RwLock};

/// `--allow-actions`: how to start a run of a job or a check (this silo binary, with the arguments that
/// pick the same repository and jobs file), and which jobs may be run.
pub struct Actions {
    pub exe: std::path::PathBuf,
    pub args: Vec<std::ffi::OsString>,
    pub jobs: Vec<String>,
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
pub(super) struct Shared {
    pub(super) view: RwLock<Option<Arc<View>>>,
    pub(super) failure: RwLock<Option<Failure>>,
    /// With `--allow-actions`: what may be started, the form token, the action running and the last one.
    pub(super) actions: Option<Actions>,
    pub(super) csrf: String,
    pub(super) action: std::sync::Mutex<ActionState>,
    /// Wakes the refresher when an action ended (its run record is then on the page at once).
    pub(super) wake: tokio::sync::Notify,
    pub(super) access: Option<Arc<Access>>,
    pub(super) sessions: std::sync::Mutex<super::auth::Sessions>,
    pub(super) limiter: std::sync::Mutex<super::auth::Limiter>,
}

impl Shared {
    pub(super) fn get(&self) -> (Option<Arc<View>>, Option<Failure>) {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner()).clone();
        let failure = self.failure.read().unwrap_or_else(|p| p.into_inner()).clone();
        (view, failure)
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

#[derive(Serialize)]
pub(super) struct ApiError {
    pub(super) api_version: u32,
    pub(super) error: String,
    /// The first read is still running (try again), rather than failed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) pending: bool,
}

pub(super) fn unavailable(failure: Option<Failure>) -> Response {
    let (error, pending) = match failure {
        Some(f) => (f.error, false),
        None => ("the repository has not been read yet".to_string(), true),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(ApiError { api_version: 1, error, pending })).into_response()
}

pub(super) type Shr = State<Arc<Shared>>;
