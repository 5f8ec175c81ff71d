//! A terminal client for the chat example, built on roomwire's Rust client.
//!
//! ```text
//! cargo run --example chat_client <name> [ws://127.0.0.1:8081]
//! ```
//!
//! Type `/join <room>`, `/leave <room>`, or `<room> <text>` to speak; `/quit` to leave.
//!
//! When the server goes away the client says so and reconnects (Line's backoff); once it is
//! back, the client says that too and joins its rooms again. It stops when the server does
//! not want it back (a rejected handshake, 4210 slow consumer, 4211 room closed: see
//! docs/PROTOCOL.md, "Close codes").

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use roomwire::client::{Client, ClientEvent};
use roomwire::Rejection;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast::{self, error::RecvError};
use tracing_subscriber::EnvFilter;

/// The rooms this client is in, to join again after a reconnect.
type Rooms = Arc<Mutex<BTreeSet<String>>>;

fn show(
    event: &'static str,
) -> impl Fn(Client, Value) -> std::future::Ready<Result<(), Rejection>> {
    move |_client, payload| {
        let field = |key: &str| payload[key].as_str().unwrap_or_default().to_owned();
        match event {
            "message" => println!("[{}] {}: {}", field("room"), field("from"), field("text")),
            _ => println!("[{}] {} {event}", field("room"), field("name")),
        }
        std::future::ready(Ok(()))
    }
}

/// Reports what happens to the connection, and rejoins the rooms after a reconnect. Ends
/// when the client is closed for good.
async fn watch(client: Client, mut events: broadcast::Receiver<ClientEvent>, rooms: Rooms) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        match event {
            ClientEvent::Disconnected { info, reconnecting } => {
                let then = if reconnecting {
                    "reconnecting…"
                } else {
                    "not reconnecting"
                };
                println!("lost the server: {} {:?}; {then}", info.code, info.reason);
            }
            ClientEvent::Reconnecting { attempt, delay } => {
                tracing::debug!(attempt, ?delay, "reconnecting");
            }
            ClientEvent::ConnectFailed { attempt, error } => {
                tracing::debug!(attempt, %error, "reconnect attempt failed");
            }
            ClientEvent::Connected { id } => {
                println!("back on the server as {id}");
                let rooms: Vec<String> = rooms.lock().unwrap().iter().cloned().collect();
                for room in rooms {
                    match client.send::<_, Value>("join", &room).await {
                        Ok(n) => println!("rejoined {room} ({n} in it)"),
                        Err(e) => println!("could not rejoin {room}: {e}"),
                    }
                }
            }
            ClientEvent::HandshakeRejected(rejection) => {
                println!("the server turned us away: {rejection}");
            }
            ClientEvent::Closed => return,
            _ => {}
        }
    }
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

async fn run() -> Result<(), roomwire::Error> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "guest".into());
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:8081".into());
    let client = Client::builder(url)
        .handshake_payload(&json!({ "name": name }))?
        .on_request("message", show("message"))
        .on_request("joined", show("joined"))
        .on_request("left", show("left"))
        .connect()
        .await?;
    println!("connected as {name}; /join <room>, /leave <room>, <room> <text>, /quit");

    let rooms = Rooms::default();
    let mut watcher = tokio::spawn(watch(client.clone(), client.events(), rooms.clone()));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => line,
                _ => break, // end of input
            },
            _ = &mut watcher => {
                println!("disconnected for good; bye");
                return Ok(());
            }
        };
        let line = line.trim();
        let result = if let Some(room) = line.strip_prefix("/join ") {
            client.send::<_, Value>("join", room).await.map(|n| {
                rooms.lock().unwrap().insert(room.to_owned());
                format!("{n} in {room}")
            })
        } else if let Some(room) = line.strip_prefix("/leave ") {
            client.send::<_, Value>("leave", room).await.map(|_| {
                rooms.lock().unwrap().remove(room);
                format!("left {room}")
            })
        } else if line == "/quit" {
            break;
        } else if let Some((room, text)) = line.split_once(' ') {
            client
                .send::<_, Value>("say", &json!({ "room": room, "text": text }))
                .await
                .map(|n| format!("(heard by {n})"))
        } else {
            Ok("type /join <room>, /leave <room>, <room> <text> or /quit".into())
        };
        match result {
            Ok(text) => println!("{text}"),
            Err(e) => println!("error: {e}"),
        }
    }
    // Our own close is not news: stop reporting before closing.
    watcher.abort();
    client.close().await;
    Ok(())
}
