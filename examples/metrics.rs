//! roomwire mounted on an axum app, with its metrics in Prometheus' text format: the
//! WebSocket endpoint on `/ws`, a health check on `GET /health`, and `GET /metrics` for
//! Prometheus to scrape.
//!
//! ```text
//! cargo run --example metrics --features metrics,axum          # listens on 127.0.0.1:8082
//! curl http://127.0.0.1:8082/metrics
//! ```
//!
//! Any Line client connects to `ws://127.0.0.1:8082/ws` and can call `add` with `[a, b]`.
//! tests/metrics.rs serves this same [`app`] and checks what its `/metrics` says.

use std::net::SocketAddr;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use roomwire::{Rejection, Server, ServerConnection};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // The recorder first: roomwire registers its metrics with it when the server is built.
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .expect("no other metrics recorder is installed");
    let server = Server::builder().build();
    server.on_request(
        "add",
        |_conn: ServerConnection, (a, b): (i64, i64)| async move {
            a.checked_add(b)
                .ok_or_else(|| Rejection::new("Overflow", "the sum does not fit in 64 bits"))
        },
    );

    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8082".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    println!("roomwire on ws://{local}/ws, metrics on http://{local}/metrics");

    // Ctrl-C closes the roomwire server (every client gets 1001), then the HTTP server.
    let shutdown = {
        let server = server.clone();
        async move {
            let _ = tokio::signal::ctrl_c().await;
            server.close().await;
        }
    };
    let app = app(server, metrics);
    // With the connect info, the handshake and the upgrade filter see the peer's address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The app: roomwire's WebSocket endpoint on `/ws`, `GET /health` and `GET /metrics`.
pub fn app(server: Server, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/ws", get(roomwire::axum::handler(server)))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    // Prometheus' text exposition format.
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
                }
            }),
        )
}
