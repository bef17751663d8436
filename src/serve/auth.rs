//! Who may see the dashboard when it is reachable from elsewhere (I26): users from an auth file (argon2id
//! PHC strings, one `user:$argon2id$...` per line), sessions that expire, and a limit on wrong passwords
//! per client address and per user. Pure except for hashing: the clock is passed in, so the rules are unit
//! tested.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// How long a login lasts (absolute, not sliding).
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// Wrong passwords allowed within `WINDOW_SECONDS`: per client address and user name, per address (any
/// name), and per user name from every address. The last is the highest, so holding one user back takes
/// many guesses; it still bounds guessing from many addresses to a few hundred a day.
pub const MAX_FAILURES: usize = 5;
pub const MAX_PER_ADDRESS: usize = 20;
pub const MAX_PER_USER: usize = 50;
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

    /// The users whose hash differs in `other` or who are gone from it (their sessions end on a reload).
    pub fn changed(&self, other: &Users) -> Vec<String> {
        self.hashes.iter().filter(|(u, h)| other.hashes.get(*u) != Some(*h)).map(|(u, _)| u.clone()).collect()
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

/// Logged-in sessions: a random id -> (user, expiry, the session's form token).
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<String, (String, i64, String)>,
}

fn random_hex() -> String {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    hex::encode(raw)
}

impl Sessions {
    /// Starts a session for `user` at `now` (seconds); returns its id.
    pub fn start(&mut self, user: &str, now: i64) -> String {
        self.by_id.retain(|_, (_, expires, _)| *expires > now);
        while self.by_id.len() >= MAX_SESSIONS {
            let oldest = self.by_id.iter().min_by_key(|(_, (_, e, _))| *e).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.by_id.remove(&k),
                None => break,
            };
        }
        let id = random_hex();
        self.by_id.insert(id.clone(), (user.to_string(), now + SESSION_SECONDS, random_hex()));
        id
    }

    /// The user of a live session.
    pub fn user(&self, id: &str, now: i64) -> Option<&str> {
        self.by_id.get(id).filter(|(_, expires, _)| *expires > now).map(|(u, _, _)| u.as_str())
    }

    /// A live session's form token: what its pages' forms (actions, logout) carry. It is never on a page
    /// anyone can load without that session.
    pub fn form_token(&self, id: &str, now: i64) -> Option<&str> {
        self.by_id.get(id).filter(|(_, expires, _)| *expires > now).map(|(_, _, t)| t.as_str())
    }

    pub fn end(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    /// Ends every session of `user` (a password changed or the user removed).
    pub fn end_user(&mut self, user: &str) {
        self.by_id.retain(|_, (u, _, _)| u != user);
    }
}

/// Wrong passwords per client address and per user name, within a sliding window.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: HashMap<String, Vec<i64>>,
}

impl Limiter {
    fn keys(addr: IpAddr, user: &str) -> [(String, usize); 3] {
        [
            (format!("pair {addr} {user}"), MAX_FAILURES),
            (format!("addr {addr}"), MAX_PER_ADDRESS),
            (format!("user {user}"), MAX_PER_USER),
        ]
    }

    /// Whether a login from `addr` as `user` may be tried at `now`.
    pub fn allows(&mut self, addr: IpAddr, user: &str, now: i64) -> bool {
        self.failures.retain(|_, times| {
            times.retain(|t| now - t < WINDOW_SECONDS);
            !times.is_empty()
        });
        Self::keys(addr, user).iter().all(|(k, max)| self.failures.get(k).is_none_or(|t| t.len() < *max))
    }

    pub fn failed(&mut self, addr: IpAddr, user: &str, now: i64) {
        // Bounded: a flood of names from many addresses keeps at most this many keys.
        if self.failures.len() > 100_000 {
            self.failures.clear();
        }
        for (k, _) in Self::keys(addr, user) {
            self.failures.entry(k).or_default().push(now);
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').map(str::trim).find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// Whether a form's body (`application/x-www-form-urlencoded`) carries `token` in its `csrf` field
/// (compared in constant time).
pub fn form_has_token(body: &str, token: &str) -> bool {
    let given = url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
    given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes()))
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
        let token = s.form_token(&id, 1000).expect("a form token").to_string();
        assert!(token.len() == 64 && token != id);
        let other = s.start("dev", 1000);
        assert_ne!(s.form_token(&other, 1000), Some(token.as_str()), "one token per session");
        s.end_user("dev");
        assert_eq!(s.user(&other, 1000), None, "a changed user's sessions end");
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
        assert!(!l.allows(a, "ops", 101), "the pair is held back");
        assert!(l.allows(b, "ops", 101), "five guesses from one address do not lock the user out elsewhere");
        assert!(l.allows(a, "dev", 101), "nor the address for other users");
        assert!(l.allows(a, "ops", 100 + WINDOW_SECONDS), "the window passes");
        // Per address, any name; per user, from every address.
        let mut l = Limiter::default();
        for n in 0..MAX_PER_ADDRESS {
            l.failed(a, &format!("u{n}"), 100);
        }
        assert!(!l.allows(a, "fresh", 101), "an address guessing many names");
        let mut l = Limiter::default();
        for n in 0..MAX_PER_USER {
            l.failed(format!("10.0.{}.{}", n / 200, n % 200).parse().unwrap(), "ops", 100);
        }
        assert!(!l.allows(b, "ops", 101), "a user guessed from many addresses");
        assert!(l.allows(b, "dev", 101));
    }

    #[test]
    fn cookies_and_secrets() {
        assert_eq!(cookie("a=1; silo_session=abc; b=2", "silo_session"), Some("abc"));
        assert_eq!(cookie("xsilo_session=abc", "silo_session"), None);
        assert!(same_secret(b"abc", b"abc") && !same_secret(b"abc", b"abd") && !same_secret(b"abc", b"ab"));
        let t = "a1b2c3";
        assert!(form_has_token("csrf=a1b2c3", t) && form_has_token("x=1&csrf=a1b2c3", t));
        for bad in ["", "csrf=", "csrf=a1b2c", "csrf=a1b2c3d", "csrf=A1B2C3", "token=a1b2c3"] {
            assert!(!form_has_token(bad, t), "{bad}");
        }
        assert!(valid_user("ops-1.a_b") && !valid_user("") && !valid_user("a:b") && !valid_user("a b"));
    }
}
