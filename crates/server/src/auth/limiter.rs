//! Failed-login rate limiting, with Argo CD's settings: after `max_failures` failed logins for a username
//! within `window` of the last one, every attempt is refused (even with the right password) until the window
//! has passed since that last failure.

use super::{ADMIN, AuthError};
use rand::RngExt;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

const MAX_FAIL_COUNT_ENV: &str = "ARGOCD_SESSION_FAILURE_MAX_FAIL_COUNT";
const FAILURE_WINDOW_ENV: &str = "ARGOCD_SESSION_FAILURE_WINDOW_SECONDS";
const MAX_CACHE_SIZE_ENV: &str = "ARGOCD_SESSION_MAX_CACHE_SIZE";
/// Attempts for usernames that share a stripe wait for each other; 64 keeps that rare and memory fixed.
const STRIPES: usize = 64;

/// How failed logins are limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failed logins, within the window, after which a username is locked out (at least 1).
    pub max_failures: u32,
    /// How long failures are remembered after the last one; zero remembers them until the server restarts.
    pub window: Duration,
    /// Usernames whose failures are remembered at most (at least 1); `admin`'s are never dropped.
    pub max_cache_size: usize,
}

impl Default for LoginLimits {
    /// Argo CD's defaults: 5 failures, 300 s, 10 000 usernames.
    fn default() -> Self {
        LoginLimits { max_failures: 5, window: Duration::from_secs(300), max_cache_size: 10_000 }
    }
}

impl LoginLimits {
    /// Reads Argo CD's variables `ARGOCD_SESSION_FAILURE_MAX_FAIL_COUNT`, `ARGOCD_SESSION_FAILURE_WINDOW_SECONDS`
    /// and `ARGOCD_SESSION_MAX_CACHE_SIZE`; an unset, unreadable or out-of-range value keeps its default.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read by `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let d = LoginLimits::default();
        let number = |name: &str, default: u64, min: u64| -> u64 {
            let Some(text) = lookup(name) else { return default };
            match text.trim().parse::<u64>() {
                Ok(n) if n >= min && n <= i32::MAX as u64 => n,
                _ => {
                    tracing::warn!(variable = name, value = %text, default, "ignoring an out-of-range login limit");
                    default
                }
            }
        };
        LoginLimits {
            max_failures: number(MAX_FAIL_COUNT_ENV, d.max_failures.into(), 1) as u32,
            window: Duration::from_secs(number(FAILURE_WINDOW_ENV, d.window.as_secs(), 0)),
            max_cache_size: number(MAX_CACHE_SIZE_ENV, d.max_cache_size as u64, 1) as usize,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: SystemTime,
}

/// The failure counts, and the per-username turns that make check, compare and record one step.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: LoginLimits,
    failures: Mutex<HashMap<String, Failures>>,
    stripes: Vec<Mutex<()>>,
    stripe_hasher: std::collections::hash_map::RandomState,
}

