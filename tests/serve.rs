//! `silo serve` through the binary: the dashboard over repositories built with real runs (a healthy job, a
//! stale one, a failing one, one that never ran, a drill), its agreement with `silo status --json` (I27),
//! what it refuses (I26: a non-loopback Host, an address off loopback, any method but GET), no secret in
//! any answer, an error panel for a repository it cannot read, and the page as a real browser renders it
//! (Debian's chromium, headless; scripts/setup.sh installs it).

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use util::{services, stderr, wait_until, write_jobs_file, TestRepo, EXIT_USAGE, PASSWORD};

/// A running `silo serve`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `silo GLOBAL... serve EXTRA...` on a free loopback port; returns once it listens.
    fn start(repo: &TestRepo, global: &[&str], extra: &[&str]) -> Server {
        let mut all = global.to_vec();
        all.extend(["serve", "--refresh", "1s"]);
        if !extra.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        all.extend(extra);
        let mut cmd = repo.cmd(&all);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        Server::listening(cmd.spawn().expect("start silo serve"))
    }

    /// Reads where `child` listens from its first line, and keeps reading its stderr (a closed pipe would
    /// end it at its first log line).
    fn listening(mut child: Child) -> Server {
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        err.read_line(&mut line).expect("read serve's first line");
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("serve did not say where it listens: {line:?}"))
            .to_string();
        Server { child, addr }
    }

    /// `METHOD path` with `Host: host`: (status, lowercased headers, body).
    fn request(&self, method: &str, path: &str, host: &str) -> (u16, String, String) {
        http(&self.addr, method, path, host, "", "")
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        let host = self.addr.clone();
        self.request("GET", path, &host)
    }

    /// Waits until the first view has been read (or failed), then returns `/api/v1/status`.
    fn status(&self) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        wait_until("serve has read the repository", || {
            let (_, _, body) = self.get("/api/v1/status");
            last = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
            last.get("jobs").is_some() || (last.get("error").is_some_and(|e| !e.is_null()) && last["pending"] != true)
        });
        last
    }
}

/// Jobs without their age (it moves between two reads).
fn without_age(jobs: &serde_json::Value) -> Vec<serde_json::Value> {
    jobs.as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            let mut j = j.clone();
            j.as_object_mut().expect("job").remove("age_seconds");
            j
        })
        .collect()
}

/// A repository with five jobs in five states (one with a damaged snapshot) and a drill; returns the jobs
/// file.
fn four_jobs(repo: &TestRepo) -> std::path::PathBuf {
    let file = write_jobs_file(
        repo,
        &repo.location,
        "[jobs.healthy]\nstreams = [{ command = \"printf healthy-rows\" }]\nfreshness = \"1h\"\nkeep = { last = 1 }\n\n\
         [jobs.stale]\nstreams = [{ command = \"printf stale-rows\" }]\nfreshness = \"1s\"\n\n\
         [jobs.failing]\nstreams = [{ command = \"sh -c 'echo pg_dump: connection refused >&2; exit 3'\" }]\n\n\
         [jobs.never]\nstreams = [{ command = \"printf x\" }]\n\n\
         [jobs.archive]\nstreams = [{ command = \"head -c 300000 /dev/urandom\" }]\n",
    );
    let config = file.to_str().expect("utf-8 path");
    // The archive job's snapshot is damaged: a byte of its pack flipped, found by repair's read of the data.
    let before = repo.objects("packs");
    repo.ok(&["--config", config, "run", "archive"], b"");
    let pack = repo.objects("packs").into_iter().find(|p| !before.contains(p)).expect("the archive's pack");
    let mut bytes = std::fs::read(&pack).expect("read pack");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(&pack, &bytes).expect("damage the pack");
    repo.run(&["repair", "snapshots", "--read-data"], b"");
    for job in ["healthy", "stale"] {
        repo.ok(&["--config", config, "run", job], b"");
    }
    // A second snapshot of the healthy job, made outside its run: its policy (keep 1) would remove the first.
    repo.create("healthy", b"more healthy rows");
    let failed = repo.run(&["--config", config, "run", "failing"], b"");
    assert!(!failed.status.success(), "the failing job failed");
    repo.ok(&["drill", "healthy:latest", "--", "sh", "-c", "cat > /dev/null"], b"");
    wait_until("the stale job's snapshot is older than its 1 s limit", || {
        let out = repo.run(&["--config", config, "--json", "status", "stale"], b"");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["jobs"][0]["state"] == "stale"
    });
    file
}

