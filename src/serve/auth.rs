//! Who may see the dashboard when it is reachable from elsewhere (I26): users from an auth file (argon2id
//! PHC strings, one `user:$argon2id$...` per line), sessions that expire, and a limit on wrong passwords
//! per client address and per user. Pure except for hashing: the clock is passed in, so the rules are unit
//! tested.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// How long a login lasts (absolute, not sliding).
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Wrong passwords allowed per client address (and per user name) within `WINDOW_SECONDS`.
pub const MAX_FAILURES: usize = 5;
pub const WINDOW_SECONDS: i64 = 15 * 60;
/// Sessions kept at most (the oldest is dropped first): a flood of logins cannot grow memory.
pub const MAX_SESSIONS: usize = 1000;

/// The users of an auth file.
#[derive(Clone, Debug, Default)]
pub struct Users {
    hashes: BTreeMap<String, String>,
}

/// A user name silo accepts: 1-64 of `A-Z a-z 0-9 . _ -` (no `:` or whitespace, which the file format uses).
pub fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Users {
    /// Parses an auth file: `user:PHC` lines, `#` comments and blank lines ignored. An error names the line.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut hashes = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: not `user:hash`", n + 1));
            };
            if !valid_user(user) {
                return Err(format!("line {}: user names are 1-64 of A-Z a-z 0-9 . _ -", n + 1));
            }
            if !hash.starts_with("$argon2id$") || argon2::PasswordHash::new(hash).is_err() {
                return Err(format!("line {}: the hash of {user} is not an argon2id PHC string", n + 1));
            }
            hashes.insert(user.to_string(), hash.to_string());
        }
        Ok(Users { hashes })
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `password` is `user`'s. An unknown user costs the same hashing as a known one (the time a
    /// refusal takes does not say which names exist).
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        use argon2::PasswordVerifier;
        const DUMMY: &str =
            "$argon2id$v=19$m=19456,t=2,p=1$c2lsb2R1bW15c2FsdA$Jf7n8nYJCuOqrnfOXgQ2Cn4i9+Aqay3ux6cZEbUcjiU";
        let known = self.hashes.get(user);
        let hash = known.map_or(DUMMY, String::as_str);
        let ok = argon2::PasswordHash::new(hash)
            .is_ok_and(|h| argon2::Argon2::default().verify_password(password, &h).is_ok());
        ok && known.is_some()
    }

    /// The file's text with `user`'s line set to a new hash of `password` (other lines kept as they were).
    pub fn with_password(text: &str, user: &str, password: &[u8]) -> Result<String, String> {
        use argon2::PasswordHasher;
        let hash = argon2::Argon2::default().hash_password(password).map_err(|e| format!("hashing: {e}"))?;
        let mut out = String::new();
        let mut replaced = false;
        for line in text.lines() {
            if line.trim().split_once(':').is_some_and(|(u, _)| u == user) {
                if !replaced {
                    out.push_str(&format!("{user}:{hash}\n"));
                    replaced = true;
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if !replaced {
            out.push_str(&format!("{user}:{hash}\n"));
        }
        Ok(out)
    }
}

/// Logged-in sessions: a random id -> (user, expiry).
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<String, (String, i64)>,
}

impl Sessions {
    /// Starts a session for `user` at `now` (seconds); returns its id.
    pub fn start(&mut self, user: &str, now: i64) -> String {
        self.by_id.retain(|_, (_, expires)| *expires > now);
        while self.by_id.len() >= MAX_SESSIONS {
            let oldest = self.by_id.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.by_id.remove(&k),
                None => break,
            };
        }
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let id = hex::encode(raw);
        self.by_id.insert(id.clone(), (user.to_string(), now + SESSION_SECONDS));
        id
    }

    /// The user of a live session.
    pub fn user(&self, id: &str, now: i64) -> Option<&str> {
        self.by_id.get(id).filter(|(_, expires)| *expires > now).map(|(u, _)| u.as_str())
    }

    pub fn end(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

/// Wrong passwords per client address and per user name, within a sliding window.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: HashMap<String, Vec<i64>>,
}

impl Limiter {
    fn keys(addr: IpAddr, user: &str) -> [String; 2] {
        [format!("addr {addr}"), format!("user {user}")]
    }

    /// Whether a login from `addr` as `user` may be tried at `now`.
    pub fn allows(&mut self, addr: IpAddr, user: &str, now: i64) -> bool {
        self.failures.retain(|_, times| {
            times.retain(|t| now - t < WINDOW_SECONDS);
            !times.is_empty()
        });
        Self::keys(addr, user).iter().all(|k| self.failures.get(k).is_none_or(|t| t.len() < MAX_FAILURES))
    }

    pub fn failed(&mut self, addr: IpAddr, user: &str, now: i64) {
        // Bounded: a flood of names from many addresses keeps at most this many keys.
        if self.failures.len() > 100_000 {
            self.failures.clear();
        }
        for k in Self::keys(addr, user) {
            self.failures.entry(k).or_default().push(now);
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').map(str::trim).find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// Constant-time equality of two secrets' bytes (lengths may leak).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_set_verifies_and_nothing_else_does() {
        let text = Users::with_password("# users\n", "ops", b"correct horse").expect("hash");
        assert!(text.contains("ops:$argon2id$") && !text.contains("correct horse"), "{text}");
        let users = Users::parse(&text).expect("parse");
        assert!(users.verify("ops", b"correct horse"));
        assert!(!users.verify("ops", b"correct hors"));
        assert!(!users.verify("nobody", b"correct horse"));
        // A second user, then a new password for the first: both lines, one each.
        let text = Users::with_password(&text, "dev", b"another one").expect("hash");
        let text = Users::with_password(&text, "ops", b"changed now").expect("hash");
        assert_eq!(text.matches("ops:").count(), 1, "{text}");
        let users = Users::parse(&text).expect("parse");
        assert!(users.verify("ops", b"changed now") && !users.verify("ops", b"correct horse"));
        assert!(users.verify("dev", b"another one"));
        assert!(text.starts_with("# users\n"), "comments kept");
    }

    #[test]
    fn malformed_auth_files_are_refused_by_line() {
        for (text, want) in [
            ("ops", "line 1"),
            ("\n\nops:plaintext", "line 3"),
            ("op s:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA", "user names"),
            ("ops:$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA", "argon2id"),
        ] {
            let e = Users::parse(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(Users::parse("# nobody yet\n").expect("empty").is_empty());
    }

    #[test]
    fn sessions_expire_and_end() {
        let mut s = Sessions::default();
        let id = s.start("ops", 1000);
        assert_eq!(id.len(), 64);
        assert_eq!(s.user(&id, 1000 + SESSION_SECONDS - 1), Some("ops"));
        assert_eq!(s.user(&id, 1000 + SESSION_SECONDS), None, "expired");
        assert_eq!(s.user("guess", 1000), None);
        s.end(&id);
        assert_eq!(s.user(&id, 1001), None, "logged out");
        for n in 0..(MAX_SESSIONS + 10) {
            s.start("ops", 2000 + n as i64);
        }
        assert!(s.by_id.len() <= MAX_SESSIONS, "bounded");
    }

    #[test]
    fn wrong_passwords_are_limited_per_address_and_per_user() {
        let mut l = Limiter::default();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..MAX_FAILURES {
            assert!(l.allows(a, "ops", 100));
            l.failed(a, "ops", 100);
        }
        assert!(!l.allows(a, "dev", 101), "the address is held back whatever the name");
        assert!(!l.allows(b, "ops", 101), "the name is held back from every address");
        assert!(l.allows(b, "dev", 101), "others are not");
        assert!(l.allows(a, "ops", 100 + WINDOW_SECONDS), "the window passes");
    }

    #[test]
    fn cookies_and_secrets() {
        assert_eq!(cookie("a=1; silo_session=abc; b=2", "silo_session"), Some("abc"));
        assert_eq!(cookie("xsilo_session=abc", "silo_session"), None);
        assert!(same_secret(b"abc", b"abc") && !same_secret(b"abc", b"abd") && !same_secret(b"abc", b"ab"));
        assert!(valid_user("ops-1.a_b") && !valid_user("") && !valid_user("a:b") && !valid_user("a b"));
    }
}
