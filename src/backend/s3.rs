//! The S3-compatible backend (AWS S3, MinIO, Ceph RGW, Garage, R2), on Apache Arrow's `object_store` crate:
//! its S3 client signs requests (SigV4), retries 5xx answers and timeouts with exponential backoff, and speaks
//! conditional `PUT If-None-Match: *`. silo adds a bound on requests in flight, the repository's object names
//! under an optional key prefix, and a fallback for stores without conditional create (see `put_if_absent`).
//!
//! Location syntax: `s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]`. Credentials and region come from the standard
//! AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! default region `us-east-1`). Path-style requests are used, which every S3-compatible store accepts.

use super::{BackendError, ObjectInfo, ReadBackend, WriteBackend};
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::limit::LimitStore;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// Requests in flight at once per process (uploads, ranged reads, listings), unless SILO_S3_CONNECTIONS says.
const DEFAULT_CONNECTIONS: usize = 16;
/// How long the fallback create-if-absent waits between writing and reading back (see `put_if_absent`).
const SETTLE: Duration = Duration::from_secs(2);

const UNKNOWN: u8 = 0;
const CONDITIONAL: u8 = 1;
const NO_CONDITIONAL: u8 = 2;

pub struct S3Backend {
    store: LimitStore<AmazonS3>,
    location: String,
    prefix: String,
    /// Whether the store honours `If-None-Match: *` (probed on the first create-if-absent).
    conditional: AtomicU8,
}

