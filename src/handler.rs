//! Typed adapters that turn user closures into erased request handlers, and the registry
//! that holds them by name.
//!
//! A handler takes the connection's handle and a payload deserialized straight from the
//! frame into its own type; it returns `Result<T, E>`: `Ok` resolves, `Err` rejects.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::connection::peer::Peer;
use crate::connection::Endpoint;
use crate::error::Rejection;
use crate::fast_hash::FastHash;
use crate::metrics::{Meter, Received};
use crate::protocol::{self, RawId};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A running request handler: it ends with the response frame to queue, if the peer wants
/// one. The driver that polls it queues the frame, so the future needs no handle of its own
/// on the connection.
pub(crate) type HandlerFuture = BoxFuture<Option<Utf8Bytes>>;

/// A request's payload as it arrived: raw JSON (`None`: absent or `null`), and whether it
/// was validated already. When it was not, deserializing it validates it, and a syntax error
/// makes the whole frame malformed (see [`protocol::scan`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PayloadText<'a> {
    pub raw: Option<&'a str>,
    pub checked: bool,
}

impl PayloadText<'_> {
    /// `true` (and the frame reported as malformed) when the payload was not checked yet and
    /// is not JSON: then the frame is dropped, with no answer.
    pub(crate) fn is_malformed(&self, peer: &Peer) -> bool {
        match self.raw {
            Some(raw) if !self.checked => match protocol::check_json(raw) {
                Ok(()) => false,
                Err(e) => {
                    peer.report_malformed(&protocol::FrameError::Malformed(e));
                    true
                }
            },
            _ => false,
        }
    }
}

/// A request handler with its types erased.
pub(crate) trait ErasedHandler<E: Endpoint>: Send + Sync + 'static {
    /// Deserializes the payload and starts the handler. `None` when the payload did not fit
    /// (the error response, if the peer wanted one, is already queued).
    fn call(
        &self,
        ep: &E,
        name: &str,
        payload: PayloadText<'_>,
        id: Option<RawId>,
    ) -> Option<HandlerFuture>;
}

pub(crate) struct TypedHandler<F, Req> {
    f: F,
    _req: PhantomData<fn(Req)>,
}

impl<F, Req> TypedHandler<F, Req> {
    pub(crate) fn new(f: F) -> Self {
        TypedHandler {
            f,
            _req: PhantomData,
        }
    }
}

impl<E, F, Fut, Req, Res, Rej> ErasedHandler<E> for TypedHandler<F, Req>
where
    E: Endpoint,
    F: Fn(E::Handle, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Res, Rej>> + Send + 'static,
    Req: DeserializeOwned + 'static,
    Res: Serialize,
    Rej: Into<Rejection>,
{
    fn call(
        &self,
        ep: &E,
        name: &str,
        payload: PayloadText<'_>,
        id: Option<RawId>,
    ) -> Option<HandlerFuture> {
        let meter = ep.peer().meter();
        let raw = payload.raw.unwrap_or("null");
        // The payload's type is the application's: its `Deserialize` runs under the guard too.
        let parsed = std::panic::catch_unwind(|| serde_json::from_str::<Req>(raw));
        let Ok(parsed) = parsed else {
            return Some(Box::pin(std::future::ready(panicked(
                meter,
                name,
                id.as_ref(),
            ))));
        };
        let req: Req = match parsed {
            Ok(req) => req,
            Err(e) => {
                if payload.is_malformed(ep.peer()) {
                    return None;
                }
                meter.request_received(Received::InvalidPayload);
                let rejection = Rejection::new(
                    "InvalidPayload",
                    format!("the payload of {name:?} does not fit its handler: {e}"),
                );
                match id {
                    Some(id) => {
                        let _ = ep.peer().queue(protocol::encode_reject(&id, &rejection));
                    }
                    None => {
                        tracing::warn!(message = name, error = %e, "dropped a message whose payload does not fit its handler")
                    }
                }
                return None;
            }
        };
        let Some(handle) = ep.handle() else {
            meter.request_received(Received::Disconnected);
            if let Some(id) = id {
                let _ = ep.peer().queue(protocol::encode_reject(
                    &id,
                    &Rejection::from(crate::SendError::Disconnected),
                ));
            }
            return None;
        };
        // Everything of the application's runs under an unwind guard: the payload's
        // deserialization above, the closure's call here, then its future, the result's
        // encoding and the rejection's conversion below.
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| (self.f)(handle, req))) {
            Ok(fut) => fut,
            Err(_) => {
                return Some(Box::pin(std::future::ready(panicked(
                    meter,
                    name,
                    id.as_ref(),
                ))))
            }
        };
        let name: Box<str> = if id.is_none() {
            name.into()
        } else {
            Box::from("")
        };
        Some(Box::pin(async move {
            let run = AssertUnwindSafe(async {
                let outcome = fut.await;
                let received = if outcome.is_ok() {
                    Received::Ok
                } else {
                    Received::Rejected
                };
                let Some(id) = &id else {
                    if let Err(rej) = outcome {
                        let rej: Rejection = rej.into();
                        tracing::debug!(message = %name, error = %rej, "a fire-and-forget handler failed");
                    }
                    meter.request_received(received);
                    return None;
                };
                let response = match outcome {
                    Ok(res) => protocol::encode_resolve(id, &res).unwrap_or_else(|e| {
                        protocol::encode_reject(
                            id,
                            &Rejection::internal(format!(
                                "the handler's result is not serializable: {e}"
                            )),
                        )
                    }),
                    Err(rej) => protocol::encode_reject(id, &rej.into()),
                };
                // Counted once the result is encoded: a panic while encoding is `panicked`.
                meter.request_received(received);
                Some(response)
            });
            match run.catch_unwind().await {
                Ok(response) => response,
                Err(_) => panicked(meter, &name, id.as_ref()),
            }
        }))
    }
}

