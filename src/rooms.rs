//! Rooms: named sets of connections on the server, and the [`BroadcastOperator`] that
//! reaches their members.
//!
//! Rooms never appear on the wire. Membership is keyed by connection id. Everything a
//! broadcast needs from the room registry goes through [`RoomRegistry`], the one narrow
//! interface a multi-node backend will stand in for.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::connection::clock;
use crate::connection::peer::Waiting;
use crate::connection::pending::next_request_id;
use crate::connection::{ConnectionState, ServerConnection};
use crate::error::{EncodeError, SendError};
use crate::handler::BoxFuture;
use crate::metrics;
use crate::protocol;
use crate::server::ServerShared;

/// The rooms of one server: room name → (connection id → connection).
#[derive(Default)]
pub(crate) struct RoomRegistry {
    rooms: DashMap<Arc<str>, HashMap<Arc<str>, ServerConnection>>,
}

impl RoomRegistry {
    /// Adds a member; creates the room on first join. Returns the room's name as the
    /// registry holds it, so every member shares one allocation of it.
    pub(crate) fn add(&self, room: &str, id: &Arc<str>, conn: &ServerConnection) -> Arc<str> {
        if let Some(mut members) = self.rooms.get_mut(room) {
            if members.insert(id.clone(), conn.clone()).is_none() {
                metrics::room_joined();
            }
            return members.key().clone();
        }
        let mut members = self.rooms.entry(Arc::from(room)).or_insert_with(|| {
            metrics::room_created();
            HashMap::new()
        });
        if members.insert(id.clone(), conn.clone()).is_none() {
            metrics::room_joined();
        }
        members.key().clone()
    }

    /// Removes a member; removes the room when it was the last.
    pub(crate) fn remove(&self, room: &str, id: &str) {
        if let Some(mut members) = self.rooms.get_mut(room) {
            if members.remove(id).is_some() {
                metrics::room_left();
            }
        } // The shard lock is released here, before `remove_if` takes it again.
        if self
            .rooms
            .remove_if(room, |_, members| members.is_empty())
            .is_some()
        {
            metrics::room_removed();
        }
    }

    /// A member's id changed (during its handshake).
    pub(crate) fn rename(&self, room: &str, old: &str, new: &Arc<str>) {
        if let Some(mut members) = self.rooms.get_mut(room) {
            if let Some(conn) = members.remove(old) {
                members.insert(new.clone(), conn);
            }
        }
    }

    pub(crate) fn members(&self, room: &str) -> Vec<ServerConnection> {
        self.rooms
            .get(room)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn size(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |m| m.len())
    }

    pub(crate) fn names(&self) -> Vec<Arc<str>> {
        self.rooms.iter().map(|r| r.key().clone()).collect()
    }

    /// Calls `f` once for every connected member of any of `rooms` that is not in `except`.
    /// No lock is held across anything but `f`, which must not touch the registry.
    pub(crate) fn for_each_target(
        &self,
        rooms: &[Arc<str>],
        except: &[Arc<str>],
        mut f: impl FnMut(&ServerConnection),
    ) {
        let mut seen: HashSet<Arc<str>> = HashSet::new();
        let dedup = rooms.len() > 1;
        for room in rooms {
            let Some(members) = self.rooms.get(room) else {
                continue;
            };
            for (id, conn) in members.iter() {
                if conn.state() != ConnectionState::Connected
                    || except.iter().any(|e| e == id)
                    || (dedup && !seen.insert(id.clone()))
                {
                    continue;
                }
                f(conn);
            }
        }
    }
}

/// Targets the members of one or more rooms: built by [`Server::to`](crate::Server::to) or
/// [`ServerConnection::to`] (which leaves out the connection itself). Add rooms with
/// [`to`](Self::to) (each member is reached once, whatever rooms it shares) and leave out
/// connections with [`except`](Self::except).
///
/// Only connected members are reached: a connection that has joined a room during its
/// handshake gets nothing until its handshake response has gone out.
///
/// Every broadcast encodes its frame once and shares the bytes with every recipient, and
/// never waits on a recipient: one whose outbound queue is full is closed with 4210 (slow
/// consumer) instead.
///
/// ```no_run
/// # async fn demo(server: roomwire::Server) -> Result<(), roomwire::Error> {
/// server.to("lobby").to("hall").except("bob").emit("news", &"hello")?;
/// let votes = server.to("lobby").send::<_, bool>("vote", &"pizza?").await?;
/// let yes = votes.iter().filter(|v| matches!(v.result, Ok(true))).count();
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a broadcast operator does nothing until emit or send"]
pub struct BroadcastOperator {
    server: Arc<ServerShared>,
    rooms: Vec<Arc<str>>,
    except: Vec<Arc<str>>,
    timeout: Option<Duration>,
}

impl BroadcastOperator {
    pub(crate) fn new(server: Arc<ServerShared>, room: &str) -> Self {
        BroadcastOperator {
            server,
            rooms: vec![Arc::from(room)],
            except: Vec::new(),
            timeout: None,
        }
    }

    /// Also targets the members of `room`.
    pub fn to(mut self, room: &str) -> Self {
        if !self.rooms.iter().any(|r| &**r == room) {
            self.rooms.push(Arc::from(room));
        }
        self
    }

