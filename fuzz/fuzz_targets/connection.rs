//! A connection's state machine driven by arbitrary frame sequences over a real socket on
//! 127.0.0.1: whatever arrives, the server answers a final ping or closes the socket — it
//! never goes silent, never crashes — and keeps serving new connections.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use roomwire::{Rejection, Server, ServerConnection};
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

fn setup() -> &'static (Runtime, SocketAddr) {
    static SETUP: OnceLock<(Runtime, SocketAddr)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let addr = rt.block_on(async {
            let server = Server::builder()
                .max_message_size(4096)
                .max_requests_in_flight(4)
                .response_timeout(Duration::from_millis(100))
                .build();
            server.on_request("echo", |_c: ServerConnection, v: Value| async move {
                Ok::<_, Rejection>(v)
            });
            server.on_request("join", |c: ServerConnection, room: String| async move {
                c.join(&room)?;
                Ok::<_, roomwire::Error>(())
            });
            server.on_request("ask", |c: ServerConnection, v: Value| async move {
                c.send::<_, Value>("q", &v).await?;
                Ok::<_, roomwire::Error>(())
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { server.serve(listener).await });
            addr
        });
        (rt, addr)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, addr) = setup();
    rt.block_on(async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{addr}"), None, true)
                .await
                .unwrap();
        // Frames are separated by 0xFF; a leading 0x00 makes a frame binary.
        for chunk in data.split(|b| *b == 0xFF) {
            let msg = match chunk.split_first() {
                Some((0, rest)) => Message::binary(rest.to_vec()),
                _ => Message::text(String::from_utf8_lossy(chunk).into_owned()),
            };
            if ws.send(msg).await.is_err() {
                return;
            }
        }
        let _ = ws.send(Message::text(r#"{"n":"_p","i":"final"}"#)).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.contains(r#""i":"final""#) => break,
                Ok(Some(Ok(_))) => continue,
                Ok(_) => break, // closed (oversized frame, protocol error): a definite end
                Err(_) => panic!("the server went silent"),
            }
        }
        let _ = ws.close(None).await;
    });
});
