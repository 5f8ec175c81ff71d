//! The ways connections come in: the built-in listener ([`Serve`], over TCP or, with the
//! `tls` feature, TLS), any stream the application accepted itself
//! ([`Server::serve_connection`]), and an HTTP server that routes an upgrade request to
//! roomwire ([`Server::handle_upgrade`]: hyper, axum). Each one's HTTP request goes through
//! the same front door ([`crate::upgrade::decide`]), and each upgraded socket runs the same
//! connection task ([`crate::server::run_websocket`]).

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::connection::clock::{self, Instant};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_tungstenite::tungstenite::http::{header, Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::error::ServeError;
use crate::handler::BoxFuture;
use crate::metrics::{self, Refused};
use crate::server::{run_websocket, OpenSlot, Server, ServerShared};
use crate::tls;
use crate::upgrade::{self, ConnectionInfo, Decision, PathCheck, UpgradeRequest};

/// hyper's read buffer for the request head: a head of more than about twice this (hyper's
/// limit is soft) is answered 431.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

impl Server {
    /// Binds `addr` and serves connections on it; `.await` the [`Serve`] it returns. See
    /// [`serve`](Self::serve) for when it returns, and
    /// [`Serve::with_graceful_shutdown`] to close on a signal such as Ctrl-C.
    ///
    /// ```no_run
    /// # async fn run(server: roomwire::Server) -> Result<(), roomwire::ServeError> {
    /// server
    ///     .listen("127.0.0.1:8080")
    ///     .with_graceful_shutdown(async {
    ///         let _ = tokio::signal::ctrl_c().await;
    ///     })
    ///     .await
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ServeError::Io`] if the address cannot be bound, [`ServeError::Closed`] if the server
    /// was closed before.
    pub fn listen<A>(&self, addr: A) -> Serve
    where
        A: ToSocketAddrs + Send + 'static,
    {
        Serve::new(
            self.clone(),
            Box::pin(async move { TcpListener::bind(addr).await }),
        )
    }

    /// Serves connections from `listener`; `.await` the [`Serve`] it returns. Bind to port 0
    /// and read [`local_addr`](Self::local_addr) to let the system choose a port.
    ///
    /// Every accepted socket gets the server's HTTP handling: an upgrade request on the
    /// [path](crate::ServerBuilder::path) goes through the [upgrade
    /// filter](Self::on_upgrade) and becomes a connection; anything else is answered with
    /// an HTTP error and closed.
    ///
    /// It returns once the server is closed — by [`close`](Self::close), or by the signal
    /// given to [`Serve::with_graceful_shutdown`] — and the close has completed: every
    /// connection has been closed (1001 "Server closing"), every `on_disconnect` hook has
    /// run, and every handler has ended.
    ///
    /// # Errors
    /// [`ServeError::Closed`] if the server was closed before; [`ServeError::Io`] if the
    /// listener has no address.
    pub fn serve(&self, listener: TcpListener) -> Serve {
        Serve::new(self.clone(), Box::pin(std::future::ready(Ok(listener))))
    }

    /// Serves one connection over `io`, any byte stream the application accepted itself: a
    /// Unix socket, a TLS stream, an in-memory pipe. The stream gets the server's whole
    /// HTTP handling, as a socket of the built-in listener does (the
    /// [path](crate::ServerBuilder::path), the [upgrade filter](Self::on_upgrade), the
    /// [connection limit](crate::ServerBuilder::max_connections), the
    /// [upgrade timeout](crate::ServerBuilder::upgrade_timeout)); `info` says who the peer
    /// is (a [`SocketAddr`](std::net::SocketAddr) converts into it).
    ///
    /// The future ends when the connection has ended (its `on_disconnect` hook run), or at
    /// once when the request is answered without an upgrade. [`Server::close`] closes it
    /// too and waits for it. Spawn it:
    ///
    /// ```no_run
    /// # async fn run(server: roomwire::Server) -> std::io::Result<()> {
    /// let listener = tokio::net::UnixListener::bind("/tmp/roomwire.sock")?;
    /// loop {
    ///     let (stream, _) = listener.accept().await?;
    ///     tokio::spawn(server.serve_connection(stream, roomwire::upgrade::ConnectionInfo::default()));
    /// }
    /// # }
    /// ```
    pub fn serve_connection<S>(
        &self,
        io: S,
        info: impl Into<ConnectionInfo>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = self.shared().clone();
        let remote_addr = info.into().remote_addr;
        async move {
            shared.mark_serving();
            // `close` waits for the connection from here on.
            let _token = shared.tracker.token();
            let slot = OpenSlot::take(&shared);
            let deadline = clock::after(Instant::now(), shared.config.upgrade_timeout);
            serve_io(shared, io, remote_addr, slot, deadline).await;
        }
    }

    /// Answers a WebSocket upgrade request that an HTTP server (hyper 1, axum, anything
    /// built on them) has routed to roomwire, and, when it is allowed, runs the connection
    /// once the server has sent the response: return the response from your service.
    ///
    /// The request goes through the same front door as one to the built-in listener, but
    /// for the path (the app's router has chosen it): the
    /// [connection limit](crate::ServerBuilder::max_connections), the WebSocket headers
    /// (400, 405 or 426 when they are missing or wrong), the
    /// [upgrade filter](Self::on_upgrade). The HTTP connection must support upgrades (with
    /// hyper: `.with_upgrades()`): a request that cannot be upgraded at all (built by hand,
    /// or from HTTP/2) is answered 500; over a hyper connection without `.with_upgrades()`
    /// the client gets the 101, then the socket closes, and an error naming
    /// `.with_upgrades()` is logged. Answers other than the 101 carry no `Connection: close`:
    /// the app's connection is the app's.
    ///
    /// ```no_run
    /// use hyper::server::conn::http1;
    /// use hyper::service::service_fn;
    /// use hyper_util::rt::TokioIo;
    ///
    /// # async fn run(server: roomwire::Server) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// loop {
    ///     let (stream, addr) = listener.accept().await?;
    ///     let server = server.clone();
    ///     tokio::spawn(async move {
    ///         let service = service_fn(move |req| {
    ///             let server = server.clone();
    ///             async move {
    ///                 Ok::<_, std::convert::Infallible>(server.handle_upgrade(req, addr).await)
    ///             }
    ///         });
    ///         let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    ///         let _ = conn.with_upgrades().await;
    ///     });
    /// }
    /// # }
    /// ```
    pub fn handle_upgrade<B>(
        &self,
        mut request: Request<B>,
        info: impl Into<ConnectionInfo>,
    ) -> impl Future<Output = Response<String>> + Send + 'static {
        let shared = self.shared().clone();
        let remote_addr = info.into().remote_addr;
        let on_upgrade = request.extensions_mut().remove::<OnUpgrade>();
        let (parts, _body) = request.into_parts();
        async move {
            let Some(on_upgrade) = on_upgrade else {
                if let Err(mut not_websocket) = upgrade::accept_key(&parts) {
                    metrics::connection_refused(Refused::NotWebSocket);
                    // The app's HTTP connection is not roomwire's to close.
                    not_websocket.headers_mut().remove(header::CONNECTION);
                    return not_websocket;
                }
                metrics::connection_refused(Refused::Failed);
                tracing::error!("an upgrade request reached roomwire on an HTTP connection that cannot upgrade (hyper: serve it with `.with_upgrades()`)");
                return upgrade::plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "this HTTP server cannot upgrade connections (hyper: serve the connection with `.with_upgrades()`)",
                );
            };
            shared.mark_serving();
            // `close` waits for the connection from here on, the filter's decision included.
            let token = shared.tracker.token();
            let slot = OpenSlot::take(&shared);
            let over_limit = slot.over_limit();
            let deadline = clock::after(Instant::now(), shared.config.upgrade_timeout);
            let decision = upgrade::decide(
                &shared,
                parts,
                remote_addr,
                PathCheck::Routed,
                over_limit,
                deadline,
            )
            .await;
            let (response, request) = match decision {
                Decision::Answer(mut response) => {
                    // The app's HTTP connection is not roomwire's to close.
                    response.headers_mut().remove(header::CONNECTION);
                    return response;
                }
                Decision::Upgrade(response, request) => (response, request),
            };
            let span = connection_span(remote_addr);
            let task_shared = shared.clone();
            shared.tracker.spawn(
                async move {
                    let _token = token;
                    let shared = task_shared;
                    let upgraded = tokio::select! {
                        () = shared.shutdown.cancelled() => {
                            slot.failed(Refused::Closing);
                            return;
                        }
                        upgraded = tokio::time::timeout_at(deadline + ANSWER_GRACE, on_upgrade) => upgraded,
                    };
                    let upgraded = match upgraded {
                        Ok(Ok(upgraded)) => upgraded,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "the HTTP server did not hand the connection over after the 101 (hyper: serve the connection with `.with_upgrades()`)");
                            slot.failed(Refused::Failed);
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("the HTTP server did not complete the upgrade in time");
                            slot.failed(Refused::Failed);
                            return;
                        }
                    };
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(shared.config.websocket()),
                    )
                    .await;
                    run_websocket(shared, ws, request, slot).await;
                }
                .instrument(span),
            );
            response
        }
    }

    async fn run(
        self,
        listener: TcpListener,
        signal: Option<BoxFuture<()>>,
        tls: Option<tls::Acceptor>,
    ) -> Result<(), ServeError> {
        let shared = self.shared();
        // Held while the listener is open, so `close` returns only once the port is free.
        // Taken before the check: a `close` that ran in between waits for it, or is seen.
        let serving = shared.tracker.token();
        if shared.is_closing() {
            return Err(ServeError::Closed);
        }
        let local_addr = listener.local_addr()?;
        shared.listening_on(local_addr);
        tracing::info!(%local_addr, tls = tls.is_some(), "roomwire server listening");
        let mut signal = signal;
        loop {
            tokio::select! {
                () = shared.shutdown.cancelled() => break,
                () = async { signal.as_mut().expect("guarded").await }, if signal.is_some() => {
                    tracing::info!("shutdown signal received; closing the server");
                    break;
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => spawn_tcp(shared.clone(), stream, addr, tls.as_ref()),
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        drop(serving);
        // Whoever started the close, it is complete when this returns.
        self.close().await;
        Ok(())
    }
}

/// A server serving a listener: `.await` it. Made by [`Server::listen`] and
/// [`Server::serve`]; it resolves once the server is closed and the close has completed.
#[must_use = "a Serve does nothing until it is awaited"]
pub struct Serve {
    server: Server,
    listener: BoxFuture<std::io::Result<TcpListener>>,
    signal: Option<BoxFuture<()>>,
    tls: Option<tls::Acceptor>,
}

impl Serve {
    fn new(server: Server, listener: BoxFuture<std::io::Result<TcpListener>>) -> Self {
        Serve {
            server,
            listener,
            signal: None,
            tls: None,
        }
    }

    /// Closes the server gracefully when `signal` completes, as [`Server::close`] does:
    /// every client gets a close frame with 1001 "Server closing", every `on_disconnect`
    /// hook runs, and the `Serve` resolves once all of that is done.
    ///
    /// ```no_run
    /// # async fn run(server: roomwire::Server) -> Result<(), roomwire::ServeError> {
    /// let shutdown = async {
    ///     tokio::signal::ctrl_c().await.expect("Ctrl-C handler");
    /// };
    /// server.listen("127.0.0.1:8080").with_graceful_shutdown(shutdown).await
    /// # }
    /// ```
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// Serves `wss://`: every accepted socket first completes a TLS handshake with `config`
    /// (within the [upgrade timeout](crate::ServerBuilder::upgrade_timeout), which then
    /// bounds the TLS handshake and the HTTP upgrade together). A socket whose TLS handshake
    /// fails or times out is dropped and logged at debug level.
    ///
    /// When a TLS connection has ended, its socket sends `close_notify` and reads, discarding,
    /// what the peer still sends until the peer closes too, for at most the
    /// [close timeout](crate::ServerBuilder::close_timeout) (and [`Server::close`] waits for
    /// that as well): closing with unread input would reset the connection, and a peer's
    /// last bytes (its own `close_notify`) usually come after the close handshake. A reset
    /// can destroy the close frame before the peer reads it, and Line's Node client reports
    /// one as 1006 whatever close frame it read.
    ///
    /// ```no_run
    /// # async fn run(server: roomwire::Server, certs: Vec<rustls::pki_types::CertificateDer<'static>>, key: rustls::pki_types::PrivateKeyDer<'static>) -> Result<(), Box<dyn std::error::Error>> {
    /// let config = rustls::ServerConfig::builder()
    ///     .with_no_client_auth()
    ///     .with_single_cert(certs, key)?;
    /// server.listen("0.0.0.0:443").with_tls(config).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, config: impl Into<Arc<rustls::ServerConfig>>) -> Self {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config.into()));
        self
    }
}

impl IntoFuture for Serve {
    type Output = Result<(), ServeError>;
    type IntoFuture = BoxFuture<Result<(), ServeError>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            // A closed server binds nothing.
            if self.server.shared().is_closing() {
                return Err(ServeError::Closed);
            }
            let listener = self.listener.await?;
            self.server.run(listener, self.signal, self.tls).await
        })
    }
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("server", &self.server)
            .field("graceful_shutdown", &self.signal.is_some())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

