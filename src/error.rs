//! [`Error`], what an operation can fail with, and [`Rejection`], the error object on the wire.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What went wrong in a roomwire operation.
///
/// Each variant's message says what happened and what to do about it. [`Error::name`]
/// gives the stable name used when an error is sent to the peer as a [`Rejection`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer did not respond to a request within its timeout. A response that arrives
    /// later is ignored.
    #[error("no response to \"{name}\" within {timeout:?}: the peer is slow or gone; raise the timeout or check the peer's handler")]
    Timeout {
        /// The name of the request.
        name: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The peer answered the request with an error.
    #[error("the peer rejected the request: {0}")]
    Rejected(Rejection),
    /// The connection is closed (or closed before the response came).
    #[error("the connection is closed; no response will come (reconnect, or check the disconnect reason)")]
    Disconnected,
    /// A payload from the peer could not be deserialized into the expected type.
    #[error("the peer's payload does not match the expected type: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// A payload could not be serialized to JSON.
    #[error("could not serialize the payload to JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// The connection's handshake is not accepted yet: nothing but handshake and ping
    /// responses may be sent before it (send from the `on_connection` hook on).
    #[error("the connection's handshake is not accepted yet; send requests from on_connection on")]
    HandshakePending,
    /// The handshake is already resolved (or rejected): the operation belongs to the handshake phase.
    #[error("the handshake is already resolved; set the id before resolving it")]
    HandshakeEnded,
    /// Another live connection already has this id.
    #[error("another live connection already has the id {id:?}; choose another id or close that connection first")]
    IdConflict {
        /// The id that is taken.
        id: String,
    },
    /// A connection id that is empty or longer than the configured maximum.
    #[error("invalid connection id: {reason}")]
    InvalidId {
        /// What is wrong with it.
        reason: String,
    },
    /// The connection's outbound queue is full: the peer does not read fast enough. The
    /// connection is being closed with [`close_code::SLOW_CONSUMER`](crate::protocol::close_code::SLOW_CONSUMER).
    #[error("the connection's outbound queue is full (the peer does not read); it is being closed with code 4210")]
    QueueFull,
    /// A ping went unanswered.
    #[error("ping failed: no pong within {0:?}")]
    PingFailed(Duration),
    /// The server rejected the client's handshake.
    #[error("the server rejected the handshake: {0}")]
    HandshakeRejected(Rejection),
    /// The server's handshake response was not what the protocol says (`p` must be an object
    /// with a string `id`).
    #[error("bad handshake response from the server: {0}")]
    HandshakeFailed(String),
    /// The server is closing or closed; it accepts no more connections.
    #[error("the server is closed; build a new one to listen again")]
    ServerClosed,
    /// The client was given a `wss://` URL, and roomwire was built without its `tls`
    /// feature.
    #[error("wss:// needs TLS, which this build of roomwire leaves out: enable roomwire's `tls` feature (features = [\"tls\"] in Cargo.toml)")]
    TlsNotEnabled,
    /// A WebSocket-level error (bad upgrade, protocol violation, closed socket).
    #[error("WebSocket error: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// An I/O error (binding, accepting, connecting).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A stable name for the error, used as the `name` of a [`Rejection`] built from it
    /// (Line's error names where Line has one).
    pub fn name(&self) -> &'static str {
        match self {
            Error::Timeout { .. } => "MessageTimeout",
            Error::Rejected(_) => "MessageRejected",
            Error::Disconnected => "Disconnected",
            Error::InvalidJson(_) => "InvalidJson",
            Error::Encode(_) => "InvalidJson",
            Error::HandshakePending => "HandshakePending",
            Error::HandshakeEnded => "HandshakeEnded",
            Error::IdConflict { .. } => "IdConflict",
            Error::InvalidId { .. } => "InvalidId",
            Error::QueueFull => "QueueFull",
            Error::PingFailed(_) => "PingFailed",
            Error::HandshakeRejected(_) => "HandshakeRejected",
            Error::HandshakeFailed(_) => "HandshakeFailed",
            Error::ServerClosed => "ServerClosed",
            Error::TlsNotEnabled => "TlsNotEnabled",
            Error::WebSocket(_) => "WebSocketError",
            Error::Io(_) => "IoError",
        }
    }
}

/// The error object sent on the wire when a request is rejected:
/// `{"name": ..., "message": ..., "code"?: ..., "data"?: ...}`.
///
/// Line's JavaScript clients turn it into an `Error` with these members. Build one with
/// [`Rejection::new`]; any [`Error`] converts into one (its [`name`](Error::name) and message),
/// so a handler can use `?` on roomwire calls.
///
/// ```
/// use roomwire::Rejection;
/// let r = Rejection::new("Unauthorized", "unknown token").with_code("E401");
/// assert_eq!(r.name(), "Unauthorized");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    name: String,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

impl Rejection {
    /// A rejection with a name (what kind of error, e.g. `"Unauthorized"`) and a message for humans.
    pub fn new(name: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            name: name.into(),
            message: message.into(),
            code: None,
            data: None,
        }
    }

    /// Adds a machine-readable `code` member.
    pub fn with_code(mut self, code: impl Into<Value>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Adds a `data` member with any extra detail.
    pub fn with_data(mut self, data: impl Into<Value>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// The error's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `code` member, if any.
    pub fn code(&self) -> Option<&Value> {
        self.code.as_ref()
    }

    /// The `data` member, if any.
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }

    /// Reads any error value a peer sent. An object with string `name` and `message` maps
    /// member for member; anything else (a string, a number, an object of another shape)
    /// becomes a rejection named `"Error"` whose `data` holds the value as it came, so
    /// nothing the peer said is lost.
    pub(crate) fn from_wire(raw: &str) -> Self {
        if let Ok(r) = serde_json::from_str::<Rejection>(raw) {
            return r;
        }
        let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
        let message = match &value {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            other => other.to_string(),
        };
        let name = match &value {
            Value::Object(o) => o.get("name").and_then(Value::as_str).unwrap_or("Error"),
            _ => "Error",
        };
        Rejection::new(name, message).with_data(value)
    }

    pub(crate) fn no_handler(name: &str) -> Self {
        Rejection::new("NoHandler", format!("no handler for {name:?}"))
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Rejection::new("InternalError", message)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for Rejection {}

impl From<Error> for Rejection {
    fn from(e: Error) -> Self {
        match e {
            Error::Rejected(r) => r,
            other => Rejection::new(other.name(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_line_error_objects_member_for_member() {
        let r = Rejection::from_wire(r#"{"name":"Nope","message":"no","code":7}"#);
        assert_eq!(r.name(), "Nope");
        assert_eq!(r.message(), "no");
        assert_eq!(r.code(), Some(&Value::from(7)));
    }

    #[test]
    fn keeps_non_standard_error_values_in_data() {
        let r = Rejection::from_wire(r#""just a string""#);
        assert_eq!(r.name(), "Error");
        assert_eq!(r.message(), "just a string");
        assert_eq!(r.data(), Some(&Value::from("just a string")));
        let r = Rejection::from_wire(r#"{"reason":1}"#);
        assert_eq!(r.data(), Some(&serde_json::json!({"reason":1})));
    }

    #[test]
    fn errors_convert_to_rejections_with_stable_names() {
        let r: Rejection = Error::IdConflict { id: "bob".into() }.into();
        assert_eq!(r.name(), "IdConflict");
        assert!(r.message().contains("bob"));
    }
}
