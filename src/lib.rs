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
//! - Errors, one per operation, so a caller can match on exactly what can go wrong:
//!   [`SendError`] (awaited requests), [`NotifyError`] (fire-and-forget), [`EncodeError`]
//!   (broadcasts), [`DecodeError`] (handshake payloads), [`IdError`], [`JoinError`],
//!   [`PingError`], [`ServeError`], [`client::ConnectError`]. Each converts into [`Error`],
//!   so `?` works in `main`, and into a [`Rejection`], the error object on the wire, so `?`
//!   works in a handler.
//! - [`CloseCode`]: a WebSocket close code, with a constant for every code roomwire sends.
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
//!     server.listen("127.0.0.1:8080").with_graceful_shutdown(ctrl_c).await?;
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
#![warn(rust_2018_idioms, unreachable_pub)]
// The docs link to the Rust client's items, which exist only with the `client` feature.
#![cfg_attr(not(feature = "client"), allow(rustdoc::broken_intra_doc_links))]

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
mod tls;
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
pub use error::{
    DecodeError, EncodeError, Error, IdError, JoinError, NotifyError, PingError, Rejection,
    SendError, ServeError,
};
pub use handler::HookOutput;
pub use handshake::{Handshake, HandshakeOutcome};
pub use protocol::CloseCode;
pub use rooms::{BroadcastOperator, BroadcastReply, ReplyStream};
/// The [rustls](https://docs.rs/rustls) roomwire's TLS is built with (feature `tls`), with
/// only its ring provider: build the `ServerConfig` for [`Serve::with_tls`] and the
/// `ClientConfig` for the client from it, and there is no second rustls (or provider) to
/// keep in step.
#[cfg(feature = "tls")]
pub use rustls;
pub use serve::Serve;
pub use server::{Server, ServerStatus};
/// The `http` types used by [`Handshake`] (headers, URIs).
pub use tokio_tungstenite::tungstenite::http;

/// The README's examples compile as doc tests (they use every feature: the README's test
/// command runs `cargo test --all-features`).
#[cfg(all(doctest, feature = "axum", feature = "tls"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
