//! The connection driver: an owned state machine, one per socket, whose one [`poll`]
//! advances everything that can make progress — every deadline, the handshake, the running
//! handlers, the read, the write — and returns `Pending` only when nothing can. No part of
//! the connection waits while another part's deadline passes: a peer that stops reading
//! stalls the write, never the handshake timeout, the pings or the close.
//!
//! A turn of [`Driver::poll`], in order:
//! 1. the timer: the close deadline, the handshake timeout, the pending requests' timeouts,
//!    the ping that is due;
//! 2. the handshake, the `on_connection` hook and the request handlers ([`Router::poll`]);
//!    finished handlers queue their responses;
//! 3. the read: every frame already buffered (up to [`MAX_BATCH`]) is routed;
//! 4. the outbound queue: everything queued is taken, fed and flushed once; a close
//!    request turns the connection to closing.
//!
//! Closing is part of the same machine ([`Phase`]). What the driver owns ends with it: when
//! it is dropped — after its close, or because its task was cancelled or panicked — the
//! queue refuses new frames, every pending request fails with
//! [`SendError::Disconnected`](crate::SendError::Disconnected), and the running handlers are
//! dropped.
//!
//! The same driver runs the server's connections and the client's socket; what differs
//! (the handshake, who handlers receive) comes from the [`Endpoint`].
//!
//! [`poll`]: Driver::poll

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::clock::{self, Instant, FAR_FUTURE};
use super::close::CloseInfo;
use super::peer::{Peer, Taken};
use super::router::Router;
use crate::error::PingError;
use crate::handler::BoxFuture;
use crate::metrics::Meter;
use crate::protocol::{self, CloseCode, RawId};

/// The most frames read in one turn.
const MAX_BATCH: usize = 256;

/// The most turns in one poll before the driver yields to the runtime (waking itself):
/// a peer that never stops sending cannot keep a worker thread to itself.
const MAX_TURNS: usize = 32;

/// How a handshake handler ended, for the driver.
pub(crate) enum HandshakeEnd {
    /// Accepted; the response is queued. Runs the `on_connection` hook, if any.
    Accepted(Option<BoxFuture<()>>),
    /// Rejected (the error response is queued and the close, 4203, requested), or the
    /// connection was closing already: what was held behind the handshake is dropped.
    NotAccepted,
}

/// One end of a socket as the driver sees it.
pub(crate) trait Endpoint: Clone + Send + Sync + 'static {
    /// What request handlers registered for this kind of endpoint receive.
    type Handle: Clone + Send + 'static;
    fn peer(&self) -> &Peer;
    /// `None` once nothing can use a handle any more (every client handle dropped).
    fn handle(&self) -> Option<Self::Handle>;
    /// `false` while the handshake is not accepted: named messages are then refused.
    fn is_open(&self) -> bool;
    /// How long the handshake may take, for an endpoint that has one to wait for.
    fn handshake_timeout(&self) -> Option<Duration>;
    /// Handles an `_h` request. Returns the handshake's future when one starts; otherwise
    /// the response is already queued.
    fn on_handshake(&self, id: RawId, payload: Option<&str>) -> Option<BoxFuture<HandshakeEnd>>;
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverConfig {
    pub ping_interval: Duration,
    pub max_in_flight: usize,
    pub max_name_len: usize,
    /// The longest request id (`i`, as JSON text) accepted from the peer.
    pub max_id_len: usize,
    pub close_timeout: Duration,
}

/// Where the connection is in its close.
enum Phase {
    /// Frames flow both ways.
    Open,
    /// Closing cleanly with `info` (ours, or the peer's when it closed first): what was
    /// queued is written, then our close frame (unless `sent`: it is out, or the peer closed
    /// first and tungstenite answers it); then the driver reads, discarding, until the
    /// close handshake ends the stream. `flushed`: our close frame (or answer) is out;
    /// `stream_ended`: the peer's side is over. Both, and the connection has ended.
    Closing {
        info: CloseInfo,
        sent: bool,
        flushed: bool,
        stream_ended: bool,
    },
    /// The connection failed in a way the peer must hear of (a message too big, a protocol
    /// violation): the close frame goes out, our half of the socket is shut, and what the
    /// peer still sends is read and discarded until it closes too. Closing the socket with
    /// unread input would reset it, and a reset can destroy the close frame before the peer
    /// reads it.
    /// `input_ended`: the peer's side is shut (it may still read: its half-close).
    Failing {
        info: CloseInfo,
        step: FailStep,
        input_ended: bool,
    },
}

