//! [`DriverWake`]: how anything wakes a connection's driver — a frame queued, a close
//! requested, a handler or the handshake ready to go on — without waking it in vain.
//!
//! The handlers run inside the driver's own poll, and most of what wakes it happens there: a
//! handler queues its response, a response read from the socket completes a request a
//! handler awaits. Waking the task from inside its own poll would make the runtime poll it
//! once more for nothing. So while the driver polls, a wake is only noted, and the driver
//! takes another turn before it sleeps; once it sleeps, a wake wakes its task.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;

/// See the module docs. Shared by the connection's [`Peer`](super::peer::Peer) (the queue)
/// and its driver, which polls the handlers with a [`Waker`] made of it.
#[derive(Debug, Default)]
pub(crate) struct DriverWake {
    /// The driver task's own waker.
    task: AtomicWaker,
    /// The driver is in its poll.
    polling: AtomicBool,
    /// Something woke the driver while it polled.
    woken: AtomicBool,
}

impl DriverWake {
    /// Wakes the driver: its task, or, while it polls, its next turn.
    pub(crate) fn wake(&self) {
        // SeqCst on both sides: either the driver sees `woken` before it sleeps, or this sees
        // that it no longer polls and wakes its task (and at worst both happen).
        self.woken.store(true, SeqCst);
        if !self.polling.load(SeqCst) {
            self.task.wake();
        }
    }

    /// The driver's poll begins, in the task `waker` wakes.
    pub(crate) fn begin_poll(&self, waker: &Waker) {
        self.task.register(waker);
        self.polling.store(true, SeqCst);
    }

    /// The driver's turn begins: wakes from now on ask for another turn.
    pub(crate) fn begin_turn(&self) {
        self.woken.store(false, SeqCst);
    }

    /// The driver found nothing to do: `true` when it may sleep (wakes now reach its task),
    /// `false` when something woke it during the turn, so it takes another.
    pub(crate) fn may_sleep(&self) -> bool {
        self.polling.store(false, SeqCst);
        if self.woken.swap(false, SeqCst) {
            self.polling.store(true, SeqCst);
            return false;
        }
        true
    }
}

impl Wake for DriverWake {
    fn wake(self: Arc<Self>) {
        DriverWake::wake(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        DriverWake::wake(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes of a pretend task.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn a_wake_while_polling_asks_for_a_turn_not_the_task() {
        let task = Arc::new(Task::default());
        let wake = DriverWake::default();
        wake.begin_poll(&Waker::from(task.clone()));
        wake.begin_turn();
        wake.wake();
        assert!(!wake.may_sleep(), "woken during the turn: another turn");
        wake.begin_turn();
        assert!(wake.may_sleep());
        assert_eq!(task.0.load(SeqCst), 0);
        // Asleep: a wake reaches the task.
        wake.wake();
        assert_eq!(task.0.load(SeqCst), 1);
    }
}
