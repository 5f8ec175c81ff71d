//! [`ServerConfig`] and its builder, [`ServerBuilder`]. Every default is documented on its setter.

use std::time::Duration;

use tokio_tungstenite::tungstenite::http::Extensions;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A server's settings. Read them with [`Server::config`](crate::Server::config); set them with
/// [`Server::builder`](crate::Server::builder).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// How long `send` waits for the peer's response. See [`ServerBuilder::response_timeout`].
    pub response_timeout: Duration,
    /// How long a client has to complete the handshake. See [`ServerBuilder::handshake_timeout`].
    pub handshake_timeout: Duration,
    /// Silence after which the server pings. See [`ServerBuilder::ping_interval`].
    pub ping_interval: Duration,
    /// Largest accepted incoming message. See [`ServerBuilder::max_message_size`].
    pub max_message_size: usize,
    /// Frames a connection may have queued for its socket. See [`ServerBuilder::outbound_queue`].
    pub outbound_queue: usize,
    /// Requests from one peer handled at once. See [`ServerBuilder::max_requests_in_flight`].
    pub max_requests_in_flight: usize,
    /// Open connections at once. See [`ServerBuilder::max_connections`].
    pub max_connections: usize,
    /// Time allowed for the HTTP upgrade. See [`ServerBuilder::upgrade_timeout`].
    pub upgrade_timeout: Duration,
    /// Time allowed for the close handshake. See [`ServerBuilder::close_timeout`].
    pub close_timeout: Duration,
    /// Longest connection id [`set_id`](crate::ServerConnection::set_id) accepts, and longest
    /// request id accepted from a client. See [`ServerBuilder::max_id_len`].
    pub max_id_len: usize,
    /// Longest message name accepted from a peer. See [`ServerBuilder::max_name_len`].
    pub max_name_len: usize,
    /// tungstenite's read buffer per connection. See [`ServerBuilder::read_buffer_size`].
    pub read_buffer_size: usize,
    /// The one path the built-in listener serves, if set. See [`ServerBuilder::path`].
    pub path: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            response_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(15),
            max_message_size: 1 << 20,
            outbound_queue: 1024,
            max_requests_in_flight: 128,
            max_connections: 10_000,
            upgrade_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(3),
            max_id_len: 128,
            max_name_len: 128,
            read_buffer_size: 1024,
            path: None,
        }
    }
}

impl ServerConfig {
    pub(crate) fn websocket(&self) -> WebSocketConfig {
        websocket_config(self.read_buffer_size, self.max_message_size)
    }
}

/// Bytes of frames gathered before tungstenite writes to the socket without waiting for the flush.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// The tungstenite settings both ends use: a small read buffer (tungstenite's 128 KiB default
/// costs ~135 KB per idle connection), the message-size limit, and a write buffer that lets
/// the connection's writer feed a whole batch of frames and write them with one flush.
pub(crate) fn websocket_config(
    read_buffer_size: usize,
    max_message_size: usize,
) -> WebSocketConfig {
    let max_message_size = max_message_size.min(MAX_MESSAGE_SIZE);
    WebSocketConfig::default()
        .read_buffer_size(read_buffer_size)
        .write_buffer_size(WRITE_BATCH_BYTES)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// The largest `max_message_size` either end honours: 4 GiB, so offsets into a received
/// frame fit in 32 bits (a received payload keeps its frame and two such offsets).
pub(crate) const MAX_MESSAGE_SIZE: usize = u32::MAX as usize;

/// Builds a [`Server`](crate::Server). Start with [`Server::builder`](crate::Server::builder).
///
/// ```
/// use std::time::Duration;
/// let server = roomwire::Server::builder()
///     .response_timeout(Duration::from_secs(5))
///     .ping_interval(Duration::from_secs(30))
///     .build();
/// assert_eq!(server.config().response_timeout, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ServerBuilder {
    config: ServerConfig,
    state: Extensions,
}