/// A handler panicked: logged and counted; a request is answered with `InternalError`.
fn panicked(meter: Meter, name: &str, id: Option<&RawId>) -> Option<Utf8Bytes> {
    meter.request_received(Received::Panicked);
    match id {
        Some(id) => {
            tracing::error!(?id, "a request handler panicked; answering InternalError");
            Some(protocol::encode_reject(
                id,
                &Rejection::internal("the handler panicked"),
            ))
        }
        None => {
            tracing::error!(message = %name, "a fire-and-forget handler panicked");
            None
        }
    }
}

type HandlerMap<E> = HashMap<Box<str>, Arc<dyn ErasedHandler<E>>, FastHash>;

/// Named request handlers.
///
/// Copy-on-write: registering builds a new map (rare: usually before serving), and every
/// connection looks handlers up in a [`Snapshot`] of its own, checking one version counter
/// that only registering writes. So a request touches no lock and no reference count that
/// every connection shares: on many cores those would bounce between caches on every request.
pub(crate) struct Handlers<E: Endpoint> {
    map: RwLock<Arc<HandlerMap<E>>>,
    version: AtomicU64,
}

impl<E: Endpoint> Default for Handlers<E> {
    fn default() -> Self {
        Handlers {
            map: RwLock::default(),
            version: AtomicU64::new(0),
        }
    }
}

/// One connection's view of the [`Handlers`], refreshed when a handler is registered.
pub(crate) struct Snapshot<E: Endpoint> {
    version: u64,
    map: Arc<HandlerMap<E>>,
}

impl<E: Endpoint> Snapshot<E> {
    /// The handler for `name`, as registered in `handlers` now.
    pub(crate) fn get(
        &mut self,
        handlers: &Handlers<E>,
        name: &str,
    ) -> Option<&Arc<dyn ErasedHandler<E>>> {
        if handlers.version.load(Ordering::Acquire) != self.version {
            *self = handlers.snapshot();
        }
        self.map.get(name)
    }
}

impl<E: Endpoint> Handlers<E> {
    /// Registers `handler` for `name`, replacing any earlier one.
    ///
    /// # Panics
    /// If `name` starts with `_`: those names are reserved by the protocol.
    pub(crate) fn insert(&self, name: &str, handler: Arc<dyn ErasedHandler<E>>) {
        assert!(
            !name.starts_with('_'),
            "message names starting with '_' are reserved by the protocol: {name:?}"
        );
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut next = HandlerMap::clone(&map);
        next.insert(name.into(), handler);
        *map = Arc::new(next);
        // After the map: a snapshot that sees the new version also gets the new map.
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The handlers registered now, for one connection to look up.
    pub(crate) fn snapshot(&self) -> Snapshot<E> {
        // The version first: a registration in between makes the snapshot look stale (and
        // refresh), never look current while missing the new handler.
        let version = self.version.load(Ordering::Acquire);
        let map = self.map.read().unwrap_or_else(|p| p.into_inner()).clone();
        Snapshot { version, map }
    }
}

impl<E: Endpoint> std::fmt::Debug for Handlers<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        f.debug_set().entries(map.keys()).finish()
    }
}

/// What a hook (`on_connection`, `on_disconnect`) may return: `()` or a `Result` whose
/// error is logged.
pub trait HookOutput: Send + 'static {
    /// Logs the error, if any.
    fn report(self, hook: &'static str);
}

impl HookOutput for () {
    fn report(self, _hook: &'static str) {}
}

impl<E: std::fmt::Display + Send + 'static> HookOutput for Result<(), E> {
    fn report(self, hook: &'static str) {
        if let Err(e) = self {
            tracing::warn!(hook, error = %e, "hook returned an error");
        }
    }
}
