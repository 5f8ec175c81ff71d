//! [`Handshake`]: the client's first request, what the server learns from it, and how the
//! server answers it — exactly once, because [`resolve`](Handshake::resolve) and
//! [`reject`](Handshake::reject) consume it and the handler must return what they make.
//!
//! The server's side of the handshake phase lives here too: [`start`] runs the
//! application's handshake handler (under an unwind guard) when `_h` arrives, and its end
//! answers the client, registers the connection as connected, and hands the driver the
//! `on_connection` hook to run.

use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::http::HeaderMap;

use crate::connection::{ConnectionState, HandshakeEnd, ServerConnection};
use crate::error::{DecodeError, Rejection};
use crate::handler::BoxFuture;
use crate::metrics;
use crate::protocol::{self, CloseCode, RawId};
use crate::upgrade::UpgradeRequest;

/// A client's handshake, handed to the [`on_handshake`](crate::Server::on_handshake) handler.
///
/// The handler reads the payload and the upgrade request, may
/// [set the connection's id](crate::ServerConnection::set_id), and returns
/// [`resolve`](Self::resolve) or [`reject`](Self::reject).
///
/// ```
/// use roomwire::{Handshake, HandshakeOutcome, Rejection, ServerConnection};
///
/// #[derive(serde::Deserialize)]
/// struct Creds { token: String }
///
/// async fn check(conn: ServerConnection, hs: Handshake) -> HandshakeOutcome {
///     let Ok(creds) = hs.payload::<Creds>() else {
///         return hs.reject(Rejection::new("BadRequest", "expected {\"token\": string}"));
///     };
///     if creds.token != "secret" {
///         return hs.reject(Rejection::new("Unauthorized", "unknown token"));
///     }
///     match conn.set_id("alice") {
///         Ok(()) => hs.resolve(serde_json::json!({ "name": "Alice" })),
///         Err(e) => hs.reject(e),
///     }
/// }
/// ```
pub struct Handshake {
    id: RawId,
    /// The payload's raw JSON text (validated); `None` for none or `null`.
    payload: Option<Box<str>>,
    request: UpgradeRequest,
}

impl Handshake {
    pub(crate) fn new(id: RawId, payload: Option<Box<str>>, request: UpgradeRequest) -> Self {
        Handshake {
            id,
            payload,
            request,
        }
    }

    /// The client's handshake payload, deserialized into `T`. A client that sent no payload
    /// has sent `null` (so `Option<T>` accepts both).
    ///
    /// # Errors
    /// [`DecodeError`], saying how the payload differs from `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        let raw = self.payload.as_deref().unwrap_or("null");
        serde_json::from_str(raw).map_err(DecodeError::new)
    }

    /// The HTTP request the connection was upgraded from: path, query, headers, the peer's
    /// address, the request's extensions. The same whichever way the connection came in
    /// (the built-in listener, [`serve_connection`](crate::Server::serve_connection), hyper
    /// or axum).
    pub fn request(&self) -> &UpgradeRequest {
        &self.request
    }

    /// The path of the upgrade request (`/` when the client asked for the root).
    pub fn path(&self) -> &str {
        self.request.path()
    }

    /// The query string of the upgrade request, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.request.query()
    }

    /// The headers of the upgrade request.
    pub fn headers(&self) -> &HeaderMap {
        self.request.headers()
    }

    /// The peer's socket address, if the transport has one. Behind a proxy, see
    /// [`UpgradeRequest::client_ip`].
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.request.remote_addr()
    }

    /// Accepts the handshake. The client receives `{"id": <connection id>, "payload": payload}`.
    /// A payload that cannot be serialized rejects the handshake with an `InternalError`
    /// (and logs why) rather than leave the client waiting.
    pub fn resolve<T: Serialize>(self, payload: T) -> HandshakeOutcome {
        match serde_json::value::to_raw_value(&payload) {
            Ok(raw) => HandshakeOutcome {
                id: self.id,
                result: Ok(raw),
            },
            Err(e) => {
                tracing::error!(error = %e, "the handshake payload is not serializable; rejecting");
                HandshakeOutcome::rejected(
                    self.id,
                    Rejection::internal("the server could not encode its handshake response"),
                )
            }
        }
    }

    /// Rejects the handshake: the client receives the error, then the connection is closed
    /// with 4203 "Handshake rejected".
    pub fn reject(self, rejection: impl Into<Rejection>) -> HandshakeOutcome {
        HandshakeOutcome::rejected(self.id, rejection.into())
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("payload", &self.payload.as_deref())
            .field("uri", self.request.uri())
            .field("remote_addr", &self.request.remote_addr())
            .finish_non_exhaustive()
    }
}

