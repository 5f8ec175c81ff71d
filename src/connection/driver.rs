//! The connection driver: one task per socket that reads frames and routes them, writes
//! everything queued for the socket (feeding all that is queued, flushing once), pings a
//! silent peer, runs the handshake phase, and performs the close handshake.
//!
//! The same driver runs the server's connections and the client's socket; what differs
//! (the handshake, who handlers receive) comes from the [`Endpoint`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::peer::Peer;
use crate::error::{Error, Rejection};
use crate::handler::{BoxFuture, Handlers};
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

/// The most frames written between two flushes.
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
    fn handle(&self) -> Self::Handle;
    /// `false` while the handshake is not accepted: named messages are then refused.
    fn is_open(&self) -> bool;
    /// How long the handshake may take, for an endpoint that has one to wait for.
    fn handshake_timeout(&self) -> Option<Duration>;
    /// Handles an `_h` request. Returns the handshake's future when one starts; otherwise
    /// the response is already queued.
    fn on_handshake(
        &self,
        id: RawId,
        payload: Option<&RawValue>,
    ) -> Option<BoxFuture<HandshakeEnd>>;
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverConfig {
    pub ping_interval: Duration,
    pub max_in_flight: usize,
    pub close_timeout: Duration,
}

/// Runs a connection until its socket is closed; returns how it ended. On return, every
/// pending request has been failed with [`Error::Disconnected`]; handlers still running are
/// left to finish in a task of their own (their responses go nowhere).
pub(crate) async fn drive<S, E>(
    mut ws: WebSocketStream<S>,
    mut rx: mpsc::Receiver<Message>,
    ep: E,
    handlers: Arc<Handlers<E>>,
    cfg: DriverConfig,
) -> CloseInfo
where
    S: AsyncRead + AsyncWrite + Unpin,
    E: Endpoint,
{
    let peer = ep.peer();
    let mut tasks: FuturesUnordered<BoxFuture<()>> = FuturesUnordered::new();
    let mut handshake: Option<BoxFuture<HandshakeEnd>> = None;
    let mut auto_ping: Option<BoxFuture<Result<Duration, Error>>> = None;

    let close_requested = peer.close_signal.notified();
    tokio::pin!(close_requested);
    let handshake_timeout = ep.handshake_timeout();
    let handshake_deadline =
        tokio::time::sleep(handshake_timeout.unwrap_or(Duration::from_secs(86_400 * 365)));
    tokio::pin!(handshake_deadline);
    let ping_timer = tokio::time::sleep(cfg.ping_interval);
    tokio::pin!(ping_timer);
    let close_deadline = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(close_deadline);

    let mut last_received = Instant::now();
    // Set once a close frame was sent or received: from then on only reading goes on.
    let mut closing = false;
    let mut ended: Option<CloseInfo> = None;

    let outcome = 'driver: loop {
        // `biased`: a requested close first, then writing what is queued, then a read turn.
        // A read turn handles every frame already buffered (up to MAX_BATCH) and runs the
        // handlers that are ready, so their responses leave together in the next write.
        tokio::select! {
            biased;
            () = &mut close_requested, if !closing => {
                closing = true;
                match begin_close(&mut ws, &mut rx, peer, cfg.close_timeout).await {
                    Ok(info) => ended = Some(info),
                    Err(info) => break info,
                }
                close_deadline.as_mut().reset((Instant::now() + cfg.close_timeout).into());
            }
            Some(first) = rx.recv(), if !closing => {
                // A peer that does not read stalls the write, and a close request (slow
                // consumer, shutdown) must still get through: the write races it. Once a close
                // is requested the batch may still finish within the close timeout, so frames
                // already taken from the queue are not lost to a peer that does read.
                let (written, close_now) = {
                    let write = write_batch(&mut ws, first, &mut rx);
                    tokio::pin!(write);
                    tokio::select! {
                        biased;
                        written = &mut write => (written, false),
                        () = &mut close_requested => {
                            match tokio::time::timeout(cfg.close_timeout, &mut write).await {
                                Ok(written) => (written, true),
                                Err(_) => (Err(WsError::Io(std::io::ErrorKind::TimedOut.into())), true),
                            }
                        }
                    }
                };
                if let Err(e) = written {
                    tracing::debug!(error = %e, "write failed");
                    let requested = close_now.then(|| peer.take_close_request()).flatten();
                    break match requested {
                        Some(r) => CloseInfo { code: r.code, reason: r.reason },
                        None => ended.take().unwrap_or(CloseInfo { code: close_code::ABNORMAL, reason: e.to_string() }),
                    };
                }
                if close_now {
                    closing = true;
                    match begin_close(&mut ws, &mut rx, peer, cfg.close_timeout).await {
                        Ok(info) => ended = Some(info),
                        Err(info) => break info,
                    }
                    close_deadline.as_mut().reset((Instant::now() + cfg.close_timeout).into());
                }
            }
            msg = ws.next() => {
                last_received = Instant::now();
                let mut msg = msg;
                for _ in 0..MAX_BATCH {
                    match read_event(msg) {
                        ReadEvent::Text(text) => {
                            if !closing {
                                route(&ep, &handlers, &mut tasks, &mut handshake, cfg.max_in_flight, text);
                            }
                        }
                        ReadEvent::Control => {}
                        ReadEvent::PeerClose(info) => {
                            // tungstenite queues the reply; keep polling until the stream ends.
                            if !closing {
                                closing = true;
                                close_deadline.as_mut().reset((Instant::now() + cfg.close_timeout).into());
                            }
                            ended.get_or_insert(info);
                        }
                        ReadEvent::Fail { info, send_close } => {
                            if send_close {
                                let frame = close_frame(info.code, &info.reason);
                                let _ = tokio::time::timeout(cfg.close_timeout, ws.close(Some(frame))).await;
                            }
                            break 'driver ended.take().unwrap_or(info);
                        }
                    }
                    match ws.next().now_or_never() {
                        Some(next) => msg = next,
                        None => break,
                    }
                }
                // Run the handlers that are ready now (most finish on their first poll).
                while let Some(Some(())) = tasks.next().now_or_never() {}
            }
            Some(()) = tasks.next(), if !tasks.is_empty() => {}
            () = &mut close_deadline, if closing => {
                break ended.take().unwrap_or(CloseInfo { code: close_code::DISCONNECT_TIMEOUT, reason: "Disconnect timeout".into() });
            }
            end = async { handshake.as_mut().expect("guarded").await }, if handshake.is_some() => {
                handshake = None;
                match end {
                    HandshakeEnd::Accepted(Some(hook)) => tasks.push(hook),
                    HandshakeEnd::Accepted(None) | HandshakeEnd::Abandoned => {}
                    HandshakeEnd::Rejected => peer.close(close_code::HANDSHAKE_REJECTED, "Handshake rejected"),
                }
            }
            () = &mut handshake_deadline, if handshake_timeout.is_some() && !ep.is_open() && !closing => {
                let ms = handshake_timeout.unwrap_or_default().as_millis();
                peer.close(close_code::HANDSHAKE_FAILED, &format!("Handshake not completed after {ms} ms"));
                handshake = None;
            }
            () = &mut ping_timer => {
                let now = Instant::now();
                let due = last_received + cfg.ping_interval;
                if auto_ping.is_some() || !ep.is_open() || closing {
                    ping_timer.as_mut().reset((now + cfg.ping_interval).into());
                } else if now >= due {
                    let ep = ep.clone();
                    auto_ping = Some(Box::pin(async move { ep.peer().ping().await }));
                    ping_timer.as_mut().reset((now + cfg.ping_interval).into());
                } else {
                    ping_timer.as_mut().reset(due.into());
                }
            }
            result = async { auto_ping.as_mut().expect("guarded").await }, if auto_ping.is_some() => {
                auto_ping = None;
                match result {
                    Ok(_) => ping_timer.as_mut().reset((last_received + cfg.ping_interval).into()),
                    Err(Error::Disconnected) => {}
                    Err(_) => peer.close(close_code::PING_FAILED, "Ping failed"),
                }
            }
        }
    };

    peer.pending.close();
    if !tasks.is_empty() {
        tokio::spawn(async move { while tasks.next().await.is_some() {} });
    }
    outcome
}