#[test]
fn the_dashboard_agrees_with_status() {
    let repo = TestRepo::init();
    if repo.skip_unless_local("damages a pack file") {
        return;
    }
    let file = four_jobs(&repo);
    let config = file.to_str().expect("utf-8 path");
    let server = Server::start(&repo, &["--config", config], &[]);
    let api = server.status();
    let status = repo.run(&["--config", config, "--json", "status"], b"");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    assert_eq!(without_age(&api["jobs"]), without_age(&status["jobs"]), "{api}\n{status}");
    for field in ["state", "exit_code", "snapshots", "repository_bytes", "run_records"] {
        assert_eq!(api[field], status[field], "{field}");
    }
    let states: Vec<(&str, &str)> = api["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| (j["job"].as_str().unwrap_or(""), j["state"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        states,
        [("archive", "damaged"), ("failing", "failing"), ("healthy", "ok"), ("never", "never"), ("stale", "stale")]
    );

    // The overview says each state in words, the failure's error, the drill, a chart per job.
    let (code, headers, page) = server.get("/");
    assert_eq!(code, 200);
    for (job, words) in [
        ("healthy", "OK"),
        ("stale", "STALE"),
        ("failing", "FAILING"),
        ("never", "NEVER SUCCEEDED"),
        ("archive", "DAMAGED"),
    ] {
        assert!(page.contains(&format!("data-job=\"{job}\" data-state=")), "{job} card");
        assert!(
            page.contains(&format!("<a href=\"/name/{job}\">{job}</a> <span class=\"state\">{words}</span>")),
            "{job}"
        );
    }
    assert!(page.contains("connection refused"), "the failing job's error is on its card");
    assert!(page.contains("restored in"), "the drill is on the healthy card");
    assert_eq!(page.matches("<svg class=\"trend\"").count(), 6, "a size chart per job and the drill's");
    assert!(page.contains("1 marked damaged"), "the damage mark on the archive's card");
    assert!(!page.contains("<script"), "no script");
    assert!(headers.contains("content-security-policy: default-src 'none'"), "{headers}");
    assert!(headers.contains("frame-ancestors 'none'"), "{headers}");

    // Per name: the snapshot with its stream's command, the failed run.
    let (code, _, healthy) = server.get("/name/healthy");
    assert_eq!(code, 200);
    assert!(healthy.contains("printf healthy-rows"), "the command as typed");
    assert!(healthy.contains("Policy: <code>keep-last 1</code> (the jobs file's keep)"), "{healthy}");
    assert!(healthy.contains("A forget now would remove 1 snapshots"), "{healthy}");
    let dry =
        repo.run(&["--config", config, "--json", "forget", "--name", "healthy", "--keep-last", "1", "--dry-run"], b"");
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("forget --dry-run --json");
    let removed = dry.to_string();
    let first_id = healthy.split("<li><code>").nth(1).and_then(|r| r.split('<').next()).expect("the listed removal");
    assert!(removed.contains(first_id), "the page names what forget --dry-run removes: {first_id} in {removed}");
    let (_, _, never) = server.get("/name/never");
    assert!(never.contains("No retention policy"), "{never}");
    let (_, _, failing) = server.get("/name/failing");
    assert!(failing.contains("FAILED (exit"), "the failed run is listed");
    assert_eq!(server.get("/name/nobody").0, 404);
    let (code, _, repo_page) = server.get("/repository");
    assert_eq!(code, 200);
    assert!(repo_page.contains("Stored bytes"), "{repo_page}");

    // /metrics carries status --prometheus's names and labels.
    let (code, headers, metrics) = server.get("/metrics");
    assert_eq!(code, 200);
    assert!(headers.contains("content-type: text/plain; version=0.0.4"), "{headers}");
    assert!(metrics.contains("silo_job_ok{job=\"healthy\"} 1"), "{metrics}");
    assert!(metrics.contains("silo_job_ok{job=\"failing\"} 0"), "{metrics}");

    // No answer carries the password.
    for path in ["/", "/name/healthy", "/repository", "/api/v1/status", "/api/v1/names/healthy", "/metrics"] {
        let (_, headers, body) = server.get(path);
        assert!(!body.contains(PASSWORD) && !headers.contains(&PASSWORD.to_ascii_lowercase()), "{path}");
    }
}

