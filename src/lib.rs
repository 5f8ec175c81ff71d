//! # roomwire
//!
//! Request/response RPC over WebSocket, with a handshake phase and rooms. roomwire speaks
//! the wire protocol of [Line](https://www.npmjs.com/package/line-socket), so Line's
//! JavaScript clients work against a roomwire server unchanged.
//!
//! - [`Server`]: register named request handlers, a handshake handler and hooks, then listen.
//! - [`ServerConnection`]: one client; [`send`](ServerConnection::send) awaits the client's
//!   response, [`send_without_response`](ServerConnection::send_without_response) does not.
//! - [`Handshake`]: the client's first message; resolve it (optionally after
//!   [`set_id`](ServerConnection::set_id)) or reject it, exactly once.
//! - [`ServerConnection::join`] and [`Server::to`] / [`ServerConnection::to`]: rooms, and the
//!   [`BroadcastOperator`] that emits to their members or awaits every member's reply.
//! - [`client::Client`] (feature `client`, on by default): the Rust client, with reconnects.
//! - [`Error`] and [`Rejection`]: what can go wrong, and the error object on the wire.
//! - [`protocol::close_code`]: every close code roomwire sends.
//! - [`ServerBuilder`]: every limit and timeout, each with its documented default.
//! - `metrics` (feature `metrics`): counters and gauges through the `metrics` facade.
//!
//! ## Quick start
//!
//! ```no_run
//! use roomwire::{Handshake, Rejection, Server, ServerConnection};
//! use serde_json::json;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), roomwire::Error> {
//!     let server = Server::builder().build();
//!
//!     server.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
//!         match hs.payload::<String>() {
//!             Ok(name) => match conn.set_id(name) {
//!                 Ok(()) => hs.resolve(json!({ "welcome": true })),
//!                 Err(e) => hs.reject(e),
//!             },
//!             Err(_) => hs.reject(Rejection::new("BadRequest", "send your name as the payload")),
//!         }
//!     });
//!
//!     server.on_request("add", |_conn: ServerConnection, (a, b): (i64, i64)| async move {
//!         Ok::<_, Rejection>(a + b)
//!     });
//!
//!     server.on_connection(|conn: ServerConnection| async move {
//!         let answer: String = conn.send("whoami", &()).await?;
//!         println!("{} says it is {answer}", conn.id());
//!         Ok::<_, roomwire::Error>(())
//!     });
//!
//!     // Ctrl-C closes every connection with 1001 and runs every `on_disconnect` first.
//!     let ctrl_c = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     server.listen("127.0.0.1:8080").with_graceful_shutdown(ctrl_c).await
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod config;
mod connection;
mod error;
mod fast_hash;
mod handler;
mod handshake;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
pub mod protocol;
mod rooms;
mod serve;
mod server;
pub mod upgrade;

#[cfg(feature = "axum")]
pub mod axum;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;

pub use config::{ServerBuilder, ServerConfig};
pub use connection::{CloseInfo, ConnectionState, ServerConnection};
pub use error::{Error, Rejection};
pub use handler::HookOutput;
pub use handshake::{Handshake, HandshakeOutcome};
pub use rooms::{BroadcastOperator, BroadcastReply, ReplyStream};
pub use serve::Serve;
pub use server::{Server, ServerStatus};
/// The `http` types used by [`Handshake`] (headers, URIs).
pub use tokio_tungstenite::tungstenite::http;

/// The README's examples compile as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
