//! [`ConnectError`]: what connecting a [`Client`](super::Client) fails with.

use std::time::Duration;

use tokio_tungstenite::tungstenite;

use crate::error::Rejection;

/// What [`ClientBuilder::connect`](super::ClientBuilder::connect) fails with, and each failed
/// reconnect attempt reports ([`ClientEvent::ConnectFailed`](super::ClientEvent::ConnectFailed)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The WebSocket could not be opened: a bad URL, nothing listening, a refused upgrade.
    #[error("could not open the WebSocket (check the URL and that the server runs): {0}")]
    WebSocket(#[source] tungstenite::Error),
    /// The server rejected the handshake; the client does not reconnect after that.
    #[error("the server rejected the handshake: {0}")]
    HandshakeRejected(Rejection),
    /// The server's handshake response is not what the protocol says: `p` must be an object
    /// with a string `id`.
    #[error("bad handshake response from the server (expected {{\"id\": string, \"payload\": any}}): {0}")]
    HandshakeFailed(#[source] serde_json::Error),
    /// Opening the socket and the handshake together took longer than the
    /// [handshake timeout](super::ClientBuilder::handshake_timeout).
    #[error("no handshake response within {0:?}: the server is slow or unreachable; raise the handshake timeout or check the URL")]
    Timeout(Duration),
    /// The socket closed before the server answered the handshake.
    #[error("the connection closed before the server answered the handshake")]
    Disconnected,
    /// The URL is `wss://`, and roomwire was built without its `tls` feature.
    #[error("wss:// needs TLS, which this build of roomwire leaves out: enable roomwire's `tls` feature (features = [\"tls\"] in Cargo.toml)")]
    TlsNotEnabled,
}

impl ConnectError {
    /// A stable name for the error: the `name` of the [`Rejection`] built from it (see
    /// [`Error::name`](crate::Error::name)).
    pub fn name(&self) -> &'static str {
        match self {
            ConnectError::WebSocket(_) => "WebSocketError",
            ConnectError::HandshakeRejected(_) => "HandshakeRejected",
            ConnectError::HandshakeFailed(_) => "HandshakeFailed",
            ConnectError::Timeout(_) => "MessageTimeout",
            ConnectError::Disconnected => "Disconnected",
            ConnectError::TlsNotEnabled => "TlsNotEnabled",
        }
    }
}
