//! The daemon's browser logins and sessions, in memory only (see [`super::session`] for how a
//! page gets one). Codes and secrets are 256-bit random and compared in constant time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a login code can be traded.
pub const LOGIN_TTL: Duration = Duration::from_secs(120);
/// A session unused this long expires.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// No session lives longer.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 60 * 60);
/// At most this many codes and this many sessions are kept; the oldest go first.
pub const MAX_KEPT: usize = 16;

#[derive(Debug)]
struct Login {
    code: String,
    expires: Instant,
}

#[derive(Debug)]
struct Session {
    secret: String,
    created: Instant,
    used: Instant,
}

impl Session {
    fn expires(&self) -> Instant {
        (self.used + SESSION_IDLE).min(self.created + SESSION_MAX)
    }
}

/// The daemon's login codes and sessions (in memory only).
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<(Vec<Login>, Vec<Session>)>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Login>, Vec<Session>)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new one-time login code.
    pub fn new_login(&self) -> std::io::Result<String> {
        let code = random()?;
        let mut inner = self.lock();
        let now = Instant::now();
        inner.0.retain(|l| l.expires > now);
        if inner.0.len() >= MAX_KEPT {
            inner.0.remove(0);
        }
        inner.0.push(Login {
            code: code.clone(),
            expires: now + LOGIN_TTL,
        });
        Ok(code)
    }

    /// Trades a login code (once: it is gone afterwards, whatever happens) for a new session
    /// secret; `None` when the code is unknown or expired.
    pub fn exchange(&self, code: &str) -> Option<std::io::Result<String>> {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.0.retain(|l| l.expires > now);
        let position = position(inner.0.iter().map(|l| l.code.as_str()), code)?;
        inner.0.remove(position);
        let secret = match random() {
            Ok(secret) => secret,
            Err(e) => return Some(Err(e)),
        };
        inner.1.retain(|s| s.expires() > now);
        if inner.1.len() >= MAX_KEPT {
            inner.1.remove(0);
        }
        inner.1.push(Session {
            secret: secret.clone(),
            created: now,
            used: now,
        });
        Some(Ok(secret))
    }

    /// Whether `secret` is a live session (and marks it used).
    pub fn check(&self, secret: &str) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.1.retain(|s| s.expires() > now);
        match position(inner.1.iter().map(|s| s.secret.as_str()), secret) {
            Some(i) => {
                inner.1[i].used = now;
                true
            }
            None => false,
        }
    }

    /// Ends a session; whether it was live.
    pub fn revoke(&self, secret: &str) -> bool {
        let mut inner = self.lock();
        match position(inner.1.iter().map(|s| s.secret.as_str()), secret) {
            Some(i) => {
                inner.1.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Where `wanted` is among `items`, comparing each in constant time (and all of them).
fn position<'a>(items: impl Iterator<Item = &'a str>, wanted: &str) -> Option<usize> {
    items.enumerate().fold(None, |found, (i, item)| {
        if constant_time_eq(item.as_bytes(), wanted.as_bytes()) {
            Some(i)
        } else {
            found
        }
    })
}

fn random() -> std::io::Result<String> {
    kojibox_home::endpoint::new_token().map_err(std::io::Error::other)
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_code_works_once_and_its_session_until_revoked() {
        let sessions = Sessions::default();
        let code = sessions.new_login().unwrap();
        assert!(sessions.exchange("not-a-code").is_none());
        let secret = sessions.exchange(&code).unwrap().unwrap();
        assert!(sessions.exchange(&code).is_none(), "a code works once");
        assert!(sessions.check(&secret));
        assert!(!sessions.check(&code), "a code is not a session");
        assert!(sessions.revoke(&secret));
        assert!(!sessions.check(&secret));
    }

    #[test]
    fn the_oldest_sessions_go_first() {
        let sessions = Sessions::default();
        let secrets: Vec<String> = (0..=MAX_KEPT)
            .map(|_| {
                let code = sessions.new_login().unwrap();
                sessions.exchange(&code).unwrap().unwrap()
            })
            .collect();
        assert!(!sessions.check(&secrets[0]));
        assert!(secrets[1..].iter().all(|s| sessions.check(s)));
    }
}
