//! An e-mail target: the notice as an RFC 5322 message, sent over SMTP (STARTTLS when offered, required unless
//! the server is on loopback; AUTH PLAIN only over TLS or loopback) or through a sendmail program. I23: an SMTP
//! line is read up to `MAX_LINE` bytes and a reply up to `MAX_REPLY_LINES` lines (an endless greeting, before
//! STARTTLS, once took 3 GB); addresses are checked for control characters before anything is sent.

use super::http::{backoff, TOTAL, TRIES};
use super::{Notice, SecretRef, Secrets};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// An SMTP session's limit (a few round trips, TLS), per try.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(18);
// Every try fits in the total, waits included (docs/jobs.md: 3 tries).
const _: () = assert!(TRIES as u64 * SMTP_TIMEOUT.as_secs() + 1 + 3 <= TOTAL.as_secs());
/// The longest SMTP reply line read (RFC 5321 allows 512 bytes), and the most lines of one reply.
pub const MAX_LINE: usize = 4096;
pub const MAX_REPLY_LINES: usize = 64;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub to: Vec<String>,
    pub from: String,
    /// `host:port` of an SMTP server (STARTTLS when it offers it; required unless the host is loopback).
    pub smtp: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
    /// A sendmail-compatible program instead of SMTP (e.g. /usr/sbin/sendmail).
    pub sendmail: Option<PathBuf>,
    /// Extra trusted CA certificates (PEM) for the SMTP server's TLS.
    pub ca_file: Option<PathBuf>,
}

/// The e-mail of a notice (RFC 5322, CRLF line ends), for SMTP DATA or sendmail.
pub fn email_message(e: &Email, notice: &Notice, date: &str) -> String {
    let subject = notice.title().replace(['\r', '\n'], " ");
    let body = notice.message.replace("\r\n", "\n").replace('\n', "\r\n");
    format!(
        "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; \
         charset=utf-8\r\nX-Silo-Event: {}\r\n\r\n{body}\r\n",
        e.from,
        e.to.join(", "),
        notice.event.name()
    )
}

/// Sends the notice through sendmail or SMTP; `date` is the message's RFC 2822 date.
pub(super) async fn send(e: &Email, notice: &Notice, secret: Secrets<'_>, date: &str) -> Result<(), String> {
    let message = email_message(e, notice, date);
    if let Some(program) = &e.sendmail {
        return sendmail(program, &message);
    }
    let pw = e.password.as_ref().map(secret).transpose()?;
    let login = match (&e.username, &pw) {
        (Some(u), Some(p)) => Some((u.as_str(), p.as_slice())),
        _ => None,
    };
    let smtp_target = Smtp {
        server: e.smtp.as_deref().unwrap_or_default(),
        from: &e.from,
        to: &e.to,
        login,
        ca_file: e.ca_file.as_deref(),
    };
    smtp(&smtp_target, &message).await
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

/// Reads one line of at most `MAX_LINE` bytes (its end included); `Ok(None)` at end of stream.
async fn bounded_line(r: &mut BufReader<Box<dyn Stream>>) -> Result<Option<String>, Failure> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await.map_err(|e| Failure::transient(format!("reading: {e}")))?;
        if buf.is_empty() {
            return if line.is_empty() { Ok(None) } else { Ok(Some(String::from_utf8_lossy(&line).into_owned())) };
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Err(Failure::permanent(format!("the server sent a line longer than {MAX_LINE} bytes")));
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if done {
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// Reads one SMTP reply (all its lines, at most `MAX_REPLY_LINES`); returns the code and its text.
async fn reply(r: &mut BufReader<Box<dyn Stream>>) -> Result<(u16, String), Failure> {
    let mut text = String::new();
    for _ in 0..MAX_REPLY_LINES {
        let Some(line) = bounded_line(r).await? else {
            return Err(Failure::transient("the server closed the connection"));
        };
        text.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            let code =
                line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| Failure::permanent("not an SMTP reply"))?;
            return Ok((code, text));
        }
    }
    Err(Failure::permanent(format!("the server sent a reply of more than {MAX_REPLY_LINES} lines")))
}

async fn command(r: &mut BufReader<Box<dyn Stream>>, line: &str, want: u16, what: &str) -> Result<String, Failure> {
    r.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| Failure::transient(format!("writing: {e}")))?;
    let (code, text) = reply(r).await?;
    if code / 100 != want / 100 {
        let message = format!("{what}: the server answered {}", text.lines().last().unwrap_or_default().trim());
        // 4xx: the server says try again later.
        return Err(Failure { message, transient: code / 100 == 4 });
    }
    Ok(text)
}

