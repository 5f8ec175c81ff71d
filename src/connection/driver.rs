//! The connection driver: one task per socket that reads frames and routes them, writes
//! everything queued for the socket (feeding all that is queued, flushing once), pings a
//! silent peer, runs the handshake phase, and performs the close handshake.
//!
//! The same driver runs the server's connections and the client's socket; what differs
//! (the handshake, who handlers receive) comes from the [`Endpoint`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::peer::Peer;
use crate::error::{Error, Rejection};
use crate::handler::{BoxFuture, HandlerFuture, Handlers, PayloadText, Snapshot};
use crate::protocol::{self, close_code, names, Payload, RawId};

/// How a connection ended: the close code and reason (sent by us, or received from the peer;
/// 1006 when the socket dropped without a close frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The WebSocket close code.
    pub code: u16,
    /// The close reason.
    pub reason: String,
}

/// A deadline that never comes (a timer with nothing to wait for).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

/// `wait` after `from`; a wait too long to represent (`Duration::MAX`, say) means a year,
/// which is as good as never here and cannot overflow.
pub(crate) fn after(from: Instant, wait: Duration) -> Instant {
    from.checked_add(wait.min(FAR_FUTURE)).unwrap_or(from)
}

/// The most frames read in one turn.
const MAX_BATCH: usize = 256;

/// How a handshake handler ended, for the driver.
pub(crate) enum HandshakeEnd {
    /// Accepted; the response is queued. Runs the `on_connection` hook, if any.
    Accepted(Option<BoxFuture<()>>),
    /// Rejected; the error response is queued. The driver closes with 4203.
    Rejected,
    /// The connection was already closing; nothing was sent.
    Abandoned,
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
    pub close_timeout: Duration,
}