#[test]
fn serve_refuses_what_would_widen_access() {
    let repo = TestRepo::init();
    repo.create("shop", b"rows");
    // Off loopback: refused before anything listens.
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8470"] {
        let out = repo.run(&["serve", "--listen", listen], b"");
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{listen}: {}", stderr(&out));
        assert!(stderr(&out).contains("--auth-file"), "{}", stderr(&out));
    }
    let out = repo.run(&["serve", "--listen", "--repo"], b"");
    assert_ne!(out.status.code(), Some(0));
    let server = Server::start(&repo, &[], &[]);
    assert_eq!(server.status()["jobs"][0]["job"], "shop");
    // A page whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own Host: refused.
    let (code, _, body) = server.request("GET", "/api/v1/status", "evil.example:8470");
    assert_eq!(code, 421, "{body}");
    assert!(!body.contains("shop"));
    // Read-only: no method but GET (and HEAD) does anything.
    let host = server.addr.clone();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let (code, _, _) = server.request(method, "/", &host);
        assert_eq!(code, 405, "{method}");
    }
}

#[test]
fn a_repository_it_cannot_read_shows_an_error_panel_not_a_crash() {
    let repo = TestRepo::init();
    repo.create("shop", b"rows");
    let mut wrong = repo.cmd(&["serve", "--listen", "127.0.0.1:0", "--refresh", "1s"]);
    wrong.env("SILO_PASSWORD", "not the password").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let server = Server::listening(wrong.spawn().expect("start"));
    let api = server.status();
    assert!(api["error"].as_str().unwrap_or("").contains("password"), "{api}");
    let (code, _, page) = server.get("/");
    assert_eq!(code, 200);
    assert!(page.contains("The repository could not be read"), "{page}");
    assert!(!page.contains("not the password"), "the password is never shown");
    assert_eq!(server.get("/api/v1/status").0, 503);
    assert_eq!(server.get("/metrics").0, 503);
    // Still serving after several failed refreshes.
    wait_until("a second refresh", || server.get("/").0 == 200);

    // A repository that goes away after a good read: the last view stays, under the panel.
    let repo2 = TestRepo::init();
    if repo2.skip_unless_local("moves the repository directory away") {
        return;
    }
    repo2.create("shop", b"rows");
    let server2 = Server::start(&repo2, &[], &[]);
    assert_eq!(server2.status()["jobs"][0]["job"], "shop");
    let moved = repo2.dir.path().join("moved");
    std::fs::rename(repo2.path(), &moved).expect("move the repository away");
    wait_until("the error panel", || server2.get("/").2.contains("The repository could not be read"));
    let (_, _, page) = server2.get("/");
    assert!(page.contains("data-job=\"shop\""), "the last view is kept: {page}");
}

#[test]
fn actions_need_the_page_token_run_one_at_a_time_and_are_recorded() {
    let repo = TestRepo::init();
    let file = write_jobs_file(
        &repo,
        &repo.location,
        "[jobs.slow]\nstreams = [{ command = \"sh -c 'sleep 1; printf rows'\" }]\n",
    );
    let config = file.to_str().expect("utf-8 path");
    let server = Server::start(&repo, &["--config", config], &["--allow-actions"]);
    assert_eq!(server.status()["jobs"][0]["state"], "never");
    let (_, _, page) = server.get("/");
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page's form carries a token")
        .to_string();
    let post = |path: &str, body: &str| post_form(&server.addr, path, body, None).0;
    // A forged POST (another site's form: no token, or a wrong one) starts nothing.
    assert_eq!(post("/actions/run/slow", ""), 403);
    assert_eq!(post("/actions/run/slow", "csrf=0000"), 403);
    assert_eq!(post("/actions/run/nojob", &format!("csrf={token}")), 404);
    assert!(server.get("/api/v1/status").2.contains("\"run_records\":0"), "nothing ran");
    // With the token: started, and a second action while it runs is refused.
    assert_eq!(post("/actions/run/slow", &format!("csrf={token}")), 303);
    assert_eq!(post("/actions/check", &format!("csrf={token}")), 409);
    assert!(server.get("/").2.contains("Running: <strong>run slow</strong>"), "progress on the page");
    // Its outcome lands in the run history, as any run's.
    wait_until("the run is recorded and shown", || {
        let (_, _, body) = server.get("/api/v1/status");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["jobs"][0]["state"] == "ok" && v["run_records"].as_u64() >= Some(1)
    });
    let history = repo.run(&["--config", config, "--json", "status"], b"");
    let v: serde_json::Value = serde_json::from_slice(&history.stdout).expect("status");
    assert_eq!(v["jobs"][0]["last_run_ok"], true, "{v}");
    assert!(server.get("/").2.contains("Last action: run slow"), "the outcome on the page");
    assert_eq!(post("/actions/check", &format!("csrf={token}")), 303, "the next action may start");
}

