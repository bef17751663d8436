//! Notifications: which events a run raises, whether a cooldown holds one back, and the targets, one file per
//! kind holding its configuration, its request and its send (webhook.rs, ntfy.rs, pushover.rs, healthchecks.rs,
//! email.rs; http.rs the HTTP send they share). Adding a target is one file and one `Kind` variant. A failed
//! send is the caller's to record; it never changes a run's outcome (I13).
//!
//! Cooldown: one notification per (job, event) per `cooldown` (default 6 h), judged from the run records
//! (a sent notification is a step `notify:TARGET:EVENT` with outcome ok), so it holds across machines and
//! restarts and needs no local state. `recovered` and healthchecks pings are never held back.
//!
//! Webhook body (JSON, schema version 1): `version`, `event`, `job`, `host`, `time` (RFC 3339), `ok`,
//! `exit_code`, `error`, `snapshot` (hex or null), `bytes_read`, `bytes_added`, `message`. `event` is one of
//! `Event`'s names, `test` for `silo doctor --send-test`'s notice (which says so in its title and message). With a secret,
//! header `X-Silo-Signature: sha256=HEX` is HMAC-SHA256(secret, body).
//!
//! I23: addresses and header values are checked for control characters (`Target::check` when the jobs file
//! is read, `Request::check` before a send) so nothing in the file or a secret injects a command or header;
//! every read from a receiver is bounded and every send has a total time limit (http.rs, email.rs).

pub mod email;
pub mod healthchecks;
pub mod http;
pub mod ntfy;
pub mod pushover;
pub mod webhook;

pub use email::Email;
pub use healthchecks::{Healthchecks, Ping};
pub use http::Request;
pub use ntfy::Ntfy;
pub use pushover::Pushover;
pub use webhook::Webhook;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Resolves a secret the jobs file names (the caller reads the file or the environment).
pub type Secrets<'a> = &'a dyn Fn(&SecretRef) -> Result<Vec<u8>, String>;