/// Runs a connection until its socket is closed; returns how it ended. On return, every
/// pending request has been failed with [`Error::Disconnected`], the outbound queue refuses
/// new frames, and handlers still running are left to finish in a task of their own (their
/// responses go nowhere).
#[allow(clippy::manual_async_fn)] // on purpose: see the body
pub(crate) fn drive<S, E>(
    mut ws: WebSocketStream<S>,
    ep: E,
    handlers: Arc<Handlers<E>>,
    cfg: DriverConfig,
) -> impl Future<Output = CloseInfo>
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Endpoint,
{
    // An async block, not an `async fn`: an `async fn` keeps its arguments twice in its
    // future (as arguments and as locals), and the socket alone is 300 bytes per connection.
    async move {
        let peer = ep.peer();
        let mut lookup = handlers.snapshot();
        // Created on first use and dropped when empty: an idle connection holds none.
        let mut tasks: Option<FuturesUnordered<HandlerFuture>> = None;
        let mut handshake: Option<BoxFuture<HandshakeEnd>> = None;
        let mut auto_ping: Option<BoxFuture<Result<Duration, Error>>> = None;

        let wake = peer.wake.notified();
        tokio::pin!(wake);
        let started = Instant::now();
        let mut timers = Timers {
            handshake_at: ep.handshake_timeout().map(|t| after(started, t)),
            close_at: None,
            ping_interval: cfg.ping_interval,
            last_received: started,
            stale: false,
        };
        // One timer for every deadline (handshake, ping, close, the pending requests' timeouts):
        // an idle connection holds one.
        let timer = tokio::time::sleep_until(started.into());
        tokio::pin!(timer);
        timers.arm(timer.as_mut(), &ep, false, started);

        // Set once a close frame was sent or received: from then on only reading goes on.
        let mut closing = false;
        let mut ended: Option<CloseInfo> = None;

        let outcome = 'driver: loop {
            // `biased`: the outbound queue first (frames to write, a close to perform), then a
            // read turn. A read turn handles every frame already buffered (up to MAX_BATCH) and
            // runs the handlers that are ready, so their responses leave together in one write.
            tokio::select! {
                biased;
                () = &mut wake, if !closing => {
                    wake.set(peer.wake.notified());
                    let mut on_text = |text| route(&ep, (&handlers, &mut lookup), &mut tasks, &mut handshake, &cfg, text);
                    let flushed = flush_queue(&mut ws, peer, &mut wake, timer.as_mut(), &mut timers, cfg.close_timeout, &mut on_text).await;
                    // A request queued since carries a deadline the timer may not cover yet.
                    if timers.stale || peer.pending.earliest().is_some_and(|at| at < armed_at(&timer)) {
                        timers.arm(timer.as_mut(), &ep, auto_ping.is_some(), Instant::now());
                    }
                    match flushed {
                        Flushed::Idle => {}
                        Flushed::CloseRequested => {
                            closing = true;
                            match begin_close(&mut ws, peer, cfg.close_timeout).await {
                                Ok(info) => ended = Some(info),
                                Err(info) => break info,
                            }
                            timers.start_closing(timer.as_mut(), &ep, auto_ping.is_some(), cfg.close_timeout);
                        }
                        Flushed::Failed(info) => break ended.take().unwrap_or(info),
                        Flushed::Read(ReadEvent::PeerClose(info)) => {
                            closing = true;
                            timers.start_closing(timer.as_mut(), &ep, auto_ping.is_some(), cfg.close_timeout);
                            ended.get_or_insert(info);
                        }
                        Flushed::Read(ReadEvent::Fail { info, send_close }) => {
                            if send_close {
                                send_failure_close(&mut ws, &info, cfg.close_timeout).await;
                            }
                            break ended.take().unwrap_or(info);
                        }
                        // Text and control frames were handled while writing.
                        Flushed::Read(ReadEvent::Text(_) | ReadEvent::Control) => {}
                    }
                }
                msg = ws.next() => {
                    timers.last_received = Instant::now();
                    let mut msg = msg;
                    for _ in 0..MAX_BATCH {
                        match read_event(peer, msg) {
                            ReadEvent::Text(text) => {
                                if !closing {
                                    route(&ep, (&handlers, &mut lookup), &mut tasks, &mut handshake, &cfg, text);
                                }
                            }
                            ReadEvent::Control => {}
                            ReadEvent::PeerClose(info) => {
                                // tungstenite queues the reply; keep polling until the stream ends.
                                if !closing {
                                    closing = true;
                                    timers.start_closing(timer.as_mut(), &ep, auto_ping.is_some(), cfg.close_timeout);
                                }
                                ended.get_or_insert(info);
                            }
                            ReadEvent::Fail { info, send_close } => {
                                if send_close {
                                    send_failure_close(&mut ws, &info, cfg.close_timeout).await;
                                }
                                break 'driver ended.take().unwrap_or(info);
                            }
                        }
                        match poll_now(|cx| ws.poll_next_unpin(cx)).await {
                            Poll::Ready(next) => msg = next,
                            Poll::Pending => break,
                        }
                    }
                    // Run the handlers that are ready now (most finish on their first poll).
                    run_ready(peer, &mut tasks).await;
                }
                Some(response) = async { tasks.as_mut().expect("guarded").next().await }, if tasks.is_some() => {
                    queue_response(peer, response);
                    run_ready(peer, &mut tasks).await;
                }
                end = async { handshake.as_mut().expect("guarded").await }, if handshake.is_some() => {
                    handshake = None;
                    match end {
                        // The `on_connection` hook runs beside the handlers, with no response.
                        HandshakeEnd::Accepted(Some(hook)) => spawn_task(&mut tasks, Box::pin(hook.map(|()| None))),
                        HandshakeEnd::Accepted(None) | HandshakeEnd::Abandoned => {}
                        HandshakeEnd::Rejected => peer.close(close_code::HANDSHAKE_REJECTED, "Handshake rejected"),
                    }
                    timers.handshake_at = None;
                }
                result = async { auto_ping.as_mut().expect("guarded").await }, if auto_ping.is_some() => {
                    auto_ping = None;
                    match result {
                        Ok(_) | Err(Error::Disconnected) => {}
                        Err(_) => peer.close(close_code::PING_FAILED, "Ping failed"),
                    }
                    timers.arm(timer.as_mut(), &ep, false, Instant::now());
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if timers.close_at.is_some_and(|at| now >= at) {
                        break ended.take().unwrap_or(CloseInfo {
                            code: close_code::DISCONNECT_TIMEOUT,
                            reason: "Disconnect timeout".into(),
                        });
                    }
                    if let Some(at) = timers.handshake_at {
                        if ep.is_open() {
                            timers.handshake_at = None;
                        } else if now >= at && !closing {
                            let ms = ep.handshake_timeout().unwrap_or_default().as_millis();
                            peer.close(close_code::HANDSHAKE_FAILED, &format!("Handshake not completed after {ms} ms"));
                            handshake = None;
                            timers.handshake_at = None;
                        }
                    }
                    peer.pending.expire(now);
                    let ping_due = !cfg.ping_interval.is_zero() && now >= after(timers.last_received, cfg.ping_interval);
                    if auto_ping.is_none() && !closing && ep.is_open() && ping_due {
                        let ep = ep.clone();
                        auto_ping = Some(Box::pin(async move { ep.peer().ping().await }));
                    }
                    timers.arm(timer.as_mut(), &ep, auto_ping.is_some(), now);
                }
            }
        };

        peer.finish();
        peer.pending.close();
        if let Some(mut tasks) = tasks.filter(|t| !t.is_empty()) {
            tokio::spawn(async move { while tasks.next().await.is_some() {} });
        }
        outcome
    }
}