    /// Leaves out the connection with this id.
    pub fn except(mut self, id: &str) -> Self {
        self.except.push(Arc::from(id));
        self
    }

    /// How long [`send`](Self::send) waits for the members' responses. Defaults to the
    /// server's [response timeout](crate::ServerBuilder::response_timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The connections a broadcast would reach now.
    pub fn connections(&self) -> Vec<ServerConnection> {
        let mut targets = Vec::new();
        self.server
            .rooms
            .for_each_target(&self.rooms, &self.except, |c| targets.push(c.clone()));
        targets
    }

    /// Sends a fire-and-forget message to every target. Returns how many it was queued for.
    ///
    /// # Errors
    /// [`EncodeError`] if the payload cannot be serialized (then nothing was sent).
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<usize, EncodeError> {
        let frame = protocol::encode_message(name, payload, None).map_err(EncodeError::new)?;
        let mut reached = 0;
        self.server
            .rooms
            .for_each_target(&self.rooms, &self.except, |conn| {
                if conn.peer().queue(frame.clone()).is_ok() {
                    reached += 1;
                }
            });
        Ok(reached)
    }

    /// Sends one request to every target and collects each one's outcome
    /// ([`BroadcastReply::result`]): its response deserialized into `R`, its rejection,
    /// [`SendError::Timeout`] at the broadcast's timeout, or [`SendError::Disconnected`].
    /// Returns once every target has an outcome, in the order they came. The frame is
    /// encoded once, with one request id for all targets.
    ///
    /// # Errors
    /// [`EncodeError`] if the payload cannot be serialized (then nothing was sent); what
    /// each member's request failed with is in its [`BroadcastReply`].
    pub async fn send<T, R>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<Vec<BroadcastReply<R>>, EncodeError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned + Send + 'static,
    {
        let mut replies = self.send_stream(name, payload)?;
        let mut all = Vec::with_capacity(replies.len());
        while let Some(reply) = replies.next().await {
            all.push(reply);
        }
        Ok(all)
    }

    /// Like [`send`](Self::send), but yields each target's outcome as it arrives. The
    /// requests are sent before this returns; the timeout runs from then.
    ///
    /// # Errors
    /// [`EncodeError`] if the payload cannot be serialized (then nothing was sent).
    pub fn send_stream<T, R>(&self, name: &str, payload: &T) -> Result<ReplyStream<R>, EncodeError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned + Send + 'static,
    {
        let id = next_request_id();
        let frame = protocol::encode_message(name, payload, Some(id)).map_err(EncodeError::new)?;
        let timeout = self.timeout.unwrap_or(self.server.config.response_timeout);
        let deadline = clock::after(clock::Instant::now(), timeout);
        let name: Arc<str> = Arc::from(name);
        let pending = FuturesUnordered::new();
        self.server
            .rooms
            .for_each_target(&self.rooms, &self.except, |conn| {
                let started = Waiting::start(conn.clone(), id, frame.clone(), deadline);
                let (conn, name) = (conn.clone(), name.clone());
                pending.push(Box::pin(async move {
                    let result = match started {
                        Ok(waiting) => waiting
                            .reply(&name, timeout)
                            .await
                            .and_then(|p| p.deserialize().map_err(SendError::Decode)),
                        Err(e) => Err(e),
                    };
                    BroadcastReply {
                        connection: conn,
                        result,
                    }
                }) as BoxFuture<BroadcastReply<R>>);
            });
        Ok(ReplyStream {
            pending,
            _reply: PhantomData,
        })
    }
}

impl fmt::Debug for BroadcastOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastOperator")
            .field("rooms", &self.rooms)
            .field("except", &self.except)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One target's outcome in a broadcast that awaits replies.
#[derive(Debug)]
#[non_exhaustive]
pub struct BroadcastReply<R> {
    /// The member.
    pub connection: ServerConnection,
    /// Its response, its rejection ([`SendError::Rejected`]), [`SendError::Timeout`],
    /// [`SendError::Disconnected`], [`SendError::QueueFull`] or [`SendError::Decode`] (the
    /// response does not fit `R`).
    pub result: Result<R, SendError>,
}

/// The outcomes of a broadcast that awaits replies, as they arrive; see
/// [`BroadcastOperator::send_stream`]. Ends when every target has one.
#[must_use = "the outcomes arrive only when the stream is polled"]
pub struct ReplyStream<R> {
    pending: FuturesUnordered<BoxFuture<BroadcastReply<R>>>,
    _reply: PhantomData<fn() -> R>,
}

impl<R> ReplyStream<R> {
    /// The next outcome, or `None` once every target has one.
    pub async fn next(&mut self) -> Option<BroadcastReply<R>> {
        self.pending.next().await
    }

    /// How many targets have no outcome yet.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every target has its outcome.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

impl<R> Stream for ReplyStream<R> {
    type Item = BroadcastReply<R>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.pending.poll_next_unpin(cx)
    }
}

impl<R> fmt::Debug for ReplyStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyStream")
            .field("waiting", &self.pending.len())
            .finish()
    }
}
