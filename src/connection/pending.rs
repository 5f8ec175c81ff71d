//! [`PendingReplies`]: the requests a connection sent that await the peer's response.
//!
//! Each entry is its own one-shot slot: the waiter's waker while it waits, then the outcome
//! until the waiter takes it. Deadlines live in the entries too and are enforced by the
//! connection's driver with the one timer it already has (see [`expire`](PendingReplies::expire)),
//! so a request costs no allocation and no timer registration of its own.

use crate::fast_hash::FastHash;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::clock::Instant;

use crate::error::SendError;
use crate::metrics::{Meter, Sent};
use crate::protocol::Payload;

/// What a pending request ends with.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The peer's payload, or an error ([`SendError::Rejected`], [`SendError::Disconnected`]).
    Reply(Result<Payload, SendError>),
    /// The deadline passed first. The waiter knows the request's name and timeout, so it
    /// builds the [`SendError::Timeout`].
    TimedOut,
}

impl Outcome {
    /// The waiter's result: the reply, or [`SendError::Timeout`] naming the request's `name` and
    /// `timeout`.
    pub(crate) fn into_reply(self, name: &str, timeout: Duration) -> Result<Payload, SendError> {
        match self {
            Outcome::Reply(reply) => reply,
            Outcome::TimedOut => Err(SendError::Timeout {
                name: name.to_owned(),
                timeout,
            }),
        }
    }
}

/// Request ids come from one process-wide counter, so no two requests in flight anywhere share
/// an id and a broadcast that awaits replies can use one id (and one encoded frame) for all
/// its recipients. Starts at 1: Line's client treats a falsy id as "no response wanted".
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_request_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// How often, at most, the driver scans a table for expired entries: timeouts are enforced
/// to within this (tokio's own timers round to a millisecond too).
const EXPIRY_RESOLUTION: Duration = Duration::from_millis(1);

/// Deadlines are kept as nanoseconds since this instant (one for the process: a table holds
/// no instant of its own). It lies twenty years before the first use, so that no instant a
/// table sees is earlier, whichever runtime's clock it comes from: a runtime whose time is
/// paused starts its clock at the real time it was created, and may have moved it far ahead
/// when another runtime first sets the epoch (a test's paused clock jumps to its timers).
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = std::time::Instant::now();
        let long_ago = now
            .checked_sub(Duration::from_secs(20 * 365 * 86_400))
            .unwrap_or(now);
        Instant::from_std(long_ago)
    })
}

/// No deadline at all (an empty table).
const NONE: u64 = u64::MAX;

/// `at` in nanoseconds since the [`epoch`]; saturates (u64 nanoseconds last 584 years).
fn nanos(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(NONE - 1)
}

/// The pending-reply table of one connection.
///
/// Every entry ends exactly once: [`complete`](Self::complete) (response),
/// [`expire`](Self::expire) (deadline), [`close`](Self::close) (disconnect), or
/// [`remove`](Self::remove) by its waiter when it stops waiting (see
/// [`Waiting`](super::peer::Waiting)). After `close` nothing can be inserted, so nothing can
/// wait forever.
#[derive(Debug)]
pub(crate) struct PendingReplies {
    inner: Mutex<Table>,
    /// When the table next needs a scan for expired entries (nanoseconds since [`epoch`];
    /// [`NONE`] when it holds none): no entry's deadline is earlier, nor is the last scan
    /// plus [`EXPIRY_RESOLUTION`]. The driver arms its timer with it. Written under the lock.
    earliest: AtomicU64,
    /// Counts the requests and their outcomes (a server's connection) or not (the client's).
    pub(crate) meter: Meter,
}