#[derive(Clone, Copy)]
enum FailStep {
    SendFrame,
    Shutdown,
    Drain,
}

/// A connection's state machine; see the module docs. Await [`drive`] to run one.
pub(crate) struct Driver<S, E: Endpoint> {
    ws: WebSocketStream<S>,
    router: Router<E>,
    /// Frames taken from the queue and not written yet (a stalled write keeps them here).
    batch: VecDeque<Utf8Bytes>,
    /// Frames were fed to the socket and not flushed yet.
    unflushed: bool,
    /// The ping the driver sent after a silence, while it waits for the pong.
    auto_ping: Option<BoxFuture<Result<Duration, PingError>>>,
    /// While the handshake is not accepted.
    handshake_at: Option<Instant>,
    /// Once closing: the connection ends by then, whatever the peer does.
    close_at: Option<Instant>,
    last_received: Instant,
    phase: Phase,
}

/// Runs a connection until its socket is closed; returns how it ended. See [`Driver`].
///
/// A function returning an async block, not an `async fn`: an `async fn` keeps its arguments
/// twice in its future (as arguments and as locals), and the socket alone is 320 bytes per
/// connection.
pub(crate) fn drive<S, E>(
    ws: WebSocketStream<S>,
    router: Router<E>,
) -> impl Future<Output = CloseInfo>
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Endpoint,
{
    let now = Instant::now();
    let handshake_at = router
        .endpoint()
        .handshake_timeout()
        .map(|t| clock::after(now, t));
    let mut driver = Driver {
        ws,
        router,
        batch: VecDeque::new(),
        unflushed: false,
        auto_ping: None,
        handshake_at,
        close_at: None,
        last_received: now,
        phase: Phase::Open,
    };
    let first = driver.next_deadline().unwrap_or(now + FAR_FUTURE);
    async move {
        // One timer for every deadline (handshake, ping, close, the pending requests'
        // timeouts), kept in the task rather than boxed: an idle connection holds one.
        let timer = tokio::time::sleep_until(first);
        tokio::pin!(timer);
        std::future::poll_fn(|cx| driver.poll(cx, timer.as_mut())).await
    }
}

