//! The Rust client (feature `client`, on by default): connects to a roomwire (or Line)
//! server, handshakes, exchanges requests both ways, and reconnects after an unexpected close.
//!
//! ```no_run
//! use roomwire::client::Client;
//! use roomwire::Rejection;
//!
//! # async fn run() -> Result<(), roomwire::Error> {
//! let client = Client::builder("ws://127.0.0.1:8080")
//!     .handshake_payload(&serde_json::json!({ "token": "secret" }))?
//!     .on_request("whoami", |_client: Client, (): ()| async move { Ok::<_, Rejection>("rust") })
//!     .connect()
//!     .await?;
//! let sum: i64 = client.send("add", &(1, 2)).await?;
//! assert_eq!(sum, 3);
//! client.close().await;
//! # Ok(()) }
//! ```

mod backoff;
mod error;
mod tls;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

pub use backoff::Backoff;
pub use error::ConnectError;
use tls::Tls;

use crate::config::websocket_config;
use crate::connection::clock;
use crate::connection::driver::{self, DriverConfig};
use crate::connection::peer::Peer;
use crate::connection::router::Router;
use crate::connection::{CloseInfo, Endpoint, HandshakeEnd};
use crate::error::{DecodeError, EncodeError, NotifyError, PingError, Rejection, SendError};
use crate::handler::{BoxFuture, Handlers, TypedHandler};
use crate::protocol::{self, names, CloseCode, RawId};

/// Where a client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// Opening a socket and handshaking.
    Connecting,
    /// Handshaked: requests flow both ways.
    Connected,
    /// Lost the connection; waiting to try again.
    Reconnecting,
    /// Closed for good: by [`Client::close`], a rejected handshake, or with reconnects off.
    Closed,
}

/// Something that happened to a client's connection; see [`Client::events`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A handshake was accepted (after a reconnect, too); the server gave this id.
    Connected {
        /// The connection id.
        id: Arc<str>,
    },
    /// The socket closed.
    Disconnected {
        /// The close code and reason.
        info: CloseInfo,
        /// Whether the client will try to reconnect.
        reconnecting: bool,
    },
    /// The client waits `delay`, then makes reconnect attempt `attempt` (from 1).
    Reconnecting {
        /// The attempt about to be made, from 1.
        attempt: u32,
        /// How long the client waits first.
        delay: Duration,
    },
    /// A reconnect attempt failed; the client tries again.
    ConnectFailed {
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        error: Arc<ConnectError>,
    },
    /// The server rejected a handshake; the client does not reconnect after that.
    HandshakeRejected(Rejection),
    /// The client is closed for good.
    Closed,
}

/// Builds a [`Client`]; start with [`Client::builder`].
#[must_use]
pub struct ClientBuilder {
    url: String,
    handshake_payload: Box<RawValue>,
    response_timeout: Duration,
    handshake_timeout: Duration,
    ping_interval: Duration,
    reconnect: Option<Backoff>,
    max_message_size: usize,
    outbound_queue: usize,
    max_requests_in_flight: usize,
    close_timeout: Duration,
    handlers: Handlers<ClientSocket>,
    tls: Tls,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("reconnect", &self.reconnect)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The payload sent with the handshake (`p` of `_h`). Defaults to none (`null`).
    ///
    /// # Errors
    /// [`EncodeError`] if it cannot be serialized.
    pub fn handshake_payload<T: Serialize + ?Sized>(
        mut self,
        payload: &T,
    ) -> Result<Self, EncodeError> {
        self.handshake_payload =
            serde_json::value::to_raw_value(payload).map_err(EncodeError::new)?;
        Ok(self)
    }

