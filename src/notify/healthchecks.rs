//! A healthchecks-style target: pings at the start and end of a run (never notices, never held back by a
//! cooldown).

use super::http::{post, Request};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Healthchecks {
    /// The check's ping URL; silo pings URL/start, URL (success) and URL/fail.
    pub url: String,
}

/// A healthchecks-style ping: `URL/start` at the start of a run, `URL` on success, `URL/fail` with the
/// error line on failure.
pub fn request(h: &Healthchecks, what: Ping, body: &str) -> Request {
    let base = h.url.trim_end_matches('/');
    let url = match what {
        Ping::Start => format!("{base}/start"),
        Ping::Success => base.to_string(),
        Ping::Fail => format!("{base}/fail"),
    };
    Request { url, headers: vec![("Content-Type".into(), "text/plain".into())], body: body.as_bytes().to_vec() }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

/// A test for a healthchecks-style check: `URL/log` with `body`, which logs an event without changing the
/// check's state (a test must neither mark a failing check up nor a good one down).
pub fn log_request(h: &Healthchecks, body: &str) -> Request {
    let url = format!("{}/log", h.url.trim_end_matches('/'));
    Request { url, headers: vec![("Content-Type".into(), "text/plain".into())], body: body.as_bytes().to_vec() }
}

/// Sends `log_request`.
pub async fn log(h: &Healthchecks, body: &str) -> Result<(), String> {
    post(&log_request(h, body)).await
}

/// Pings `h` (start, success, or fail with the error line).
pub async fn ping(h: &Healthchecks, what: Ping, body: &str) -> Result<(), String> {
    post(&request(h, what, body)).await
}
