//! A webhook target: a JSON body (schema version 1, see the module above), signed with HMAC-SHA256 when the
//! jobs file names a secret (`X-Silo-Signature: sha256=HEX`).

use super::http::{post, Request};
use super::{Notice, SecretRef, Secrets};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Signs each body (HMAC-SHA256) in `X-Silo-Signature`.
    pub secret: Option<SecretRef>,
}

/// HMAC-SHA256 of `body` under `secret`, hex.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

pub fn request(w: &Webhook, notice: &Notice, secret: Option<&[u8]>) -> Request {
    let body = serde_json::to_vec(notice).unwrap_or_default();
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if let Some(s) = secret {
        headers.push(("X-Silo-Signature".into(), format!("sha256={}", signature(s, &body))));
    }
    Request { url: w.url.clone(), headers, body }
}

/// Signs (when a secret is named) and posts the notice.
pub(super) async fn send(w: &Webhook, notice: &Notice, secret: Secrets<'_>) -> Result<(), String> {
    let key = w.secret.as_ref().map(secret).transpose()?;
    post(&request(w, notice, key.as_deref())).await
}