fn connection_span(remote_addr: Option<std::net::SocketAddr>) -> tracing::Span {
    match remote_addr {
        Some(peer) => {
            tracing::info_span!("connection", peer = %peer, id = tracing::field::Empty)
        }
        None => tracing::info_span!("connection", peer = "unknown", id = tracing::field::Empty),
    }
}

/// One socket of the built-in listener: TCP_NODELAY, a connection slot from now on, then
/// the HTTP handling, or first TLS if configured. Spawned on the server's tracker.
fn spawn_tcp(
    shared: Arc<ServerShared>,
    stream: TcpStream,
    addr: std::net::SocketAddr,
    tls: Option<&tls::Acceptor>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    let slot = OpenSlot::take(&shared);
    let deadline = clock::after(Instant::now(), shared.config.upgrade_timeout);
    let tracker = shared.tracker.clone();
    match tls {
        None => {
            tracker.spawn(serve_io(shared, stream, Some(addr), slot, deadline));
        }
        #[cfg(feature = "tls")]
        Some(tls) => {
            let tls = tls.clone();
            let span = connection_span(Some(addr));
            let upgrading = {
                let (shared, slot) = (shared.clone(), slot.clone());
                Box::pin(async move {
                    let accepted = tokio::select! {
                        () = shared.shutdown.cancelled() => {
                            slot.failed(Refused::Closing);
                            return None;
                        }
                        accepted = tokio::time::timeout_at(deadline, tls.accept(stream)) => accepted,
                    };
                    let stream = match accepted {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            slot.failed(Refused::Failed);
                            return None;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            slot.failed(Refused::Failed);
                            return None;
                        }
                    };
                    let stream = tls::TlsSocket::new(
                        stream,
                        shared.tracker.clone(),
                        shared.config.close_timeout,
                        slot.clone(),
                    );
                    http(shared, stream, Some(addr), slot, deadline).await
                })
            };
            tracker.spawn(connection(shared, upgrading, slot, span));
        }
        #[cfg(not(feature = "tls"))]
        Some(never) => match *never {},
    }
}