/// The driver's deadlines, served by one timer.
struct Timers {
    /// While the handshake is not accepted.
    handshake_at: Option<Instant>,
    /// Once a close frame was sent or received.
    close_at: Option<Instant>,
    ping_interval: Duration,
    last_received: Instant,
    /// The timer was set for some deadlines only: it must be armed again.
    stale: bool,
}

/// When `timer` is set to fire.
fn armed_at(timer: &Pin<&mut Sleep>) -> Instant {
    timer.deadline().into_std()
}

impl Timers {
    /// Sets the timer for the next deadline.
    fn arm<E: Endpoint>(&mut self, timer: Pin<&mut Sleep>, ep: &E, pinging: bool, now: Instant) {
        self.stale = false;
        timer.reset(self.next(ep, pinging, now).into());
    }

    /// A close frame was sent or received: the connection ends within `close_timeout`,
    /// whatever the peer does.
    fn start_closing<E: Endpoint>(
        &mut self,
        timer: Pin<&mut Sleep>,
        ep: &E,
        pinging: bool,
        close_timeout: Duration,
    ) {
        let now = Instant::now();
        self.close_at = Some(after(now, close_timeout));
        self.arm(timer, ep, pinging, now);
    }

    /// While a write stalls: sets the timer for the pending requests' next scan, or
    /// `otherwise` if it is later, and marks the timer for a full re-arm afterwards.
    fn arm_for_pending(&mut self, mut timer: Pin<&mut Sleep>, peer: &Peer, otherwise: Instant) {
        let next = peer
            .pending
            .earliest()
            .map_or(otherwise, |at| at.min(otherwise));
        if next != armed_at(&timer) {
            self.stale = true;
            timer.as_mut().reset(next.into());
        }
    }

    /// When the timer should fire next. Receiving a frame does not move the timer: when it
    /// fires early it re-arms for the ping that is really due.
    fn next<E: Endpoint>(&self, ep: &E, pinging: bool, now: Instant) -> Instant {
        let ping = if self.ping_interval.is_zero() {
            now + FAR_FUTURE // pings are off
        } else if pinging || !ep.is_open() {
            after(now, self.ping_interval)
        } else {
            after(self.last_received, self.ping_interval).max(now)
        };
        [
            self.handshake_at,
            self.close_at,
            ep.peer().pending.earliest(),
        ]
        .into_iter()
        .flatten()
        .fold(ping, Instant::min)
    }
}

/// Queues a finished handler's response, if it has one. Fails only when the connection is
/// gone or being closed as a slow consumer: then the response goes nowhere.
fn queue_response(peer: &Peer, response: Option<Utf8Bytes>) {
    if let Some(frame) = response {
        let _ = peer.queue(frame);
    }
}

fn spawn_task(tasks: &mut Option<FuturesUnordered<HandlerFuture>>, fut: HandlerFuture) {
    tasks.get_or_insert_with(FuturesUnordered::new).push(fut);
}

