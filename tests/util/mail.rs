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

impl MailServer {
    pub fn start(dir: &Path) -> Option<MailServer> {
        let probe = Command::new("/usr/bin/python3").args(["-c", "import aiosmtpd"]).output();
        let ready = match probe {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => {
                Err(format!("python3-aiosmtpd is not installed ({}); scripts/setup.sh installs it", stderr(&o).trim()))
            }
            Err(e) => Err(format!("/usr/bin/python3: {e}")),
        };
        if !services::require("an SMTP server (python3-aiosmtpd)", ready) {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = dir.join("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .spawn()
            .expect("aiosmtpd");
        // Ready when it accepts a connection (it starts in well under a second).
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < until, "aiosmtpd did not start");
            std::thread::yield_now();
        }
        Some(MailServer { child, port, maildir })
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
