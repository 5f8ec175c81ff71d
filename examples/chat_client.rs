//! A terminal client for the chat example, built on roomwire's Rust client.
//!
//! ```text
//! cargo run --example chat_client <name> [ws://127.0.0.1:8080]
//! ```
//!
//! Type `/join <room>`, `/leave <room>`, or `<room> <text>` to speak; `/quit` to leave.

use roomwire::client::Client;
use roomwire::Rejection;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

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

#[tokio::main]
async fn main() -> Result<(), roomwire::Error> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "guest".into());
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:8080".into());
    let client = Client::builder(url)
        .handshake_payload(&json!({ "name": name }))?
        .on_request("message", show("message"))
        .on_request("joined", show("joined"))
        .on_request("left", show("left"))
        .connect()
        .await?;
    println!(
        "connected as {}; /join <room>, /leave <room>, <room> <text>, /quit",
        name
    );

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        let result = if let Some(room) = line.strip_prefix("/join ") {
            client
                .send::<_, Value>("join", room)
                .await
                .map(|n| format!("{n} in {room}"))
        } else if let Some(room) = line.strip_prefix("/leave ") {
            client
                .send::<_, Value>("leave", room)
                .await
                .map(|_| format!("left {room}"))
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
    client.close().await;
    Ok(())
}