    /// How long [`Client::send`] waits for the server's response; also how long a ping waits.
    /// Defaults to 10 seconds.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How long opening the socket plus the handshake may take. Defaults to 30 seconds (Line's).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// After this long without receiving anything, the client pings the server; no pong
    /// within the response timeout closes the socket with 4201 (and reconnects). Zero turns
    /// the client's pings off. Defaults to 20 seconds (Line's).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Reconnect after an unexpected close, waiting as `backoff` says. On by default with
    /// [`Backoff::default`]. The client never reconnects after [`Client::close`] or after
    /// its handshake was rejected.
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = Some(backoff);
        self
    }

    /// Never reconnect: the client is closed for good when its socket closes.
    pub fn no_reconnect(mut self) -> Self {
        self.reconnect = None;
        self
    }

    /// The largest message the client accepts. Defaults to 16 MiB; at most 4 GiB (a larger
    /// value counts as 4 GiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Frames that may wait for the socket; a full queue closes the socket with 4210.
    /// Defaults to 1024.
    pub fn outbound_queue(mut self, frames: usize) -> Self {
        self.outbound_queue = frames.max(1);
        self
    }

    /// How many requests from the server are handled at the same time; past it a request
    /// is answered `TooManyRequests`. Defaults to 128.
    pub fn max_requests_in_flight(mut self, requests: usize) -> Self {
        self.max_requests_in_flight = requests.max(1);
        self
    }

    /// After the client sends a close frame, how long it waits for the server's before
    /// dropping the socket. Defaults to 3 seconds.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The TLS configuration for a `wss://` URL (feature `tls`): whom the client trusts
    /// (its root certificates), and whether it shows a certificate of its own. Reconnects
    /// use the same configuration. Defaults to Mozilla's root certificates, built in (the
    /// `webpki-roots` crate; the system's certificate store is not read), with rustls's
    /// ring provider.
    ///
    /// A server with a self-signed certificate, or one from a private authority: trust
    /// that certificate.
    ///
    /// ```no_run
    /// use roomwire::client::Client;
    ///
    /// # async fn run(certificate: rustls::pki_types::CertificateDer<'static>) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(certificate)?;
    /// let tls = rustls::ClientConfig::builder()
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let client = Client::builder("wss://localhost:8443")
    ///     .tls_config(tls)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: impl Into<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = Tls::new(config.into());
        self
    }

    /// Registers the handler for server requests (and fire-and-forget messages) named
    /// `name`, with the same rules as [`Server::on_request`](crate::Server::on_request).
    ///
    /// # Panics
    /// If `name` starts with `_`: those names are reserved by the protocol.
    pub fn on_request<F, Fut, Req, Res, Rej>(self, name: &str, handler: F) -> Self
    where
        F: Fn(Client, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Res, Rej>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Res: Serialize + Send + 'static,
        Rej: Into<Rejection> + Send + 'static,
    {
        self.handlers
            .insert(name, Arc::new(TypedHandler::new(handler)));
        self
    }

    /// Connects and handshakes. Returns once the handshake is accepted; reconnects (if on)
    /// apply only after that.
    ///
    /// # Errors
    /// [`ConnectError::HandshakeRejected`] with the server's error,
    /// [`ConnectError::Timeout`] when opening the socket and the handshake take longer than
    /// the handshake timeout, [`ConnectError::HandshakeFailed`] for a malformed response,
    /// [`ConnectError::WebSocket`] when the socket cannot be opened (the TLS handshake of a
    /// `wss://` URL too), [`ConnectError::TlsNotEnabled`] for a `wss://` URL without the
    /// `tls` feature,
    /// [`ConnectError::Disconnected`] when it closes before the handshake response.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let (state, _) = watch::channel(ClientState::Connecting);
        let stop = CancellationToken::new();
        let guard = Arc::new(DropGuard { stop: stop.clone() });
        let client = Client {
            _guard: guard.clone(),
            inner: Arc::new(ClientInner {
                config: ClientConfig {
                    url: self.url,
                    tls: self.tls,
                    handshake_payload: self.handshake_payload,
                    response_timeout: self.response_timeout,
                    handshake_timeout: self.handshake_timeout,
                    reconnect: self.reconnect,
                    max_message_size: self.max_message_size,
                    outbound_queue: self.outbound_queue,
                    driver: DriverConfig {
                        ping_interval: self.ping_interval,
                        max_in_flight: self.max_requests_in_flight,
                        max_name_len: usize::MAX,
                        max_id_len: usize::MAX,
                        close_timeout: self.close_timeout,
                    },
                },
                handlers: Arc::new(self.handlers),
                link: Mutex::new(None),
                handshake_payload: Mutex::new(null()),
                events: broadcast::channel(64).0,
                state,
                stop,
                guard: Arc::downgrade(&guard),
            }),
        };
        match client.inner.open().await {
            Ok(socket) => {
                tokio::spawn(supervise(client.inner.clone(), socket));
                Ok(client)
            }
            Err(e) => {
                client.inner.state.send_replace(ClientState::Closed);
                Err(e)
            }
        }
    }
}

