//! [`Backoff`]: how long the client waits between reconnect attempts.

use std::time::Duration;

/// The delays between reconnect attempts: `initial_delay × multiplier^attempt`, capped at
/// `max_delay`, plus up to `jitter × delay` of random extra so that many clients cut off
/// together do not return together. The defaults are Line's: 1 s, × 1.5, at most 30 s,
/// up to 50 % jitter.
///
/// ```
/// use std::time::Duration;
/// use roomwire::client::Backoff;
/// let b = Backoff::new(Duration::from_millis(100)).multiplier(2.0).max_delay(Duration::from_secs(1)).jitter(0.0);
/// assert_eq!(b.delay(0), Duration::from_millis(100));
/// assert_eq!(b.delay(3), Duration::from_millis(800));
/// assert_eq!(b.delay(10), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial_delay: Duration,
    multiplier: f64,
    max_delay: Duration,
    jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_delay: Duration::from_secs(1),
            multiplier: 1.5,
            max_delay: Duration::from_secs(30),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// Line's backoff with a different first delay.
    pub fn new(initial_delay: Duration) -> Self {
        Backoff {
            initial_delay,
            ..Backoff::default()
        }
    }

    /// The factor each attempt multiplies the delay by; values below 1 are raised to 1.
    /// Defaults to 1.5.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest delay, before jitter. Defaults to 30 seconds.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// The largest random extra, as a fraction of the delay (0 for none). Defaults to 0.5.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.max(0.0)
        } else {
            0.0
        };
        self
    }

    /// The delay before attempt `attempt` (counting from 0), without jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = self.multiplier.powi(attempt.min(1000) as i32);
        let secs = (self.initial_delay.as_secs_f64() * factor).min(self.max_delay.as_secs_f64());
        // Saturates: a `max_delay` of `Duration::MAX` means no cap, not a panic.
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(self.max_delay)
    }

    /// The delay before attempt `attempt`, with random jitter added.
    pub(crate) fn delay_with_jitter(&self, attempt: u32) -> Duration {
        let base = self.delay(attempt);
        if self.jitter == 0.0 {
            return base;
        }
        let extra = base.as_secs_f64() * rand::random_range(0.0..=self.jitter);
        base.saturating_add(Duration::try_from_secs_f64(extra).unwrap_or(Duration::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bound() {
        let b = Backoff::new(Duration::from_millis(100));
        for attempt in 0..20 {
            let d = b.delay_with_jitter(attempt);
            assert!(d >= b.delay(attempt));
            assert!(d <= b.delay(attempt).mul_f64(1.5) + Duration::from_nanos(1));
        }
    }

    #[test]
    fn unbounded_delays_saturate_instead_of_panicking() {
        let b = Backoff::new(Duration::from_secs(1))
            .multiplier(1e300)
            .max_delay(Duration::MAX)
            .jitter(1.0);
        for attempt in [0, 1, 5, 1000, u32::MAX] {
            assert!(b.delay_with_jitter(attempt) >= b.delay(attempt));
        }
        assert_eq!(b.delay(u32::MAX), Duration::MAX);
    }

    #[test]
    fn multiplier_below_one_does_not_shrink_delays() {
        let b = Backoff::new(Duration::from_millis(100))
            .multiplier(0.1)
            .jitter(0.0);
        assert_eq!(b.delay(5), Duration::from_millis(100));
    }
}
