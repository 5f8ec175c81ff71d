//! [`Server`]: the handler registry, the accept loop, connection lookup, broadcast and shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use dashmap::DashMap;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::http::Extensions;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ServerBuilder, ServerConfig};
use crate::connection::clock::Instant;
use crate::connection::driver::{self, DriverConfig};
use crate::connection::router::Router;
use crate::connection::{CloseInfo, ConnectionState, ServerConnection};
use crate::error::{EncodeError, Rejection};
use crate::handler::{BoxFuture, Handlers, HookOutput, TypedHandler};
use crate::handshake::{Handshake, HandshakeOutcome};
use crate::metrics::{self, Refused};
use crate::protocol::{self, CloseCode};
use crate::rooms::{BroadcastOperator, RoomRegistry};
use crate::upgrade::{Deny, UpgradeRequest};

type HandshakeHook =
    Arc<dyn Fn(ServerConnection, Handshake) -> BoxFuture<HandshakeOutcome> + Send + Sync>;
type UpgradeFilter = Arc<dyn Fn(UpgradeRequest) -> BoxFuture<Result<(), Deny>> + Send + Sync>;
type ConnectionHook = Arc<dyn Fn(ServerConnection) -> BoxFuture<()> + Send + Sync>;
type DisconnectHook = Arc<dyn Fn(ServerConnection, CloseInfo) -> BoxFuture<()> + Send + Sync>;

#[derive(Default)]
pub(crate) struct Hooks {
    pub on_upgrade: Option<UpgradeFilter>,
    pub on_handshake: Option<HandshakeHook>,
    pub on_connection: Option<ConnectionHook>,
    pub on_disconnect: Option<DisconnectHook>,
}

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerStatus {
    /// Built, not yet listening.
    Idle,
    /// Accepting connections.
    Listening,
    /// [`Server::close`] is closing the connections.
    Closing,
    /// Closed: every connection task has ended.
    Closed,
}

pub(crate) struct ServerShared {
    pub config: ServerConfig,
    pub handlers: Arc<Handlers<ServerConnection>>,
    hooks: RwLock<Hooks>,
    pub registry: DashMap<Arc<str>, ServerConnection>,
    pub rooms: RoomRegistry,
    status: AtomicU8,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
    local_addr: Mutex<Option<SocketAddr>>,
    open: AtomicUsize,
    /// The application's state, given to the builder: read-only from then on.
    pub app_state: Extensions,
}

impl ServerShared {
    pub(crate) fn hooks(&self) -> RwLockReadGuard<'_, Hooks> {
        self.hooks.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings each connection's driver runs with.
    pub(crate) fn driver_config(&self) -> DriverConfig {
        let config = &self.config;
        DriverConfig {
            ping_interval: config.ping_interval,
            max_in_flight: config.max_requests_in_flight,
            max_name_len: config.max_name_len,
            max_id_len: config.max_id_len,
            close_timeout: config.close_timeout,
        }
    }

    /// Whether `close` has begun: nothing new is accepted.
    pub(crate) fn is_closing(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Connections are coming in (by any door): the server is listening, unless closing.
    pub(crate) fn mark_serving(&self) {
        let _ = self
            .status
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The built-in listener is bound to `addr`.
    pub(crate) fn listening_on(&self, addr: SocketAddr) {
        *self.local_addr.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
        self.mark_serving();
    }
}

/// A roomwire server. Cheap to clone; every clone is the same server.
///
/// Build one with [`Server::builder`], register handlers, then [`listen`](Self::listen).
///
/// ```no_run
/// use roomwire::{Rejection, Server, ServerConnection};
///
/// # async fn run() -> Result<(), roomwire::Error> {
/// let server = Server::builder().build();
/// server.on_request("add", |_conn: ServerConnection, (a, b): (i64, i64)| async move {
///     Ok::<_, Rejection>(a + b)
/// });
/// server.listen("127.0.0.1:8080").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    shared: Arc<ServerShared>,
}

impl Server {
    /// A builder with every setting at its documented default.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    pub(crate) fn from_config(config: ServerConfig, state: Extensions) -> Self {
        metrics::register();
        Server {
            shared: Arc::new(ServerShared {
                config,
                handlers: Arc::default(),
                hooks: RwLock::default(),
                registry: DashMap::new(),
                rooms: RoomRegistry::default(),
                status: AtomicU8::new(0),
                tracker: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                local_addr: Mutex::new(None),
                open: AtomicUsize::new(0),
                app_state: state,
            }),
        }
    }