struct ClientConfig {
    url: String,
    tls: Tls,
    handshake_payload: Box<RawValue>,
    response_timeout: Duration,
    handshake_timeout: Duration,
    reconnect: Option<Backoff>,
    max_message_size: usize,
    outbound_queue: usize,
    driver: DriverConfig,
}

/// The live, handshaked socket.
struct Link {
    peer: Arc<Peer>,
    id: Arc<str>,
}

struct ClientInner {
    config: ClientConfig,
    handlers: Arc<Handlers<ClientSocket>>,
    link: Mutex<Option<Link>>,
    /// The payload of the last accepted handshake response; kept after a disconnect.
    handshake_payload: Mutex<Box<RawValue>>,
    events: broadcast::Sender<ClientEvent>,
    state: watch::Sender<ClientState>,
    stop: CancellationToken,
    /// Alive while any [`Client`] handle is: the background tasks hold only this.
    guard: Weak<DropGuard>,
}

/// Shared by every [`Client`] handle: when the last one goes, the connection is closed.
struct DropGuard {
    stop: CancellationToken,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A client connection to a roomwire (or Line) server. Cheap to clone; every clone is the
/// same client. It stays connected (and reconnects) until [`close`](Self::close) is called
/// or the last clone is dropped (which closes it with 1000 in the background).
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
    _guard: Arc<DropGuard>,
}

/// An opened, handshaked socket: its peer and its driver task.
struct Socket {
    peer: Arc<Peer>,
    driver: JoinHandle<CloseInfo>,
}

impl Client {
    /// A builder for a client of the server at `url` (`ws://host:port/path`, or `wss://` with
    /// the `tls` feature: see `ClientBuilder::tls_config`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            handshake_payload: null(),
            response_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(20),
            reconnect: Some(Backoff::default()),
            max_message_size: 16 << 20,
            outbound_queue: 1024,
            max_requests_in_flight: 128,
            close_timeout: Duration::from_secs(3),
            handlers: Handlers::default(),
            tls: Tls::default(),
        }
    }

    fn link<R>(&self, f: impl FnOnce(&Option<Link>) -> R) -> R {
        f(&self.inner.link.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The live socket's peer; `None` while not connected.
    fn peer(&self) -> Option<Arc<Peer>> {
        self.link(|l| l.as_ref().map(|l| l.peer.clone()))
    }

    /// The connection id the server gave in the last accepted handshake, while connected.
    pub fn id(&self) -> Option<Arc<str>> {
        self.link(|l| l.as_ref().map(|l| l.id.clone()))
    }

    /// The payload of the server's last accepted handshake response (`null` when it sent
    /// none), deserialized into `T`. After a reconnect it is the new handshake's; while
    /// disconnected, still the last one's.
    ///
    /// # Errors
    /// [`DecodeError`] if it does not fit `T`.
    pub fn handshake_payload<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        let payload = self
            .inner
            .handshake_payload
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        serde_json::from_str(payload.get()).map_err(DecodeError::new)
    }

    /// Where the client is in its life.
    pub fn state(&self) -> ClientState {
        *self.inner.state.borrow()
    }

    /// A receiver of what happens to the connection from now on: disconnects, reconnect
    /// attempts, reconnections, the final close.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.events.subscribe()
    }

    /// Sends a request and awaits the server's response, deserialized into `R`, within the
    /// response timeout.
    ///
    /// # Errors
    /// [`SendError::Timeout`], [`SendError::Rejected`] (with the server's error object),
    /// [`SendError::Disconnected`] (also while reconnecting), [`SendError::Decode`] if the
    /// response does not fit `R`, [`SendError::Encode`] if the payload cannot be
    /// serialized, [`SendError::QueueFull`].
    pub async fn send<T, R>(&self, name: &str, payload: &T) -> Result<R, SendError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let timeout = self.inner.config.response_timeout;
        self.send_timeout(name, payload, timeout).await
    }

    /// [`send`](Self::send) with a timeout of its own.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn send_timeout<T, R>(
        &self,
        name: &str,
        payload: &T,
        timeout: Duration,
    ) -> Result<R, SendError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let peer = self.peer().ok_or(SendError::Disconnected)?;
        peer.request(name, payload, timeout).await
    }

    /// Sends a message the server does not answer.
    ///
    /// # Errors
    /// [`NotifyError::Disconnected`] (also while reconnecting), [`NotifyError::Encode`] if
    /// the payload cannot be serialized, [`NotifyError::QueueFull`].
    pub fn send_without_response<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<(), NotifyError> {
        let peer = self.peer().ok_or(NotifyError::Disconnected)?;
        peer.notify(name, payload)
    }

    /// Pings the server and returns the round-trip time.
    ///
    /// # Errors
    /// [`PingError::Timeout`] when no pong comes within the response timeout,
    /// [`PingError::Disconnected`] (also while reconnecting).
    pub async fn ping(&self) -> Result<Duration, PingError> {
        let peer = self.peer().ok_or(PingError::Disconnected)?;
        peer.ping().await
    }

    /// How many requests await the server's response.
    pub fn pending_requests(&self) -> usize {
        self.link(|l| l.as_ref().map_or(0, |l| l.peer.pending.waiting()))
    }

    /// Closes the connection (code 1000) and stops reconnecting; returns once the socket is
    /// closed. Everything pending is rejected with [`SendError::Disconnected`].
    pub async fn close(&self) {
        self.inner.stop.cancel();
        if let Some(peer) = self.peer() {
            peer.close(CloseCode::NORMAL, "Client closed");
        }
        let mut state = self.inner.state.subscribe();
        let _ = state.wait_for(|s| *s == ClientState::Closed).await;
    }
}

