//! An OpenLDAP server (Debian's slapd) started by the harness on a loopback port with a temporary
//! `slapd.conf` and an mdb database holding a few entries: the ldap preset's tests dump it with slapcat.

use super::services;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SUFFIX: &str = "dc=example,dc=net";

pub struct Slapd {
    pub config: PathBuf,
    pid_file: PathBuf,
}

const ENTRIES: &str =
    "dn: dc=example,dc=net\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
dn: uid=ada,dc=example,dc=net\nobjectClass: inetOrgPerson\nuid: ada\ncn: Ada Lovelace\nsn: Lovelace\n\n\
dn: uid=alan,dc=example,dc=net\nobjectClass: inetOrgPerson\nuid: alan\ncn: Alan Turing\nsn: Turing\n";

/// A `slapd.conf` for an empty mdb database in `dir`.
pub fn config(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("ldap data dir");
    let conf = dir.join("slapd.conf");
    let text = format!(
        "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
         pidfile {}\ndatabase mdb\nmaxsize 10485760\nsuffix \"{SUFFIX}\"\nrootdn \"cn=admin,{SUFFIX}\"\n\
         directory {}\n",
        dir.join("slapd.pid").display(),
        data.display()
    );
    std::fs::write(&conf, text).expect("slapd.conf");
    conf
}

impl Slapd {
    /// Starts slapd in `dir` with three entries; `None` (and a printed reason) when slapd is not installed.
    pub fn start(dir: &Path) -> Option<Slapd> {
        if !services::require("OpenLDAP slapd", services::tool("/usr/sbin/slapd", "-VV")) {
            return None;
        }
        let dir = dir.join("ldap");
        let conf = config(&dir);
        let ldif = dir.join("entries.ldif");
        std::fs::write(&ldif, ENTRIES).expect("ldif");
        let added =
            Command::new("/usr/sbin/slapadd").arg("-f").arg(&conf).arg("-l").arg(&ldif).output().expect("slapadd");
        assert!(added.status.success(), "slapadd: {}", String::from_utf8_lossy(&added.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let started = Command::new("/usr/sbin/slapd")
            .arg("-f")
            .arg(&conf)
            .args(["-h", &format!("ldap://127.0.0.1:{port}/")])
            .output()
            .expect("slapd");
        assert!(started.status.success(), "slapd: {}", String::from_utf8_lossy(&started.stderr));
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < until, "slapd did not start");
            std::thread::yield_now();
        }
        Some(Slapd { config: conf, pid_file: dir.join("slapd.pid") })
    }

    /// What slapcat says of the database now.
    pub fn slapcat(&self) -> Vec<u8> {
        let out = Command::new("/usr/sbin/slapcat")
            .arg("-f")
            .arg(&self.config)
            .args(["-b", SUFFIX])
            .output()
            .expect("slapcat");
        assert!(out.status.success());
        out.stdout
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: kill(2) on the slapd this harness started.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
}
