//! [`Router`]: what a connection does with each frame it reads. Responses go to the pending
//! table, pings are answered, the handshake goes to the endpoint, and named messages start
//! their handler. The router owns the connection's running handlers and its pending
//! handshake (with the frames pipelined behind it), so they all end with the connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::driver::{DriverConfig, Endpoint, HandshakeEnd};
use crate::error::{Rejection, SendError};
use crate::handler::{BoxFuture, HandlerFuture, Handlers, PayloadText, Snapshot};
use crate::metrics::Received;
use crate::protocol::{self, names, Payload, RawId};

/// A handshake whose handler is still running, and the frames that arrived behind it.
struct PendingHandshake {
    future: BoxFuture<HandshakeEnd>,
    /// Named messages pipelined behind `_h`, in order: routed once it is accepted, dropped
    /// if it is rejected. At most `max_in_flight` of them, and at most [`MAX_HELD_BYTES`]:
    /// a peer no one has authenticated yet cannot park much memory here.
    held: VecDeque<Utf8Bytes>,
    held_bytes: usize,
    /// A message beyond the bound was dropped and logged as a warning already.
    warned: bool,
}

/// The most bytes of frames held behind a pending handshake, per connection.
const MAX_HELD_BYTES: usize = 64 * 1024;

/// What a connection does with the frames it reads; see the module docs.
pub(crate) struct Router<E: Endpoint> {
    ep: E,
    handlers: Arc<Handlers<E>>,
    lookup: Snapshot<E>,
    cfg: DriverConfig,
    /// The request handlers running now (created on first use and dropped when empty: an
    /// idle connection holds none). Each ends with its response frame, if it has one.
    tasks: Option<FuturesUnordered<HandlerFuture>>,
    /// The `on_connection` hook, while it runs: beside the handlers, but taking no slot.
    hook: Option<BoxFuture<()>>,
    handshake: Option<Box<PendingHandshake>>,
    /// What the handlers, the hook and the handshake are polled with: it wakes the driver
    /// without a wasted poll when they are woken from inside its own (see `wake.rs`).
    waker: Waker,
}

impl<E: Endpoint> Router<E> {
    pub(crate) fn new(ep: E, handlers: Arc<Handlers<E>>, cfg: DriverConfig) -> Self {
        Router {
            waker: Waker::from(ep.peer().driver_wake().clone()),
            lookup: handlers.snapshot(),
            ep,
            handlers,
            cfg,
            tasks: None,
            hook: None,
            handshake: None,
        }
    }

    pub(crate) fn endpoint(&self) -> &E {
        &self.ep
    }

    pub(crate) fn cfg(&self) -> &DriverConfig {
        &self.cfg
    }

    /// The waker for what the driver polls on the connection's behalf (see `waker`).
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Ends the handshake phase early (its timeout passed): the handler and the frames held
    /// behind it are dropped.
    pub(crate) fn abandon_handshake(&mut self) {
        self.handshake = None;
    }

    /// Advances the handshake, the hook and the handlers; queues the responses of handlers
    /// that finish. Whether anything finished.
    pub(crate) fn poll(&mut self) -> bool {
        let mut progress = false;
        let ended = match &mut self.handshake {
            Some(pending) => {
                let cx = &mut Context::from_waker(&self.waker);
                match pending.future.poll_unpin(cx) {
                    Poll::Ready(end) => Some((end, std::mem::take(&mut pending.held))),
                    Poll::Pending => None,
                }
            }
            None => None,
        };
        if let Some((end, held)) = ended {
            self.handshake = None;
            progress = true;
            if let HandshakeEnd::Accepted(hook) = end {
                self.hook = hook;
                // `on_connection` starts first (as it does when nothing was pipelined)...
                let cx = &mut Context::from_waker(&self.waker);
                if self
                    .hook
                    .as_mut()
                    .is_some_and(|h| h.poll_unpin(cx).is_ready())
                {
                    self.hook = None;
                }
                // ...then the held frames, in the order they came, before anything read
                // after this poll.
                for frame in held {
                    self.route(frame);
                }
            }
        }
        let cx = &mut Context::from_waker(&self.waker);
        if let Some(hook) = &mut self.hook {
            if hook.poll_unpin(cx).is_ready() {
                self.hook = None;
                progress = true;
            }
        }
        if let Some(set) = &mut self.tasks {
            while let Poll::Ready(Some(response)) = set.poll_next_unpin(cx) {
                queue_response(self.ep.peer(), response);
                progress = true;
            }
            if set.is_empty() {
                self.tasks = None;
            }
        }
        progress
    }