impl Default for PendingReplies {
    fn default() -> Self {
        PendingReplies {
            inner: Mutex::default(),
            earliest: AtomicU64::new(NONE),
            meter: Meter::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<u64, Entry, FastHash>,
    closed: bool,
}

#[derive(Debug)]
struct Entry {
    /// Nanoseconds since the table's epoch.
    deadline: u64,
    state: State,
}

/// Kept small (with its key and deadline, one cache line): the response is awaited long
/// after the entry was written, and touching one line instead of two is measurable.
#[derive(Debug)]
enum State {
    /// No outcome yet; the waker of whoever polled last.
    Waiting(Option<Waker>),
    /// Answered; the waiter has not taken the payload yet.
    Replied(Payload),
    /// Rejected or disconnected (boxed: errors are rare and large).
    Failed(Box<SendError>),
    /// The deadline passed.
    TimedOut,
}

impl State {
    fn ended(outcome: Result<Payload, SendError>) -> State {
        match outcome {
            Ok(payload) => State::Replied(payload),
            Err(e) => State::Failed(Box::new(e)),
        }
    }

    /// The outcome of an entry that has one.
    fn outcome(self) -> Option<Outcome> {
        match self {
            State::Waiting(_) => None,
            State::Replied(payload) => Some(Outcome::Reply(Ok(payload))),
            State::Failed(e) => Some(Outcome::Reply(Err(*e))),
            State::TimedOut => Some(Outcome::TimedOut),
        }
    }
}

impl PendingReplies {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // The lock is never held across a call that can panic, so poisoning cannot leave the
        // table inconsistent: recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `id`, to end by `deadline` at the latest; `waker` is woken when it does.
    /// `true` when no deadline in the table was earlier: the driver's timer must learn of it
    /// (see [`Peer::send_request`]). Whoever registers must [`remove`](Self::remove) it when
    /// it stops waiting (see [`Request`] and [`Waiting`]).
    ///
    /// [`Peer::send_request`]: super::peer::Peer::send_request
    /// [`Request`]: super::peer::Request
    /// [`Waiting`]: super::peer::Waiting
    pub(crate) fn insert(
        &self,
        id: u64,
        deadline: Instant,
        waker: Option<Waker>,
    ) -> Result<bool, SendError> {
        let deadline = nanos(deadline);
        let mut table = self.table();
        if table.closed {
            return Err(SendError::Disconnected);
        }
        table.entries.insert(
            id,
            Entry {
                deadline,
                state: State::Waiting(waker),
            },
        );
        self.meter.request_pending();
        let earlier = deadline < self.earliest.load(Ordering::Relaxed);
        if earlier {
            self.earliest.store(deadline, Ordering::Release);
        }
        Ok(earlier)
    }

    /// The outcome of `id` once it has one (taking it and removing the entry); until then,
    /// `cx`'s waker is woken when it does.
    pub(crate) fn poll(&self, id: u64, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut table = self.table();
        let Some(entry) = table.entries.get_mut(&id) else {
            // Gone: its waiter removed it (and is not polling any more), or it never was.
            return Poll::Ready(Outcome::Reply(Err(SendError::Disconnected)));
        };
        match &mut entry.state {
            State::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            _ => match table.entries.remove(&id).and_then(|e| e.state.outcome()) {
                Some(outcome) => Poll::Ready(outcome),
                None => unreachable!("the entry was just seen ended"),
            },
        }
    }

    /// Forgets `id` (its waiter stopped waiting); nothing if it is gone already.
    pub(crate) fn remove(&self, id: u64) {
        if let Some(Entry {
            state: State::Waiting(_),
            ..
        }) = self.table().entries.remove(&id)
        {
            self.meter.request_sent(Sent::Cancelled);
        }
    }

    /// Forgets `id`, which was never sent (its frame could not be queued).
    pub(crate) fn withdraw(&self, id: u64) {
        if let Some(Entry {
            state: State::Waiting(_),
            ..
        }) = self.table().entries.remove(&id)
        {
            self.meter.request_withdrawn();
        }
    }

    /// Delivers a response; `false` when nothing waits for `id` (late, unknown or duplicate).
    pub(crate) fn complete(&self, id: u64, reply: Result<Payload, SendError>) -> bool {
        // A response resolves or rejects: the router passes no other error.
        let sent = if reply.is_ok() {
            Sent::Ok
        } else {
            Sent::Rejected
        };
        let waker = {
            let mut table = self.table();
            match table.entries.get_mut(&id) {
                Some(Entry {
                    state: state @ State::Waiting(_),
                    ..
                }) => match std::mem::replace(state, State::ended(reply)) {
                    State::Waiting(waker) => waker,
                    _ => unreachable!("the entry was just seen waiting"),
                },
                _ => return false,
            }
        };
        self.meter.request_sent(sent);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// When the table next needs a scan for expired entries: no deadline in it is earlier.
    /// `None` when it holds none.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        match self.earliest.load(Ordering::Acquire) {
            NONE => None,
            nanos => Some(epoch() + Duration::from_nanos(nanos)),
        }
    }

    /// Ends every entry whose deadline is `now` or earlier with [`Outcome::TimedOut`], and
    /// moves [`earliest`](Self::earliest) to when the next scan is due: the earliest deadline
    /// left, but not before `now` plus [`EXPIRY_RESOLUTION`]. Nothing when no scan is due.
    ///
    /// One pass over the table. The driver calls it when its timer fires; answered requests
    /// leave nothing behind, so in the usual case (replies well within the timeout) that is
    /// one pass per timeout period.
    pub(crate) fn expire(&self, now: Instant) {
        if self.earliest().is_none_or(|at| at > now) {
            return;
        }
        let not_before = nanos(now + EXPIRY_RESOLUTION);
        let now = nanos(now);
        let mut expired = Vec::new();
        {
            let mut table = self.table();
            let mut earliest = NONE;
            for entry in table.entries.values_mut() {
                if let State::Waiting(waker) = &mut entry.state {
                    if entry.deadline <= now {
                        expired.extend(waker.take());
                        entry.state = State::TimedOut;
                        self.meter.request_sent(Sent::Timeout);
                    } else {
                        earliest = earliest.min(entry.deadline);
                    }
                }
            }
            if earliest != NONE {
                earliest = earliest.max(not_before);
            }
            self.earliest.store(earliest, Ordering::Release);
        }
        for waker in expired {
            waker.wake();
        }
    }

    /// Fails everything still waiting with [`SendError::Disconnected`] and refuses new entries.
    /// Outcomes already delivered stay for their waiters to take: a response that came just
    /// before the close is not turned into a disconnect.
    pub(crate) fn close(&self) {
        let mut woken = Vec::new();
        {
            let mut table = self.table();
            if table.closed {
                return;
            }
            table.closed = true;
            self.earliest.store(NONE, Ordering::Release);
            for entry in table.entries.values_mut() {
                if let State::Waiting(waker) = &mut entry.state {
                    woken.extend(waker.take());
                    entry.state = State::Failed(Box::new(SendError::Disconnected));
                    self.meter.request_sent(Sent::Disconnected);
                }
            }
        }
        for waker in woken {
            waker.wake();
        }
    }

    /// How many requests have no outcome yet, or one their caller has not taken yet.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table().entries.len()
    }

