//! Argo CD's sync retry: `retry.limit` attempts after the first, waiting `backoff.duration` times
//! `backoff.factor` to the power of the attempt, at most `backoff.maxDuration`.

use berth_api::application::RetryStrategy;
use std::time::Duration;

use crate::settings::{LONGEST_DURATION, not_a_duration, parse_signed_duration};

const DEFAULT_DURATION: Duration = Duration::from_secs(5);
const DEFAULT_FACTOR: u32 = 2;
const DEFAULT_MAX: Duration = Duration::from_secs(180);

/// Whether a failed attempt number `attempts` (0 = the first) may be retried; a negative limit retries
/// without end, as in Argo CD.
pub fn allowed(strategy: Option<&RetryStrategy>, attempts: i64) -> bool {
    match strategy.and_then(|s| s.limit) {
        None => false,
        Some(limit) if limit < 0 => true,
        Some(limit) => attempts < limit,
    }
}

/// What in `strategy` (at `field`, such as `spec.syncPolicy.retry`) Argo CD refuses when it computes a
/// retry (its `NextRetryAt` errors): a `backoff.duration` or `backoff.maxDuration` that is neither whole
/// seconds nor a Go duration, or that is past Go's longest. Any `factor` is taken, as in Argo CD.
pub fn check(strategy: Option<&RetryStrategy>, field: &str) -> Result<(), String> {
    let Some(b) = strategy.and_then(|s| s.backoff.as_ref()) else { return Ok(()) };
    for (name, value) in [("duration", &b.duration), ("maxDuration", &b.max_duration)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty())
            && parse_signed_duration(value).is_none()
        {
            return Err(not_a_duration(&format!("{field}.backoff.{name}"), value));
        }
    }
    Ok(())
}

/// The wait before retry number `attempt` (1 = the first retry), bounded whatever the spec says: a negative
/// `duration` waits nothing, a `factor` below 1 counts as 1, a `maxDuration` of zero or less caps nothing
/// (as in Argo CD), and no wait is longer than Go's longest duration. A value [`check`] refuses counts as
/// its default.
pub fn backoff(strategy: Option<&RetryStrategy>, attempt: i64) -> Duration {
    let b = strategy.and_then(|s| s.backoff.as_ref());
    let base = match b.and_then(|b| b.duration.as_deref()).and_then(parse_signed_duration) {
        Some(d) => Duration::try_from(d).unwrap_or(Duration::ZERO),
        None => DEFAULT_DURATION,
    };
    let factor =
        b.and_then(|b| b.factor).map_or(DEFAULT_FACTOR, |f| u32::try_from(f.max(1)).unwrap_or(u32::MAX));
    let max = match b.and_then(|b| b.max_duration.as_deref()).and_then(parse_signed_duration) {
        Some(d) => Duration::try_from(d).ok().filter(|d| !d.is_zero()).unwrap_or(LONGEST_DURATION),
        None => DEFAULT_MAX,
    };
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let wait = base.saturating_mul(factor.saturating_pow(exponent));
    wait.min(max).min(LONGEST_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::application::Backoff;

    fn strategy(limit: i64, duration: &str, factor: i64, max: &str) -> RetryStrategy {
        RetryStrategy {
            limit: Some(limit),
            backoff: Some(Backoff {
                duration: Some(duration.into()),
                factor: Some(factor),
                max_duration: Some(max.into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn backoff_grows_by_the_factor_up_to_the_maximum() {
        let s = strategy(5, "5s", 2, "3m");
        let waits: Vec<u64> = (1..=7).map(|n| backoff(Some(&s), n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 180]);
        assert_eq!(backoff(None, 1), Duration::from_secs(5));
    }

    #[test]
    fn the_limit_counts_retries_and_a_negative_one_has_no_end() {
        let s = strategy(2, "1s", 1, "1s");
        assert!(allowed(Some(&s), 0));
        assert!(allowed(Some(&s), 1));
        assert!(!allowed(Some(&s), 2));
        assert!(allowed(Some(&strategy(-1, "1s", 1, "1s")), 100));
        assert!(!allowed(None, 0));
    }

    #[test]
    fn absurd_backoffs_stay_bounded_and_never_panic() {
        let cases = [
            ("99999999999999999999s", i64::MAX, "99999999999999999999s"),
            ("9223372036s", i64::MAX, "0"),
            ("2562047h", 1 << 32, "-1s"),
            ("1s", i64::MIN, "1s"),
            ("-5s", 2, "3m"),
            ("NaN", -7, "inf"),
        ];
        for (duration, factor, max) in cases {
            let s = strategy(-1, duration, factor, max);
            for attempt in [i64::MIN, -1, 0, 1, 2, 31, 64, i64::MAX] {
                assert!(
                    backoff(Some(&s), attempt) <= LONGEST_DURATION,
                    "{duration} {factor} {max} {attempt}"
                );
            }
        }
        let huge = strategy(-1, "1s", i64::MAX, "0");
        assert_eq!(backoff(Some(&huge), 1), Duration::from_secs(1));
        assert_eq!(
            backoff(Some(&huge), 2),
            Duration::from_secs(u64::from(u32::MAX)),
            "no wrap to a factor of 0"
        );
        let longest = strategy(-1, "2562047h", 2, "0");
        assert_eq!(
            backoff(Some(&longest), 2),
            LONGEST_DURATION,
            "a zero maxDuration caps nothing, as in Argo CD"
        );
        let shrinking = strategy(-1, "2s", -3, "1m");
        assert_eq!(backoff(Some(&shrinking), 5), Duration::from_secs(2), "a factor below 1 counts as 1");
        assert_eq!(backoff(Some(&strategy(-1, "-5s", 2, "1m")), 3), Duration::ZERO);
        let unreadable = strategy(-1, "99999999999999999999s", 2, "soon");
        assert_eq!(backoff(Some(&unreadable), 1), DEFAULT_DURATION);
        assert_eq!(backoff(Some(&unreadable), 30), DEFAULT_MAX);
    }

    #[test]
    fn a_backoff_duration_go_does_not_read_is_refused_naming_the_field() {
        let field = "spec.syncPolicy.retry";
        assert_eq!(
            check(Some(&strategy(-1, "99999999999999999999s", 2, "3m")), field),
            Err("spec.syncPolicy.retry.backoff.duration: \"99999999999999999999s\" is not a duration (Go's \
                 time.ParseDuration form, at most 2562047h)"
                .into())
        );
        let e = check(Some(&strategy(-1, "5s", 2, "forever")), field).unwrap_err();
        assert!(e.starts_with("spec.syncPolicy.retry.backoff.maxDuration: \"forever\" is not"), "{e}");
        for (duration, max) in
            [("5s", "3m"), ("5", "180"), ("-5s", "0"), ("9223372036s", "2562047h"), ("", "")]
        {
            assert_eq!(
                check(Some(&strategy(-1, duration, i64::MIN, max)), field),
                Ok(()),
                "{duration} {max}"
            );
        }
        assert_eq!(check(Some(&RetryStrategy::default()), field), Ok(()));
        assert_eq!(check(None, field), Ok(()));
    }
}
