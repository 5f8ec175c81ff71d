//! [`PendingReplies`]: the requests a connection sent that await the peer's response.

use crate::fast_hash::FastHash;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::protocol::Payload;

/// What a pending request ends with: the peer's payload, or an error
/// ([`Error::Rejected`] or [`Error::Disconnected`]). Timeouts are decided by the waiter.
pub(crate) type Reply = Result<Payload, Error>;

/// Request ids come from one process-wide counter, so no two requests in flight anywhere share
/// an id and a broadcast that awaits replies can use one id (and one encoded frame) for all
/// its recipients. Starts at 1: Line's client treats a falsy id as "no response wanted".
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_request_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The pending-reply table of one connection.
///
/// Every entry ends exactly once: [`complete`](Self::complete) (response),
/// [`remove`](Self::remove) by its waiter (timeout or cancellation: see
/// [`Waiting`](super::peer::Waiting)), or [`close`](Self::close) (disconnect). After
/// `close` nothing can be inserted, so nothing can wait forever.
#[derive(Debug, Default)]
pub(crate) struct PendingReplies {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    waiting: HashMap<u64, oneshot::Sender<Reply>, FastHash>,
    closed: bool,
}

impl PendingReplies {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // The lock is never held across a call that can panic, so poisoning cannot leave the
        // table inconsistent: recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `id`: the returned receiver gets its reply. Whoever registers must
    /// [`remove`](Self::remove) it when it stops waiting (see [`Waiting`]).
    pub(crate) fn insert(&self, id: u64) -> Result<oneshot::Receiver<Reply>, Error> {
        let (tx, rx) = oneshot::channel();
        let mut table = self.table();
        if table.closed {
            return Err(Error::Disconnected);
        }
        table.waiting.insert(id, tx);
        Ok(rx)
    }

    /// Forgets `id` (the waiter gave up); nothing if it was already answered.
    pub(crate) fn remove(&self, id: u64) {
        self.table().waiting.remove(&id);
    }

    /// Delivers a response; `false` when nothing waits for `id` (late, unknown or duplicate).
    pub(crate) fn complete(&self, id: u64, reply: Reply) -> bool {
        let waiter = self.table().waiting.remove(&id);
        match waiter {
            Some(tx) => {
                // The waiter may have given up this instant; that is its outcome then.
                let _ = tx.send(reply);
                true
            }
            None => false,
        }
    }

    /// Fails everything pending with [`Error::Disconnected`] and refuses new entries.
    pub(crate) fn close(&self) {
        let waiting = {
            let mut table = self.table();
            table.closed = true;
            std::mem::take(&mut table.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(Error::Disconnected));
        }
    }

    /// How many requests are waiting for a response.
    pub(crate) fn len(&self) -> usize {
        self.table().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_leaves_the_table_empty() {
        let t = PendingReplies::default();
        let mut rx = t.insert(1).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.complete(1, Err(Error::Disconnected)));
        assert!(rx.try_recv().is_ok());
        assert_eq!(t.len(), 0);
        // Given up without an answer (timeout, cancellation).
        let _rx = t.insert(2).unwrap();
        t.remove(2);
        assert_eq!(t.len(), 0);
        assert!(
            !t.complete(2, Err(Error::Disconnected)),
            "late replies match nothing"
        );
    }

    #[test]
    fn close_fails_waiters_and_refuses_new_ones() {
        let t = PendingReplies::default();
        let mut rx = t.insert(1).unwrap();
        t.close();
        assert!(matches!(rx.try_recv(), Ok(Err(Error::Disconnected))));
        assert!(matches!(t.insert(2), Err(Error::Disconnected)));
        assert_eq!(t.len(), 0);
    }
}
