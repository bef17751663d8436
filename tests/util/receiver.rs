//! An HTTP receiver on a loopback port that records every request (method, path, headers, body) and
//! answers 200, or the raw response a path prefix is told to answer (`answer`: a redirect, an error): the
//! notification tests check the exact requests silo sends to webhook, ntfy, Pushover and healthchecks-style
//! endpoints, and that a hostile answer gets nothing more.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Raw answers by path prefix (the first that matches), instead of 200.
type Answers = Arc<Mutex<Vec<(String, String)>>>;

pub struct Receiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    answers: Answers,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answers: Answers = Arc::default();
        let (log, told) = (received.clone(), answers.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (log, told) = (log.clone(), told.clone());
                std::thread::spawn(move || serve(conn, &log, &told));
            }
        });
        Receiver { port, received, answers }
    }

    /// Requests whose path starts with `prefix` are answered with `raw` (a whole HTTP response: status
    /// line, headers, body), e.g. a redirect to another receiver.
    pub fn answer(&self, prefix: &str, raw: &str) {
        self.answers.lock().unwrap().push((prefix.to_string(), raw.to_string()));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, in arrival order.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

fn serve(conn: std::net::TcpStream, log: &Mutex<Vec<Received>>, answers: &Mutex<Vec<(String, String)>>) {
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let raw = answers.lock().unwrap().iter().find(|(p, _)| path.starts_with(p.as_str())).map(|(_, r)| r.clone());
        log.lock().unwrap().push(Received { method, path, headers, body });
        let answer = raw.unwrap_or_else(|| "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into());
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