impl ServerBuilder {
    /// How long [`send`](crate::ServerConnection::send) waits for the client's response before
    /// it fails with [`SendError::Timeout`](crate::SendError::Timeout); also how long a ping
    /// waits for its pong (else [`PingError::Timeout`](crate::PingError::Timeout)). Defaults
    /// to 10 seconds.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// How long a client has, from the WebSocket upgrade, to send its handshake and have it
    /// resolved. Past it the connection is closed with 4202 and the reason
    /// `Handshake not completed after N ms`. Defaults to 60 seconds.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// After this long without receiving anything from a connected client, the server pings
    /// it; no pong within the response timeout closes the connection with 4201. Zero turns
    /// the server's pings off (it still answers the client's). Defaults to 15 seconds.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.config.ping_interval = interval;
        self
    }

    /// The largest message (and frame) the server accepts; a larger one closes the
    /// connection with 1009. Defaults to 1 MiB; at most 4 GiB (a larger value counts as 4 GiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// How many frames may wait in one connection's outbound queue. When a frame finds the
    /// queue full, the peer is not reading: the connection is closed with 4210 (slow
    /// consumer) rather than letting memory grow or silently dropping frames.
    /// Defaults to 1024. Values below 1 are raised to 1.
    pub fn outbound_queue(mut self, frames: usize) -> Self {
        self.config.outbound_queue = frames.max(1);
        self
    }

    /// How many requests from one client are handled at the same time. A request past the
    /// limit is answered at once with the error `{"name":"TooManyRequests",...}`; a
    /// fire-and-forget message past the limit is dropped and logged. The connection stays
    /// open either way. Defaults to 128.
    pub fn max_requests_in_flight(mut self, requests: usize) -> Self {
        self.config.max_requests_in_flight = requests.max(1);
        self
    }

    /// How many connections may be open at once; a connection past it has its upgrade
    /// refused with HTTP 503. Defaults to 10,000.
    ///
    /// A TCP connection counts from the moment it is accepted, while its HTTP upgrade is
    /// still under way too (it holds a socket all the same): a client that opens sockets and
    /// never upgrades them holds that many slots until [`upgrade_timeout`](Self::upgrade_timeout)
    /// drops them. Against such clients, a short upgrade timeout helps; per-address limits
    /// belong in front of the server (a proxy or firewall). A request answered without an
    /// upgrade (an HTTP error, a denial) gives its slot back as it is answered; a `wss://`
    /// connection holds its slot until its socket's TLS close has ended.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.config.max_connections = connections;
        self
    }

    /// How long a new TCP connection has to complete the WebSocket upgrade before it is
    /// dropped. Defaults to 10 seconds.
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.config.upgrade_timeout = timeout;
        self
    }

    /// After the server sends a close frame, how long it waits for the peer's close frame
    /// before dropping the socket anyway. Bounds [`Server::close`](crate::Server::close). Defaults to 3 seconds.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// The longest id (in bytes) [`set_id`](crate::ServerConnection::set_id) accepts, and the
    /// longest request id (`i`, as its JSON text) accepted from a client: a frame with a
    /// longer one is dropped as malformed (the connection stays open), so a peer cannot make
    /// the server echo huge ids. Defaults to 128.
    pub fn max_id_len(mut self, bytes: usize) -> Self {
        self.config.max_id_len = bytes;
        self
    }

    /// The longest message name (in bytes) accepted from a client. A request with a longer
    /// name is answered with the error `{"name":"NameTooLong",...}`; a fire-and-forget message
    /// is dropped and logged. The connection stays open. Defaults to 128.
    pub fn max_name_len(mut self, bytes: usize) -> Self {
        self.config.max_name_len = bytes;
        self
    }

    /// The size of each connection's WebSocket read buffer, and the most read from the socket
    /// at once. Every connection holds one for its whole life, so a small one keeps idle
    /// connections cheap (1 KiB: about 3,800 B per idle connection in all; 4 KiB: about 6,900);
    /// a message larger than the buffer is read in several passes (the buffer grows for it),
    /// one system call each. Raise it if most messages are larger than a few KiB.
    /// Defaults to 1 KiB; at least 256 bytes.
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config.read_buffer_size = bytes.max(256);
        self
    }

    /// The path the built-in HTTP handling ([`listen`](crate::Server::listen),
    /// [`serve`](crate::Server::serve), [`serve_connection`](crate::Server::serve_connection))
    /// serves WebSocket connections on; a request for any other path gets 404 and no
    /// connection. The query string is not part of the path. A path without a leading `/`
    /// gets one.
    ///
    /// Defaults to none: every path is served, as Line's server does (its clients connect
    /// to whatever URL they are given, `ws://host:port` being the root `/`). A server
    /// mounted on a router ([`handle_upgrade`](crate::Server::handle_upgrade), axum) is
    /// reached on the route the router gives it, and this setting does not apply.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path: String = path.into();
        self.config.path = Some(if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        });
        self
    }

    /// Gives the server a value of application state (a database pool, settings, a
    /// channel): every handler and hook reads it with
    /// [`ServerConnection::app_state`](crate::ServerConnection::app_state) (and
    /// [`Server::app_state`](crate::Server::app_state)), by its type. One value per type; a second
    /// of the same type replaces the first. Share mutable state through its own lock or
    /// atomics (`Arc<Mutex<T>>`).
    ///
    /// ```
    /// #[derive(Clone)]
    /// struct Db { url: String }
    ///
    /// let server = roomwire::Server::builder()
    ///     .app_state(Db { url: "postgres://localhost/app".into() })
    ///     .build();
    /// assert_eq!(server.app_state::<Db>().unwrap().url, "postgres://localhost/app");
    /// ```
    pub fn app_state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// The settings and the state, for [`build`](Self::build) (in `server.rs`: settings do
    /// not build the server themselves).
    pub(crate) fn into_parts(self) -> (ServerConfig, Extensions) {
        (self.config, self.state)
    }
}
