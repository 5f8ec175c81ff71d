//! What each operation can fail with — [`SendError`], [`NotifyError`], [`EncodeError`],
//! [`DecodeError`], [`IdError`], [`JoinError`], [`PingError`], [`ServeError`] (and the
//! client's [`ConnectError`](crate::client::ConnectError)) — the [`Error`] every one of them
//! converts into, and [`Rejection`], the error object on the wire.
//!
//! Every error converts into a [`Rejection`] named with a stable name (Line's where Line has
//! one), so a request handler can pass any of them on with `?`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an awaited request fails with: [`ServerConnection::send`](crate::ServerConnection::send),
/// [`Client::send`](crate::client::Client::send) and their `send_timeout`, and each member's
/// [`BroadcastReply`](crate::BroadcastReply).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer did not respond within the timeout. A response that arrives later is ignored.
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
    /// The connection's handshake is not accepted yet: nothing but handshake and ping
    /// responses may be sent before it (send from the `on_connection` hook on).
    #[error("the connection's handshake is not accepted yet; send requests from on_connection on")]
    HandshakePending,
    /// The response does not fit the type the caller expects.
    #[error("the peer's response does not match the expected type: {0}")]
    Decode(#[source] serde_json::Error),
    /// The request's payload could not be serialized to JSON (then nothing was sent).
    #[error("could not serialize the payload to JSON (nothing was sent): {0}")]
    Encode(#[source] serde_json::Error),
    /// The connection's outbound queue is full: the peer does not read fast enough. The
    /// connection is being closed with [`CloseCode::SLOW_CONSUMER`](crate::CloseCode::SLOW_CONSUMER).
    #[error("the connection's outbound queue is full (the peer does not read); it is being closed with code 4210")]
    QueueFull,
}

impl SendError {
    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            SendError::Timeout { .. } => "MessageTimeout",
            SendError::Rejected(_) => "MessageRejected",
            SendError::Disconnected => "Disconnected",
            SendError::HandshakePending => "HandshakePending",
            SendError::Decode(_) | SendError::Encode(_) => "InvalidJson",
            SendError::QueueFull => "QueueFull",
        }
    }
}

/// What a fire-and-forget message fails with:
/// [`ServerConnection::send_without_response`](crate::ServerConnection::send_without_response)
/// and [`Client::send_without_response`](crate::client::Client::send_without_response).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The payload could not be serialized to JSON (then nothing was sent).
    #[error("could not serialize the payload to JSON (nothing was sent): {0}")]
    Encode(#[source] serde_json::Error),
    /// The connection is closed.
    #[error("the connection is closed; the message was not sent (reconnect, or check the disconnect reason)")]
    Disconnected,
    /// The connection's handshake is not accepted yet (send from the `on_connection` hook on).
    #[error("the connection's handshake is not accepted yet; send messages from on_connection on")]
    HandshakePending,
    /// The connection's outbound queue is full: the peer does not read fast enough. The
    /// connection is being closed with [`CloseCode::SLOW_CONSUMER`](crate::CloseCode::SLOW_CONSUMER).
    #[error("the connection's outbound queue is full (the peer does not read); it is being closed with code 4210")]
    QueueFull,
}

impl NotifyError {
    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            NotifyError::Encode(_) => "InvalidJson",
            NotifyError::Disconnected => "Disconnected",
            NotifyError::HandshakePending => "HandshakePending",
            NotifyError::QueueFull => "QueueFull",
        }
    }
}

