//! A fault-injecting HTTP proxy on loopback, between silo and the Garage the tests start: it forwards each
//! request on its own upstream connection (`Connection: close`, so every request is one connection and a
//! fault hits exactly the requests it names) and can, on the requests a rule matches: answer 503 SlowDown,
//! refuse connections (an outage), hold them without answering (a frozen or stalled store), cut the answer
//! mid-body (a connection reset), flip one byte of the body, or add latency.
//!
//! Rules are consumed in order: each has a request filter (method and a path substring) and a count or a
//! deadline. Everything is bounded: the proxy listens only on 127.0.0.1 and dies with the test process.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer `503 Slow Down` without forwarding.
    SlowDown,
    /// Close the client's connection at once, before reading anything (a store that is down).
    Refuse,
    /// Read the request and hold the connection open without answering for this long, then close it.
    Hold(Duration),
    /// Forward, then cut the answer after its head and half its body.
    CutBody,
    /// Forward, flipping one byte in the middle of the body.
    FlipByte,
    /// Forward after this delay.
    Delay(Duration),
    /// Answer `403 AccessDenied` without forwarding (an Object Lock retention, or credentials without
    /// delete rights).
    Deny,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub fault: Fault,
    /// `GET`, `PUT`, `DELETE`, `HEAD`, or `LIST` (a GET with `list-type` in its query); `None` = any.
    pub method: Option<&'static str>,
    /// A substring of the request target (e.g. `snapshots/`, `packs/`); `None` = any.
    pub path: Option<String>,
    /// A substring of the request body (a multi-object delete names its keys there); `None` = any.
    pub body: Option<String>,
    /// Applies to this many matching requests...
    pub count: Option<u32>,
    /// ... or to every matching request until then.
    pub until: Option<Instant>,
}

impl Rule {
    pub fn times(fault: Fault, count: u32) -> Rule {
        Rule { fault, method: None, path: None, body: None, count: Some(count), until: None }
    }

    pub fn for_time(fault: Fault, d: Duration) -> Rule {
        Rule { fault, method: None, path: None, body: None, count: None, until: Some(Instant::now() + d) }
    }

    pub fn on(mut self, method: &'static str) -> Rule {
        self.method = Some(method);
        self
    }

    pub fn at(mut self, path: &str) -> Rule {
        self.path = Some(path.to_string());
        self
    }

    pub fn with_body(mut self, part: &str) -> Rule {
        self.body = Some(part.to_string());
        self
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Faults applied, by the fault's debug name.
    applied: Vec<String>,
    requests: u64,
}

pub struct FaultProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &state);
                });
            }
        });
        FaultProxy { port, state }
    }

    pub fn add(&self, rule: Rule) {
        lock(&self.state).rules.push(rule);
    }

    pub fn clear(&self) {
        lock(&self.state).rules.clear();
    }

    /// How many requests had a fault applied.
    pub fn applied(&self) -> usize {
        lock(&self.state).applied.len()
    }

    pub fn requests(&self) -> u64 {
        lock(&self.state).requests
    }

    /// The `s3:` location of `prefix` in `bucket`, through the proxy.
    pub fn location(&self, bucket: &str, prefix: &str) -> String {
        format!("s3:http://127.0.0.1:{}/{bucket}/{prefix}", self.port)
    }
}

/// The fault for a request (method, target), consuming one use of a counted rule.
fn pick(state: &Mutex<State>, method: &str, target: &str, body: &[u8]) -> Option<Fault> {
    let mut s = lock(state);
    s.requests += 1;
    let kind = if method == "GET" && target.contains("list-type") { "LIST" } else { method };
    let now = Instant::now();
    s.rules.retain(|r| r.count != Some(0) && r.until.is_none_or(|u| u > now));
    let rule = s.rules.iter_mut().find(|r| {
        r.method.is_none_or(|m| m == kind)
            && r.path.as_ref().is_none_or(|p| target.contains(p.as_str()))
            && r.body.as_ref().is_none_or(|b| body.windows(b.len()).any(|w| w == b.as_bytes()))
    })?;
    if let Some(c) = rule.count.as_mut() {
        *c -= 1;
    }
    let fault = rule.fault.clone();
    s.applied.push(format!("{fault:?}"));
    Some(fault)
}

