//! [`Handshake`]: the client's first request, what the server learns from it, and how the
//! server answers it — exactly once, because [`resolve`](Handshake::resolve) and
//! [`reject`](Handshake::reject) consume it and the handler must return what they make.

use std::fmt;
use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::http::{HeaderMap, Uri};

use crate::error::{Error, Rejection};
use crate::protocol::RawId;

/// The facts of the HTTP upgrade request a connection arrived with.
#[derive(Debug, Clone)]
pub(crate) struct RequestInfo {
    pub uri: Uri,
    pub headers: HeaderMap,
    pub remote_addr: SocketAddr,
}

impl RequestInfo {
    pub(crate) fn unknown(remote_addr: SocketAddr) -> Self {
        RequestInfo {
            uri: Uri::default(),
            headers: HeaderMap::new(),
            remote_addr,
        }
    }
}

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
    request: RequestInfo,
}

impl Handshake {
    pub(crate) fn new(id: RawId, payload: Option<Box<str>>, request: RequestInfo) -> Self {
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
    /// [`Error::InvalidJson`], saying how the payload differs from `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let raw = self.payload.as_deref().unwrap_or("null");
        serde_json::from_str(raw).map_err(Error::InvalidJson)
    }

    /// The path of the upgrade request (`/` when the client asked for the root).
    pub fn path(&self) -> &str {
        self.request.uri.path()
    }

    /// The query string of the upgrade request, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.request.uri.query()
    }

    /// The headers of the upgrade request.
    pub fn headers(&self) -> &HeaderMap {
        &self.request.headers
    }

    /// The client's socket address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.request.remote_addr
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
            .field("uri", &self.request.uri)
            .field("remote_addr", &self.request.remote_addr)
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