/// Where an `s3:` location points.
#[derive(Debug, PartialEq, Eq)]
pub struct S3Location {
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]`.
    pub fn parse(location: &str) -> Option<S3Location> {
        let rest = location.strip_prefix("s3:")?;
        let (scheme, rest) = rest.split_once("://")?;
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let (host, path) = rest.split_once('/')?;
        let mut parts = path.trim_matches('/').splitn(2, '/');
        let bucket = parts.next().filter(|b| !b.is_empty())?.to_string();
        let prefix = parts.next().unwrap_or("").trim_matches('/').to_string();
        if host.is_empty() {
            return None;
        }
        Some(S3Location { endpoint: format!("{scheme}://{host}"), bucket, prefix })
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Access key, secret, optional session token and region.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
    pub region: String,
}

impl Credentials {
    /// From AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION.
    pub fn from_env() -> Option<Credentials> {
        Some(Credentials {
            key_id: env("AWS_ACCESS_KEY_ID")?,
            secret: env("AWS_SECRET_ACCESS_KEY")?,
            token: env("AWS_SESSION_TOKEN"),
            region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into()),
        })
    }
}

/// The HTTP status of the store's answer, as object_store's error text gives it ("... status code: 416 Range
/// Not Satisfiable ..."). Only that phrase counts: a message also carries the request's URL, and an object
/// named `packs/26/268e3416...` must not read as a 416 (a timed-out read of that pack once did, and a
/// transient stall was reported as a damaged repository).
fn answer_status(text: &str) -> Option<u16> {
    ["status code: ", "status "].iter().find_map(|phrase| {
        text.match_indices(phrase).find_map(|(at, _)| {
            let rest = &text.as_bytes()[at + phrase.len()..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            (digits == 3).then(|| std::str::from_utf8(&rest[..3]).ok()?.parse().ok()).flatten()
        })
    })
}

fn invalid(location: &str, reason: &str) -> BackendError {
    BackendError::Location { location: location.to_string(), reason: reason.to_string() }
}

impl S3Backend {
    /// With credentials from the standard AWS environment variables.
    pub fn open(location: &str) -> Result<Self, BackendError> {
        let creds = Credentials::from_env()
            .ok_or_else(|| invalid(location, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION)"))?;
        Self::connect(location, &creds)
    }

    pub fn connect(location: &str, creds: &Credentials) -> Result<Self, BackendError> {
        let bad = |reason: &str| invalid(location, reason);
        let at = S3Location::parse(location).ok_or_else(|| bad("expected s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]"))?;
        let retry = RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(20),
                base: 2.0,
            },
            // silo retries every request itself (retry.rs): backoff that grows, a 3-minute budget, body
            // errors of every request kind, and a word on stderr while it waits.
            max_retries: 0,
            retry_timeout: Duration::from_secs(1),
        };
        // Per attempt: a connection within 10 s, the first byte of an answer and every later one within
        // 30 s of the last (a stalled store), and a whole request within 10 minutes (an 8 MiB pack at
        // 15 KB/s).
        let client = ClientOptions::new()
            .with_allow_http(at.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(10))
            .with_read_timeout(Duration::from_secs(30))
            .with_timeout(Duration::from_secs(600));
        let mut builder = AmazonS3Builder::new()
            .with_endpoint(&at.endpoint)
            .with_bucket_name(&at.bucket)
            .with_region(&creds.region)
            .with_access_key_id(&creds.key_id)
            .with_secret_access_key(&creds.secret)
            .with_virtual_hosted_style_request(false)
            .with_retry(retry)
            .with_client_options(client);
        if let Some(token) = &creds.token {
            builder = builder.with_token(token);
        }
        let s3 = builder.build().map_err(|e| bad(&e.to_string()))?;
        let connections =
            env("SILO_S3_CONNECTIONS").and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(DEFAULT_CONNECTIONS);
        let conditional =
            if env("SILO_S3_CONDITIONAL_PUT").as_deref() == Some("off") { NO_CONDITIONAL } else { UNKNOWN };
        Ok(S3Backend {
            store: LimitStore::new(s3, connections),
            location: location.to_string(),
            prefix: at.prefix,
            conditional: AtomicU8::new(conditional),
        })
    }

    /// Never trust `If-None-Match` (what SILO_S3_CONDITIONAL_PUT=off does): create-if-absent takes the
    /// write-then-verify path. For stores that accept the header but do not honour it reliably.
    pub fn without_conditional_put(self) -> Self {
        self.conditional.store(NO_CONDITIONAL, Ordering::Relaxed);
        self
    }

    fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    /// The repository name of a listed key.
    fn name_of(&self, path: &Path) -> String {
        let full = path.as_ref();
        if self.prefix.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(&self.prefix).map(|s| s.trim_start_matches('/')).unwrap_or(full).to_string()
        }
    }

    /// Maps the client's errors onto what retry.rs decides by: not found; final answers (permission,
    /// malformed request: kinds that are not transient); everything else (5xx, timeouts, connections
    /// refused or cut, bodies cut short) transient.
    fn error(name: &str, e: object_store::Error) -> BackendError {
        use std::io::ErrorKind as K;
        let io = |kind: K, e: object_store::Error| BackendError::Io {
            name: name.to_string(),
            source: std::io::Error::new(kind, e),
        };
        if e.to_string().contains("NoSuchBucket") {
            return BackendError::Location {
                location: name.to_string(),
                reason: "the bucket does not exist; create it first (silo does not create buckets)".into(),
            };
        }
        match e {
            object_store::Error::NotFound { .. } => BackendError::NotFound { name: name.to_string() },
            e @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) => {
                io(K::PermissionDenied, e)
            }
            e @ (object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::InvalidPath { .. }) => io(K::InvalidInput, e),
            other => {
                let text = other.to_string();
                // A 4xx answer other than timeout / too many requests is the store's final word.
                let final_answer =
                    answer_status(&text).is_some_and(|c| (400..500).contains(&c) && c != 408 && c != 429);
                io(if final_answer { K::InvalidInput } else { K::Other }, other)
            }
        }
    }

    async fn create(&self, name: &str, data: Vec<u8>) -> Result<bool, object_store::Error> {
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&self.path(name), PutPayload::from(data), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Does the store refuse a second conditional create of one key? Some S3-compatible stores ignore
    /// `If-None-Match` on PUT and overwrite; silo must know before trusting it for the gc lease.
    pub async fn probe_conditional(&self) -> Result<bool, BackendError> {
        let name = super::names::conditional_probe();
        let first = self.create(&name, b"1".to_vec()).await;
        let second = match first {
            Ok(true) => self.create(&name, b"2".to_vec()).await,
            other => other,
        };
        let _ = self.store.delete(&self.path(&name)).await;
        let supported = match second {
            Ok(false) => true,
            Ok(true) => false,
            Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => false,
            Err(e) => {
                // 501 Not Implemented and friends arrive as generic errors from some stores.
                let text = e.to_string();
                if answer_status(&text) == Some(501) || text.contains("NotImplemented") {
                    false
                } else {
                    return Err(Self::error(&name, e));
                }
            }
        };
        if !supported {
            tracing::info!(
                "{}: the store does not support conditional create (PUT If-None-Match); \
                 using write-then-verify for the gc lease",
                self.location
            );
        }
        Ok(supported)
    }
}

#[async_trait]
impl ReadBackend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        let result = self.store.get(&self.path(name)).await.map_err(|e| Self::error(name, e))?;
        let bytes = result.bytes().await.map_err(|e| Self::error(name, e))?;
        Ok(bytes.to_vec())
    }

    async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = self.store.get_range(&self.path(name), offset..offset + len).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => BackendError::NotFound { name: name.to_string() },
            // Only the store's own answer "416 Range Not Satisfiable" means the object is shorter: a
            // timeout or a cut connection on a ranged GET may name the range in its text and is transient.
            other if answer_status(&other.to_string()) == Some(416) => {
                BackendError::ShortRead { name: name.to_string(), offset, wanted: len }
            }
            other => Self::error(name, other),
        })?;
        if bytes.len() as u64 != len {
            return Err(BackendError::ShortRead { name: name.to_string(), offset, wanted: len });
        }
        Ok(bytes.to_vec())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        // object_store lists whole path segments: list the directory, then filter by the full prefix.
        let dir = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let base = if dir.is_empty() && self.prefix.is_empty() { None } else { Some(self.path(dir)) };
        let metas: Vec<_> = self.store.list(base.as_ref()).try_collect().await.map_err(|e| Self::error(prefix, e))?;
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                name: self.name_of(&m.location),
                size: m.size,
                modified: m.last_modified.timestamp_micros(),
            })
            .filter(|o| o.name.starts_with(prefix))
            .collect())
    }
}

#[async_trait]
impl WriteBackend for S3Backend {
    async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        self.store.put(&self.path(name), PutPayload::from(data)).await.map(|_| ()).map_err(|e| Self::error(name, e))
    }

    /// With conditional create: one `PUT If-None-Match: *`. Without (probed once): HEAD; if absent, PUT, wait
    /// `SETTLE`, GET and compare — of two racing writers only the one whose bytes are there after the settle
    /// time wins. Safe unless a writer stalls for longer than the settle time between its HEAD and its PUT,
    /// which is why gc also re-reads the lease before every deletion batch.
    async fn put_if_absent(&self, name: &str, data: Vec<u8>) -> Result<bool, BackendError> {
        if self.conditional.load(Ordering::Relaxed) == UNKNOWN {
            let supported = self.probe_conditional().await?;
            self.conditional.store(if supported { CONDITIONAL } else { NO_CONDITIONAL }, Ordering::Relaxed);
        }
        if self.conditional.load(Ordering::Relaxed) == CONDITIONAL {
            return self.create(name, data).await.map_err(|e| Self::error(name, e));
        }
        let path = self.path(name);
        match self.store.head(&path).await {
            Ok(_) => return Ok(false),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Self::error(name, e)),
        }
        self.put(name, data.clone()).await?;
        tokio::time::sleep(SETTLE).await;
        Ok(self.get(name).await? == data)
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) => Ok(()),
            Err(e) => Err(Self::error(name, e)),
        }
    }

    /// The store's clock: the modification time it gives a probe object (second precision at best).
    async fn server_time(&self) -> Result<Option<i64>, BackendError> {
        let name = super::names::clock_probe();
        self.put(&name, Vec::new()).await?;
        // The stamp as a listing gives it: the same precision as the stamps of the packs gc ages by it (a
        // HEAD's Last-Modified has whole seconds only, and packs written in that second would look younger
        // than "now").
        let listed = self.list(&name).await;
        let _ = self.store.delete(&self.path(&name)).await;
        Ok(listed?.into_iter().find(|o| o.name == name).map(|o| o.modified))
    }
}

#[cfg(test)]
mod tests {
    use super::{answer_status, S3Location};

    #[test]
    fn the_status_is_read_from_the_answer_not_from_the_url() {
        let url = "http://127.0.0.1:44119/silo/cceb/packs/26/268e341613445e0b6dabdb08403f98c1d9b55db622e27c32cbcea5fc2c051dd5";
        let timeout =
            format!("Generic S3 error: HTTP error: error sending request for url ({url}): operation timed out");
        assert_eq!(answer_status(&timeout), None);
        let range = format!("Generic S3 error: Error performing GET {url} in 1ms - Server returned non-2xx status code: 416 Range Not Satisfiable: ");
        assert_eq!(answer_status(&range), Some(416));
        assert_eq!(answer_status("Client error with status 403 Forbidden"), Some(403));
        assert_eq!(answer_status("status code: 5012"), None);
        assert_eq!(answer_status("status code: 50"), None);
        assert_eq!(answer_status(""), None);
    }

    #[test]
    fn parses_locations() {
        let p = |s| S3Location::parse(s);
        assert_eq!(
            p("s3:http://127.0.0.1:3900/silo"),
            Some(S3Location { endpoint: "http://127.0.0.1:3900".into(), bucket: "silo".into(), prefix: "".into() })
        );
        assert_eq!(
            p("s3:https://s3.example.com/b/some/prefix/"),
            Some(S3Location {
                endpoint: "https://s3.example.com".into(),
                bucket: "b".into(),
                prefix: "some/prefix".into()
            })
        );
        assert_eq!(p("s3:ftp://x/b"), None);
        assert_eq!(p("s3:http://host"), None);
        assert_eq!(p("s3:http://host/"), None);
        assert_eq!(p("/srv/silo"), None);
    }
}
