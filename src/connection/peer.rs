//! [`Peer`]: the sending side of one live socket, shared by the server's connections and the
//! client. Everything bound for the socket goes through its bounded queue to the one writer
//! in the connection's driver.
//!
//! The queue is a `VecDeque` under a mutex plus a [`DriverWake`], not a channel: it allocates
//! nothing until something is queued (a tokio channel allocates a block of 32 slots, ~1 KiB,
//! per connection up front), and the driver takes everything queued, and learns of a close
//! request, with one lock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::clock::{self, Instant};
use super::close::CloseInfo;
use super::pending::{next_request_id, PendingReplies};
use super::wake::DriverWake;
use crate::error::{NotifyError, PingError, SendError};
use crate::metrics::Meter;
use crate::protocol::{self, names, CloseCode, Payload};

/// What waits for the driver: frames to write, and a close to perform.
#[derive(Debug, Default)]
struct Outbound {
    frames: VecDeque<Utf8Bytes>,
    close: Option<CloseInfo>,
    /// The close frame is on its way, or the socket is gone: nothing is accepted any more.
    done: bool,
}

/// Why [`Peer::queue`] refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// The socket is closed or closing.
    Closed,
    /// The queue is full: the connection is being closed as a slow consumer.
    Full,
}

impl From<QueueError> for SendError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Closed => SendError::Disconnected,
            QueueError::Full => SendError::QueueFull,
        }
    }
}

impl From<QueueError> for NotifyError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Closed => NotifyError::Disconnected,
            QueueError::Full => NotifyError::QueueFull,
        }
    }
}

/// What the driver takes from the queue in one go.
pub(crate) enum Taken {
    /// Frames to write (possibly none).
    Frames,
    /// A close was requested: the frames taken go out first, then a close frame with this.
    /// The queue accepts nothing from now on.
    Close(CloseInfo),
}

#[derive(Debug)]
pub(crate) struct Peer {
    outbound: Mutex<Outbound>,
    /// Wakes the driver when a frame is queued, a close is requested, or a request with an
    /// earlier deadline than any before it is registered (and the driver's handlers too).
    wake: Arc<DriverWake>,
    limit: usize,
    /// Malformed frames dropped so far: the first is logged as a warning, the rest at debug
    /// level, so a hostile peer cannot flood the logs.
    malformed: AtomicU32,
    pub(crate) pending: PendingReplies,
    pub(crate) response_timeout: Duration,
}

impl Peer {
    /// A peer whose outbound queue holds at most `queue` frames.
    pub(crate) fn new(queue: usize, response_timeout: Duration) -> Self {
        Peer {
            outbound: Mutex::new(Outbound::default()),
            wake: Arc::default(),
            limit: queue.max(1),
            malformed: AtomicU32::new(0),
            pending: PendingReplies::default(),
            response_timeout,
        }
    }

    /// Counts this peer's frames, requests and closes in the metrics: a server's connection.
    pub(crate) fn metered(mut self) -> Self {
        self.pending.meter = Meter::SERVER;
        self
    }

    /// What this peer's events are counted with.
    pub(crate) fn meter(&self) -> Meter {
        self.pending.meter
    }

    fn outbound(&self) -> std::sync::MutexGuard<'_, Outbound> {
        // Never held across anything that can panic: recover from poisoning.
        self.outbound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an encoded frame. Never waits: a full queue means the peer does not read,
    /// and the connection is closed as a slow consumer (invariant 4).
    pub(crate) fn queue(&self, frame: Utf8Bytes) -> Result<(), QueueError> {
        {
            let mut out = self.outbound();
            if out.done {
                return Err(QueueError::Closed);
            }
            if out.frames.len() < self.limit {
                let was_empty = out.frames.is_empty();
                out.frames.push_back(frame);
                drop(out);
                // The driver drains the queue before it waits again: only the first frame
                // after a drain needs to wake it.
                if was_empty {
                    self.wake.wake();
                }
                return Ok(());
            }
        }
        if self.close(
            CloseCode::SLOW_CONSUMER,
            "Slow consumer: outbound queue full",
        ) {
            tracing::warn!(
                queue = self.limit,
                "slow consumer: the outbound queue is full (the peer does not read); closing with 4210"
            );
            self.meter().slow_consumer();
        }
        Err(QueueError::Full)
    }