/// Sends what is already queued (computed responses go out first), then the requested close
/// frame, within `timeout`. `Ok` with the close to report once the peer answers; `Err` with
/// it when the socket failed or stalled, and the connection should end now.
async fn begin_close<S>(
    ws: &mut WebSocketStream<S>,
    rx: &mut mpsc::Receiver<Message>,
    peer: &Peer,
    timeout: Duration,
) -> Result<CloseInfo, CloseInfo>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = peer
        .take_close_request()
        .unwrap_or(super::peer::CloseRequest {
            code: close_code::NORMAL,
            reason: String::new(),
        });
    let info = CloseInfo {
        code: request.code,
        reason: request.reason,
    };
    let frame = close_frame(info.code, &info.reason);
    let sent = tokio::time::timeout(timeout, async {
        while let Ok(m) = rx.try_recv() {
            ws.feed(m).await?;
        }
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

fn read_event(msg: Option<Result<Message, WsError>>) -> ReadEvent {
    let fail = |code: u16, reason: String, send_close: bool| ReadEvent::Fail {
        info: CloseInfo { code, reason },
        send_close,
    };
    match msg {
        Some(Ok(Message::Text(text))) => ReadEvent::Text(text),
        Some(Ok(Message::Binary(bytes))) => match Utf8Bytes::try_from(bytes) {
            Ok(text) => ReadEvent::Text(text),
            Err(_) => {
                tracing::warn!(error = %protocol::FrameError::NotUtf8, "dropped a frame");
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

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }
}

/// Feeds `first` and everything else already queued (up to [`MAX_BATCH`]), then flushes once.
async fn write_batch<S>(
    ws: &mut WebSocketStream<S>,
    first: Message,
    rx: &mut mpsc::Receiver<Message>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.feed(first).await?;
    for _ in 1..MAX_BATCH {
        match rx.try_recv() {
            Ok(m) => ws.feed(m).await?,
            Err(_) => break,
        }
    }
    ws.flush().await
}

/// Decodes one frame and routes it: responses to the pending table, pings answered,
/// the handshake to the endpoint, named messages to their handler.
fn route<E: Endpoint>(
    ep: &E,
    handlers: &Handlers<E>,
    tasks: &mut FuturesUnordered<BoxFuture<()>>,
    handshake: &mut Option<BoxFuture<HandshakeEnd>>,
    max_in_flight: usize,
    text: Utf8Bytes,
) {
    let peer = ep.peer();
    let msg = match protocol::decode(&text) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::warn!(error = %e, "dropped a malformed frame; the connection stays open");
            return;
        }
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
                    msg.error.map_or("null", RawValue::get),
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
        name => {
            if !ep.is_open() {
                return reply(Rejection::new(
                    "HandshakeRequired",
                    format!(
                        "{name:?} arrived before the handshake was accepted; send \"_h\" first"
                    ),
                ));
            }
            let Some(handler) = handlers.get(name) else {
                if msg.id.is_none() {
                    tracing::debug!(message = name, "dropped a message with no handler");
                }
                return reply(Rejection::no_handler(name));
            };
            if tasks.len() >= max_in_flight {
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
            if let Some(fut) = handler.call(ep, name, msg.payload, msg.id.map(RawId::new)) {
                tasks.push(fut);
            }
        }
    }
}