/// One connection over `io`, from its HTTP request to its teardown: see [`connection`].
fn serve_io<S>(
    shared: Arc<ServerShared>,
    io: S,
    remote_addr: Option<std::net::SocketAddr>,
    slot: Arc<OpenSlot>,
    deadline: Instant,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upgrading = Box::pin(http(
        shared.clone(),
        io,
        remote_addr,
        slot.clone(),
        deadline,
    ));
    connection(shared, upgrading, slot, connection_span(remote_addr))
}

/// What runs once before a connection: TLS and HTTP, ending with the upgraded socket and
/// the request it came with (`None`: answered without an upgrade, failed, timed out).
type Upgrading<S> = BoxFuture<Option<(WebSocketStream<S>, UpgradeRequest)>>;

/// A connection's task: `upgrading`, then the connection, in a span that names it (peer
/// address, then id).
///
/// The part that runs once is boxed, and made before this async block, which so captures
/// only its box: the socket is never held twice in the task (an async block keeps what it
/// captures for its whole life), and the task is no larger than the connection needs once
/// it is up (TLS and hyper's HTTP state are larger than the connection's own).
fn connection<S>(
    shared: Arc<ServerShared>,
    upgrading: Upgrading<S>,
    slot: Arc<OpenSlot>,
    span: tracing::Span,
) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        // Bound straight to locals: an `Option` kept whole would hold the socket beside the
        // connection's future, which has it too.
        let Some((ws, request)) = upgrading.await else {
            return;
        };
        run_websocket(shared, ws, request, slot).await;
    }
    .instrument(span)
}