impl Limiter {
    pub(crate) fn new(limits: LoginLimits) -> Self {
        Limiter {
            limits,
            failures: Mutex::new(HashMap::new()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            stripe_hasher: Default::default(),
        }
    }

    pub(crate) fn limits(&self) -> LoginLimits {
        self.limits
    }

    /// Waits for this username's turn. Held across the password comparison, so parallel attempts cannot
    /// all pass the check before the first failure is counted.
    pub(crate) fn turn(&self, username: &str) -> MutexGuard<'_, ()> {
        let stripe = self.stripe_hasher.hash_one(username) as usize % STRIPES;
        self.stripes[stripe].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses the attempt while the username is locked out. Nothing here logs the username: people type
    /// passwords into username fields.
    pub(crate) fn check(&self, username: &str, now: SystemTime) -> Result<(), AuthError> {
        let failures = self.lock();
        let Some(f) = failures.get(username).filter(|f| self.remembered(f, now)) else { return Ok(()) };
        if f.count < self.limits.max_failures {
            return Ok(());
        }
        let retry_after = if self.limits.window.is_zero() {
            Duration::MAX
        } else {
            self.limits.window.saturating_sub(now.duration_since(f.last).unwrap_or_default())
        };
        Err(AuthError::TooManyAttempts { retry_after })
    }

    /// Counts a failure; returns how many are now remembered for the username.
    pub(crate) fn record_failure(&self, username: &str, now: SystemTime) -> u32 {
        let mut failures = self.lock();
        failures.retain(|_, f| self.remembered(f, now));
        if !failures.contains_key(username) && failures.len() >= self.limits.max_cache_size {
            // Flooding the cache with made-up names must not wipe admin's count (Argo CD's CVE-2024-21662).
            let candidates: Vec<String> = failures.keys().filter(|k| *k != ADMIN).cloned().collect();
            if !candidates.is_empty() {
                let victim = &candidates[rand::rng().random_range(0..candidates.len())];
                failures.remove(victim);
            }
        }
        let f = failures.entry(username.to_string()).or_insert(Failures { count: 0, last: now });
        f.count += 1;
        f.last = now;
        f.count
    }

    /// A successful login clears the username's failures.
    pub(crate) fn forget(&self, username: &str) {
        self.lock().remove(username);
    }

    fn remembered(&self, f: &Failures, now: SystemTime) -> bool {
        self.limits.window.is_zero() || now.duration_since(f.last).unwrap_or_default() < self.limits.window
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn remembered_usernames(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn limiter(max_failures: u32, window: u64, cache: usize) -> Limiter {
        Limiter::new(LoginLimits { max_failures, window: Duration::from_secs(window), max_cache_size: cache })
    }

    #[test]
    fn locks_out_after_max_failures_until_the_window_passes_since_the_last() {
        let l = limiter(3, 300, 10);
        for s in 0..3 {
            assert!(l.check("alice", at(s)).is_ok());
            l.record_failure("alice", at(s));
        }
        match l.check("alice", at(62)) {
            Err(AuthError::TooManyAttempts { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(240))
            }
            other => panic!("expected a lockout, got {other:?}"),
        }
        assert!(l.check("bob", at(62)).is_ok(), "other usernames are not affected");
        assert!(l.check("alice", at(302)).is_ok(), "window passed since the last failure");
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_add_up() {
        let l = limiter(2, 60, 10);
        l.record_failure("alice", at(0));
        l.record_failure("alice", at(100));
        assert!(l.check("alice", at(101)).is_ok());
    }

    #[test]
    fn success_clears_the_count() {
        let l = limiter(2, 60, 10);
        l.record_failure("alice", at(0));
        l.forget("alice");
        l.record_failure("alice", at(1));
        assert!(l.check("alice", at(2)).is_ok());
    }

    #[test]
    fn zero_window_remembers_failures_forever() {
        let l = limiter(1, 0, 10);
        l.record_failure("alice", at(0));
        let err = l.check("alice", at(1_000_000)).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "try again after the server restarts (ARGOCD_SESSION_FAILURE_WINDOW_SECONDS is 0)"
            )
        );
    }

    #[test]
    fn a_full_cache_drops_expired_names_first_and_never_admin() {
        let l = limiter(2, 60, 3);
        l.record_failure("admin", at(0));
        l.record_failure("admin", at(0));
        for (i, name) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            l.record_failure(name, at(i as u64));
        }
        assert_eq!(l.remembered_usernames(), 3);
        assert!(l.check("admin", at(10)).is_err(), "admin's lockout survives the flood");
        l.record_failure("g", at(200));
        assert_eq!(l.remembered_usernames(), 1, "expired names went first");
    }

    #[test]
    fn limits_come_from_argo_cd_variables_and_bad_values_keep_defaults() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(LoginLimits::from_lookup(env(&[])), LoginLimits::default());
        let set = LoginLimits::from_lookup(env(&[
            ("ARGOCD_SESSION_FAILURE_MAX_FAIL_COUNT", "3"),
            ("ARGOCD_SESSION_FAILURE_WINDOW_SECONDS", "0"),
            ("ARGOCD_SESSION_MAX_CACHE_SIZE", "50"),
        ]));
        assert_eq!(set, LoginLimits { max_failures: 3, window: Duration::ZERO, max_cache_size: 50 });
        let bad = LoginLimits::from_lookup(env(&[
            ("ARGOCD_SESSION_FAILURE_MAX_FAIL_COUNT", "0"),
            ("ARGOCD_SESSION_FAILURE_WINDOW_SECONDS", "soon"),
        ]));
        assert_eq!(bad, LoginLimits::default());
    }
}
