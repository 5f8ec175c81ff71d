//! Mounting a roomwire server on an [axum](https://docs.rs/axum) app (feature `axum`).
//!
//! ```no_run
//! use axum::routing::get;
//! use std::net::SocketAddr;
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = roomwire::Server::builder().build();
//! let app = axum::Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .route("/ws", get(roomwire::axum::handler(server.clone())));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // With the connect info, the handshake and the upgrade filter see the peer's address.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};

use crate::Server;

/// An axum handler that answers WebSocket upgrade requests with `server`: mount it on a
/// route with `get(...)`. See [`Server::handle_upgrade`] for what the request goes
/// through; the route decides the path (the server's own
/// [`path`](crate::ServerBuilder::path) setting does not apply).
///
/// The peer's address reaches the upgrade filter and the handshake when the app is served
/// with `into_make_service_with_connect_info::<SocketAddr>()` (axum's [`ConnectInfo`]);
/// otherwise it is `None`. What axum middleware put in the request's extensions is in
/// [`UpgradeRequest::extensions`](crate::upgrade::UpgradeRequest::extensions).
///
/// Connections served this way close with the server ([`Server::close`]): shut the axum
/// app down and close the server together.
pub fn handler(
    server: Server,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |request: Request| {
        let remote_addr = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        let answer = server.handle_upgrade(request, remote_addr);
        Box::pin(async move { answer.await.into_response() })
    }
}