/// Polls `poll` once with the task's own context (unlike `now_or_never`, whose no-op
/// waker would displace the task's waker wherever `poll` registers it, only for the next
/// poll to put it back) and returns what it gave, ready or not.
async fn poll_now<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    std::future::poll_fn(|cx| Poll::Ready(poll(cx))).await
}

/// Polls the running handlers that are ready, and queues the responses of those that
/// finish; drops the set once it is empty.
async fn run_ready(peer: &Peer, tasks: &mut Option<FuturesUnordered<HandlerFuture>>) {
    if let Some(set) = tasks {
        while let Poll::Ready(Some(response)) = poll_now(|cx| set.poll_next_unpin(cx)).await {
            queue_response(peer, response);
        }
        if set.is_empty() {
            *tasks = None;
        }
    }
}

enum Flushed {
    /// Everything queued was written.
    Idle,
    /// A close was requested; what is still queued goes out with the close frame.
    CloseRequested,
    /// The socket failed, or stalled past the close timeout after a close was requested.
    Failed(CloseInfo),
    /// While the write was stalled, the peer closed or the socket failed.
    Read(ReadEvent),
}

/// Writes everything queued, a batch at a time, flushing once per batch. A peer that does
/// not read stalls the write, and a close request (slow consumer, shutdown) must still get
/// through: the write races the queue's wake-up. Once a close is requested the batch may
/// still finish within the close timeout, so frames already taken are not lost to a peer
/// that does read.
///
/// Requests still time out while a write stalls: the timer is served here too (only for
/// them; the other deadlines wait for the write, and the timer is re-armed for all of them
/// once it is done).
async fn flush_queue<'p, S>(
    ws: &mut WebSocketStream<S>,
    peer: &'p Peer,
    wake: &mut Pin<&mut tokio::sync::futures::Notified<'p>>,
    mut timer: Pin<&mut Sleep>,
    timers: &mut Timers,
    close_timeout: Duration,
    on_text: &mut (dyn FnMut(Utf8Bytes) + Send),
) -> Flushed
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// What woke a stalled write.
    enum Step {
        Written(Result<(), WsError>),
        Timer,
        Woken,
        Read(Option<Result<Message, WsError>>),
    }
    loop {
        if peer.close_request().is_some() {
            return Flushed::CloseRequested;
        }
        let mut batch = peer.take_frames();
        if batch.is_empty() {
            peer.recycle(batch);
            return Flushed::Idle;
        }
        let written = loop {
            // In this order: the write (usually done at once), the timer, the queue's wake-up,
            // and, while the write is stalled, the socket: a peer stalled writing to us must
            // be read, or two ends writing to each other would wait on each other for ever.
            let step = std::future::poll_fn(|cx| {
                if let Poll::Ready(written) = poll_write_batch(ws, &mut batch, cx) {
                    return Poll::Ready(Step::Written(written));
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Step::Timer);
                }
                if wake.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Step::Woken);
                }
                ws.poll_next_unpin(cx).map(Step::Read)
            })
            .await;
            match step {
                Step::Written(written) => break written,
                Step::Timer => {
                    let now = Instant::now();
                    peer.pending.expire(now);
                    timers.arm_for_pending(timer.as_mut(), peer, now + FAR_FUTURE);
                }
                Step::Woken => {
                    wake.set(peer.wake.notified());
                    // A request queued meanwhile may be due before the timer fires.
                    let armed = armed_at(&timer);
                    timers.arm_for_pending(timer.as_mut(), peer, armed);
                    if let Some(request) = peer.close_request() {
                        // Boxed: it runs once per connection at most, and its timer would
                        // otherwise make every connection's task larger.
                        let rest = std::future::poll_fn(|cx| poll_write_batch(ws, &mut batch, cx));
                        match Box::pin(tokio::time::timeout(close_timeout, rest)).await {
                            Ok(Ok(())) => return Flushed::CloseRequested,
                            _ => {
                                return Flushed::Failed(CloseInfo {
                                    code: request.code,
                                    reason: request.reason,
                                })
                            }
                        }
                    }
                }
                Step::Read(msg) => {
                    timers.last_received = Instant::now();
                    match read_event(peer, msg) {
                        ReadEvent::Text(text) => on_text(text),
                        ReadEvent::Control => {}
                        // The connection is ending: what is left of the batch goes nowhere.
                        end => return Flushed::Read(end),
                    }
                }
            }
        };
        peer.recycle(batch);
        if let Err(e) = written {
            tracing::debug!(error = %e, "write failed");
            return Flushed::Failed(CloseInfo {
                code: close_code::ABNORMAL,
                reason: e.to_string(),
            });
        }
    }
}

