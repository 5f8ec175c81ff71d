//! A chat server: rooms, membership notices and messages to the others in a room.
//!
//! ```text
//! cargo run --example chat                 # listens on 127.0.0.1:8081
//! cargo run --example chat_client ann      # in a second terminal
//! cargo run --example chat_client bob      # in a third
//! ```
//!
//! The chat's messages, on top of roomwire's wire protocol (docs/PROTOCOL.md); any Line
//! client works, or a browser console (see README.md, "Trying the chat"):
//! - handshake payload `{"name": "<1-32 characters>"}`; the name is the connection id, so a
//!   missing or taken name is rejected;
//! - request `join` with a room name, `leave` with a room name;
//! - request `say` with `{"room": ..., "text": ...}`: the other members of that room receive
//!   the message `message` with `{"room", "from", "text"}`;
//! - everyone in a room receives `joined` / `left` with `{"room", "name"}` when a member
//!   comes or goes (the member itself included).

use std::io::IsTerminal;
use std::process::ExitCode;

use roomwire::{CloseInfo, Handshake, IdError, Rejection, ServeError, Server, ServerConnection};
use serde::Deserialize;
use serde_json::json;
use tracing_subscriber::EnvFilter;

#[derive(Deserialize)]
struct Hello {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Say {
    room: String,
    text: String,
}

fn valid_room(room: &str) -> Result<(), Rejection> {
    if (1..=64).contains(&room.chars().count()) {
        Ok(())
    } else {
        Err(Rejection::new(
            "BadRoom",
            "a room name has 1 to 64 characters",
        ))
    }
}

fn chat_server() -> Server {
    let server = Server::builder().build();

    server.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
        let name = match hs.payload::<Hello>() {
            Ok(Hello { name: Some(name) }) if (1..=32).contains(&name.chars().count()) => name,
            _ => {
                return hs.reject(Rejection::new(
                    "BadName",
                    "send {\"name\": \"<1-32 characters>\"} as the handshake payload",
                ))
            }
        };
        match conn.set_id(name) {
            Ok(()) => hs.resolve(json!({ "rooms": conn.server().rooms() })),
            Err(IdError::Conflict { id }) => hs.reject(Rejection::new(
                "NameTaken",
                format!("{id:?} is taken; pick another name"),
            )),
            Err(e) => hs.reject(e),
        }
    });

    server.on_request("join", |conn: ServerConnection, room: String| async move {
        valid_room(&room)?;
        if !conn.in_room(&room) {
            conn.join(&room)?;
            conn.server()
                .to(&room)
                .emit("joined", &json!({ "room": room, "name": &*conn.id() }))?;
        }
        Ok::<_, Rejection>(conn.server().room_size(&room))
    });

    server.on_request("leave", |conn: ServerConnection, room: String| async move {
        if !conn.in_room(&room) {
            return Err(Rejection::new(
                "NotInRoom",
                format!("you are not in {room:?}"),
            ));
        }
        // Everyone in the room hears it, the one leaving included.
        conn.server()
            .to(&room)
            .emit("left", &json!({ "room": room, "name": &*conn.id() }))?;
        conn.leave(&room);
        Ok(())
    });

    server.on_request("say", |conn: ServerConnection, say: Say| async move {
        if !conn.in_room(&say.room) {
            return Err(Rejection::new(
                "NotInRoom",
                format!("join {:?} first", say.room),
            ));
        }
        let reached = conn.to(&say.room).emit(
            "message",
            &json!({ "room": say.room, "from": &*conn.id(), "text": say.text }),
        )?;
        Ok(reached)
    });

    server.on_disconnect(|conn: ServerConnection, _info: CloseInfo| async move {
        for room in conn.rooms() {
            let _ = conn
                .to(&room)
                .emit("left", &json!({ "room": &*room, "name": &*conn.id() }));
        }
    });

    server
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

async fn run() -> Result<(), ServeError> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let server = chat_server();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("roomwire chat listening on ws://{}", listener.local_addr()?);
    // Ctrl-C closes every connection with 1001 "Server closing" and runs every
    // on_disconnect; `serve` returns once all of that is done.
    server
        .serve(listener)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