    /// Decodes one frame and routes it.
    pub(crate) fn route(&mut self, text: Utf8Bytes) {
        let peer = self.ep.peer();
        let msg = match protocol::decode(&text) {
            Ok(msg) => msg,
            Err(e) => {
                peer.report_malformed(&e);
                return;
            }
        };
        if msg.id.is_some_and(|id| id.len() > self.cfg.max_id_len) {
            peer.report_malformed(&protocol::FrameError::IdTooLong {
                len: msg.id.map_or(0, str::len),
                max: self.cfg.max_id_len,
            });
            return;
        }
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
                    Err(SendError::Rejected(Rejection::from_wire(
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
                    if let Some(future) = self.ep.on_handshake(RawId::new(id), msg.payload) {
                        self.handshake = Some(Box::new(PendingHandshake {
                            future,
                            held: VecDeque::new(),
                            held_bytes: 0,
                            warned: false,
                        }));
                    }
                }
            }
            reserved if reserved.starts_with('_') => {
                peer.meter().request_received(Received::UnknownMessage);
                reply(Rejection::new(
                    "UnknownMessage",
                    format!("{reserved:?} is a reserved name this endpoint does not know"),
                ))
            }
            name if name.len() > self.cfg.max_name_len => {
                if payload.is_malformed(peer) {
                    return;
                }
                if msg.id.is_none() {
                    tracing::warn!(len = name.len(), "dropped a message whose name is too long");
                }
                peer.meter().request_received(Received::NameTooLong);
                reply(Rejection::new(
                    "NameTooLong",
                    format!(
                        "message names are at most {} bytes; this one has {}",
                        self.cfg.max_name_len,
                        name.len()
                    ),
                ))
            }
            name => {
                let max_in_flight = self.cfg.max_in_flight;
                if let Some(pending) = &mut self.handshake {
                    // Pipelined behind the handshake: held until it ends.
                    if pending.held.len() < max_in_flight
                        && pending.held_bytes + text.len() <= MAX_HELD_BYTES
                    {
                        // A copy: the frame shares the read buffer's allocation, and a small
                        // frame held could keep a large one alive.
                        pending.held_bytes += text.len();
                        pending
                            .held
                            .push_back(Utf8Bytes::from(text.as_str().to_owned()));
                        return;
                    }
                    if payload.is_malformed(peer) {
                        return;
                    }
                    if msg.id.is_none() {
                        // Once per connection at warning level: a peer nobody authenticated
                        // yet must not be able to flood the logs.
                        if std::mem::replace(&mut pending.warned, true) {
                            tracing::debug!(
                                message = name,
                                "dropped a message held behind the handshake: too many"
                            );
                        } else {
                            tracing::warn!(
                                message = name,
                                "dropped a message: too many held behind the pending handshake (further ones on this connection are logged at debug level)"
                            );
                        }
                    }
                    peer.meter().request_received(Received::TooMany);
                    return reply(Rejection::new(
                        "TooManyRequests",
                        format!("more than {max_in_flight} requests or {MAX_HELD_BYTES} bytes wait for the pending handshake; wait for its response before sending more"),
                    ));
                }
                let handler = self
                    .lookup
                    .get(&self.handlers, name)
                    .filter(|_| self.ep.is_open());
                let Some(handler) = handler else {
                    if payload.is_malformed(peer) {
                        return;
                    }
                    if !self.ep.is_open() {
                        peer.meter().request_received(Received::HandshakeRequired);
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
                    peer.meter().request_received(Received::NoHandler);
                    return reply(Rejection::no_handler(name));
                };
                if self.tasks.as_ref().map_or(0, |t| t.len()) >= max_in_flight {
                    if payload.is_malformed(peer) {
                        return;
                    }
                    if msg.id.is_none() {
                        tracing::warn!(
                            message = name,
                            "dropped a message: too many requests in flight"
                        );
                    }
                    peer.meter().request_received(Received::TooMany);
                    return reply(too_many_requests(max_in_flight));
                }
                if let Some(mut fut) = handler.call(&self.ep, name, payload, msg.id.map(RawId::new))
                {
                    // Most handlers finish on their first poll: run them here, and keep only
                    // the rest (FuturesUnordered polls a pushed future again with the task's
                    // waker).
                    match (&mut fut).now_or_never() {
                        Some(response) => queue_response(peer, response),
                        None => self
                            .tasks
                            .get_or_insert_with(FuturesUnordered::new)
                            .push(fut),
                    }
                }
            }
        }
    }
}

fn too_many_requests(max_in_flight: usize) -> Rejection {
    Rejection::new(
        "TooManyRequests",
        format!("more than {max_in_flight} requests in flight on this connection; wait for responses before sending more"),
    )
}

/// Queues a finished handler's response, if it has one. Fails only when the connection is
/// gone or being closed: then the response goes nowhere.
fn queue_response(peer: &super::peer::Peer, response: Option<Utf8Bytes>) {
    if let Some(frame) = response {
        let _ = peer.queue(frame);
    }
}