/// Feeds every frame of `batch`, then flushes; `Pending` while the socket takes no more
/// (what was fed stays in tungstenite's buffer, the rest in `batch`).
fn poll_write_batch<S>(
    ws: &mut WebSocketStream<S>,
    batch: &mut VecDeque<Utf8Bytes>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), WsError>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(frame) = batch.pop_front() {
        if ws.poll_ready_unpin(cx)?.is_pending() {
            batch.push_front(frame);
            return Poll::Pending;
        }
        ws.start_send_unpin(Message::Text(frame))?;
    }
    ws.poll_flush_unpin(cx)
}

/// Sends what is still queued (computed responses go out first), then the requested close
/// frame, within `timeout`. `Ok` with the close to report once the peer answers; `Err` with
/// it when the socket failed or stalled, and the connection should end now.
async fn begin_close<S>(
    ws: &mut WebSocketStream<S>,
    peer: &Peer,
    timeout: Duration,
) -> Result<CloseInfo, CloseInfo>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = peer.close_request().unwrap_or(super::peer::CloseRequest {
        code: close_code::NORMAL,
        reason: String::new(),
    });
    let info = CloseInfo {
        code: request.code,
        reason: request.reason,
    };
    let frame = close_frame(info.code, &info.reason);
    let mut rest = peer.take_frames();
    let sent = tokio::time::timeout(timeout, async {
        std::future::poll_fn(|cx| poll_write_batch(ws, &mut rest, cx)).await?;
        ws.close(Some(frame)).await
    })
    .await;
    match sent {
        Ok(Ok(())) => Ok(info),
        _ => Err(info),
    }
}

/// What one item read from the socket means to the driver.
enum ReadEvent {
    /// A text frame, or a binary frame holding UTF-8.
    Text(Utf8Bytes),
    /// A ping, pong or a frame with nothing for us.
    Control,
    /// The peer's close frame.
    PeerClose(CloseInfo),
    /// The connection is over; `send_close` when a close frame should still be sent.
    Fail { info: CloseInfo, send_close: bool },
}

fn read_event(peer: &Peer, msg: Option<Result<Message, WsError>>) -> ReadEvent {
    let fail = |code: u16, reason: String, send_close: bool| ReadEvent::Fail {
        info: CloseInfo { code, reason },
        send_close,
    };
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
            Some(f) => CloseInfo {
                code: f.code.into(),
                reason: f.reason.to_string(),
            },
            None => CloseInfo {
                code: 1005,
                reason: String::new(),
            },
        }),
        Some(Ok(_)) => ReadEvent::Control,
        Some(Err(WsError::Capacity(e))) => {
            let reason = match e {
                CapacityError::MessageTooLong { .. } => "Message too big",
                _ => "Frame too big",
            };
            fail(close_code::MESSAGE_TOO_BIG, reason.into(), true)
        }
        Some(Err(WsError::Protocol(e))) => {
            tracing::debug!(error = %e, "WebSocket protocol error");
            fail(close_code::PROTOCOL_ERROR, "Protocol error".into(), true)
        }
        Some(Err(e)) => {
            tracing::debug!(error = %e, "socket error");
            fail(close_code::ABNORMAL, e.to_string(), false)
        }
        None => fail(close_code::ABNORMAL, "connection dropped".into(), false),
    }
}

/// Sends the close frame of a connection that failed (a protocol error, an oversized
/// message), within `timeout`; whether it got out does not matter any more.
async fn send_failure_close<S>(ws: &mut WebSocketStream<S>, info: &CloseInfo, timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = close_frame(info.code, &info.reason);
    let _ = tokio::time::timeout(timeout, ws.close(Some(frame))).await;
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }
}

