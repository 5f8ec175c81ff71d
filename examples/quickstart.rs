//! The quick start: a small but real roomwire server. README.md's "Quick start" shows this
//! file's code, from the `use` lines to the end: change the two together.
//!
//! ```text
//! cargo run --example quickstart                 # listens on 127.0.0.1:8080
//! cargo run --example quickstart 0.0.0.0:9000
//! cargo run --example quickstart_client ann      # in a second terminal
//! ```
//!
//! - Handshake: the payload must be `{"name": "<1-32 characters>"}`; the name becomes the
//!   connection id, so two clients cannot share one (the second is rejected).
//! - Requests: `add` with `[a, b]` answers `a + b`; `shout` with a string sends it to
//!   everyone as the fire-and-forget message `shouted` and answers how many it reached.
//! - Once a client is connected, the server asks it `client.info` and prints the answer.
//!
//! Any Line client can talk to it; the frames on the wire are described in docs/PROTOCOL.md.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use roomwire::{CloseInfo, Handshake, Rejection, Server, ServerConnection};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing_subscriber::EnvFilter;

#[derive(Deserialize)]
struct Hello {
    name: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stdout: `RUST_LOG=debug` for more, colours only on a terminal.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), roomwire::ServeError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());

    let server = Server::builder()
        .response_timeout(Duration::from_secs(5))
        .build();

    // The handshake: read the client's payload, set the connection id, then resolve or
    // reject -- exactly once (the types see to it).
    server.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
        let name = match hs.payload::<Hello>() {
            Ok(hello) if (1..=32).contains(&hello.name.chars().count()) => hello.name,
            _ => {
                return hs.reject(Rejection::new(
                    "BadRequest",
                    "send {\"name\": \"<1-32 characters>\"} as the handshake payload",
                ))
            }
        };
        match conn.set_id(name.clone()) {
            Ok(()) => hs.resolve(json!({ "greeting": format!("hello, {name}") })),
            Err(e) => hs.reject(e), // IdError::Conflict: the name is taken
        }
    });

    // Named handlers: typed payload in, typed result out. Ok resolves, Err rejects.
    server.on_request(
        "add",
        |_conn: ServerConnection, (a, b): (i64, i64)| async move {
            a.checked_add(b)
                .ok_or_else(|| Rejection::new("Overflow", "the sum does not fit in 64 bits"))
        },
    );

    server.on_request("shout", |conn: ServerConnection, text: String| async move {
        let reached = conn
            .server()
            .broadcast("shouted", &json!({ "from": &*conn.id(), "text": text }))?;
        Ok::<_, roomwire::Error>(reached)
    });

    // The server can ask the client too, and await its answer.
    server.on_connection(|conn: ServerConnection| async move {
        println!("{} connected from {:?}", conn.id(), conn.remote_addr());
        match conn.send::<_, Value>("client.info", &()).await {
            Ok(info) => println!("{} says: {info}", conn.id()),
            Err(e) => println!("{} did not answer client.info: {e}", conn.id()),
        }
    });

    server.on_disconnect(|conn: ServerConnection, info: CloseInfo| async move {
        println!("{} disconnected: {} {}", conn.id(), info.code, info.reason);
    });

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "roomwire quickstart listening on ws://{}",
        listener.local_addr()?
    );

    // Ctrl-C closes every connection with 1001 "Server closing" and runs every
    // on_disconnect; `serve` returns once all of that is done.
    server
        .serve(listener)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