/// A payload could not be serialized to JSON (a map with keys that are not strings, a
/// `Serialize` that fails), so nothing was sent: what a broadcast
/// ([`BroadcastOperator::emit`](crate::BroadcastOperator::emit) and
/// [`send`](crate::BroadcastOperator::send), [`Server::broadcast`](crate::Server::broadcast))
/// and [`ClientBuilder::handshake_payload`](crate::client::ClientBuilder::handshake_payload)
/// fail with.
#[derive(Debug, thiserror::Error)]
#[error("could not serialize the payload to JSON (nothing was sent): {0}")]
pub struct EncodeError(#[source] serde_json::Error);

impl EncodeError {
    pub(crate) fn new(error: serde_json::Error) -> Self {
        EncodeError(error)
    }

    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`]).
    pub fn name(&self) -> &'static str {
        "InvalidJson"
    }

    /// serde_json's error, which says what could not be serialized.
    pub fn into_inner(self) -> serde_json::Error {
        self.0
    }
}

/// A payload from the peer does not fit the type asked for: what
/// [`Handshake::payload`](crate::Handshake::payload) and
/// [`Client::handshake_payload`](crate::client::Client::handshake_payload) fail with.
#[derive(Debug, thiserror::Error)]
#[error("the peer's payload does not match the expected type: {0}")]
pub struct DecodeError(#[source] serde_json::Error);

impl DecodeError {
    pub(crate) fn new(error: serde_json::Error) -> Self {
        DecodeError(error)
    }

    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`]).
    pub fn name(&self) -> &'static str {
        "InvalidJson"
    }

    /// serde_json's error, which says how the payload differs from the type.
    pub fn into_inner(self) -> serde_json::Error {
        self.0
    }
}

/// What [`ServerConnection::set_id`](crate::ServerConnection::set_id) fails with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Another live connection already has this id.
    #[error("another live connection already has the id {id:?}; choose another id or close that connection first")]
    Conflict {
        /// The id that is taken.
        id: String,
    },
    /// The id is empty or longer than [`max_id_len`](crate::ServerBuilder::max_id_len).
    #[error("invalid connection id: an id must be 1 to {max} bytes long, got {len} bytes (raise max_id_len for longer ids)")]
    InvalidLength {
        /// The id's length in bytes.
        len: usize,
        /// The longest id allowed ([`max_id_len`](crate::ServerBuilder::max_id_len)).
        max: usize,
    },
    /// The handshake is already resolved (or rejected): an id is set during the handshake.
    #[error("the handshake is already resolved; set the id before resolving it")]
    HandshakeEnded,
    /// The connection is closed.
    #[error("the connection is closed; its id can no longer change")]
    Disconnected,
}

impl IdError {
    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            IdError::Conflict { .. } => "IdConflict",
            IdError::InvalidLength { .. } => "InvalidId",
            IdError::HandshakeEnded => "HandshakeEnded",
            IdError::Disconnected => "Disconnected",
        }
    }
}

/// What [`ServerConnection::join`](crate::ServerConnection::join) fails with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The connection is closed: it joins no room any more.
    #[error("the connection is closed; it can join no room")]
    Disconnected,
}

impl JoinError {
    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            JoinError::Disconnected => "Disconnected",
        }
    }
}

/// What a ping fails with: [`ServerConnection::ping`](crate::ServerConnection::ping) and
/// [`Client::ping`](crate::client::Client::ping).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// No pong within the response timeout: the peer is slow or gone.
    #[error("ping failed: no pong within {0:?}; the peer is slow or gone")]
    Timeout(Duration),
    /// The connection is closed (or closed before the pong came).
    #[error(
        "the connection is closed; no pong will come (reconnect, or check the disconnect reason)"
    )]
    Disconnected,
}

impl PingError {
    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            PingError::Timeout(_) => "PingFailed",
            PingError::Disconnected => "Disconnected",
        }
    }
}

/// What serving fails with: the output of the [`Serve`](crate::Serve) that
/// [`Server::listen`](crate::Server::listen) and [`Server::serve`](crate::Server::serve) return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound, or the listener has none.
    #[error("could not listen (check the address, and that no other process holds the port): {0}")]
    Io(#[from] std::io::Error),
    /// The server was closed before: it accepts no more connections.
    #[error("the server is closed; build a new one to listen again")]
    Closed,
}

impl ServeError {
    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            ServeError::Io(_) => "IoError",
            ServeError::Closed => "ServerClosed",
        }
    }
}

