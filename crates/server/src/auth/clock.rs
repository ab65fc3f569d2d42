//! Where sessions read the time, so tests can hold it still.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The current time, as the session manager sees it.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to.
///
/// ```
/// use berth_server::auth::{Clock, ManualClock};
/// use std::time::{Duration, UNIX_EPOCH};
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_700_000_060));
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub fn new(at: SystemTime) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    pub fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Seconds since the Unix epoch (negative before it), as JWT numeric dates count them.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The instant `secs` seconds after the Unix epoch.
pub(crate) fn from_unix_seconds(secs: i64) -> SystemTime {
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// RFC 3339 in UTC to the second (`2024-05-01T12:00:00Z`), as Argo CD writes `passwordMtime`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let ts = k8s_openapi::jiff::Timestamp::from_second(unix_seconds(t)).unwrap_or_default();
    ts.to_string()
}

/// Reads an RFC 3339 time (any offset, fractional seconds allowed).
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    text.trim().parse::<k8s_openapi::jiff::Timestamp>().ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_mtime_is_written_as_rfc3339_utc_seconds() {
        let t = from_unix_seconds(1_714_564_800) + Duration::from_millis(750);
        assert_eq!(rfc3339(t), "2024-05-01T12:00:00Z");
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00Z"), Some(from_unix_seconds(1_714_564_800)));
        assert_eq!(parse_rfc3339("2024-05-01T14:00:00+02:00"), Some(from_unix_seconds(1_714_564_800)));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn unix_seconds_round_trip_before_and_after_the_epoch() {
        for s in [-5, 0, 1_700_000_000] {
            assert_eq!(unix_seconds(from_unix_seconds(s)), s);
        }
    }
}