impl ClientInner {
    /// A handle, while any user handle is alive.
    fn client(self: &Arc<Self>) -> Option<Client> {
        Some(Client {
            inner: self.clone(),
            _guard: self.guard.upgrade()?,
        })
    }

    fn set_state(&self, state: ClientState) {
        self.state.send_replace(state);
    }

    fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event);
    }

    /// Opens a socket and handshakes.
    async fn open(self: &Arc<Self>) -> Result<Socket, ConnectError> {
        let config = &self.config;
        self.set_state(ClientState::Connecting);
        let ws_config = websocket_config(4 * 1024, config.max_message_size);
        let connect = config.tls.connect(&config.url, ws_config);
        // One deadline for opening the socket and the handshake together.
        let deadline = clock::after(clock::Instant::now(), config.handshake_timeout);
        let (ws, _response) = match tokio::time::timeout_at(deadline, connect).await {
            Ok(result) => result?,
            Err(_) => return Err(ConnectError::Timeout(config.handshake_timeout)),
        };
        let peer = Arc::new(Peer::new(config.outbound_queue, config.response_timeout));
        let endpoint = ClientSocket {
            peer: peer.clone(),
            client: self.clone(),
        };
        let router = Router::new(endpoint, self.handlers.clone(), config.driver);
        // Until the handshake is accepted, the socket goes with this attempt: an attempt
        // dropped half-way (by `Client::close`) leaves no socket behind.
        let driver = AbortOnDropHandle::new(tokio::spawn(driver::drive(ws, router)));

        #[derive(Deserialize)]
        struct Accepted {
            id: String,
            payload: Option<Box<RawValue>>,
        }
        let reply = peer
            .request_raw(
                names::HANDSHAKE,
                &*config.handshake_payload,
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            )
            .await;
        let accepted = match reply {
            Ok(payload) => payload.deserialize::<Accepted>().map_err(|e| {
                (
                    CloseCode::HANDSHAKE_FAILED,
                    "Handshake failed, unexpected handshake response.",
                    ConnectError::HandshakeFailed(e),
                )
            }),
            Err(SendError::Rejected(rejection)) => Err((
                CloseCode::HANDSHAKE_REJECTED,
                "Handshake rejected",
                ConnectError::HandshakeRejected(rejection),
            )),
            Err(SendError::Timeout { .. }) => Err((
                CloseCode::HANDSHAKE_FAILED,
                "Handshake failed, request timeout.",
                ConnectError::Timeout(config.handshake_timeout),
            )),
            // A full queue is closing the socket (the rest cannot happen to a raw request
            // with a JSON payload on a fresh socket): all end the connection.
            Err(
                SendError::Disconnected
                | SendError::QueueFull
                | SendError::HandshakePending
                | SendError::Decode(_)
                | SendError::Encode(_),
            ) => Err((
                CloseCode::HANDSHAKE_FAILED,
                "Handshake failed",
                ConnectError::Disconnected,
            )),
        };
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err((code, reason, error)) => {
                // The socket closes with a code that says why: the driver, let go, sends
                // the close frame and ends by itself.
                peer.close(code, reason);
                drop(driver.detach());
                return Err(error);
            }
        };
        let id: Arc<str> = Arc::from(accepted.id);
        *self
            .handshake_payload
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = accepted.payload.unwrap_or_else(null);
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Some(Link {
            peer: peer.clone(),
            id: id.clone(),
        });
        self.set_state(ClientState::Connected);
        self.emit(ClientEvent::Connected { id });
        Ok(Socket {
            peer,
            driver: driver.detach(),
        })
    }
}

