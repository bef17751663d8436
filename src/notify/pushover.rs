//! A Pushover target: a form with the application token, the user key, title, message and priority.

use super::http::{post, Request};
use super::{Notice, SecretRef, Secrets};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pushover {
    pub token: SecretRef,
    pub user: SecretRef,
    /// The API endpoint (default https://api.pushover.net/1/messages.json).
    pub url: Option<String>,
}

pub fn request(p: &Pushover, notice: &Notice, token: &[u8], user: &[u8]) -> Request {
    let priority = if notice.event.is_problem() { "1" } else { "0" };
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", &String::from_utf8_lossy(token))
        .append_pair("user", &String::from_utf8_lossy(user))
        .append_pair("title", &notice.title())
        .append_pair("message", &notice.message)
        .append_pair("priority", priority)
        .finish();
    Request {
        url: p.url.clone().unwrap_or_else(|| "https://api.pushover.net/1/messages.json".into()),
        headers: vec![("Content-Type".into(), "application/x-www-form-urlencoded".into())],
        body: body.into_bytes(),
    }
}

pub(super) async fn send(p: &Pushover, notice: &Notice, secret: Secrets<'_>) -> Result<(), String> {
    let (token, user) = (secret(&p.token)?, secret(&p.user)?);
    post(&request(p, notice, &token, &user)).await
}