/// Any roomwire error: every operation's own error converts into it, so `?` works in a
/// function that calls several (`main`, a hook) and returns `Result<_, roomwire::Error>`.
///
/// Match on the operation's error inside to tell what went wrong:
///
/// ```
/// use roomwire::{Error, SendError};
///
/// fn retry(error: &Error) -> bool {
///     matches!(error, Error::Send(SendError::Timeout { .. }))
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An awaited request failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A fire-and-forget message failed.
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// A payload could not be serialized.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A payload from the peer does not fit its type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Setting a connection's id failed.
    #[error(transparent)]
    Id(#[from] IdError),
    /// Joining a room failed.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// A ping failed.
    #[error(transparent)]
    Ping(#[from] PingError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The client could not connect.
    #[cfg(feature = "client")]
    #[error(transparent)]
    Connect(#[from] crate::client::ConnectError),
}

impl Error {
    /// A stable name for the error, used as the `name` of a [`Rejection`] built from it
    /// (Line's error names where Line has one): `MessageTimeout`, `Disconnected`,
    /// `InvalidJson`, ... (docs/PROTOCOL.md lists them all).
    pub fn name(&self) -> &'static str {
        match self {
            Error::Send(e) => e.name(),
            Error::Notify(e) => e.name(),
            Error::Encode(e) => e.name(),
            Error::Decode(e) => e.name(),
            Error::Id(e) => e.name(),
            Error::Join(e) => e.name(),
            Error::Ping(e) => e.name(),
            Error::Serve(e) => e.name(),
            #[cfg(feature = "client")]
            Error::Connect(e) => e.name(),
        }
    }
}

/// The error object sent on the wire when a request is rejected:
/// `{"name": ..., "message": ..., "code"?: ..., "data"?: ...}`.
///
/// Line's JavaScript clients turn it into an `Error` with these members. Build one with
/// [`Rejection::new`]; every roomwire error converts into one (its stable
/// [`name`](Error::name) and its message), so a handler can use `?` on roomwire calls.
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

impl From<SendError> for Rejection {
    /// The peer's own rejection passes on unchanged; any other error becomes a rejection
    /// with its stable name and its message.
    fn from(e: SendError) -> Self {
        match e {
            SendError::Rejected(r) => r,
            other => Rejection::new(other.name(), other.to_string()),
        }
    }
}

/// `From<$error> for Rejection`: the error's stable name and its message.
macro_rules! named_rejection {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for Rejection {
            fn from(e: $error) -> Self {
                Rejection::new(e.name(), e.to_string())
            }
        }
    )*};
}

named_rejection!(
    NotifyError,
    EncodeError,
    DecodeError,
    IdError,
    JoinError,
    PingError,
    ServeError
);
#[cfg(feature = "client")]
named_rejection!(crate::client::ConnectError);

impl From<Error> for Rejection {
    /// As the operation's error converts: a peer's rejection ([`SendError::Rejected`])
    /// passes on unchanged.
    fn from(e: Error) -> Self {
        match e {
            Error::Send(e) => e.into(),
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
        let r: Rejection = IdError::Conflict { id: "bob".into() }.into();
        assert_eq!(r.name(), "IdConflict");
        assert!(r.message().contains("bob"));
        let timeout = SendError::Timeout {
            name: "add".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(Rejection::from(timeout).name(), "MessageTimeout");
        assert_eq!(
            Rejection::from(PingError::Disconnected).name(),
            "Disconnected"
        );
        assert_eq!(
            Rejection::from(Error::from(PingError::Timeout(Duration::ZERO))).name(),
            "PingFailed"
        );
        assert_eq!(Rejection::from(ServeError::Closed).name(), "ServerClosed");
    }

    #[test]
    fn every_error_passes_on_with_question_mark_into_a_rejection_and_into_error() {
        fn passes_on<E: Into<Rejection> + Into<Error>>() {}
        passes_on::<SendError>();
        passes_on::<NotifyError>();
        passes_on::<EncodeError>();
        passes_on::<DecodeError>();
        passes_on::<IdError>();
        passes_on::<JoinError>();
        passes_on::<PingError>();
        passes_on::<ServeError>();
        #[cfg(feature = "client")]
        passes_on::<crate::client::ConnectError>();
    }

    #[test]
    fn a_peers_rejection_passes_on_unchanged() {
        let theirs = Rejection::new("Nope", "not today").with_code(7);
        let passed: Rejection = Error::from(SendError::Rejected(theirs.clone())).into();
        assert_eq!(passed, theirs);
    }
}