/// Watches the open socket; when it closes, reconnects as the backoff says, until
/// [`Client::close`], a rejected handshake, or a close with reconnects off.
async fn supervise(client: Arc<ClientInner>, mut socket: Socket) {
    let stop = client.stop.clone();
    loop {
        let info = tokio::select! {
            info = &mut socket.driver => info,
            () = stop.cancelled() => {
                socket.peer.close(CloseCode::NORMAL, "Client closed");
                (&mut socket.driver).await
            }
        }
        .unwrap_or_else(|_| CloseInfo {
            code: CloseCode::INTERNAL_ERROR,
            reason: "connection task failed".into(),
        });
        *client.link.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // The server said it does not want this client back (not the client's own close).
        let sent_away = final_close(info.code) && !socket.peer.closed_locally();
        let backoff = match client.config.reconnect {
            Some(backoff) if !stop.is_cancelled() && !sent_away => backoff,
            _ => {
                client.emit(ClientEvent::Disconnected {
                    info,
                    reconnecting: false,
                });
                return finish(&client);
            }
        };
        client.set_state(ClientState::Reconnecting);
        client.emit(ClientEvent::Disconnected {
            info,
            reconnecting: true,
        });
        let mut attempt = 0;
        socket = loop {
            let delay = backoff.delay_with_jitter(attempt);
            attempt += 1;
            client.emit(ClientEvent::Reconnecting { attempt, delay });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return finish(&client),
            }
            let opened = tokio::select! {
                opened = client.open() => opened,
                // `close` does not wait for an attempt under way: it is dropped.
                () = stop.cancelled() => return finish(&client),
            };
            match opened {
                Ok(socket) => break socket,
                Err(ConnectError::HandshakeRejected(rejection)) => {
                    client.emit(ClientEvent::HandshakeRejected(rejection));
                    return finish(&client);
                }
                Err(error) => {
                    client.set_state(ClientState::Reconnecting);
                    client.emit(ClientEvent::ConnectFailed {
                        attempt,
                        error: Arc::new(error),
                    });
                }
            }
        };
        // `close` may have come while the socket was opening: it closes that socket then.
    }
}

/// Whether a close with `code`, sent by the server, means it does not want this client
/// back: it closed the client's room (4211) or found it too slow to read (4210).
/// Reconnecting would only repeat it. (A rejected handshake, 4203, ends reconnecting too:
/// see [`supervise`].) The client's own 4210 (its queue full) is not final.
fn final_close(code: CloseCode) -> bool {
    matches!(code, CloseCode::SLOW_CONSUMER | CloseCode::ROOM_CLOSED)
}

/// JSON's `null`, as raw JSON.
fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("valid JSON")
}

fn finish(client: &ClientInner) {
    client.set_state(ClientState::Closed);
    client.emit(ClientEvent::Closed);
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.config.url)
            .field("state", &self.state())
            .field("id", &self.id())
            .finish()
    }
}

/// The driver's view of the client's socket: requests that came in on it are answered on it.
#[derive(Clone)]
pub(crate) struct ClientSocket {
    peer: Arc<Peer>,
    client: Arc<ClientInner>,
}

impl Endpoint for ClientSocket {
    type Handle = Client;

    fn peer(&self) -> &Peer {
        &self.peer
    }

    fn handle(&self) -> Option<Client> {
        self.client.client()
    }

    fn is_open(&self) -> bool {
        true
    }

    fn handshake_timeout(&self) -> Option<Duration> {
        None
    }

    fn on_handshake(&self, id: RawId, _payload: Option<&str>) -> Option<BoxFuture<HandshakeEnd>> {
        let rejection = Rejection::new("UnknownMessage", "a client does not accept handshakes");
        let _ = self.peer.queue(protocol::encode_reject(&id, &rejection));
        None
    }
}
