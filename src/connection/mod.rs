//! [`ServerConnection`]: the handle to one client connection, and the machinery every
//! connection runs on (the driver task, the outbound queue, the pending-reply table),
//! which the Rust client shares.

pub(crate) mod clock;
mod close;
pub(crate) mod driver;
pub(crate) mod peer;
pub(crate) mod pending;
pub(crate) mod router;
mod wake;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) use close::truncate_reason;
pub use close::CloseInfo;
pub(crate) use driver::{Endpoint, HandshakeEnd};
use peer::Peer;

use crate::error::{IdError, JoinError, NotifyError, PingError, SendError};
use crate::handler::BoxFuture;
use crate::protocol::{CloseCode, RawId};
use crate::rooms::BroadcastOperator;
use crate::server::{Server, ServerShared};
use crate::upgrade::UpgradeRequest;
use tokio_tungstenite::tungstenite::http::Extensions;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Upgraded; waiting for the client's handshake to be resolved. Nothing but responses to
    /// `_h` and `_p` is sent, and no broadcast reaches it.
    Handshaking,
    /// The handshake was accepted: requests flow both ways.
    Connected,
    /// The socket is closed.
    Disconnected,
}

impl ConnectionState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => ConnectionState::Handshaking,
            1 => ConnectionState::Connected,
            _ => ConnectionState::Disconnected,
        }
    }
}

/// A handle to one client connection. Cheap to clone; every clone is the same connection.
///
/// Handlers receive it; [`Server::connection`] looks one up by id.
///
/// ```no_run
/// # async fn demo(conn: roomwire::ServerConnection) -> Result<(), roomwire::Error> {
/// let name: String = conn.send("whoami", &()).await?;
/// conn.send_without_response("welcome", &serde_json::json!({ "you": name }))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerConnection {
    inner: Arc<ConnectionInner>,
}

/// The connection's id and rooms, under one lock: every change to either happens under it,
/// so the room registry always agrees with the connection.
struct Membership {
    id: Arc<str>,
    rooms: HashSet<Arc<str>>,
    /// Set once the connection is gone: joining is refused from then on.
    left: bool,
}

struct ConnectionInner {
    peer: Peer,
    membership: Mutex<Membership>,
    state: AtomicU8,
    handshake_started: AtomicBool,
    remote_addr: Option<SocketAddr>,
    /// Until the handshake takes it (shared: a connected connection keeps nothing of it).
    request: Mutex<Option<UpgradeRequest>>,
    /// The application's data on this connection (see [`ServerConnection::set_data`]).
    data: Mutex<Extensions>,
    server: Arc<ServerShared>,
}

impl ServerConnection {
    /// A new connection in the handshaking state, registered under a fresh random id.
    pub(crate) fn new(server: Arc<ServerShared>, request: UpgradeRequest) -> Self {
        let peer =
            Peer::new(server.config.outbound_queue, server.config.response_timeout).metered();
        let conn = ServerConnection {
            inner: Arc::new(ConnectionInner {
                peer,
                membership: Mutex::new(Membership {
                    id: Arc::from(""),
                    rooms: HashSet::new(),
                    left: false,
                }),
                state: AtomicU8::new(0),
                handshake_started: AtomicBool::new(false),
                remote_addr: request.remote_addr(),
                request: Mutex::new(Some(request)),
                data: Mutex::default(),
                server,
            }),
        };
        loop {
            let id: Arc<str> = Arc::from(random_id());
            if let dashmap::Entry::Vacant(slot) = conn.inner.server.registry.entry(id.clone()) {
                slot.insert(conn.clone());
                conn.membership().id = id;
                break;
            }
        }
        conn
    }

