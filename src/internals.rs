//! Unstable hooks for roomwire's own fuzz targets (`fuzz/`) and micro-benchmarks
//! (`benches/hot_paths.rs`), behind the `internals` feature. Not a public API: anything here
//! may change or go in any release.

use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::connection::router::Router;
use crate::connection::ServerConnection;
use crate::protocol::{self, scan, RawId};
use crate::server::Server;
use crate::upgrade::UpgradeRequest;

/// Decodes `text` (never panics) and checks the fast scanner against serde_json: wherever the
/// scanner accepts a frame, serde_json reads it the same way — or, when the scanner left the
/// payload for the handler to validate, serde_json rejects it only because the payload is
/// not JSON. Whether it decoded.
pub fn check_decoder(text: &str) -> bool {
    let decoded = protocol::decode(text).is_ok();
    if let Some(fast) = scan::envelope(text) {
        protocol::assert_scanner_agrees_with_serde(&fast, text);
    }
    decoded
}

/// Decodes one frame as a connection does; whether it is a valid envelope.
pub fn decode(text: &str) -> bool {
    protocol::decode(text).is_ok()
}

/// Decodes with serde_json only (the reference path); whether it is a valid envelope.
pub fn decode_reference(text: &str) -> bool {
    protocol::decode_with_serde(text).is_ok()
}

/// Encodes a request frame; its length.
pub fn encode_request<T: Serialize>(name: &str, payload: &T, id: u64) -> usize {
    protocol::encode_message(name, payload, Some(id))
        .map(|f| f.len())
        .unwrap_or(0)
}

/// Encodes a response to the request id `raw_id` (its JSON text); its length.
pub fn encode_response<T: Serialize>(raw_id: &str, payload: &T) -> usize {
    protocol::encode_resolve(&RawId::new(raw_id), payload)
        .map(|f| f.len())
        .unwrap_or(0)
}

/// Dispatches frames to `server`'s handlers through a connected connection that has no
/// socket: decode, route, run the handler, encode and queue the response.
pub struct Dispatcher {
    conn: ServerConnection,
    router: Router<ServerConnection>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("conn", &self.conn)
            .finish()
    }
}

impl Dispatcher {
    /// A connected connection of `server`, with no socket.
    pub fn new(server: &Server) -> Self {
        let shared = server.shared();
        let conn = ServerConnection::new(
            shared.clone(),
            UpgradeRequest::empty(Some(([127, 0, 0, 1], 0).into())),
        );
        conn.mark_connected();
        let cfg = shared.driver_config();
        Dispatcher {
            router: Router::new(conn.clone(), shared.handlers.clone(), cfg),
            conn,
        }
    }

    /// Routes one frame as the connection's driver would; returns how many frames were
    /// queued for the socket in answer (and drops them).
    pub fn dispatch(&mut self, frame: &str) -> usize {
        self.router.route(Utf8Bytes::from(frame.to_owned()));
        let mut queued = std::collections::VecDeque::new();
        self.conn.peer().take(&mut queued);
        queued.len()
    }
}