/// `silo serve passwd` with a password on standard input.
fn passwd(repo: &TestRepo, user: &str, file: &std::path::Path, password: &str) -> std::process::Output {
    repo.run(
        &["serve", "passwd", user, "--auth-file", file.to_str().expect("utf-8")],
        format!("{password}\n").as_bytes(),
    )
}

/// One HTTP/1.1 request to `addr` (`Host: host`, extra header lines, a form body): (status, lowercased
/// headers, body). Reads are time-limited, so a server that never answers fails the test.
fn http(addr: &str, method: &str, path: &str, host: &str, headers: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    let form = if body.is_empty() { "" } else { "Content-Type: application/x-www-form-urlencoded\r\n" };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}{form}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read answer");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// POST a form to `path`, with a cookie when given.
fn post_form(addr: &str, path: &str, body: &str, cookie: Option<&str>) -> (u16, String, String) {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    http(addr, "POST", path, addr, &cookie, body)
}

fn get_with(addr: &str, path: &str, header: &str) -> (u16, String, String) {
    http(addr, "GET", path, addr, header, "")
}

fn form_token(page: &str) -> String {
    page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("a form token").to_string()
}

#[test]
fn off_loopback_it_needs_a_login_and_tls_and_limits_wrong_passwords() {
    let repo = TestRepo::init();
    repo.create("shop", b"rows");
    let auth = repo.dir.path().join("users");
    let authp = auth.to_str().expect("utf-8");
    // passwd: a short password changes nothing; a good one is stored as an argon2id hash, owner-only.
    let short = passwd(&repo, "ops", &auth, "too short");
    assert_eq!(short.status.code(), Some(EXIT_USAGE), "{}", stderr(&short));
    assert!(!auth.exists());
    assert!(passwd(&repo, "ops", &auth, "a long enough password").status.success());
    assert!(passwd(&repo, "-rf", &auth, "a long enough password").status.code() == Some(EXIT_USAGE), "names");
    let text = std::fs::read_to_string(&auth).expect("auth file");
    assert!(text.starts_with("ops:$argon2id$") && !text.contains("long enough"), "{text}");
    assert_eq!(passwd(&repo, "ops", &auth, "              ").status.code(), Some(EXIT_USAGE), "spaces only");
    let link = repo.dir.path().join("users-link");
    std::os::unix::fs::symlink(&auth, &link).expect("symlink");
    assert_eq!(passwd(&repo, "ops", &link, "a long enough password").status.code(), Some(EXIT_USAGE), "a symlink");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&auth).expect("meta").permissions().mode() & 0o777, 0o600);
    let token_file = repo.dir.path().join("token");
    let token = "t0ken-for-prometheus-0123456789abcdef";
    std::fs::write(&token_file, format!("{token}\n")).expect("token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // Weak or exposed secrets are refused before anything listens.
    let weak = repo.dir.path().join("weak-token");
    std::fs::write(&weak, " ".repeat(40)).expect("weak token");
    std::fs::set_permissions(&weak, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = repo.run(&["serve", "--token-file", weak.to_str().expect("utf-8")], b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let out = repo.run(&["serve", "--auth-file", authp], b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "an auth file anyone may write: {}", stderr(&out));
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // Off loopback: a login and TLS (or --insecure-http) are both required.
    let no_tls = repo.run(&["serve", "--listen", "0.0.0.0:0", "--auth-file", authp], b"");
    assert_eq!(no_tls.status.code(), Some(EXIT_USAGE));
    assert!(stderr(&no_tls).contains("--tls-cert"), "{}", stderr(&no_tls));
    let server = Server::start(
        &repo,
        &[],
        &[
            "--listen",
            "0.0.0.0:0",
            "--auth-file",
            authp,
            "--token-file",
            token_file.to_str().expect("utf-8"),
            "--insecure-http",
        ],
    );
    let port = server.addr.rsplit(':').next().expect("port").to_string();
    let addr = format!("127.0.0.1:{port}");

    // Without credentials: 401, a login form, no data.
    let (code, _, page) = get_with(&addr, "/", "");
    assert_eq!(code, 401);
    assert!(page.contains("Log in") && !page.contains("shop"), "{page}");
    let (code, headers, _) = get_with(&addr, "/api/v1/status", "");
    assert_eq!(code, 401);
    assert!(headers.contains("www-authenticate: bearer"), "{headers}");
    assert_eq!(get_with(&addr, "/metrics", "Authorization: Bearer wrong-token\r\n").0, 401);
    // The bearer token opens the API and the metrics.
    let bearer = format!("Authorization: Bearer {token}\r\n");
    wait_until("the first read", || get_with(&addr, "/api/v1/status", &bearer).2.contains("\"jobs\""));
    assert_eq!(get_with(&addr, "/metrics", &bearer).0, 200);

    // Logging in: the form's token is required, then the password; a session cookie opens the pages.
    let csrf = form_token(&page);
    assert_eq!(post_form(&addr, "/login", "user=ops&password=a+long+enough+password", None).0, 403);
    let body = format!("csrf={csrf}&user=ops&password=a+long+enough+password");
    let (code, headers, _) = post_form(&addr, "/login", &body, None);
    assert_eq!(code, 303, "{headers}");
    let cookie_line = headers.lines().find(|l| l.starts_with("set-cookie: silo_session=")).expect("a session cookie");
    assert!(cookie_line.contains("httponly") && cookie_line.contains("samesite=strict"), "{cookie_line}");
    let session = cookie_line["set-cookie: ".len()..].split(';').next().expect("cookie").to_string();
    let (code, _, page) = get_with(&addr, "/", &format!("Cookie: {session}\r\n"));
    assert_eq!(code, 200);
    assert!(page.contains("data-job=\"shop\""), "{page}");
    assert_eq!(get_with(&addr, "/", "Cookie: silo_session=0000\r\n").0, 401, "a guessed session");
    // The session's pages carry its own form token (the public login page's does not log out or act).
    let session_token = form_token(&page);
    assert_ne!(session_token, csrf, "the login page's token is not the session's");
    assert_eq!(post_form(&addr, "/logout", &format!("csrf={csrf}"), Some(&session)).0, 403);
    // A new password takes effect without a restart, and ends the sessions of the old one.
    assert!(passwd(&repo, "ops", &auth, "the second password").status.success());
    wait_until("the old session ends with the old password", || {
        get_with(&addr, "/", &format!("Cookie: {session}\r\n")).0 == 401
    });
    let second = format!("csrf={csrf}&user=ops&password=the+second+password");
    let (code, headers, _) = post_form(&addr, "/login", &second, None);
    assert_eq!(code, 303, "the new password logs in");
    let cookie_line = headers.lines().find(|l| l.starts_with("set-cookie: silo_session=")).expect("a session cookie");
    assert!(cookie_line.contains("; secure"), "behind --insecure-http a TLS proxy is in front: {cookie_line}");
    let session = cookie_line["set-cookie: ".len()..].split(';').next().expect("cookie").to_string();
    let (_, _, page) = get_with(&addr, "/", &format!("Cookie: {session}\r\n"));
    assert!(page.contains("Log out"), "a log-out button");
    // Logging out (with the session's token) ends the session.
    assert_eq!(post_form(&addr, "/logout", &format!("csrf={}", form_token(&page)), Some(&session)).0, 303);
    assert_eq!(get_with(&addr, "/", &format!("Cookie: {session}\r\n")).0, 401);

    // Wrong passwords: refused, then this address is held back for this user (429, Retry-After) even with
    // the right one; another user from here is not.
    let wrong = format!("csrf={csrf}&user=ops&password=not+it+at+all");
    for _ in 0..5 {
        assert_eq!(post_form(&addr, "/login", &wrong, None).0, 401);
    }
    let (code, headers, _) = post_form(&addr, "/login", &second, None);
    assert_eq!(code, 429);
    assert!(headers.contains("retry-after: 900"), "{headers}");
    assert!(passwd(&repo, "dev", &auth, "dev's own password").status.success());
    let dev = format!("csrf={csrf}&user=dev&password=dev%27s+own+password");
    assert_eq!(post_form(&addr, "/login", &dev, None).0, 303, "another user is not locked out");
    let all = format!("{}{}", String::from_utf8_lossy(&repo.run(&["snapshot", "list"], b"").stdout), page);
    assert!(!all.contains(util::PASSWORD), "no repository password in what was served");
}

#[test]
fn tls_serves_https_with_the_given_certificate() {
    let have = std::process::Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
        && std::process::Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success());
    if !services::require("openssl and curl", if have { Ok(()) } else { Err("not found".into()) }) {
        return;
    }
    let repo = TestRepo::init();
    repo.create("shop", b"rows");
    let dir = repo.dir.path();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", stderr(&made));
    let token_file = dir.join("token");
    let token = "another-token-0123456789abcdefghijkl";
    std::fs::write(&token_file, token).expect("token");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let open_key = repo.run(
        &[
            "serve",
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
            "--token-file",
            token_file.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert_eq!(open_key.status.code(), Some(EXIT_USAGE), "a key others can read: {}", stderr(&open_key));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let server = Server::start(
        &repo,
        &[],
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
            "--token-file",
            token_file.to_str().expect("utf-8"),
        ],
    );
    let url = format!("https://{}/api/v1/status", server.addr);
    let curl = |extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-s", "--max-time", "10", "--cacert"])
            .arg(&cert)
            .args(extra)
            .arg(&url)
            .output()
            .expect("curl")
    };
    let auth = format!("Authorization: Bearer {token}");
    wait_until("the first read over HTTPS", || {
        String::from_utf8_lossy(&curl(&["-H", &auth]).stdout).contains("\"jobs\"")
    });
    let out = curl(&["-H", &auth]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"shop\""), "{}", stderr(&out));
    let unauth = curl(&["-o", "/dev/null", "-w", "%{http_code}"]);
    assert_eq!(String::from_utf8_lossy(&unauth.stdout), "401");
    // Connections that never finish their handshake (more than the old queue of 64) hold up no one.
    let stalled: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(&server.addr).expect("connect")).collect();
    let out = curl(&["-H", &auth, "--max-time", "5"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"shop\""), "served beside 100 stalled handshakes");
    drop(stalled);
    // Plain HTTP to the TLS port gets no page (the server may close before the request is even sent).
    let mut plain = TcpStream::connect(&server.addr).expect("connect");
    plain.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    let _ = write!(plain, "GET /api/v1/status HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr);
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("200 OK") && !answer.contains("shop"), "{answer}");
}