/// Reads an HTTP head (up to and including CRLF CRLF); returns it and any body bytes read past it.
fn read_head(conn: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The head with `Connection: close` in place of any connection header.
fn closing(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.trim_end_matches("\r\n\r\n").split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Answers with an S3 error document, without forwarding, and closes.
fn answer_error(client: &mut TcpStream, status: &str, code: &str, message: &str) -> std::io::Result<()> {
    let msg = format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        msg.len()
    );
    client.write_all(head.as_bytes())?;
    client.write_all(msg.as_bytes())?;
    client.shutdown(Shutdown::Both)
}

fn serve(mut client: TcpStream, upstream: u16, state: &Mutex<State>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    // Refusals are decided before the request is read: a down store accepts nothing.
    let refuse = {
        let mut s = lock(state);
        let now = Instant::now();
        s.rules.retain(|r| r.count != Some(0) && r.until.is_none_or(|u| u > now));
        let hit = s.rules.iter_mut().find(|r| matches!(r.fault, Fault::Refuse));
        match hit {
            Some(r) => {
                if let Some(c) = r.count.as_mut() {
                    *c -= 1;
                }
                s.applied.push("Refuse".into());
                true
            }
            None => false,
        }
    };
    if refuse {
        let _ = client.set_linger_zero();
        return client.shutdown(Shutdown::Both);
    }
    let (head, mut body) = read_head(&mut client)?;
    let head_text = String::from_utf8_lossy(&head).into_owned();
    let mut first = head_text.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (first.next().unwrap_or_default().to_string(), first.next().unwrap_or_default().to_string());
    let length: usize = header(&head_text, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(1 << 20)];
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let fault = pick(state, &method, &target, &body);
    match &fault {
        Some(Fault::SlowDown) => return answer_error(&mut client, "503 Slow Down", "SlowDown", "injected"),
        Some(Fault::Hold(d)) => {
            std::thread::sleep(*d);
            return client.shutdown(Shutdown::Both);
        }
        Some(Fault::Deny) => {
            let why = "Access Denied because object protected by object lock.";
            return answer_error(&mut client, "403 Forbidden", "AccessDenied", why);
        }
        Some(Fault::Delay(d)) => std::thread::sleep(*d),
        _ => {}
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(&closing(&head))?;
    up.write_all(&body)?;
    let mut answer = read_answer(&mut up, method == "HEAD")?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(answer.len(), |p| p + 4);
    let closed = closing(&answer[..split]);
    answer.splice(..split, closed.iter().copied());
    let split = closed.len();
    match fault {
        Some(Fault::CutBody) => {
            let body_len = answer.len() - split;
            client.write_all(&answer[..split + body_len / 2])?;
            let _ = client.set_linger_zero();
            client.shutdown(Shutdown::Both)
        }
        Some(Fault::FlipByte) if answer.len() > split => {
            let at = split + (answer.len() - split) / 2;
            answer[at] ^= 0x40;
            client.write_all(&answer)?;
            client.shutdown(Shutdown::Both)
        }
        _ => {
            client.write_all(&answer)?;
            client.shutdown(Shutdown::Both)
        }
    }
}

/// One whole answer: head, then a body of Content-Length bytes, or chunks up to the last, or up to EOF.
fn read_answer(up: &mut TcpStream, head_only: bool) -> std::io::Result<Vec<u8>> {
    let (head, mut body) = read_head(up)?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let status: u32 = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut chunk = vec![0u8; 1 << 16];
    if head_only || status == 204 || status == 304 {
        body.clear();
    } else if let Some(len) = header(&text, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            let n = up.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if header(&text, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = up.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        up.read_to_end(&mut body)?;
    }
    let mut out = head;
    out.extend_from_slice(&body);
    Ok(out)
}

trait Linger {
    fn set_linger_zero(&self) -> std::io::Result<()>;
}

impl Linger for TcpStream {
    /// SO_LINGER 0: closing sends a reset, as a crashed peer's kernel would.
    fn set_linger_zero(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on our own socket with a correctly sized struct.
        let rc = unsafe {
            libc::setsockopt(
                self.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}