/// Why an SMTP try failed, and whether another try may do better.
struct Failure {
    message: String,
    transient: bool,
}

impl Failure {
    fn transient(message: impl Into<String>) -> Self {
        Failure { message: message.into(), transient: true }
    }

    fn permanent(message: impl Into<String>) -> Self {
        Failure { message: message.into(), transient: false }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::permanent(message)
    }
}

/// Whether an e-mail address can go into `MAIL FROM:<…>` / `RCPT TO:<…>` and a header as it is: no control
/// character (a CR/LF would inject a command), no `<`, `>`, space or comma (I23).
pub fn address_ok(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= 254
        && address.contains('@')
        && !address.chars().any(|c| c.is_control() || c.is_whitespace() || "<>,;\"".contains(c))
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

/// Sends `message` over SMTP. Loopback servers may be plain; any other must offer STARTTLS. Tried up to
/// `TRIES` times when a try fails for a reason that may pass (no connection, a timeout, a 4xx answer), all
/// within `TOTAL`.
pub async fn smtp(s: &Smtp<'_>, message: &str) -> Result<(), String> {
    if let Some(bad) = std::iter::once(s.from).chain(s.to.iter().map(String::as_str)).find(|a| !address_ok(a)) {
        return Err(format!("e-mail address {bad:?} is not a plain address; nothing was sent"));
    }
    let deadline = tokio::time::Instant::now() + TOTAL;
    let mut last = String::new();
    for attempt in 0..TRIES {
        let wait = backoff(attempt);
        if tokio::time::Instant::now() + wait >= deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        let try_start = tokio::time::Instant::now();
        let limit = (try_start + SMTP_TIMEOUT).min(deadline);
        match tokio::time::timeout_at(limit, smtp_session(s, message)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(f)) if !f.transient => return Err(format!("{}: {}", s.server, f.message)),
            Ok(Err(f)) => last = format!("{}: {}", s.server, f.message),
            Err(_) => last = format!("{} did not finish within {} s", s.server, (limit - try_start).as_secs()),
        }
    }
    Err(format!("{last} ({TRIES} tries)"))
}

async fn smtp_session(s: &Smtp<'_>, message: &str) -> Result<(), Failure> {
    let (host, _) = s.server.rsplit_once(':').ok_or_else(|| format!("smtp {:?}: expected host:port", s.server))?;
    let tcp = tokio::net::TcpStream::connect(s.server)
        .await
        .map_err(|e| Failure::transient(format!("cannot connect to {}: {e}", s.server)))?;
    let loopback = tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let mut r = BufReader::new(Box::new(tcp) as Box<dyn Stream>);
    let (code, _) = reply(&mut r).await?;
    if code != 220 {
        return Err(Failure { message: format!("greeting {code}"), transient: code / 100 == 4 });
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
        return Err(
            format!("{} does not offer STARTTLS; silo sends mail in the clear only to loopback", s.server).into()
        );
    }
    let _ = ehlo;
    if let Some((user, password)) = s.login {
        if !tls && !loopback {
            return Err(Failure::permanent("refusing to send a password without TLS"));
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
    r.get_mut().write_all(body.as_bytes()).await.map_err(|e| Failure::transient(format!("writing: {e}")))?;
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
    fn addresses_that_could_inject_a_command_are_refused() {
        assert!(super::address_ok("ops@example.net"));
        for bad in ["ops@x>\r\nRCPT TO:<evil@y", "ops@x\n", "a b@x", "<ops@x>", "", "ops", "a@x,b@y"] {
            assert!(!super::address_ok(bad), "{bad:?}");
        }
    }

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