impl<S, E> Driver<S, E>
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Endpoint,
{
    fn peer(&self) -> &Peer {
        self.router.endpoint().peer()
    }

    /// Advances everything that can make progress; `Ready` with how the connection ended.
    fn poll(&mut self, cx: &mut Context<'_>, mut timer: Pin<&mut Sleep>) -> Poll<CloseInfo> {
        self.peer().driver_wake().begin_poll(cx.waker());
        for _ in 0..MAX_TURNS {
            self.peer().driver_wake().begin_turn();
            let mut progress = false;
            if timer.as_mut().poll(cx).is_ready() {
                let now = Instant::now();
                if let Some(info) = self.on_timer(now) {
                    return Poll::Ready(info);
                }
                let next = self.next_deadline().unwrap_or(now + FAR_FUTURE);
                timer.as_mut().reset(next);
                progress = true;
            }
            let turn = match self.phase {
                Phase::Open => self.turn_open(cx),
                Phase::Closing { .. } => self.turn_closing(cx),
                Phase::Failing { .. } => self.turn_failing(cx),
            };
            match turn {
                Turn::Ended(info) => return Poll::Ready(info),
                Turn::Progress => progress = true,
                Turn::Idle => {}
            }
            // A deadline earlier than the timer's (a request sent, the close begun): set the
            // timer for it, and poll it in the next turn so that it wakes this task.
            // Receiving a frame only moves the ping's deadline later: the timer then fires
            // early, and re-arms for the ping that is really due. (No clock read per turn.)
            if let Some(next) = self.next_deadline().filter(|at| *at < timer.deadline()) {
                timer.as_mut().reset(next);
                progress = true;
            }
            if !progress && self.peer().driver_wake().may_sleep() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Serves the deadlines that have come; `Some` when the connection ends now.
    fn on_timer(&mut self, now: Instant) -> Option<CloseInfo> {
        // Set only when closing: the close it was making is how the connection ended.
        if self.close_at.is_some_and(|at| now >= at) {
            if let Phase::Closing { info, .. } | Phase::Failing { info, .. } = &self.phase {
                return Some(info.clone());
            }
        }
        let ep = self.router.endpoint();
        if let Some(at) = self.handshake_at {
            if ep.is_open() {
                self.handshake_at = None;
            } else if now >= at {
                let ms = ep.handshake_timeout().unwrap_or_default().as_millis();
                self.peer().close(
                    CloseCode::HANDSHAKE_FAILED,
                    &format!("Handshake not completed after {ms} ms"),
                );
                self.router.abandon_handshake();
                self.handshake_at = None;
                self.peer().meter().handshake_timed_out();
            }
        }
        self.peer().pending.expire(now);
        if self.ping_at().is_some_and(|at| now >= at) {
            let ep = self.router.endpoint().clone();
            self.auto_ping = Some(Box::pin(async move { ep.peer().ping().await }));
        }
        None
    }

    /// When the driver pings the peer, unless something arrives first: while open and
    /// connected, with pings on and none under way.
    fn ping_at(&self) -> Option<Instant> {
        let interval = self.router.cfg().ping_interval;
        (matches!(self.phase, Phase::Open)
            && self.auto_ping.is_none()
            && !interval.is_zero()
            && self.router.endpoint().is_open())
        .then(|| clock::after(self.last_received, interval))
    }

    /// When the timer should fire next; `None` when nothing is due ever.
    fn next_deadline(&self) -> Option<Instant> {
        [
            self.ping_at(),
            self.handshake_at,
            self.close_at,
            self.peer().pending.earliest(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One turn while open: handlers, the read, the queue.
    fn turn_open(&mut self, cx: &mut Context<'_>) -> Turn {
        let mut progress = self.router.poll();
        if let Some(ping) = &mut self.auto_ping {
            let ping_cx = &mut Context::from_waker(self.router.waker());
            if let Poll::Ready(result) = ping.poll_unpin(ping_cx) {
                self.auto_ping = None;
                if let Err(PingError::Timeout(_)) = result {
                    self.peer().close(CloseCode::PING_FAILED, "Ping failed");
                }
                progress = true;
            }
        }
        match self.read(cx, true) {
            Read::Frames => progress = true,
            Read::Idle => {}
            Read::PeerClosed(info) => {
                // tungstenite queues the answer; what we had queued can no longer be sent.
                self.batch.clear();
                self.begin_close(info, true);
                return Turn::Progress;
            }
            Read::Failed(failure) => return self.fail(failure),
        }
        let taken = self.router.endpoint().peer().take(&mut self.batch);
        if let Taken::Close(info) = taken {
            self.begin_close(info, false);
            return Turn::Progress;
        }
        match self.write(cx) {
            Ok(wrote) => progress |= wrote,
            Err(info) => return Turn::Ended(info),
        }
        if progress {
            Turn::Progress
        } else {
            Turn::Idle
        }
    }

    /// The connection turns to closing with `info` (ours, or the peer's when `sent`).
    fn begin_close(&mut self, info: CloseInfo, sent: bool) {
        tracing::debug!(code = info.code.as_u16(), reason = %info.reason, by_peer = sent, "closing");
        self.start_closing(Phase::Closing {
            info,
            sent,
            flushed: false,
            stream_ended: false,
        });
    }

    /// Enters a closing `phase`: nothing more is queued, every pending request fails, no more
    /// pings, and the connection ends within the close timeout, whatever the peer does.
    fn start_closing(&mut self, phase: Phase) {
        self.peer().finish();
        self.close_at = Some(clock::after(
            Instant::now(),
            self.router.cfg().close_timeout,
        ));
        self.auto_ping = None;
        self.phase = phase;
    }

    /// One turn while closing cleanly: the rest of the queue and the close frame out, then
    /// read until the stream ends.
    fn turn_closing(&mut self, cx: &mut Context<'_>) -> Turn {
        let Phase::Closing {
            info,
            sent,
            flushed,
            stream_ended,
        } = &mut self.phase
        else {
            unreachable!("called while closing");
        };
        let (mut sent_now, mut flushed_now, mut ended_now) = (*sent, *flushed, *stream_ended);
        let info = info.clone();
        let mut progress = false;
        if !sent_now {
            let meter = self.peer().meter();
            match poll_write_batch(&mut self.ws, &mut self.batch, meter, cx) {
                Poll::Ready(Ok(())) => {
                    let frame = Message::Close(Some(info.frame()));
                    if let Err(e) = self.ws.start_send_unpin(frame) {
                        tracing::debug!(error = %e, "could not send the close frame");
                        return Turn::Ended(info);
                    }
                    sent_now = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "write failed while closing");
                    return Turn::Ended(info);
                }
                Poll::Pending => {}
            }
        }
        if sent_now && !flushed_now {
            // Pushes the close frame (or tungstenite's answer to the peer's) out.
            match self.ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    flushed_now = true;
                    progress = true;
                }
                Poll::Ready(Err(_)) => return Turn::Ended(info),
                Poll::Pending => {}
            }
        }
        if !ended_now {
            match self.read(cx, false) {
                Read::Frames => progress = true,
                Read::Idle => {}
                Read::PeerClosed(_) => {
                    if !sent_now {
                        // Both ends closed at once: tungstenite answers the peer's close,
                        // and nothing more can be sent before it.
                        self.batch.clear();
                        sent_now = true;
                        flushed_now = false;
                    }
                    progress = true;
                }
                // The peer broke a limit or the protocol while we close: our close frame
                // (or the rest of it) goes out the way a failing connection's does, reading
                // and dropping its input meanwhile, so the socket is not reset on it.
                Read::Failed(Failure::Refuse(_)) => {
                    self.batch.clear();
                    let step = if sent_now {
                        FailStep::Shutdown
                    } else {
                        FailStep::SendFrame
                    };
                    self.phase = Phase::Failing {
                        info,
                        step,
                        input_ended: false,
                    };
                    return Turn::Progress;
                }
                // The close handshake is over, or the socket is gone.
                Read::Failed(Failure::Gone(_)) => {
                    ended_now = true;
                    progress = true;
                }
            }
        }
        // Done once the stream has ended and what we had to say is out (or cannot be).
        if ended_now && (flushed_now || !sent_now) {
            return Turn::Ended(info);
        }
        if let Phase::Closing {
            sent,
            flushed,
            stream_ended,
            ..
        } = &mut self.phase
        {
            (*sent, *flushed, *stream_ended) = (sent_now, flushed_now, ended_now);
        }
        if progress {
            Turn::Progress
        } else {
            Turn::Idle
        }
    }

    /// The connection failed: with a close frame to send first, or at once.
    fn fail(&mut self, failure: Failure) -> Turn {
        match failure {
            Failure::Gone(info) => Turn::Ended(info),
            Failure::Refuse(info) => {
                tracing::info!(code = info.code.as_u16(), reason = %info.reason, "closing a connection that broke the protocol or a limit");
                self.batch.clear();
                self.start_closing(Phase::Failing {
                    info,
                    step: FailStep::SendFrame,
                    input_ended: false,
                });
                Turn::Progress
            }
        }
    }

    fn turn_failing(&mut self, cx: &mut Context<'_>) -> Turn {
        let Phase::Failing { info, .. } = &self.phase else {
            unreachable!("called while failing");
        };
        let info = info.clone();
        loop {
            let Phase::Failing { step, .. } = &mut self.phase else {
                unreachable!("called while failing");
            };
            let stalled = match *step {
                FailStep::SendFrame => match self.ws.poll_ready_unpin(cx) {
                    Poll::Pending => true,
                    Poll::Ready(Ok(())) => {
                        let frame = Message::Close(Some(info.frame()));
                        if self.ws.start_send_unpin(frame).is_err() {
                            return Turn::Ended(info);
                        }
                        *step = FailStep::Shutdown;
                        false
                    }
                    Poll::Ready(Err(_)) => return Turn::Ended(info),
                },
                FailStep::Shutdown => match self.ws.poll_flush_unpin(cx) {
                    Poll::Pending => true,
                    Poll::Ready(Err(_)) => return Turn::Ended(info),
                    Poll::Ready(Ok(())) => match Pin::new(self.ws.get_mut()).poll_shutdown(cx) {
                        Poll::Pending => true,
                        Poll::Ready(Err(_)) => return Turn::Ended(info),
                        Poll::Ready(Ok(())) => {
                            *step = FailStep::Drain;
                            false
                        }
                    },
                },
                FailStep::Drain => true,
            };
            if stalled {
                // Whatever the step waits for, the peer's input is read and discarded, so a
                // peer that is itself stalled writing to us reads our close frame in the end.
                // Once its side is shut, the write is waited for alone (a half-closed peer
                // may still read), until the close frame is out or the close deadline.
                let Phase::Failing {
                    step, input_ended, ..
                } = &mut self.phase
                else {
                    unreachable!("called while failing");
                };
                if *input_ended {
                    return Turn::Idle;
                }
                return match discard_input(&mut self.ws, cx) {
                    Discarded::Pending => Turn::Idle,
                    Discarded::More => Turn::Progress,
                    Discarded::End if matches!(step, FailStep::Drain) => Turn::Ended(info),
                    Discarded::End => {
                        *input_ended = true;
                        Turn::Progress
                    }
                };
            }
        }
    }

    /// Reads every frame already buffered (up to [`MAX_BATCH`]); routes text frames when
    /// `route`, discards them otherwise.
    fn read(&mut self, cx: &mut Context<'_>, route: bool) -> Read {
        let mut read = 0;
        let mut received = self.peer().meter().received();
        while read < MAX_BATCH {
            let Poll::Ready(msg) = self.ws.poll_next_unpin(cx) else {
                break;
            };
            if read == 0 {
                self.last_received = Instant::now();
            }
            read += 1;
            match read_event(self.peer(), msg) {
                ReadEvent::Text(text) => {
                    received.add(text.len());
                    if route {
                        self.router.route(text);
                    }
                }
                ReadEvent::Control => {}
                ReadEvent::PeerClose(info) => return Read::PeerClosed(info),
                ReadEvent::Fail(failure) => return Read::Failed(failure),
            }
        }
        if read > 0 {
            Read::Frames
        } else {
            Read::Idle
        }
    }

    /// Writes the batch: feeds every frame, then flushes once. `Ok(true)` when it wrote
    /// something; `Err` when the socket failed.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, CloseInfo> {
        if self.batch.is_empty() && !self.unflushed {
            return Ok(false);
        }
        let wrote = !self.batch.is_empty();
        let meter = self.peer().meter();
        match poll_write_batch(&mut self.ws, &mut self.batch, meter, cx) {
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                Ok(wrote)
            }
            Poll::Pending => {
                self.unflushed = self.batch.is_empty();
                Ok(false)
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "write failed");
                Err(CloseInfo::abnormal(e.to_string()))
            }
        }
    }
}

