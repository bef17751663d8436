//! An SMTP server (Debian's python3-aiosmtpd) on a loopback port that delivers into a maildir: the e-mail
//! notification tests read what silo sent.

use super::{services, stderr};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct MailServer {
    child: std::process::Child,
    pub port: u16,
    maildir: PathBuf,
}

/// A server that insists on STARTTLS and on AUTH (user `silo`, the password given), with a certificate for
/// `localhost` from a test CA (`ca.pem` in `dir`).
const TLS_SERVER: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult
port, maildir, cert, key, password = sys.argv[1:6]
def check(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"silo" and auth_data.password == password.encode()
    # An explicit 535: aiosmtpd 1.4's default for a refused login never answers.
    return AuthResult(success=ok, handled=False, message=None if ok else "535 5.7.8 Authentication credentials invalid")
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), tls_context=context,
               require_starttls=True, auth_required=True, authenticator=check)
c.start()
while True:
    time.sleep(3600)
"#;

impl MailServer {
    /// Like `start`, but TLS (STARTTLS required) and AUTH required; returns the server and the CA file.
    pub fn start_tls(dir: &Path, password: &str) -> Option<(MailServer, PathBuf)> {
        if !Self::available() {
            return None;
        }
        let ca = make_certificates(dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = dir.join("maildir-tls");
        let child = Command::new("/usr/bin/python3")
            .args(["-c", TLS_SERVER, &port.to_string()])
            .arg(&maildir)
            .arg(dir.join("leaf.pem"))
            .arg(dir.join("leaf.key"))
            .arg(password)
            .spawn()
            .expect("aiosmtpd");
        Some((Self::ready(child, port, maildir), ca))
    }

    fn available() -> bool {
        let probe = Command::new("/usr/bin/python3").args(["-c", "import aiosmtpd"]).output();
        let ready = match probe {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => {
                Err(format!("python3-aiosmtpd is not installed ({}); scripts/setup.sh installs it", stderr(&o).trim()))
            }
            Err(e) => Err(format!("/usr/bin/python3: {e}")),
        };
        services::require("an SMTP server (python3-aiosmtpd)", ready)
    }

    /// Waits until the server accepts a connection (it starts in well under a second).
    fn ready(child: std::process::Child, port: u16, maildir: PathBuf) -> MailServer {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < until, "aiosmtpd did not start");
            std::thread::yield_now();
        }
        MailServer { child, port, maildir }
    }

    pub fn start(dir: &Path) -> Option<MailServer> {
        if !Self::available() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = dir.join("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .spawn()
            .expect("aiosmtpd");
        Some(Self::ready(child, port, maildir))
    }

    pub fn messages(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a certificate for `localhost` it signed (`leaf.pem`, `leaf.key` in `dir`); returns the CA
/// file.
fn make_certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=silo test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    dir.join("ca.pem")
}

/// A hostile SMTP "server" on a loopback port, written here (no aiosmtpd needed): every connection gets
/// `greeting` sent up to `limit` bytes (repeated; an endless line when it has no line end), then is closed.
/// Counts connections and bytes it managed to write, which bounds what the client read.
pub struct HostileSmtp {
    pub port: u16,
    connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl HostileSmtp {
    pub fn start(greeting: &'static [u8], limit: u64) -> HostileSmtp {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections: std::sync::Arc<std::sync::atomic::AtomicU64> = Default::default();
        let written: std::sync::Arc<std::sync::atomic::AtomicU64> = Default::default();
        let (c, w) = (std::sync::Arc::clone(&connections), std::sync::Arc::clone(&written));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let mut sent = 0u64;
                while sent < limit {
                    match conn.write(greeting) {
                        Ok(n) if n > 0 => {
                            sent += n as u64;
                            w.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        _ => break, // the client hung up
                    }
                }
            }
        });
        HostileSmtp { port, connections, written }
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn written(&self) -> u64 {
        self.written.load(std::sync::atomic::Ordering::SeqCst)
    }
}
