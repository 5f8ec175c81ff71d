//! The one clock: tokio's. Every deadline a connection keeps is a [`tokio::time::Instant`],
//! so a test that pauses tokio's time (`#[tokio::test(start_paused = true)]`) sees every
//! timeout follow it.

use std::time::Duration;

pub(crate) use tokio::time::Instant;

/// A deadline that never comes (a timer with nothing to wait for): a year.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

/// `wait` after `from`; a wait too long to represent (`Duration::MAX`, say) means a year,
/// which is as good as never here and cannot overflow.
pub(crate) fn after(from: Instant, wait: Duration) -> Instant {
    from.checked_add(wait.min(FAR_FUTURE)).unwrap_or(from)
}