/// Decodes one frame and routes it: responses to the pending table, pings answered,
/// the handshake to the endpoint, named messages to their handler.
pub(crate) fn route<E: Endpoint>(
    ep: &E,
    (handlers, lookup): (&Handlers<E>, &mut Snapshot<E>),
    tasks: &mut Option<FuturesUnordered<HandlerFuture>>,
    handshake: &mut Option<BoxFuture<HandshakeEnd>>,
    cfg: &DriverConfig,
    text: Utf8Bytes,
) {
    let peer = ep.peer();
    let msg = match protocol::decode(&text) {
        Ok(msg) => msg,
        Err(e) => {
            peer.report_malformed(&e);
            return;
        }
    };
    // The payload of a named message is not checked yet when no handler reads it (see
    // `protocol::scan`): before anything else is done with the frame, it is, and a frame
    // that is not JSON is dropped as malformed.
    let payload = PayloadText {
        raw: msg.payload,
        checked: msg.payload_checked,
    };
    let reply = |rejection: Rejection| {
        if let Some(id) = msg.id {
            let _ = peer.queue(protocol::encode_reject(&RawId::new(id), &rejection));
        }
    };
    match &*msg.name {
        names::RESPONSE => {
            let Some(key) = protocol::response_key(msg.id) else {
                return;
            };
            let outcome = if protocol::is_error(msg.error) {
                Err(Error::Rejected(Rejection::from_wire(
                    msg.error.unwrap_or("null"),
                )))
            } else {
                Ok(Payload::new(&text, msg.payload))
            };
            if !peer.pending.complete(key, outcome) {
                tracing::debug!(
                    id = key,
                    "ignored a response that matches no pending request"
                );
            }
        }
        names::PING => {
            if let Some(id) = msg.id {
                if let Ok(frame) = protocol::encode_resolve(&RawId::new(id), "pong") {
                    let _ = peer.queue(frame);
                }
            }
        }
        names::HANDSHAKE => {
            if let Some(id) = msg.id {
                if let Some(fut) = ep.on_handshake(RawId::new(id), msg.payload) {
                    *handshake = Some(fut);
                }
            }
        }
        reserved if reserved.starts_with('_') => reply(Rejection::new(
            "UnknownMessage",
            format!("{reserved:?} is a reserved name this endpoint does not know"),
        )),
        name if name.len() > cfg.max_name_len => {
            if payload.is_malformed(peer) {
                return;
            }
            if msg.id.is_none() {
                tracing::warn!(len = name.len(), "dropped a message whose name is too long");
            }
            reply(Rejection::new(
                "NameTooLong",
                format!(
                    "message names are at most {} bytes; this one has {}",
                    cfg.max_name_len,
                    name.len()
                ),
            ))
        }
        name => {
            let Some(handler) = lookup.get(handlers, name).filter(|_| ep.is_open()) else {
                if payload.is_malformed(peer) {
                    return;
                }
                if !ep.is_open() {
                    return reply(Rejection::new(
                        "HandshakeRequired",
                        format!(
                            "{name:?} arrived before the handshake was accepted; send \"_h\" first"
                        ),
                    ));
                }
                if msg.id.is_none() {
                    tracing::debug!(message = name, "dropped a message with no handler");
                }
                return reply(Rejection::no_handler(name));
            };
            let max_in_flight = cfg.max_in_flight;
            if tasks.as_ref().map_or(0, |t| t.len()) >= max_in_flight {
                if payload.is_malformed(peer) {
                    return;
                }
                if msg.id.is_none() {
                    tracing::warn!(
                        message = name,
                        "dropped a message: too many requests in flight"
                    );
                }
                return reply(Rejection::new(
                    "TooManyRequests",
                    format!("more than {max_in_flight} requests in flight on this connection; wait for responses before sending more"),
                ));
            }
            if let Some(mut fut) = handler.call(ep, name, payload, msg.id.map(RawId::new)) {
                // Most handlers finish on their first poll: run them here, and keep only the
                // rest (FuturesUnordered polls a pushed future again with the task's waker).
                match (&mut fut).now_or_never() {
                    Some(response) => queue_response(peer, response),
                    None => spawn_task(tasks, fut),
                }
            }
        }
    }
}
