//! `--allow-actions` (I26): "Run now" and "Check now" start a `silo run JOB` or `silo check` child, one at
//! a time, only for a POST carrying the right form token; the child records its own run.

use super::access::Signed;
use super::pages;
use super::state::{Shared, Shr};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use std::sync::Arc;

impl Shared {
    /// What the pages show of actions: None without `--allow-actions`.
    pub(super) fn controls(&self, signed: Option<&Signed>) -> Option<pages::Controls> {
        let a = self.actions.as_ref()?;
        let csrf = self.form_token(signed)?;
        let state = self.action.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(pages::Controls { csrf, jobs: a.jobs.clone(), state })
    }
}

pub(super) async fn run(
    State(s): Shr,
    Path(job): Path<String>,
    signed: Option<Extension<Signed>>,
    body: String,
) -> Response {
    let known = s.actions.as_ref().is_some_and(|a| a.jobs.contains(&job));
    if !known {
        return (StatusCode::NOT_FOUND, Html(pages::not_found("The jobs file has no such job.").into_string()))
            .into_response();
    }
    start_action(s, format!("run {job}"), vec!["run".into(), job.into()], signed.map(|e| e.0).as_ref(), &body)
}

pub(super) async fn check(State(s): Shr, signed: Option<Extension<Signed>>, body: String) -> Response {
    start_action(s, "check".into(), vec!["check".into()], signed.map(|e| e.0).as_ref(), &body)
}

/// Starts `silo ARGS` for an action: refused without the form's token (403) or while another action runs
/// (409); otherwise back to the overview (303), where it shows as running. The child records its own run.
fn start_action(
    s: Arc<Shared>,
    what: String,
    args: Vec<std::ffi::OsString>,
    signed: Option<&Signed>,
    body: &str,
) -> Response {
    if !s.form_allowed(signed, body) {
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
