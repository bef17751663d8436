//! Sending notifications (the requests and messages are jobs/notify.rs's): HTTP with a timeout and
//! retries, e-mail over SMTP (STARTTLS when offered, required unless the server is on loopback; AUTH PLAIN
//! only over TLS or loopback) or through a sendmail program. Errors name the target and the host, never a
//! URL path, token or password (a ping URL or topic can be a secret).

use crate::jobs::notify::Request;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Each try's limit, and tries per send (waiting 1 s, then 3 s between them).
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const TRIES: u32 = 3;

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

/// POSTs `req`, retrying connection failures, timeouts, 429 and 5xx answers.
pub async fn post(req: &Request) -> Result<(), String> {
    let client = reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| format!("HTTP client: {e}"))?;
    let host = host_of(&req.url);
    let mut last = String::new();
    for attempt in 0..TRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 + 2 * u64::from(attempt - 1))).await;
        }
        let mut builder = client.post(&req.url).body(req.body.clone());
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        match builder.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                last = format!("{host} answered {}", r.status());
            }
            Ok(r) => return Err(format!("{host} answered {}", r.status())),
            Err(e) if e.is_timeout() => last = format!("{host} did not answer within {} s", TIMEOUT.as_secs()),
            Err(e) if e.is_connect() => last = format!("cannot connect to {host}"),
            Err(e) => last = format!("{host}: {}", e.without_url()),
        }
    }
    Err(format!("{last} ({TRIES} tries)"))
}

/// Pipes `message` to `program -t -i` (sendmail reads the recipients from the headers).
pub fn sendmail(program: &std::path::Path, message: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::Stdio;
    let shown = program.display();
    let mut child = crate::inputs::process::command(&program.to_string_lossy())
        .args(["-t", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {shown}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(message.as_bytes()).map_err(|e| format!("writing to {shown}: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{shown}: {e}"))?;
    if !out.status.success() {
        let tail = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default().to_string();
        return Err(format!("{shown} {}: {tail}", crate::inputs::process::describe_status(&out.status)));
    }
    Ok(())
}

/// What an SMTP send needs.
pub struct Smtp<'a> {
    /// `host:port`.
    pub server: &'a str,
    pub from: &'a str,
    pub to: &'a [String],
    pub login: Option<(&'a str, &'a [u8])>,
    /// Extra trusted roots (PEM), e.g. a private CA.
    pub ca_file: Option<&'a std::path::Path>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Reads one SMTP reply (all its lines); returns the code and the last line.
async fn reply(r: &mut BufReader<Box<dyn Stream>>) -> Result<(u16, String), String> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).await.map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        text.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            let code = line.get(..3).and_then(|c| c.parse().ok()).ok_or("not an SMTP reply")?;
            return Ok((code, text));
        }
    }
}

async fn command(r: &mut BufReader<Box<dyn Stream>>, line: &str, want: u16, what: &str) -> Result<String, String> {
    r.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.map_err(|e| format!("writing: {e}"))?;
    let (code, text) = reply(r).await?;
    if code / 100 != want / 100 {
        return Err(format!("{what}: the server answered {}", text.lines().last().unwrap_or_default().trim()));
    }
    Ok(text)
}

fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra: Vec<rustls::pki_types::CertificateDer<'static>> = match ca_file {
        Some(path) => rustls::pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?,
        None => Vec::new(),
    };
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
        .map_err(|e| format!("TLS: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends `message` over SMTP. Loopback servers may be plain; any other must offer STARTTLS.
pub async fn smtp(s: &Smtp<'_>, message: &str) -> Result<(), String> {
    tokio::time::timeout(TIMEOUT * 3, smtp_session(s, message))
        .await
        .map_err(|_| format!("{} did not finish within {} s", s.server, 3 * TIMEOUT.as_secs()))?
}

async fn smtp_session(s: &Smtp<'_>, message: &str) -> Result<(), String> {
    let (host, _) = s.server.rsplit_once(':').ok_or_else(|| format!("smtp {:?}: expected host:port", s.server))?;
    let tcp =
        tokio::net::TcpStream::connect(s.server).await.map_err(|e| format!("cannot connect to {}: {e}", s.server))?;
    let loopback = tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let mut r = BufReader::new(Box::new(tcp) as Box<dyn Stream>);
    let (code, _) = reply(&mut r).await?;
    if code != 220 {
        return Err(format!("{}: greeting {code}", s.server));
    }
    let me = crate::repo::hostname();
    let mut ehlo = command(&mut r, &format!("EHLO {me}"), 250, "EHLO").await?;
    let mut tls = false;
    if ehlo.lines().any(|l| l.get(4..).is_some_and(|x| x.trim().eq_ignore_ascii_case("STARTTLS"))) {
        command(&mut r, "STARTTLS", 220, "STARTTLS").await?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(tls_config(s.ca_file)?);
        let plain = r.into_inner();
        let secured = connector.connect(name, plain).await.map_err(|e| format!("TLS with {}: {e}", s.server))?;
        r = BufReader::new(Box::new(secured) as Box<dyn Stream>);
        ehlo = command(&mut r, &format!("EHLO {me}"), 250, "EHLO").await?;
        tls = true;
    } else if !loopback {
        return Err(format!("{} does not offer STARTTLS; silo sends mail in the clear only to loopback", s.server));
    }
    let _ = ehlo;
    if let Some((user, password)) = s.login {
        if !tls && !loopback {
            return Err("refusing to send a password without TLS".into());
        }
        let mut plain = vec![0u8];
        plain.extend_from_slice(user.as_bytes());
        plain.push(0);
        plain.extend_from_slice(password);
        let token = base64(&plain);
        command(&mut r, &format!("AUTH PLAIN {token}"), 235, "AUTH (check username and password)").await?;
    }
    command(&mut r, &format!("MAIL FROM:<{}>", s.from), 250, "MAIL FROM").await?;
    for to in s.to {
        command(&mut r, &format!("RCPT TO:<{to}>"), 250, &format!("RCPT TO {to}")).await?;
    }
    command(&mut r, "DATA", 354, "DATA").await?;
    // Dot-stuffing: a line that starts with '.' gets another.
    let body = message.replace("\r\n.", "\r\n..");
    let body = body.strip_prefix('.').map_or(body.clone(), |rest| format!("..{rest}"));
    r.get_mut().write_all(body.as_bytes()).await.map_err(|e| format!("writing: {e}"))?;
    command(&mut r, ".", 250, "sending the message").await?;
    let _ = command(&mut r, "QUIT", 221, "QUIT").await;
    Ok(())
}

/// Standard base64 with padding (RFC 4648), for AUTH PLAIN.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(super::base64(plain.as_bytes()), encoded);
        }
        assert_eq!(super::base64(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
    }
}