/// The page as a browser shows it: chromium renders it headless (its DOM dump and screenshot need the
/// browser's own script; the page has none and its CSP allows none), the DOM has every job's card and
/// state, and a screenshot is saved (target/screenshots/, one goes into the README).
#[test]
fn a_real_browser_renders_the_overview() {
    if TestRepo::init().skip_unless_local("damages a pack file") {
        return;
    }
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| services::tool(c, "--version").is_ok());
    let probe = chromium.map(|_| ()).ok_or_else(|| "chromium not found (scripts/setup.sh installs it)".to_string());
    if !services::require("chromium", probe) {
        return;
    }
    let chromium = chromium.unwrap_or("chromium");
    let repo = TestRepo::init();
    let file = four_jobs(&repo);
    let server = Server::start(&repo, &["--config", file.to_str().expect("utf-8")], &[]);
    server.status();
    let url = format!("http://{}/", server.addr);
    let profile = repo.dir.path().join("chromium-profile");
    let browser = |extra: &[&str]| {
        let mut c = std::process::Command::new(chromium);
        c.args(["--headless", "--no-sandbox", "--disable-gpu"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url);
        c.output().expect("run chromium")
    };
    let dom = browser(&["--dump-dom"]);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.status.success(), "chromium: {}", stderr(&dom));
    for words in
        ["healthy", "OK", "STALE", "FAILING", "NEVER SUCCEEDED", "connection refused", "DAMAGED", "marked damaged"]
    {
        assert!(dom_text.contains(words), "{words} in the rendered page: {dom_text}");
    }
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    let png = shots.join("overview.png");
    let _ = std::fs::remove_file(&png);
    let shot = browser(&[&format!("--screenshot={}", png.display()), "--window-size=1280,900"]);
    assert!(shot.status.success(), "chromium: {}", stderr(&shot));
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "a real screenshot, {} bytes", bytes.len());
}