    fn membership(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.inner
            .membership
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The connection's id: random unless the handshake handler [set](Self::set_id) one.
    /// Unique among live connections.
    pub fn id(&self) -> Arc<str> {
        self.membership().id.clone()
    }

    /// Sets the connection's id. Only during the handshake phase, before resolving.
    ///
    /// # Errors
    /// [`IdError::Conflict`] if another live connection has that id,
    /// [`IdError::HandshakeEnded`] once the handshake is resolved, [`IdError::Disconnected`]
    /// once the connection is gone, [`IdError::InvalidLength`] if the id is empty or longer than
    /// [`max_id_len`](crate::ServerBuilder::max_id_len).
    pub fn set_id(&self, id: impl Into<String>) -> Result<(), IdError> {
        let id: String = id.into();
        if self.state() != ConnectionState::Handshaking {
            return Err(IdError::HandshakeEnded);
        }
        let max = self.inner.server.config.max_id_len;
        if id.is_empty() || id.len() > max {
            return Err(IdError::InvalidLength { len: id.len(), max });
        }
        let mut membership = self.membership();
        // Under the lock teardown takes too: once the connection is gone, no id is taken.
        if membership.left {
            return Err(IdError::Disconnected);
        }
        if *membership.id == *id {
            return Ok(());
        }
        let id: Arc<str> = Arc::from(id);
        let server = &self.inner.server;
        match server.registry.entry(id.clone()) {
            dashmap::Entry::Occupied(_) => return Err(IdError::Conflict { id: id.to_string() }),
            dashmap::Entry::Vacant(slot) => {
                slot.insert(self.clone());
            }
        }
        let old = std::mem::replace(&mut membership.id, id.clone());
        server.registry.remove_if(&old, |_, c| c.same(self));
        for room in &membership.rooms {
            server.rooms.rename(room, &old, &id);
        }
        Ok(())
    }

    /// Joins `room`, creating it if it is new. Joining a room the connection is in does
    /// nothing. Allowed during the handshake; broadcasts reach the connection only once its
    /// handshake is accepted.
    ///
    /// # Errors
    /// [`JoinError::Disconnected`] once the connection has closed.
    pub fn join(&self, room: &str) -> Result<(), JoinError> {
        let mut membership = self.membership();
        if membership.left {
            return Err(JoinError::Disconnected);
        }
        if !membership.rooms.contains(room) {
            let room = self.inner.server.rooms.add(room, &membership.id, self);
            membership.rooms.insert(room);
        }
        Ok(())
    }

    /// Leaves `room`; the room is removed when it was the last member. Returns whether the
    /// connection was in it.
    pub fn leave(&self, room: &str) -> bool {
        let mut membership = self.membership();
        let was_in = membership.rooms.remove(room);
        if was_in {
            self.inner.server.rooms.remove(room, &membership.id);
        }
        was_in
    }

    /// Leaves every room.
    pub fn leave_all(&self) {
        let mut membership = self.membership();
        let rooms = std::mem::take(&mut membership.rooms);
        for room in rooms {
            self.inner.server.rooms.remove(&room, &membership.id);
        }
    }

    /// The rooms the connection is in.
    pub fn rooms(&self) -> Vec<Arc<str>> {
        self.membership().rooms.iter().cloned().collect()
    }

    /// Whether the connection is in `room`.
    pub fn in_room(&self, room: &str) -> bool {
        self.membership().rooms.contains(room)
    }

    /// Targets the other members of `room` (the connection itself is left out); add rooms
    /// and exceptions, then `emit` or `send`. See [`BroadcastOperator`].
    pub fn to(&self, room: &str) -> BroadcastOperator {
        BroadcastOperator::new(self.inner.server.clone(), room).except(&self.id())
    }

    /// After the connection closed: leaves every room, frees the id (unless another
    /// connection holds it by now), and refuses joins and ids from now on — all under the
    /// membership lock, so a `join` or `set_id` racing with it either happens before (and is
    /// undone here) or fails.
    pub(crate) fn leave_for_good(&self) {
        let mut membership = self.membership();
        membership.left = true;
        let server = &self.inner.server;
        for room in std::mem::take(&mut membership.rooms) {
            server.rooms.remove(&room, &membership.id);
        }
        server
            .registry
            .remove_if(&membership.id, |_, c| c.same(self));
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> ConnectionState {
        ConnectionState::from_u8(self.inner.state.load(Ordering::Acquire))
    }

    /// The peer's socket address; `None` when the transport has none (a Unix socket) or the
    /// server was not told it. Behind a proxy this is the proxy's: see
    /// [`UpgradeRequest::client_ip`](crate::upgrade::UpgradeRequest::client_ip).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr
    }

    /// The application state of type `T` given to
    /// [`ServerBuilder::app_state`](crate::ServerBuilder::app_state), if any: shared by every
    /// connection of the server.
    ///
    /// ```no_run
    /// use roomwire::{Rejection, Server, ServerConnection};
    ///
    /// #[derive(Clone)]
    /// struct Greeting(&'static str);
    ///
    /// let server = Server::builder().app_state(Greeting("hello")).build();
    /// server.on_request("greet", |conn: ServerConnection, name: String| async move {
    ///     let Some(Greeting(greeting)) = conn.app_state::<Greeting>() else {
    ///         return Err(Rejection::new("Misconfigured", "no greeting"));
    ///     };
    ///     Ok(format!("{greeting}, {name}"))
    /// });
    /// ```
    pub fn app_state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.server.app_state.get::<T>()
    }