    pub(crate) fn from_shared(shared: Arc<ServerShared>) -> Self {
        Server { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<ServerShared> {
        &self.shared
    }

    /// The server's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// The application state of type `T` given to [`ServerBuilder::app_state`], if any. Every
    /// handler and hook reaches it through its connection
    /// ([`ServerConnection::app_state`]), without globals.
    pub fn app_state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.shared.app_state.get::<T>()
    }

    /// Sets the upgrade filter: an async hook that sees every WebSocket upgrade request
    /// (method, path, query, headers, peer address: an [`UpgradeRequest`]) before any
    /// WebSocket exists, and allows it (`Ok(())`) or denies it with an HTTP status and
    /// body ([`Deny`]); a denied client gets that answer and nothing else, and costs no
    /// connection slot once answered. It runs for every way in (the built-in listener,
    /// [`serve_connection`](Self::serve_connection), [`handle_upgrade`](Self::handle_upgrade)),
    /// after the WebSocket headers are checked, within the
    /// [upgrade timeout](ServerBuilder::upgrade_timeout) (past it: 503); a panic answers 500
    /// and is logged. See [`upgrade::TrustedProxies`](crate::upgrade::TrustedProxies) for
    /// the client's address behind a proxy, and
    /// [`upgrade::AllowedOrigins`](crate::upgrade::AllowedOrigins) for an `Origin`
    /// allow-list.
    ///
    /// ```no_run
    /// use roomwire::upgrade::{Deny, TrustedProxies, UpgradeRequest};
    ///
    /// let server = roomwire::Server::builder().build();
    /// let proxies = TrustedProxies::loopback();
    /// server.on_upgrade(move |req: UpgradeRequest| {
    ///     let banned = req.client_ip(&proxies).is_none_or(|ip| ip.to_string() == "203.0.113.9");
    ///     async move {
    ///         if banned {
    ///             return Err(Deny::forbidden("banned"));
    ///         }
    ///         Ok(())
    ///     }
    /// });
    /// ```
    pub fn on_upgrade<F, Fut>(&self, filter: F) -> &Self
    where
        F: Fn(UpgradeRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Deny>> + Send + 'static,
    {
        self.set_hooks(|h| h.on_upgrade = Some(Arc::new(move |req| Box::pin(filter(req)))));
        self
    }

    fn set_hooks(&self, f: impl FnOnce(&mut Hooks)) {
        f(&mut self.shared.hooks.write().unwrap_or_else(|p| p.into_inner()));
    }

    /// Sets the handshake handler. It receives the connection (in the handshaking state) and
    /// the [`Handshake`], and returns [`Handshake::resolve`] or [`Handshake::reject`]. It may
    /// await (a database lookup); it is bounded by the handshake timeout (past it the handler
    /// is dropped and the connection closed with 4202). A panic — in the closure or in its
    /// future — rejects the handshake with `InternalError` (and is logged).
    ///
    /// Requests the client sends right after `_h`, before the handler has finished (a client
    /// that pipelines), wait for it in order: they are handled once the handshake is
    /// accepted, and dropped if it is rejected.
    ///
    /// Without a handler every handshake is accepted with a `null` payload.
    pub fn on_handshake<F, Fut>(&self, handler: F) -> &Self
    where
        F: Fn(ServerConnection, Handshake) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandshakeOutcome> + Send + 'static,
    {
        self.set_hooks(|h| h.on_handshake = Some(Arc::new(move |c, hs| Box::pin(handler(c, hs)))));
        self
    }

    /// Registers the handler for requests (and fire-and-forget messages) named `name`,
    /// replacing any earlier one.
    ///
    /// The payload is deserialized into `Req` (one that does not fit is answered with an
    /// `InvalidPayload` error). `Ok` resolves the request with its value; `Err` rejects it
    /// with the [`Rejection`] it converts into (every roomwire error does, so `?` works on
    /// roomwire calls). For a fire-and-forget message the result is dropped. A panic — in
    /// the closure, its future, the result's serialization or the error's conversion —
    /// answers the request with `InternalError` (and is logged); the connection stays open.
    /// Requests on one connection run concurrently, up to
    /// [`max_requests_in_flight`](ServerBuilder::max_requests_in_flight). What a handler
    /// sends its own connection while it runs reaches the peer before its response.
    ///
    /// Handlers run inside their connection's task and **end with their connection**: when it
    /// closes, those still running are dropped (at their next `.await`), and
    /// [`Server::close`] returns only once every one of them is gone. Work that must outlive
    /// the connection belongs in a task of its own (`tokio::spawn`).
    ///
    /// A handler that only passes a payload on (a relay) can take it as
    /// `Box<serde_json::value::RawValue>`: it is checked to be JSON and kept as its text,
    /// never parsed into values, and it goes out again exactly as it came in (a response, an
    /// [`emit`](crate::BroadcastOperator::emit)), which is cheaper than a typed payload and
    /// keeps what a round trip through types would change (number formatting, key order):
    ///
    /// ```no_run
    /// use roomwire::{Rejection, Server, ServerConnection};
    /// use serde_json::value::RawValue;
    ///
    /// let server = Server::builder().build();
    /// server.on_request("say", |conn: ServerConnection, msg: Box<RawValue>| async move {
    ///     conn.to("lobby").emit("said", &msg)?;
    ///     Ok::<_, Rejection>(())
    /// });
    /// ```
    ///
    /// # Panics
    /// If `name` starts with `_`: those names are reserved by the protocol.
    pub fn on_request<F, Fut, Req, Res, Rej>(&self, name: &str, handler: F) -> &Self
    where
        F: Fn(ServerConnection, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Res, Rej>> + Send + 'static,
        Req: DeserializeOwned + Send + 'static,
        Res: Serialize + Send + 'static,
        Rej: Into<Rejection> + Send + 'static,
    {
        self.shared
            .handlers
            .insert(name, Arc::new(TypedHandler::new(handler)));
        self
    }

    /// Sets the hook that runs once a connection's handshake response has been queued
    /// (nothing can overtake it). It runs beside the connection's requests (without taking
    /// one of its [request slots](ServerBuilder::max_requests_in_flight)), so it may await
    /// the client's responses. It returns `()` or a `Result` whose error is logged.
    ///
    /// Like a handler it ends with its connection: still running when the connection closes,
    /// it is dropped. A panic is logged with the connection's id and closes the connection
    /// with [`CloseCode::INTERNAL_SERVER_ERROR`] (1011).
    pub fn on_connection<F, Fut>(&self, hook: F) -> &Self
    where
        F: Fn(ServerConnection) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HookOutput,
    {
        self.set_hooks(|h| {
            h.on_connection = Some(Arc::new(move |c| {
                let fut = hook(c);
                Box::pin(async move { fut.await.report("on_connection") })
            }))
        });
        self
    }

    /// Sets the hook that runs when a connected connection (one whose handshake was
    /// accepted) has closed, for any reason, with the close code and reason (1006 when the
    /// peer's socket dropped without a close frame). By then everything the connection had
    /// pending has been rejected with [`SendError::Disconnected`](crate::SendError::Disconnected)
    /// and its handlers have been dropped; its rooms are still visible to the hook, and it
    /// leaves them and frees its id once the hook returns. A panic in the hook is logged; the teardown goes on.
    pub fn on_disconnect<F, Fut>(&self, hook: F) -> &Self
    where
        F: Fn(ServerConnection, CloseInfo) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HookOutput,
    {
        self.set_hooks(|h| {
            h.on_disconnect = Some(Arc::new(move |c, info| {
                let fut = hook(c, info);
                Box::pin(async move { fut.await.report("on_disconnect") })
            }))
        });
        self
    }

    /// The address the server listens on, once [`serve`](Self::serve) or
    /// [`listen`](Self::listen) has started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *self
            .shared
            .local_addr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Where the server is in its life.
    pub fn status(&self) -> ServerStatus {
        match self.shared.status.load(Ordering::Acquire) {
            0 => ServerStatus::Idle,
            1 => ServerStatus::Listening,
            2 => ServerStatus::Closing,
            _ => ServerStatus::Closed,
        }
    }

    /// The connected (handshaked) connection with this id.
    pub fn connection(&self, id: &str) -> Option<ServerConnection> {
        self.shared
            .registry
            .get(id)
            .map(|c| c.clone())
            .filter(|c| c.state() == ConnectionState::Connected)
    }

    /// Every connected (handshaked) connection.
    pub fn connections(&self) -> Vec<ServerConnection> {
        self.shared
            .registry
            .iter()
            .filter(|c| c.state() == ConnectionState::Connected)
            .map(|c| c.clone())
            .collect()
    }

    /// How many connections are open, in any state (upgrading, handshaking, connected).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Sends a fire-and-forget message to every connected connection. The frame is encoded
    /// once and shared. Returns how many connections it was queued for; a connection whose
    /// queue is full is closed as a slow consumer instead.
    ///
    /// # Errors
    /// [`EncodeError`] if the payload cannot be serialized (then nothing was sent).
    pub fn broadcast<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<usize, EncodeError> {
        let frame = protocol::encode_message(name, payload, None).map_err(EncodeError::new)?;
        let mut sent = 0;
        for conn in self.shared.registry.iter() {
            if conn.state() == ConnectionState::Connected
                && conn.peer().queue(frame.clone()).is_ok()
            {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Targets the members of `room`; add rooms and exceptions, then `emit` or `send`.
    /// See [`BroadcastOperator`].
    pub fn to(&self, room: &str) -> BroadcastOperator {
        BroadcastOperator::new(self.shared.clone(), room)
    }

    /// The members of `room` (in any state); empty if there is no such room.
    pub fn room_members(&self, room: &str) -> Vec<ServerConnection> {
        self.shared.rooms.members(room)
    }

    /// How many members `room` has; 0 if there is no such room.
    pub fn room_size(&self, room: &str) -> usize {
        self.shared.rooms.size(room)
    }

    /// Every room that has members. A room exists from its first join to its last leave.
    pub fn rooms(&self) -> Vec<Arc<str>> {
        self.shared.rooms.names()
    }

    /// The rooms of the connection with this id (in any state); `None` if there is none.
    pub fn rooms_of(&self, id: &str) -> Option<Vec<Arc<str>>> {
        let conn = self.shared.registry.get(id).map(|c| c.clone())?;
        Some(conn.rooms())
    }

    /// Removes the connection with this id from every room; `false` if there is none.
    pub fn leave_all(&self, id: &str) -> bool {
        let conn = self.shared.registry.get(id).map(|c| c.clone());
        conn.map(|c| c.leave_all()).is_some()
    }

    /// Closes `room`: every member leaves it, and the room is gone. Returns the members it had.
    pub fn close_room(&self, room: &str) -> Vec<ServerConnection> {
        let members = self.shared.rooms.members(room);
        for member in &members {
            member.leave(room);
        }
        members
    }

    /// Closes `room` and disconnects its members with
    /// [`CloseCode::ROOM_CLOSED`] (4211)
    /// "Room closed". Returns how many members it had.
    pub fn disconnect_room(&self, room: &str) -> usize {
        let members = self.close_room(room);
        for member in &members {
            member.close(CloseCode::ROOM_CLOSED, "Room closed");
        }
        members.len()
    }

    /// Closes the server: stops accepting, closes every connection with 1001 "Server
    /// closing" (what is already queued goes out first), rejects everything pending with
    /// [`SendError::Disconnected`](crate::SendError::Disconnected), and returns once every
    /// connection task has ended: its handlers dropped, its `on_disconnect` hook run. A peer
    /// that never answers the close frame is dropped after the
    /// [close timeout](ServerBuilder::close_timeout), so this takes at most about that long. Calling it again waits the same way.
    pub async fn close(&self) {
        let shared = &self.shared;
        let _ = shared
            .status
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s < 2).then_some(2)
            });
        shared.shutdown.cancel();
        for conn in shared.registry.iter() {
            conn.close(CloseCode::GOING_AWAY, "Server closing");
        }
        shared.tracker.close();
        shared.tracker.wait().await;
        shared.status.store(3, Ordering::Release);
    }
}

impl ServerBuilder {
    /// Builds the server. Register handlers on it, then [`listen`](Server::listen) or
    /// [`serve`](Server::serve).
    pub fn build(self) -> Server {
        let (config, state) = self.into_parts();
        Server::from_config(config, state)
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("status", &self.status())
            .field("local_addr", &self.local_addr())
            .field("connections", &self.shared.registry.len())
            .field("handlers", &self.shared.handlers)
            .finish()
    }
}

/// A connection slot: counted in [`Server::open_connections`] and against
/// [`max_connections`](crate::ServerBuilder::max_connections) from the moment a socket is
/// accepted (or an upgrade request arrives) until the connection ends, or until its
/// request is answered without an upgrade ([`release`](Self::release)).
pub(crate) struct OpenSlot {
    shared: Arc<ServerShared>,
    held: AtomicBool,
    over_limit: bool,
}

impl OpenSlot {
    pub(crate) fn take(shared: &Arc<ServerShared>) -> Arc<Self> {
        let open = shared.open.fetch_add(1, Ordering::AcqRel) + 1;
        Arc::new(OpenSlot {
            shared: shared.clone(),
            held: AtomicBool::new(true),
            over_limit: open > shared.config.max_connections,
        })
    }

    /// Whether taking this slot went past `max_connections` (the request is refused).
    pub(crate) fn over_limit(&self) -> bool {
        self.over_limit
    }

    /// The request ended without a WebSocket: counted as refused for `reason`, unless the
    /// front door answered it (it counted it then, and gave the slot back).
    pub(crate) fn failed(&self, reason: Refused) {
        if self.held.load(Ordering::Acquire) {
            metrics::connection_refused(reason);
        }
    }

    /// Gives the slot back (once).
    pub(crate) fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.shared.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// One upgraded connection, from its WebSocket to its teardown (in the span of its caller,
/// which names it; the handshake adds the id). Call it where the socket is a local of the
/// caller's future, not one of its arguments.
///
/// Not an async block: one would keep the socket twice, as its argument and inside the
/// driver's future (over 300 bytes per connection). The driver's future is chained to the
/// teardown instead, and runs in place.
pub(crate) fn run_websocket<S>(
    shared: Arc<ServerShared>,
    ws: WebSocketStream<S>,
    request: UpgradeRequest,
    slot: Arc<OpenSlot>,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let conn = ServerConnection::new(shared.clone(), request);
    // The span gets the id once the handshake settles it (`handshake::finish`); until
    // then the peer's address names the connection.
    tracing::info!("connection accepted");
    let open = metrics::connection_accepted();
    let teardown = Teardown::new(conn.clone());
    if shared.is_closing() {
        conn.close(CloseCode::GOING_AWAY, "Server closing");
    }
    let cfg = shared.driver_config();
    let started = Instant::now();
    let router = Router::new(conn, shared.handlers.clone(), cfg);
    // User code runs under guards of its own; this one is for roomwire's.
    AssertUnwindSafe(driver::drive(ws, router))
        .catch_unwind()
        .then(move |ended| {
            let info = ended.unwrap_or_else(|_| {
                tracing::error!("the connection's driver panicked (a bug in roomwire: please report it); the connection is closed");
                CloseInfo::new(CloseCode::INTERNAL_SERVER_ERROR, "Internal server error")
            });
            tracing::info!(
                code = info.code.as_u16(),
                reason = %info.reason,
                lifetime_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "connection closed"
            );
            open.closed(info.code);
            async move {
                teardown.run(info).await;
                // The slot is given back once the connection is gone.
                drop(slot);
            }
        })
}

/// The server side of a connection's teardown, on every path. [`run`](Self::run) is the
/// normal one: the connection is marked disconnected, its `on_disconnect` hook runs (under
/// an unwind guard, with its rooms still visible), then the connection leaves every room and
/// frees its id. If the task ends any other way (cancelled, or a panic outside every guard)
/// dropping this does the same, and the hook, if it had not run, is spawned after.
struct Teardown {
    conn: ServerConnection,
}

impl Teardown {
    fn new(conn: ServerConnection) -> Self {
        Teardown { conn }
    }

    async fn run(self, info: CloseInfo) {
        let conn = &self.conn;
        // The driver has failed everything pending already (its drop); the queue is shut.
        if !conn.mark_disconnected() {
            return; // never connected: no hook. Dropping `self` leaves rooms, frees the id.
        }
        let hook = conn.shared().hooks().on_disconnect.clone();
        if let Some(hook) = hook {
            let run = AssertUnwindSafe(async { hook(conn.clone(), info).await });
            if run.catch_unwind().await.is_err() {
                tracing::error!(id = %conn.id(), "the on_disconnect hook panicked");
            }
        }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let conn = &self.conn;
        conn.peer().finish();
        let was_connected = conn.mark_disconnected();
        conn.leave_for_good();
        if !was_connected {
            return;
        }
        // `run` never got to the hook: the task was cancelled or panicked. The hook runs in
        // a task the server tracks, so `close` waits for it too.
        let shared = conn.shared();
        let hook = shared.hooks().on_disconnect.clone();
        if let (Some(hook), Ok(runtime)) = (hook, tokio::runtime::Handle::try_current()) {
            let conn = conn.clone();
            let info = CloseInfo::abnormal("the connection's task ended");
            shared.tracker.spawn_on(
                async move {
                    let run = AssertUnwindSafe(async { hook(conn.clone(), info).await });
                    if run.catch_unwind().await.is_err() {
                        tracing::error!(id = %conn.id(), "the on_disconnect hook panicked");
                    }
                },
                &runtime,
            );
        }
    }
}
