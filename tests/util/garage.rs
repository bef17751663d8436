//! Real Garage (a distributed S3-compatible object store) for the tests: started from here on loopback ports
//! with a temporary configuration, one node or a cluster, with a bucket and an access key.
//!
//! The binary is `SILO_GARAGE_BIN`, else `~/.cache/silo-tools/bin/garage` (where scripts/install-garage.sh
//! puts it), else `garage` on PATH. Nodes are started with PR_SET_PDEATHSIG from a thread that lives as long
//! as the test process, so they die with it even when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn binary() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SILO_GARAGE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let cached = std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache/silo-tools/bin/garage"));
    if let Ok(p) = cached {
        if p.exists() {
            return Ok(p);
        }
    }
    match Command::new("garage").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(PathBuf::from("garage")),
        _ => Err("no garage binary: run scripts/install-garage.sh (or set SILO_GARAGE_BIN)".into()),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub struct Node {
    pub config: PathBuf,
    pub rpc: String,
    pub s3_port: u16,
    child: Option<Child>,
}

pub struct Garage {
    pub bin: PathBuf,
    pub nodes: Vec<Node>,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
    _dir: tempfile::TempDir,
}

/// Spawns `cmd` so that it is killed when the thread that spawned it (a keeper thread) ends.
fn spawn_tied(mut cmd: Command) -> Child {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl in the child between fork and exec, async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().expect("spawn garage")
}

/// Runs `f` on a thread that then lives until the process exits, so children spawned by `f` with
/// PR_SET_PDEATHSIG outlive the test that asked for them only as long as the process.
fn on_keeper<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("keeper thread")
}

impl Garage {
    /// Starts `nodes` Garage nodes with `replication` copies of every object, lays out the cluster, and
    /// creates a bucket and a key that may use it.
    pub fn start(nodes: usize, replication: usize) -> Result<Garage, String> {
        let bin = binary()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let secret: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
        let mut list = Vec::new();
        for i in 0..nodes {
            let (rpc_port, s3_port, admin_port) = (free_port(), free_port(), free_port());
            let home = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
            let config = home.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{home}/meta\"\ndata_dir = \"{home}/data\"\ndb_engine = \"sqlite\"\n\
                     replication_factor = {replication}\n\
                     rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                     rpc_secret = \"{secret}\"\n\
                     [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                     root_domain = \".s3.garage.localhost\"\n\
                     [admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\nadmin_token = \"{secret}\"\n",
                    home = home.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            list.push(Node { config, rpc: format!("127.0.0.1:{rpc_port}"), s3_port, child: None });
        }
        let mut g =
            Garage { bin, nodes: list, key_id: String::new(), secret: String::new(), bucket: "silo".into(), _dir: dir };
        for i in 0..nodes {
            g.start_node(i);
        }
        for i in 0..nodes {
            g.wait_rpc(i)?;
        }
        let mut node_ids = Vec::new();
        for i in 0..nodes {
            let id = g.cli(i, &["node", "id", "-q"])?;
            node_ids.push(id.trim().to_string());
        }
        for id in node_ids.iter().skip(1) {
            g.cli(0, &["node", "connect", id])?;
        }
        for (i, id) in node_ids.iter().enumerate() {
            let short = id.split('@').next().unwrap_or(id);
            g.cli(0, &["layout", "assign", "-z", &format!("dc{}", i + 1), "-c", "1G", short])?;
        }
        g.retry(|g| g.cli(0, &["layout", "apply", "--version", "1"]).map(|_| ()))?;
        g.retry(|g| g.cli(0, &["bucket", "create", "silo"]).map(|_| ()))?;
        let key = g.cli(0, &["key", "create", "silo-test"])?;
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_string()))
                .ok_or_else(|| format!("garage key create printed no {name:?}: {key}"))
        };
        g.key_id = field("Key ID")?;
        g.secret = field("Secret key")?;
        g.cli(0, &["bucket", "allow", "--read", "--write", "--owner", "silo", "--key", "silo-test"])?;
        Ok(g)
    }

    pub fn start_node(&mut self, i: usize) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(&self.nodes[i].config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = on_keeper(move || spawn_tied(cmd));
        self.nodes[i].child = Some(child);
    }

    /// Kills node `i` (SIGKILL: a crash, not a shutdown).
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` to node `i` (SIGSTOP freezes it, SIGCONT resumes it).
    pub fn signal_node(&self, i: usize, sig: i32) {
        if let Some(c) = &self.nodes[i].child {
            // SAFETY: signalling a child process we started.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    fn cli(&self, node: usize, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.nodes[node].config)
            .args(args)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!("garage {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Retries `f` for up to 30 s (a starting cluster answers some requests before it can serve them).
    fn retry(&self, f: impl Fn(&Garage) -> Result<(), String>) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match f(self) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn wait_rpc(&self, i: usize) -> Result<(), String> {
        self.retry(|g| g.cli(i, &["status"]).map(|_| ()))
    }

    /// `s3:` location of a fresh prefix in the bucket, served by node `node`.
    pub fn location(&self, node: usize, prefix: &str) -> String {
        format!("s3:http://127.0.0.1:{}/{}/{prefix}", self.nodes[node].s3_port, self.bucket)
    }

    /// The environment silo reads its S3 credentials from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", "garage".into()),
        ]
    }

    pub fn credentials(&self) -> silo::backend::s3::Credentials {
        silo::backend::s3::Credentials {
            key_id: self.key_id.clone(),
            secret: self.secret.clone(),
            token: None,
            region: "garage".into(),
        }
    }

    pub fn config(&self, node: usize) -> &Path {
        &self.nodes[node].config
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    // SAFETY: getrandom writes at most 1 byte into b.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 1, 0) };
    b[0]
}

/// One single-node Garage for a test file, or None (skipped with the reason, or a failure under
/// SILO_REQUIRE_SERVICES=1) when there is no garage binary or it does not start.
pub fn shared() -> Option<&'static Garage> {
    static G: std::sync::OnceLock<Result<Garage, String>> = std::sync::OnceLock::new();
    let started = G.get_or_init(|| binary().and_then(|_| Garage::start(1, 1)));
    match started {
        Ok(g) => Some(g),
        Err(e) => {
            super::services::require("Garage (S3)", Err(e.clone()));
            None
        }
    }
}