/// What the front door decided for an upgrade, kept until the HTTP connection has handed
/// its socket over.
type Decided = Arc<Mutex<Option<(OnUpgrade, UpgradeRequest)>>>;

/// Past the upgrade timeout, how long an answer the front door made at the timeout (503 for
/// a filter that did not decide) has to be written before the socket is dropped.
const ANSWER_GRACE: Duration = Duration::from_millis(500);

/// The HTTP part of a connection over `io` (hyper's HTTP/1, one request, no keep-alive):
/// the upgraded socket and the request it came with, or `None` when the request was
/// answered without an upgrade (its slot is given back as it is answered), failed, or did
/// not finish by `deadline`, or the server is closing.
async fn http<S>(
    shared: Arc<ServerShared>,
    io: S,
    remote_addr: Option<std::net::SocketAddr>,
    slot: Arc<OpenSlot>,
    deadline: Instant,
) -> Option<(WebSocketStream<S>, UpgradeRequest)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let decided = Decided::default();
    let service = {
        let (shared, decided, slot) = (shared.clone(), decided.clone(), slot.clone());
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let (shared, decided, slot) = (shared.clone(), decided.clone(), slot.clone());
            let on_upgrade = hyper::upgrade::on(&mut request);
            let (parts, _body) = request.into_parts();
            async move {
                let over_limit = slot.over_limit();
                let decision = upgrade::decide(
                    &shared,
                    parts,
                    remote_addr,
                    PathCheck::Check,
                    over_limit,
                    deadline,
                )
                .await;
                Ok::<_, Infallible>(match decision {
                    Decision::Upgrade(response, request) => {
                        *decided.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((on_upgrade, request));
                        response
                    }
                    Decision::Answer(response) => {
                        // Answered: it no longer counts as a connection.
                        slot.release();
                        response
                    }
                })
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(false)
        .header_read_timeout(None)
        .max_buf_size(MAX_REQUEST_HEAD);
    let connection = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let served = tokio::select! {
        // The request first: one that has arrived when the server closes is answered (503).
        biased;
        served = tokio::time::timeout_at(deadline + ANSWER_GRACE, connection) => served,
        () = shared.shutdown.cancelled() => {
            slot.failed(Refused::Closing);
            return None;
        }
    };
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "HTTP request failed");
            slot.failed(Refused::Failed);
            return None;
        }
        Err(_) => {
            tracing::debug!("the HTTP upgrade did not complete within the upgrade timeout");
            slot.failed(Refused::Failed);
            return None;
        }
    }
    let Some((on_upgrade, request)) = decided.lock().unwrap_or_else(|p| p.into_inner()).take()
    else {
        // Answered without an upgrade (counted then), or no request came at all.
        slot.failed(Refused::Failed);
        return None;
    };
    // The connection has handed its socket over already: this is ready.
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "the upgrade did not complete");
            slot.failed(Refused::Failed);
            return None;
        }
    };
    let Ok(parts) = upgraded.downcast::<TokioIo<S>>() else {
        tracing::error!(
            "the upgraded socket is not the one served (a bug in roomwire: please report it)"
        );
        slot.failed(Refused::Failed);
        return None;
    };
    let io = parts.io.into_inner();
    let config = Some(shared.config.websocket());
    let ws = if parts.read_buf.is_empty() {
        WebSocketStream::from_raw_socket(io, Role::Server, config).await
    } else {
        // The client sent frames right behind its request.
        WebSocketStream::from_partially_read(io, parts.read_buf.to_vec(), Role::Server, config)
            .await
    };
    Some((ws, request))
}
