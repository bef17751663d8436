//! An ntfy target: the message as the body, its title, priority and tags as headers, an optional access token.

use super::http::{post, Request};
use super::{Notice, SecretRef, Secrets};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ntfy {
    /// The topic's URL, e.g. https://ntfy.sh/my-backups.
    pub url: String,
    pub token: Option<SecretRef>,
}

pub fn request(n: &Ntfy, notice: &Notice, token: Option<&[u8]>) -> Request {
    let mut headers = vec![
        ("Title".to_string(), notice.title()),
        ("Priority".to_string(), if notice.event.is_problem() { "high" } else { "default" }.to_string()),
        ("Tags".to_string(), if notice.event.is_problem() { "warning" } else { "white_check_mark" }.to_string()),
    ];
    if let Some(t) = token {
        headers.push(("Authorization".into(), format!("Bearer {}", String::from_utf8_lossy(t))));
    }
    Request { url: n.url.clone(), headers, body: notice.message.clone().into_bytes() }
}

pub(super) async fn send(t: &Ntfy, notice: &Notice, secret: Secrets<'_>) -> Result<(), String> {
    let token = t.token.as_ref().map(secret).transpose()?;
    post(&request(t, notice, token.as_deref())).await
}
