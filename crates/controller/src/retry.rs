//! Argo CD's sync retry: `retry.limit` attempts after the first, waiting `backoff.duration` times
//! `backoff.factor` to the power of the attempt, at most `backoff.maxDuration`.

use berth_api::application::RetryStrategy;
use std::time::Duration;

use crate::settings::parse_duration;

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

/// The wait before retry number `attempt` (1 = the first retry).
pub fn backoff(strategy: Option<&RetryStrategy>, attempt: i64) -> Duration {
    let b = strategy.and_then(|s| s.backoff.as_ref());
    let base = b.and_then(|b| b.duration.as_deref()).and_then(parse_duration).unwrap_or(DEFAULT_DURATION);
    let factor = b.and_then(|b| b.factor).map(|f| f.max(1) as u32).unwrap_or(DEFAULT_FACTOR);
    let max = b.and_then(|b| b.max_duration.as_deref()).and_then(parse_duration).unwrap_or(DEFAULT_MAX);
    let exponent = (attempt - 1).clamp(0, 30) as u32;
    let wait = base.saturating_mul(factor.saturating_pow(exponent));
    wait.min(max)
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
}
