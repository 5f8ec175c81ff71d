//! A client for the quickstart server, built on roomwire's Rust client: it handshakes with
//! a name, answers the server's `client.info`, asks `add`, shouts once and prints what it
//! hears, then closes. README.md's "Talking to the quickstart" shows this file's code, from
//! the `use` lines to the end: change the two together.
//!
//! ```text
//! cargo run --example quickstart                          # first terminal
//! cargo run --example quickstart_client [name] [ws://127.0.0.1:8080]
//! ```

use std::io::IsTerminal;
use std::process::ExitCode;

use roomwire::client::Client;
use roomwire::Rejection;
use serde_json::{json, Value};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
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
    let name = args.next().unwrap_or_else(|| "rusty".into());
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:8080".into());

    let client = Client::builder(url)
        .handshake_payload(&json!({ "name": name }))?
        // The server's request after the handshake: answer it like any handler.
        .on_request("client.info", |_c: Client, (): ()| async move {
            Ok::<_, Rejection>(json!({ "runtime": "rust" }))
        })
        // A fire-and-forget message from the server: the result goes nowhere.
        .on_request("shouted", |_c: Client, shout: Value| async move {
            println!("{} shouted {}", shout["from"], shout["text"]);
            Ok::<_, Rejection>(())
        })
        .connect()
        .await?;
    let greeting: Value = client.handshake_payload()?;
    println!("connected as {name}: {greeting}");

    let sum: i64 = client.send("add", &(2, 3)).await?;
    println!("2 + 3 = {sum}");
    let reached: usize = client.send("shout", "hello, everyone").await?;
    println!("the shout reached {reached} connection(s)");

    client.close().await;
    Ok(())
}