impl<S, E: Endpoint> Drop for Driver<S, E> {
    /// The connection layer's teardown, on every path (a normal end, a cancelled task, a
    /// panic): nothing more is queued, everything pending fails with `Disconnected`. The
    /// running handlers and the handshake are dropped with the router.
    fn drop(&mut self) {
        self.router.endpoint().peer().finish();
    }
}

/// What a turn did.
enum Turn {
    Progress,
    Idle,
    Ended(CloseInfo),
}

/// What a read did.
enum Read {
    Frames,
    Idle,
    PeerClosed(CloseInfo),
    Failed(Failure),
}

/// Feeds every frame of `batch`, then flushes; `Pending` while the socket takes no more
/// (what was fed stays in tungstenite's buffer, the rest in `batch`). What was fed is
/// counted with `meter`.
fn poll_write_batch<S>(
    ws: &mut WebSocketStream<S>,
    batch: &mut VecDeque<Utf8Bytes>,
    meter: Meter,
    cx: &mut Context<'_>,
) -> Poll<Result<(), WsError>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut sent = meter.sent();
    while let Some(frame) = batch.pop_front() {
        if ws.poll_ready_unpin(cx)?.is_pending() {
            batch.push_front(frame);
            return Poll::Pending;
        }
        sent.add(frame.len());
        ws.start_send_unpin(Message::Text(frame))?;
    }
    ws.poll_flush_unpin(cx)
}