    /// Attaches `value` to this connection, by its type (one value per type, as
    /// [`http::Extensions`](crate::http::Extensions)), and returns the value it replaces.
    /// Set it in the handshake handler (the user the token named, say); handlers, hooks and
    /// `on_disconnect` read it with [`data`](Self::data). It lives as long as the
    /// connection's handle. Do not attach a `ServerConnection` (or anything holding one):
    /// the connection would hold itself and never be freed; attach its id instead.
    ///
    /// ```
    /// # fn demo(conn: roomwire::ServerConnection) {
    /// #[derive(Clone)]
    /// struct User { name: String }
    ///
    /// conn.set_data(User { name: "alice".into() });
    /// assert_eq!(conn.data::<User>().unwrap().name, "alice");
    /// # }
    /// ```
    pub fn set_data<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.data_lock().insert(value)
    }

    /// A copy of the value of type `T` attached with [`set_data`](Self::set_data), if any.
    /// For data that changes, attach an `Arc<Mutex<T>>` and lock it.
    pub fn data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.data_lock().get::<T>().cloned()
    }

    /// Removes the value of type `T`, returning it.
    pub fn remove_data<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.data_lock().remove::<T>()
    }

    fn data_lock(&self) -> std::sync::MutexGuard<'_, Extensions> {
        self.inner.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server this connection belongs to.
    pub fn server(&self) -> Server {
        Server::from_shared(self.inner.server.clone())
    }

    /// Sends a request to the client and awaits its response, deserialized into `R`, within
    /// the server's [response timeout](crate::ServerBuilder::response_timeout).
    ///
    /// # Errors
    /// [`SendError::Timeout`], [`SendError::Rejected`] (with the client's error object),
    /// [`SendError::Disconnected`], [`SendError::HandshakePending`] before the handshake is
    /// accepted, [`SendError::Decode`] if the response does not fit `R`,
    /// [`SendError::Encode`] if the payload cannot be serialized, [`SendError::QueueFull`].
    pub async fn send<T, R>(&self, name: &str, payload: &T) -> Result<R, SendError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.check_connected(SendError::HandshakePending, SendError::Disconnected)?;
        let peer = &self.inner.peer;
        peer.request(name, payload, peer.response_timeout).await
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
        self.check_connected(SendError::HandshakePending, SendError::Disconnected)?;
        self.inner.peer.request(name, payload, timeout).await
    }

    /// Sends a message the client does not answer.
    ///
    /// # Errors
    /// [`NotifyError::Disconnected`], [`NotifyError::HandshakePending`] before the handshake
    /// is accepted, [`NotifyError::Encode`] if the payload cannot be serialized,
    /// [`NotifyError::QueueFull`].
    pub fn send_without_response<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<(), NotifyError> {
        self.check_connected(NotifyError::HandshakePending, NotifyError::Disconnected)?;
        self.inner.peer.notify(name, payload)
    }

    /// `Ok` while connected; otherwise `handshaking` or `gone`, as the connection is.
    fn check_connected<E>(&self, handshaking: E, gone: E) -> Result<(), E> {
        match self.state() {
            ConnectionState::Connected => Ok(()),
            ConnectionState::Handshaking => Err(handshaking),
            ConnectionState::Disconnected => Err(gone),
        }
    }

    /// Pings the client and returns the round-trip time.
    ///
    /// # Errors
    /// [`PingError::Timeout`] when no pong comes within the response timeout,
    /// [`PingError::Disconnected`].
    pub async fn ping(&self) -> Result<Duration, PingError> {
        self.inner.peer.ping().await
    }

    /// Closes the connection with a WebSocket close `code` and `reason` (at most 123 bytes;
    /// longer reasons are cut). Returns at once; what is already queued goes out first, then
    /// the close frame; the connection ends when the peer answers it, or after the
    /// [close timeout](crate::ServerBuilder::close_timeout) at the latest (a peer that reads
    /// nothing sees the close frame only if it reads within that time). Then the
    /// `on_disconnect` hook runs. Closing twice does nothing.
    ///
    /// `code` should be one a close frame may carry ([`CloseCode::is_sendable`]: 1000–1003,
    /// 1007–1014 or 3000–4999; roomwire's own are [`CloseCode`]'s constants); any other is
    /// sent as 1000 and logged.
    ///
    /// ```no_run
    /// # fn demo(conn: roomwire::ServerConnection) {
    /// use roomwire::CloseCode;
    /// conn.close(CloseCode::from(4000), "kicked");
    /// # }
    /// ```
    pub fn close(&self, code: CloseCode, reason: &str) {
        let code = if code.is_sendable() {
            code
        } else {
            tracing::warn!(
                code = code.as_u16(),
                "close code not allowed on the wire; sending 1000 instead"
            );
            CloseCode::NORMAL
        };
        self.inner.peer.close(code, truncate_reason(reason));
    }

    /// Closes the connection because a hook of the application panicked: logged, 1011.
    pub(crate) fn close_after_panic(&self, hook: &'static str) {
        tracing::error!(
            id = %self.id(),
            hook,
            "the {hook} hook panicked; closing the connection with 1011"
        );
        self.inner
            .peer
            .close(CloseCode::INTERNAL_SERVER_ERROR, "Internal server error");
    }

    /// How many malformed frames the client has sent (each was dropped; the connection
    /// stayed open). The first is logged as a warning, the rest at debug level.
    pub fn malformed_frames(&self) -> u32 {
        self.inner.peer.malformed_frames()
    }

    /// How many requests sent on this connection await the client's response.
    pub fn pending_requests(&self) -> usize {
        self.inner.peer.pending.waiting()
    }

    /// Whether two handles are the same connection.
    pub fn same(&self, other: &ServerConnection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn peer(&self) -> &Peer {
        &self.inner.peer
    }

    #[cfg(feature = "internals")]
    pub(crate) fn mark_connected(&self) {
        self.inner.state.store(1, Ordering::Release);
    }

    /// Marks the connection disconnected; whether it was connected until now.
    pub(crate) fn mark_disconnected(&self) -> bool {
        self.inner.state.swap(2, Ordering::AcqRel) == 1
    }

    /// The server's shared state, for the handshake and the connection's teardown.
    pub(crate) fn shared(&self) -> &Arc<ServerShared> {
        &self.inner.server
    }

    /// Moves the connection from handshaking to connected; `false` if it is not handshaking.
    pub(crate) fn mark_connected_if_handshaking(&self) -> bool {
        self.inner
            .state
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks the handshake as started; `false` if it was already.
    pub(crate) fn start_handshake(&self) -> bool {
        !self.inner.handshake_started.swap(true, Ordering::AcqRel)
    }

    /// The upgrade request, for the handshake (taken once).
    pub(crate) fn take_request(&self) -> UpgradeRequest {
        self.inner
            .request
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| UpgradeRequest::empty(self.inner.remote_addr))
    }
}

impl AsRef<Peer> for ServerConnection {
    fn as_ref(&self) -> &Peer {
        &self.inner.peer
    }
}

impl Endpoint for ServerConnection {
    type Handle = ServerConnection;

    fn peer(&self) -> &Peer {
        &self.inner.peer
    }

    fn handle(&self) -> Option<Self::Handle> {
        Some(self.clone())
    }

    fn is_open(&self) -> bool {
        self.state() == ConnectionState::Connected
    }

    fn handshake_timeout(&self) -> Option<Duration> {
        Some(self.inner.server.config.handshake_timeout)
    }

    fn on_handshake(&self, id: RawId, payload: Option<&str>) -> Option<BoxFuture<HandshakeEnd>> {
        crate::handshake::start(self, id, payload)
    }
}

impl fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConnection")
            .field("id", &self.id())
            .field("state", &self.state())
            .field("remote_addr", &self.inner.remote_addr)
            .finish()
    }
}

/// A random id: 20 characters of `[0-9A-Za-z]` (about 119 bits).
fn random_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bits: u128 = rand::random();
    (0..20)
        .map(|_| {
            let c = ALPHABET[(bits % 62) as usize] as char;
            bits /= 62;
            c
        })
        .collect()
}