/// A target's one kind, with its configuration.
#[derive(Clone, Copy, Debug)]
pub enum Kind<'a> {
    Webhook(&'a Webhook),
    Ntfy(&'a Ntfy),
    Pushover(&'a Pushover),
    Email(&'a Email),
    Healthchecks(&'a Healthchecks),
}

/// A named notification target: exactly one kind.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub webhook: Option<Webhook>,
    pub ntfy: Option<Ntfy>,
    pub pushover: Option<Pushover>,
    pub email: Option<Email>,
    pub healthchecks: Option<Healthchecks>,
    /// Only these events (default: all).
    pub events: Option<Vec<String>>,
}

/// A secret from a file (owner-only) or an environment variable.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

/// What a run can raise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    Failed,
    Recovered,
    SizeDrop,
    Stale,
    Damage,
    DrillFailed,
    /// A test notification (`silo doctor --send-test`): nothing happened. Not an event a target can
    /// filter on (`ALL` lacks it), and never raised by a run.
    Test,
}

impl Event {
    pub const ALL: [Event; 6] =
        [Event::Failed, Event::Recovered, Event::SizeDrop, Event::Stale, Event::Damage, Event::DrillFailed];

    pub fn name(self) -> &'static str {
        match self {
            Event::Failed => "failed",
            Event::Recovered => "recovered",
            Event::SizeDrop => "size-drop",
            Event::Stale => "stale",
            Event::Damage => "damage",
            Event::DrillFailed => "drill-failed",
            Event::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == text)
    }

    /// Whether the news is bad (priority, tags).
    pub fn is_problem(self) -> bool {
        !matches!(self, Event::Recovered | Event::Test)
    }
}

impl Target {
    /// The target's kind, or why it is not exactly one kind.
    pub fn which(&self) -> Result<Kind<'_>, String> {
        let kinds: Vec<Kind<'_>> = [
            self.webhook.as_ref().map(Kind::Webhook),
            self.ntfy.as_ref().map(Kind::Ntfy),
            self.pushover.as_ref().map(Kind::Pushover),
            self.email.as_ref().map(Kind::Email),
            self.healthchecks.as_ref().map(Kind::Healthchecks),
        ]
        .into_iter()
        .flatten()
        .collect();
        match kinds[..] {
            [one] => Ok(one),
            _ => Err("a notification target needs exactly one of webhook, ntfy, pushover, email, healthchecks".into()),
        }
    }

    /// The kind's name, or why the target is not exactly one kind.
    pub fn kind(&self) -> Result<&'static str, String> {
        Ok(match self.which()? {
            Kind::Webhook(_) => "webhook",
            Kind::Ntfy(_) => "ntfy",
            Kind::Pushover(_) => "pushover",
            Kind::Email(_) => "email",
            Kind::Healthchecks(_) => "healthchecks",
        })
    }

    /// Sends `notice` (`date`: now, RFC 2822, for an e-mail). A healthchecks target takes pings, not notices:
    /// nothing is sent to it.
    pub async fn send(&self, notice: &Notice, secret: Secrets<'_>, date: &str) -> Result<(), String> {
        match self.which() {
            Ok(Kind::Webhook(w)) => webhook::send(w, notice, secret).await,
            Ok(Kind::Ntfy(n)) => ntfy::send(n, notice, secret).await,
            Ok(Kind::Pushover(p)) => pushover::send(p, notice, secret).await,
            Ok(Kind::Email(e)) => email::send(e, notice, secret, date).await,
            Ok(Kind::Healthchecks(_)) | Err(_) => Ok(()),
        }
    }

    pub fn check(&self) -> Result<(), String> {
        self.kind()?;
        if let Some(events) = &self.events {
            if let Some(bad) = events.iter().find(|e| Event::parse(e).is_none()) {
                let known: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
                return Err(format!("unknown event {bad:?}; events are {}", known.join(", ")));
            }
        }
        let secrets = self.secrets();
        if secrets.iter().any(|s| s.file.is_some() == s.env.is_some()) {
            return Err("a secret needs exactly one of file = \"...\" or env = \"NAME\"".into());
        }
        let urls = [
            self.webhook.as_ref().map(|w| w.url.as_str()),
            self.ntfy.as_ref().map(|n| n.url.as_str()),
            self.pushover.as_ref().and_then(|p| p.url.as_deref()),
            self.healthchecks.as_ref().map(|h| h.url.as_str()),
        ];
        if let Some(bad) = urls.into_iter().flatten().find(|u| !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(format!("{bad:?} is not an http:// or https:// URL"));
        }
        if let Some(e) = &self.email {
            if e.to.is_empty() || e.smtp.is_some() == e.sendmail.is_some() {
                return Err(
                    "email needs to = [...] and exactly one of smtp = \"host:port\" or sendmail = \"/path\"".into()
                );
            }
            // I23: a CR/LF in an address would inject an SMTP command or a header.
            if let Some(bad) = std::iter::once(&e.from).chain(&e.to).find(|a| !email::address_ok(a)) {
                return Err(format!(
                    "e-mail address {:?} is not a plain address (no spaces, control characters, <, >, commas)",
                    bad
                ));
            }
            if let Some(u) = e.username.as_ref().filter(|u| u.chars().any(char::is_control)) {
                return Err(format!("username {u:?} holds a control character"));
            }
        }
        Ok(())
    }

    /// The secrets the target names.
    pub fn secrets(&self) -> Vec<&SecretRef> {
        [
            self.webhook.as_ref().and_then(|w| w.secret.as_ref()),
            self.ntfy.as_ref().and_then(|n| n.token.as_ref()),
            self.pushover.as_ref().map(|p| &p.token),
            self.pushover.as_ref().map(|p| &p.user),
            self.email.as_ref().and_then(|e| e.password.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Whether this target takes `event`.
    pub fn wants(&self, event: Event) -> bool {
        self.events.as_ref().is_none_or(|list| list.iter().any(|e| e == event.name()))
    }
}

/// What happened in a run, as notifications tell it.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    pub version: u32,
    pub event: Event,
    pub job: String,
    pub host: String,
    pub time: String,
    pub ok: bool,
    pub exit_code: u8,
    pub error: String,
    pub snapshot: Option<String>,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub message: String,
}

impl Notice {
    pub fn title(&self) -> String {
        match self.event {
            Event::Failed => format!("silo: backup job {} FAILED", self.job),
            Event::Recovered => format!("silo: backup job {} recovered", self.job),
            Event::SizeDrop => format!("silo: backup job {}: dump shrank", self.job),
            Event::Stale => format!("silo: backup job {} is stale", self.job),
            Event::Damage => format!("silo: backup job {}: damage found", self.job),
            Event::DrillFailed => format!("silo: backup job {}: restore drill FAILED", self.job),
            Event::Test => format!("silo: TEST notification for {} (nothing is wrong)", self.job),
        }
    }
}

/// The events a finished run raises: failed or recovered (a success after a failure), and what status
/// says of the job now (a size drop, stale, damage). `previous_ok`: the job's run before this one.
pub fn events(
    run_ok: bool,
    previous_ok: Option<bool>,
    state: crate::jobs::status::State,
    drill_failed: bool,
    damage_found: bool,
) -> Vec<Event> {
    use crate::jobs::status::State;
    let mut out = Vec::new();
    if !run_ok {
        out.push(Event::Failed);
    } else if previous_ok == Some(false) {
        out.push(Event::Recovered);
    }
    match state {
        State::Shrunk => out.push(Event::SizeDrop),
        State::Stale => out.push(Event::Stale),
        State::Damaged => out.push(Event::Damage),
        _ => {}
    }
    if damage_found && state != State::Damaged {
        out.push(Event::Damage);
    }
    if drill_failed {
        out.push(Event::DrillFailed);
    }
    out
}

/// Whether a notification of `event` for the job may go out at `now`, given when the job's last one of
/// that event went out and when the job last succeeded (µs). `recovered` is never held back, and a success
/// since the last one ends the cooldown: failed, recovered, failed again alerts at once.
pub fn due(event: Event, last_sent: Option<i64>, last_success: Option<i64>, now: i64, cooldown_seconds: u64) -> bool {
    let Some(sent) = last_sent else { return true };
    event == Event::Recovered
        || last_success.is_some_and(|ok| ok > sent)
        || now.saturating_sub(sent) >= i64::try_from(cooldown_seconds).unwrap_or(i64::MAX) * 1_000_000
}

impl Event {
    /// The exit code a notice of this event states: the run's when it failed, else what `silo status` exits
    /// with for the state the event reports (8 stale, 10 shrunk, 5 damaged, 7 a failed drill), 0 only for a
    /// recovery — so a "stale" payload never says `ok: true, exit_code: 0`.
    pub fn exit_code(self, run_exit: u8) -> u8 {
        match self {
            Event::Recovered | Event::Test => 0,
            _ if run_exit != 0 => run_exit,
            Event::Failed => 1,
            Event::Stale => 8,
            Event::SizeDrop => 10,
            Event::Damage => 5,
            Event::DrillFailed => 7,
        }
    }
}

/// A test notification for the jobs `jobs` (joined as the notice's `job`) sent from `host` at `time`: event
/// `test`, `ok: true`, and a title and message that say it is a test and that nothing failed.
pub fn test_notice(jobs: &[String], host: &str, time: &str) -> Notice {
    let job = jobs.join(", ");
    Notice {
        version: 1,
        event: Event::Test,
        job: job.clone(),
        host: host.into(),
        time: time.into(),
        ok: true,
        exit_code: 0,
        error: String::new(),
        snapshot: None,
        bytes_read: 0,
        bytes_added: 0,
        message: format!(
            "This is a TEST notification from silo on {host} (`silo doctor --send-test`) for {job}: nothing \
             failed. Alerts for these jobs reach you here."
        ),
    }
}

/// The step name a sent notification is recorded under.
pub fn step_name(target: &str, event: Event) -> String {
    format!("notify:{target}:{}", event.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::status::State;
    use email::email_message;
    use healthchecks::request as ping;
    use ntfy::request as ntfy;
    use pushover::request as pushover;
    use webhook::{request as webhook, signature};

    fn notice(event: Event) -> Notice {
        Notice {
            version: 1,
            event,
            job: "shop".into(),
            host: "db1".into(),
            time: "2026-12-02T01:00:00Z".into(),
            ok: false,
            exit_code: 7,
            error: "create: pg_dump exited with status 1".into(),
            snapshot: None,
            bytes_read: 0,
            bytes_added: 0,
            message: "shop failed: create: pg_dump exited with status 1".into(),
        }
    }

    #[test]
    fn events_of_a_run() {
        assert_eq!(events(false, Some(true), State::Failing, false, false), [Event::Failed]);
        assert_eq!(events(true, Some(false), State::Ok, false, false), [Event::Recovered]);
        assert_eq!(events(true, Some(true), State::Ok, false, false), []);
        assert_eq!(events(true, None, State::Shrunk, true, false), [Event::SizeDrop, Event::DrillFailed]);
        assert_eq!(events(false, Some(false), State::Damaged, false, true), [Event::Failed, Event::Damage]);
        assert_eq!(events(false, Some(false), State::Ok, false, true), [Event::Failed, Event::Damage]);
    }

    #[test]
    fn the_cooldown_holds_back_repeats_but_never_a_recovery() {
        const H: i64 = 3_600_000_000;
        assert!(due(Event::Failed, None, None, 10 * H, 6 * 3600));
        assert!(!due(Event::Failed, Some(5 * H), None, 10 * H, 6 * 3600), "5 h after the last one");
        assert!(due(Event::Failed, Some(4 * H), None, 10 * H, 6 * 3600), "6 h after");
        assert!(due(Event::Recovered, Some(10 * H), None, 10 * H, 6 * 3600));
        // Failed, recovered, failed again: the recovery ended the cooldown.
        assert!(due(Event::Failed, Some(8 * H), Some(9 * H), 10 * H, 6 * 3600));
        assert!(!due(Event::Failed, Some(8 * H), Some(7 * H), 10 * H, 6 * 3600), "a success before it does not");
    }

    #[test]
    fn a_test_notice_says_it_is_a_test_and_is_no_event_to_filter_on() {
        let n = test_notice(&["shop".into()], "db1", "2026-12-07T03:00:00Z");
        assert!(n.title().contains("TEST") && n.message.contains("TEST") && n.ok && n.exit_code == 0);
        assert_eq!(Event::parse("test"), None);
        let w = webhook(&Webhook { url: "http://h/hook".into(), secret: None }, &n, None);
        let body: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
        assert_eq!(body["event"], "test");
    }

    #[test]
    fn a_notice_of_a_problem_never_says_ok() {
        assert_eq!(Event::Stale.exit_code(0), 8);
        assert_eq!(Event::Damage.exit_code(0), 5);
        assert_eq!(Event::Failed.exit_code(7), 7);
        assert_eq!(Event::Recovered.exit_code(0), 0);
    }

    #[test]
    fn requests_carry_what_each_service_expects() {
        let n = notice(Event::Failed);
        let w = webhook(&Webhook { url: "http://h/hook".into(), secret: None }, &n, Some(b"key"));
        let body: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
        assert_eq!(
            (body["event"].as_str(), body["job"].as_str(), body["version"].as_u64()),
            (Some("failed"), Some("shop"), Some(1))
        );
        let sig = &w.headers.iter().find(|(k, _)| k == "X-Silo-Signature").unwrap().1;
        assert_eq!(sig, &format!("sha256={}", signature(b"key", &w.body)));
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let t = ntfy(&Ntfy { url: "http://h/topic".into(), token: None }, &n, Some(b"tk"));
        assert!(
            t.headers.contains(&("Priority".into(), "high".into()))
                && t.headers.contains(&("Authorization".into(), "Bearer tk".into()))
        );
        let p =
            pushover(&Pushover { token: Default::default(), user: Default::default(), url: None }, &n, b"app", b"u s");
        assert_eq!(p.url, "https://api.pushover.net/1/messages.json");
        let form = String::from_utf8(p.body).unwrap();
        assert!(form.contains("token=app") && form.contains("user=u+s") && form.contains("priority=1"), "{form}");
        let h = Healthchecks { url: "http://h/ping/abc/".into() };
        assert_eq!(ping(&h, Ping::Start, "").url, "http://h/ping/abc/start");
        assert_eq!(ping(&h, Ping::Success, "").url, "http://h/ping/abc");
        assert_eq!(ping(&h, Ping::Fail, "x").url, "http://h/ping/abc/fail");
        let e = Email {
            to: vec!["ops@x".into()],
            from: "silo@x".into(),
            smtp: Some("h:25".into()),
            username: None,
            password: None,
            sendmail: None,
            ca_file: None,
        };
        let m = email_message(&e, &n, "Wed, 02 Dec 2026 01:00:00 +0000");
        assert!(m.contains("Subject: silo: backup job shop FAILED\r\n") && m.contains("\r\n\r\nshop failed"), "{m}");
    }

    #[test]
    fn targets_are_checked() {
        let mut t = Target { webhook: Some(Webhook { url: "ftp://x".into(), secret: None }), ..Default::default() };
        assert!(t.check().unwrap_err().contains("not an http"));
        t.webhook = Some(Webhook { url: "https://x".into(), secret: Some(SecretRef::default()) });
        assert!(t.check().unwrap_err().contains("exactly one of file"));
        t.webhook = Some(Webhook { url: "https://x".into(), secret: None });
        t.events = Some(vec!["failed".into(), "party".into()]);
        assert!(t.check().unwrap_err().contains("unknown event \"party\""));
        t.events = Some(vec!["failed".into()]);
        assert!(t.check().is_ok() && t.wants(Event::Failed) && !t.wants(Event::Recovered));
        t.ntfy = Some(Ntfy { url: "https://x".into(), token: None });
        assert!(t.check().unwrap_err().contains("exactly one of webhook"));
        let email = |to: &str| Target {
            email: Some(Email {
                to: vec![to.into()],
                from: "silo@x".into(),
                smtp: Some("h:25".into()),
                username: None,
                password: None,
                sendmail: None,
                ca_file: None,
            }),
            ..Default::default()
        };
        assert!(email("ops@x").check().is_ok());
        assert!(email("ops@x>\r\nRCPT TO:<evil@y").check().unwrap_err().contains("not a plain address"));
        let n = notice(Event::Failed);
        let r = ntfy(&Ntfy { url: "http://h/t".into(), token: None }, &n, Some(b"tok\nen"));
        let e = r.check().unwrap_err();
        assert!(e.contains("Authorization") && !e.contains("tok"), "{e}");
        assert!(ntfy(&Ntfy { url: "http://h/t".into(), token: None }, &n, Some(b"token")).check().is_ok());
    }
}
