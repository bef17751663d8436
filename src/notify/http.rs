//! HTTP sends for every HTTP target (webhook, ntfy, Pushover, healthchecks): a timeout per try and retries,
//! errors that name the host, never a URL path or token (a ping URL or topic can be a secret).
//!
//! I23 a hostile receiver costs bounded memory and time and never gets a secret it was not addressed:
//! redirects are never followed (a 3xx answer is a failed send: a 307 would re-send a token to another host, a
//! 302 would turn the POST into a GET) and no `Referer` is sent; a request whose header holds a control
//! character is refused before it is sent; every send, all its tries together, ends within `TOTAL`.

use std::time::Duration;

/// An HTTP request to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// Refuses a request whose header names or values hold a control character (a CR/LF would end the
    /// header; a secret read from a file with a stray line break must not be sent half) (I23). The error
    /// names the header, never its value.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in &self.headers {
            if name.is_empty() || name.chars().any(|c| !c.is_ascii_graphic() || c == ':') {
                return Err(format!("header name {name:?} is not a token"));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(format!("the value of header {name} holds a line break or control character"));
            }
        }
        Ok(())
    }
}

/// Each try's limit, and tries per send (waiting 1 s, then 3 s between them).
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const TRIES: u32 = 3;
/// The most one send may take, all tries and waits together.
pub const TOTAL: Duration = Duration::from_secs(60);
// Every try fits in the total, waits included (docs/jobs.md: 3 tries).
const _: () = assert!(TRIES as u64 * TIMEOUT.as_secs() + 1 + 3 <= TOTAL.as_secs());

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "?".into())
}

/// The wait before try `attempt` (0-based): none, 1 s, 3 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    if attempt == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(1 + 2 * u64::from(attempt - 1))
    }
}

/// POSTs `req`, retrying connection failures, timeouts, 429 and 5xx answers; never following a redirect.
pub async fn post(req: &Request) -> Result<(), String> {
    let host = host_of(&req.url);
    req.check().map_err(|e| format!("{host}: {e}; nothing was sent"))?;
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let deadline = tokio::time::Instant::now() + TOTAL;
    let mut last = String::new();
    for attempt in 0..TRIES {
        let wait = backoff(attempt);
        if tokio::time::Instant::now() + wait >= deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        let mut builder = client.post(&req.url).body(req.body.clone());
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let sent = tokio::time::timeout_at(deadline, builder.send()).await;
        match sent {
            Err(_) => last = format!("{host} did not answer within {} s", TOTAL.as_secs()),
            Ok(Ok(r)) if r.status().is_success() => return Ok(()),
            Ok(Ok(r)) if r.status().is_redirection() => {
                return Err(format!(
                    "{host} answered {} (a redirect); silo does not follow redirects: put the final URL in the jobs \
                     file",
                    r.status()
                ))
            }
            Ok(Ok(r)) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                last = format!("{host} answered {}", r.status());
            }
            Ok(Ok(r)) => return Err(format!("{host} answered {}", r.status())),
            Ok(Err(e)) if e.is_timeout() => last = format!("{host} did not answer within {} s", TIMEOUT.as_secs()),
            Ok(Err(e)) if e.is_connect() => last = format!("cannot connect to {host}"),
            Ok(Err(e)) => last = format!("{host}: {}", e.without_url()),
        }
    }
    Err(format!("{last} ({TRIES} tries)"))
}
