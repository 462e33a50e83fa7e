//! Exponential backoff with full jitter, capped, honouring a provider's `retry-after`.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max + 1` attempts on one provider at most).
    pub max: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max: 2,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based). `roll` in [0, 1) spreads retries
    /// ("full jitter"), so clients that failed together do not retry together. A
    /// `retry_after` from the provider is honoured up to `max_backoff`.
    pub fn delay(&self, retry: u32, roll: f64, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_backoff);
        }
        let exp = self.backoff.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.max_backoff);
        // Half fixed, half random: never zero, never above the cap.
        cap / 2 + cap.mul_f64(roll.clamp(0.0, 1.0) / 2.0)
    }
}

/// Parses `retry-after` as seconds (the HTTP-date form is rare from LLM providers and is
/// ignored, falling back to backoff).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter() {
        let p = RetryPolicy {
            max: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        assert_eq!(p.delay(1, 0.0, None), Duration::from_millis(50));
        assert_eq!(p.delay(1, 1.0, None), Duration::from_millis(100));
        assert_eq!(p.delay(2, 1.0, None), Duration::from_millis(200));
        assert_eq!(p.delay(3, 1.0, None), Duration::from_millis(350), "capped");
        assert_eq!(
            p.delay(40, 0.5, None),
            Duration::from_micros(262_500),
            "no overflow"
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, 0.3, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(1, 0.3, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