    /// How many requests still wait for an outcome.
    pub(crate) fn waiting(&self) -> usize {
        self.table()
            .entries
            .values()
            .filter(|e| matches!(e.state, State::Waiting(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll(t: &PendingReplies, id: u64) -> Poll<Outcome> {
        t.poll(id, &mut Context::from_waker(Waker::noop()))
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn an_entry_fits_a_cache_line_with_its_key() {
        assert!(std::mem::size_of::<(u64, Entry)>() <= 64);
    }

    #[test]
    fn every_outcome_leaves_the_table_empty() {
        let t = PendingReplies::default();
        t.insert(1, far(), None).unwrap();
        assert!(poll(&t, 1).is_pending());
        assert_eq!(t.len(), 1);
        assert!(t.complete(1, Err(SendError::Disconnected)));
        assert!(matches!(
            poll(&t, 1),
            Poll::Ready(Outcome::Reply(Err(SendError::Disconnected)))
        ));
        assert_eq!(t.len(), 0);
        // Given up without an answer (cancellation).
        t.insert(2, far(), None).unwrap();
        t.remove(2);
        assert_eq!(t.len(), 0);
        assert!(
            !t.complete(2, Err(SendError::Disconnected)),
            "late replies match nothing"
        );
    }

    #[test]
    fn close_fails_waiters_and_refuses_new_ones() {
        let t = PendingReplies::default();
        t.insert(1, far(), None).unwrap();
        t.close();
        assert!(matches!(
            poll(&t, 1),
            Poll::Ready(Outcome::Reply(Err(SendError::Disconnected)))
        ));
        assert!(matches!(
            t.insert(2, far(), None),
            Err(SendError::Disconnected)
        ));
        assert_eq!(t.len(), 0);
        assert_eq!(t.earliest(), None);
    }

    #[test]
    fn close_keeps_an_outcome_delivered_before_it() {
        let t = PendingReplies::default();
        t.insert(1, far(), None).unwrap();
        let rejected = SendError::Rejected(crate::Rejection::new("No", "not now"));
        assert!(t.complete(1, Err(rejected)));
        t.close();
        assert!(matches!(
            poll(&t, 1),
            Poll::Ready(Outcome::Reply(Err(SendError::Rejected(_))))
        ));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn the_epoch_lies_before_any_instant_a_paused_clock_gives() {
        let now = Instant::now();
        assert!(epoch() < now);
        assert!(nanos(now) > 0);
    }

    #[test]
    fn expire_ends_only_what_is_due_and_tracks_the_earliest_deadline() {
        let t = PendingReplies::default();
        let now = Instant::now();
        let soon = now + Duration::from_millis(5);
        let later = now + Duration::from_secs(5);
        t.insert(1, later, None).unwrap();
        t.insert(2, soon, None).unwrap();
        assert!(t.earliest().unwrap() <= soon);
        t.expire(now);
        assert!(poll(&t, 2).is_pending(), "not due yet");

        t.expire(soon);
        let left = t.earliest().expect("one entry is left");
        assert!(left > soon && left <= later);
        assert!(matches!(poll(&t, 2), Poll::Ready(Outcome::TimedOut)));
        assert!(poll(&t, 1).is_pending());
        assert!(
            !t.complete(2, Err(SendError::Disconnected)),
            "a reply after the timeout matches nothing"
        );
        assert!(t.complete(1, Err(SendError::Disconnected)));
        assert!(poll(&t, 1).is_ready());
        t.expire(later);
        assert_eq!(t.earliest(), None);
        assert_eq!(t.len(), 0);
    }
}