    /// For the driver: a frame was dropped as malformed; the connection stays open.
    pub(crate) fn report_malformed(&self, error: &crate::protocol::FrameError) {
        self.meter().malformed_frame();
        if self.malformed.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(%error, "dropped a malformed frame; the connection stays open (further ones on it are logged at debug level)");
        } else {
            tracing::debug!(%error, "dropped a malformed frame");
        }
    }

    /// How many malformed frames the peer has sent.
    pub(crate) fn malformed_frames(&self) -> u32 {
        self.malformed.load(Ordering::Relaxed)
    }

    /// For the driver: takes what is queued into `batch` (the
    /// frames still to write), and says whether a close is to follow. While `batch` is not
    /// empty (a stalled write), new frames stay in the queue, so its limit keeps counting
    /// them; once a close is requested, everything queued joins the batch, to go out before
    /// the close frame. An empty `batch` is swapped with the queue, so its allocation is
    /// reused.
    pub(crate) fn take(&self, batch: &mut VecDeque<Utf8Bytes>) -> Taken {
        let mut out = self.outbound();
        if out.done {
            return Taken::Frames;
        }
        if batch.is_empty() && !out.frames.is_empty() {
            std::mem::swap(&mut out.frames, batch);
            // The emptied batch's allocation goes back to the queue, unless it grew large.
            if out.frames.capacity() > 64 {
                out.frames = VecDeque::new();
            }
        }
        let Some(close) = out.close.clone() else {
            return Taken::Frames;
        };
        batch.extend(out.frames.drain(..));
        out.done = true;
        Taken::Close(close)
    }

    /// Whether this end asked for the close (rather than the peer).
    #[cfg(feature = "client")]
    pub(crate) fn closed_locally(&self) -> bool {
        self.outbound().close.is_some()
    }

    /// What wakes the driver; it polls its handlers with a waker made of it too.
    pub(crate) fn driver_wake(&self) -> &Arc<DriverWake> {
        &self.wake
    }

    /// For the driver: the socket is gone (or closing); queued frames are dropped, new ones
    /// refused, and nothing pending will get a response.
    pub(crate) fn finish(&self) {
        {
            let mut out = self.outbound();
            out.done = true;
            out.frames = VecDeque::new();
        }
        self.pending.close();
    }

    /// Sends request `id`: registers it in the pending table (before queueing `frame`, so a
    /// fast response cannot race past it), then queues the frame; a frame that cannot be
    /// queued leaves nothing registered. When its deadline is the earliest in the table, the
    /// driver is woken to set its timer (otherwise the timer is set for an earlier one
    /// already, and re-armed from the table when it fires).
    pub(crate) fn send_request(
        &self,
        id: u64,
        frame: Utf8Bytes,
        deadline: Instant,
        waker: Option<std::task::Waker>,
    ) -> Result<(), SendError> {
        if self.pending.insert(id, deadline, waker)? {
            self.wake.wake();
        }
        self.queue(frame).map_err(|e| {
            self.pending.withdraw(id);
            e.into()
        })
    }

    /// Sends a fire-and-forget message.
    pub(crate) fn notify<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<(), NotifyError> {
        let frame = protocol::encode_message(name, payload, None).map_err(NotifyError::Encode)?;
        Ok(self.queue(frame)?)
    }

    /// Sends a request and awaits its response, typed.
    pub(crate) async fn request<T, R>(
        &self,
        name: &str,
        payload: &T,
        timeout: Duration,
    ) -> Result<R, SendError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let reply = self.request_raw(name, payload, timeout).await?;
        reply.deserialize().map_err(SendError::Decode)
    }

    /// Sends a request and awaits its response, raw.
    pub(crate) fn request_raw<'a, T: Serialize + ?Sized>(
        &'a self,
        name: &'a str,
        payload: &'a T,
        timeout: Duration,
    ) -> Request<'a, T> {
        Request {
            peer: self,
            name,
            timeout,
            state: RequestState::Unsent(payload),
        }
    }

    /// Pings the peer and returns the round-trip time. Any answer counts as the pong (an
    /// error response too: the peer is there). A full queue is closing the connection, so
    /// it fails the ping as [`PingError::Disconnected`].
    pub(crate) async fn ping(&self) -> Result<Duration, PingError> {
        let started = Instant::now();
        match self
            .request_raw(names::PING, &(), self.response_timeout)
            .await
        {
            Ok(_) | Err(SendError::Rejected(_)) => Ok(started.elapsed()),
            Err(SendError::Timeout { timeout, .. }) => Err(PingError::Timeout(timeout)),
            Err(
                SendError::Disconnected
                | SendError::QueueFull
                | SendError::HandshakePending
                | SendError::Decode(_)
                | SendError::Encode(_),
            ) => Err(PingError::Disconnected),
        }
    }

    /// Asks the driver to close the socket with `code` and `reason`. The first request wins;
    /// later ones (and requests after the socket closed) do nothing. Whether this one counted.
    pub(crate) fn close(&self, code: CloseCode, reason: &str) -> bool {
        {
            let mut out = self.outbound();
            if out.close.is_some() || out.done {
                return false;
            }
            out.close = Some(CloseInfo::new(code, reason));
        }
        self.wake.wake();
        true
    }
}