/// What [`discard_input`] found.
enum Discarded {
    /// Nothing to read now.
    Pending,
    /// It read (and dropped) a good deal; there may be more.
    More,
    /// The peer's end is closed, or the socket failed.
    End,
}

/// Reads what the peer sends straight from the socket, below tungstenite (whose reading
/// state is over once the connection failed), and drops it.
fn discard_input<S>(ws: &mut WebSocketStream<S>, cx: &mut Context<'_>) -> Discarded
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut scratch = [0u8; 1024];
    for _ in 0..MAX_BATCH {
        let mut buf = ReadBuf::new(&mut scratch);
        match Pin::new(ws.get_mut()).poll_read(cx, &mut buf) {
            Poll::Pending => return Discarded::Pending,
            Poll::Ready(Ok(())) if buf.filled().is_empty() => return Discarded::End,
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Discarded::End,
        }
    }
    Discarded::More
}

/// How a connection failed.
enum Failure {
    /// The socket is gone (a FIN or reset without a close frame, an I/O error): 1006.
    Gone(CloseInfo),
    /// The peer broke the protocol or a limit: it gets a close frame with this.
    Refuse(CloseInfo),
}

/// What one item read from the socket means to the driver.
enum ReadEvent {
    /// A text frame, or a binary frame holding UTF-8.
    Text(Utf8Bytes),
    /// A ping, pong or a frame with nothing for us.
    Control,
    /// The peer's close frame.
    PeerClose(CloseInfo),
    Fail(Failure),
}