/// How a handshake ended; made only by [`Handshake::resolve`] or [`Handshake::reject`].
#[must_use = "return it from the handshake handler"]
pub struct HandshakeOutcome {
    id: RawId,
    result: Result<Box<RawValue>, Rejection>,
}

impl HandshakeOutcome {
    pub(crate) fn rejected(id: RawId, rejection: Rejection) -> Self {
        HandshakeOutcome {
            id,
            result: Err(rejection),
        }
    }

    pub(crate) fn into_parts(self) -> (RawId, Result<Box<RawValue>, Rejection>) {
        (self.id, self.result)
    }

    /// Whether the handshake was accepted.
    pub fn is_accepted(&self) -> bool {
        self.result.is_ok()
    }
}

impl fmt::Debug for HandshakeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.result {
            Ok(p) => f.debug_tuple("Accepted").field(&p.get()).finish(),
            Err(r) => f.debug_tuple("Rejected").field(r).finish(),
        }
    }
}

/// An `_h` arrived on `conn`: starts the handshake handler, or answers at once when the
/// handshake is over or already under way.
pub(crate) fn start(
    conn: &ServerConnection,
    id: RawId,
    payload: Option<&str>,
) -> Option<BoxFuture<HandshakeEnd>> {
    let refuse = |rejection: Rejection| {
        let _ = conn.peer().queue(protocol::encode_reject(&id, &rejection));
        None
    };
    if conn.state() != ConnectionState::Handshaking {
        return refuse(Rejection::new(
            "HandshakeEnded",
            "Handshake is already resolved",
        ));
    }
    if !conn.start_handshake() {
        return refuse(Rejection::new(
            "HandshakeInProgress",
            "a handshake is already being processed; wait for its response",
        ));
    }
    let handshake = Handshake::new(id.clone(), payload.map(Box::from), conn.take_request());
    let hook = conn.shared().hooks().on_handshake.clone();
    let conn = conn.clone();
    Some(Box::pin(async move {
        let outcome = match hook {
            None => handshake.resolve(()),
            Some(hook) => {
                // The handler's call and its future, both under the guard.
                let run = AssertUnwindSafe(async { hook(conn.clone(), handshake).await });
                match run.catch_unwind().await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::error!("the handshake handler panicked; rejecting the handshake");
                        HandshakeOutcome::rejected(
                            id,
                            Rejection::internal("the handshake handler failed"),
                        )
                    }
                }
            }
        };
        finish(&conn, outcome)
    }))
}

/// Answers the handshake as the handler decided.
fn finish(conn: &ServerConnection, outcome: HandshakeOutcome) -> HandshakeEnd {
    if conn.state() != ConnectionState::Handshaking {
        return HandshakeEnd::NotAccepted;
    }
    let (request_id, result) = outcome.into_parts();
    let payload = match result {
        Ok(payload) => payload,
        Err(rejection) => {
            tracing::info!(reason = %rejection, "handshake rejected");
            metrics::handshake(metrics::Handshake::Rejected);
            let _ = conn
                .peer()
                .queue(protocol::encode_reject(&request_id, &rejection));
            conn.peer()
                .close(CloseCode::HANDSHAKE_REJECTED, "Handshake rejected");
            return HandshakeEnd::NotAccepted;
        }
    };
    #[derive(Serialize)]
    struct Accepted<'a> {
        id: &'a str,
        payload: &'a RawValue,
    }
    let id = conn.id();
    let accepted = Accepted {
        id: &id,
        payload: &payload,
    };
    let Ok(frame) = protocol::encode_resolve(&request_id, &accepted) else {
        return HandshakeEnd::NotAccepted;
    };
    if conn.peer().queue(frame).is_err() {
        return HandshakeEnd::NotAccepted;
    }
    // After the response is queued: no broadcast can overtake it.
    if !conn.mark_connected_if_handshaking() {
        return HandshakeEnd::NotAccepted;
    }
    tracing::Span::current().record("id", tracing::field::display(&id));
    tracing::info!(id = %id, "handshake accepted");
    metrics::handshake(metrics::Handshake::Accepted);
    let Some(hook) = conn.shared().hooks().on_connection.clone() else {
        return HandshakeEnd::Accepted(None);
    };
    let conn = conn.clone();
    // The hook's call and its future, both under the guard: a panic closes with 1011.
    HandshakeEnd::Accepted(Some(Box::pin(async move {
        let guarded = AssertUnwindSafe(async { hook(conn.clone()).await }).catch_unwind();
        if guarded.await.is_err() {
            conn.close_after_panic("on_connection");
        }
    })))
}