/// One request: encoded, registered and queued on its first poll (like any future, it
/// does nothing until polled), then waiting for its outcome. Written by hand rather than as
/// an `async fn` so it stays a few words in size (it is moved into every caller's future),
/// and so the pending entry gets the waker as it is inserted. Dropping it forgets the entry.
pub(crate) struct Request<'a, T: ?Sized> {
    peer: &'a Peer,
    name: &'a str,
    timeout: Duration,
    state: RequestState<'a, T>,
}

enum RequestState<'a, T: ?Sized> {
    Unsent(&'a T),
    Sent(u64),
    Done,
}

impl<T: Serialize + ?Sized> Request<'_, T> {
    /// Encodes, registers and queues the request; its id.
    fn send(&self, payload: &T, waker: &std::task::Waker) -> Result<u64, SendError> {
        let id = next_request_id();
        let frame =
            protocol::encode_message(self.name, payload, Some(id)).map_err(SendError::Encode)?;
        let deadline = clock::after(Instant::now(), self.timeout);
        self.peer
            .send_request(id, frame, deadline, Some(waker.clone()))?;
        Ok(id)
    }
}

impl<T: Serialize + ?Sized> Future for Request<'_, T> {
    type Output = Result<Payload, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.state {
            RequestState::Unsent(payload) => {
                this.state = RequestState::Done;
                match this.send(payload, cx.waker()) {
                    Ok(id) => {
                        this.state = RequestState::Sent(id);
                        Poll::Pending
                    }
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
            RequestState::Sent(id) => {
                let outcome = std::task::ready!(this.peer.pending.poll(id, cx));
                this.state = RequestState::Done;
                Poll::Ready(outcome.into_reply(this.name, this.timeout))
            }
            RequestState::Done => panic!("a request polled after it completed"),
        }
    }
}

impl<T: ?Sized> Unpin for Request<'_, T> {}

impl<T: ?Sized> Drop for Request<'_, T> {
    fn drop(&mut self) {
        if let RequestState::Sent(id) = self.state {
            self.peer.pending.remove(id);
        }
    }
}

/// A request that has been sent (see [`Peer::send_request`]) and awaits its response; the
/// pending entry is removed when this is dropped, whatever ended the wait (response,
/// timeout, the caller giving up). For frames encoded once for many connections; a single
/// request is a [`Request`].
pub(crate) struct Waiting<P: AsRef<Peer>> {
    peer: P,
    id: u64,
}

impl<P: AsRef<Peer>> Waiting<P> {
    /// Registers `id` with `peer`, to time out at `deadline`, and queues `frame`.
    pub(crate) fn start(
        peer: P,
        id: u64,
        frame: Utf8Bytes,
        deadline: Instant,
    ) -> Result<Self, SendError> {
        peer.as_ref().send_request(id, frame, deadline, None)?;
        Ok(Waiting { peer, id })
    }

    /// The response, or [`SendError::Timeout`] (naming `name` and `timeout`) once the
    /// deadline passed: the connection's driver enforces it.
    pub(crate) async fn reply(self, name: &str, timeout: Duration) -> Result<Payload, SendError> {
        std::future::poll_fn(|cx| self.peer.as_ref().pending.poll(self.id, cx))
            .await
            .into_reply(name, timeout)
    }
}

impl<P: AsRef<Peer>> Drop for Waiting<P> {
    fn drop(&mut self) {
        self.peer.as_ref().pending.remove(self.id);
    }
}

impl AsRef<Peer> for Peer {
    fn as_ref(&self) -> &Peer {
        self
    }
}