fn read_event(peer: &Peer, msg: Option<Result<Message, WsError>>) -> ReadEvent {
    match msg {
        Some(Ok(Message::Text(text))) => ReadEvent::Text(text),
        Some(Ok(Message::Binary(bytes))) => match Utf8Bytes::try_from(bytes) {
            Ok(text) => ReadEvent::Text(text),
            Err(_) => {
                peer.report_malformed(&protocol::FrameError::NotUtf8);
                ReadEvent::Control
            }
        },
        Some(Ok(Message::Close(frame))) => ReadEvent::PeerClose(match frame {
            Some(f) => CloseInfo::new(u16::from(f.code).into(), f.reason.as_str()),
            None => CloseInfo::new(CloseCode::NO_STATUS, ""),
        }),
        Some(Ok(_)) => ReadEvent::Control,
        Some(Err(WsError::Capacity(e))) => {
            let reason = match e {
                CapacityError::MessageTooLong { .. } => "Message too big",
                _ => "Frame too big",
            };
            tracing::warn!(error = %e, "the peer sent a message over max_message_size; closing with 1009");
            peer.meter().message_too_big();
            ReadEvent::Fail(Failure::Refuse(CloseInfo::new(
                CloseCode::MESSAGE_TOO_BIG,
                reason,
            )))
        }
        // The peer's socket ended without a close frame (a FIN): no close frame to send.
        Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) | None => {
            ReadEvent::Fail(Failure::Gone(CloseInfo::abnormal("connection dropped")))
        }
        Some(Err(WsError::Utf8(e))) => {
            tracing::debug!(error = %e, "a text frame that is not UTF-8");
            ReadEvent::Fail(Failure::Refuse(CloseInfo::new(
                CloseCode::INVALID_PAYLOAD,
                "Text frame is not UTF-8",
            )))
        }
        Some(Err(WsError::Protocol(e))) => {
            tracing::debug!(error = %e, "WebSocket protocol error");
            ReadEvent::Fail(Failure::Refuse(CloseInfo::new(
                CloseCode::PROTOCOL_ERROR,
                "Protocol error",
            )))
        }
        Some(Err(e)) => {
            tracing::debug!(error = %e, "socket error");
            ReadEvent::Fail(Failure::Gone(CloseInfo::abnormal(e.to_string())))
        }
    }
}
