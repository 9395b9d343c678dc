//! What the dashboard's sign-in keeps in memory: sessions (a random id in
//! the cookie, who it is on the server, an expiry; sign-out deletes it),
//! the single sign-on attempts under way (state, PKCE verifier, nonce and
//! the page to return to), and the per-address limit on sign-in attempts.
//!
//! All of it lives in this process only: a restart signs everyone out,
//! which is the price of a cookie that carries nothing but a random id.
//! Each map is bounded; the oldest entries make room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a dashboard session lasts.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// How long a single sign-on attempt may take.
const ATTEMPT_LIFETIME: Duration = Duration::from_secs(600);
/// Most sessions (and attempts) held at once.
const MOST_ENTRIES: usize = 100_000;

/// Who a session (or a request) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Viewer {
    /// Anyone: the server needs no credential to read.
    Open,
    /// A holder of the hamctl token.
    Token,
    /// A person who signed in with the identity provider.
    Person {
        /// Their name.
        name: String,
        /// Their email.
        email: String,
    },
}

/// A random id: 32 bytes of the operating system's randomness, in hex.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the operating system gives random bytes");
    hex::encode(bytes)
}

struct Entry<T> {
    value: T,
    expires: Instant,
}

/// Entries by random id, each with an expiry.
struct Expiring<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
    lifetime: Duration,
}

impl<T: Clone> Expiring<T> {
    fn new(lifetime: Duration) -> Self {
        Expiring {
            entries: Mutex::new(HashMap::new()),
            lifetime,
        }
    }

    fn insert(&self, value: T) -> String {
        let id = random_id();
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("sessions lock not poisoned");
        if entries.len() >= MOST_ENTRIES {
            entries.retain(|_, e| e.expires > now);
        }
        if entries.len() >= MOST_ENTRIES {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            id.clone(),
            Entry {
                value,
                expires: now + self.lifetime,
            },
        );
        id
    }

    fn get(&self, id: &str) -> Option<T> {
        let mut entries = self.entries.lock().expect("sessions lock not poisoned");
        match entries.get(id) {
            Some(entry) if entry.expires > Instant::now() => Some(entry.value.clone()),
            Some(_) => {
                entries.remove(id);
                None
            }
            None => None,
        }
    }

    fn remove(&self, id: &str) -> Option<T> {
        let entry = self
            .entries
            .lock()
            .expect("sessions lock not poisoned")
            .remove(id)?;
        (entry.expires > Instant::now()).then_some(entry.value)
    }
}

/// The signed-in sessions.
pub(crate) struct Sessions(Expiring<Viewer>);

impl Sessions {
    pub(crate) fn new() -> Self {
        Sessions(Expiring::new(SESSION_LIFETIME))
    }

    /// A new session for `viewer`: its id, for the cookie.
    pub(crate) fn open(&self, viewer: Viewer) -> String {
        self.0.insert(viewer)
    }

    /// Who session `id` is, if it exists and has not expired.
    pub(crate) fn get(&self, id: &str) -> Option<Viewer> {
        self.0.get(id)
    }

    /// Ends session `id` (sign-out): its cookie works no more.
    pub(crate) fn revoke(&self, id: &str) {
        self.0.remove(id);
    }
}

/// A single sign-on attempt under way.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// The PKCE verifier of the code challenge sent.
    pub(crate) verifier: String,
    /// The nonce the ID token must carry.
    pub(crate) nonce: String,
    /// Where the code comes back to (sent again with the code).
    pub(crate) redirect_uri: String,
    /// The page to return to.
    pub(crate) next: String,
}

/// The attempts under way, by their `state`.
pub(crate) struct Attempts(Expiring<Attempt>);

impl Attempts {
    pub(crate) fn new() -> Self {
        Attempts(Expiring::new(ATTEMPT_LIFETIME))
    }

    /// Records an attempt; its `state`.
    pub(crate) fn start(&self, attempt: Attempt) -> String {
        self.0.insert(attempt)
    }

    /// The attempt of `state`, once: a replayed callback finds nothing.
    pub(crate) fn finish(&self, state: &str) -> Option<Attempt> {
        self.0.remove(state)
    }
}

/// Sign-in attempts per client address: a bucket of [`BURST`] attempts,
/// refilled by one every [`REFILL`].
pub(crate) struct SignInLimit {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Attempts an address may make at once.
pub(crate) const BURST: f64 = 10.0;
/// How often an address gets one more attempt.
pub(crate) const REFILL: Duration = Duration::from_secs(6);

impl SignInLimit {
    pub(crate) fn new() -> Self {
        SignInLimit {
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `address`: `Err(wait)` when it has none left.
    pub(crate) fn take(&self, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limit lock not poisoned");
        if buckets.len() >= MOST_ENTRIES {
            // Full buckets are the same as none.
            buckets.retain(|_, (tokens, at)| {
                *tokens + at.elapsed().as_secs_f64() / REFILL.as_secs_f64() < BURST
            });
        }
        let (tokens, at) = buckets.entry(address).or_insert((BURST, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() / REFILL.as_secs_f64()).min(BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(REFILL.mul_f64(1.0 - *tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_session_is_gone_and_ids_are_random() {
        let sessions = Sessions::new();
        let a = sessions.open(Viewer::Token);
        let b = sessions.open(Viewer::Token);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(sessions.get(&a), Some(Viewer::Token));
        sessions.revoke(&a);
        assert_eq!(sessions.get(&a), None);
        assert_eq!(sessions.get(&b), Some(Viewer::Token));
        assert_eq!(sessions.get("made-up"), None);
    }

    #[test]
    fn an_expired_entry_is_not_found() {
        let expiring = Expiring::new(Duration::ZERO);
        let id = expiring.insert(1);
        assert_eq!(expiring.get(&id), None);
    }

    #[test]
    fn attempts_finish_once() {
        let attempts = Attempts::new();
        let state = attempts.start(Attempt {
            verifier: "v".into(),
            nonce: "n".into(),
            redirect_uri: "r".into(),
            next: "/".into(),
        });
        assert!(attempts.finish(&state).is_some());
        assert!(attempts.finish(&state).is_none());
    }

    #[test]
    fn an_address_gets_a_burst_then_waits() {
        let limit = SignInLimit::new();
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..BURST as usize {
            limit.take(one).unwrap();
        }
        let wait = limit.take(one).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= REFILL, "{wait:?}");
        limit.take(other).unwrap();
    }
}
