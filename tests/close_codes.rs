//! Close codes that say what happened: a socket dropped without a close frame is 1006, and
//! an oversized message gets its 1009 close frame to the client every time.

mod common;

use common::{report_disconnects, start, within, Raw};
use futures_util::{SinkExt, StreamExt};
use roomwire::Server;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

#[tokio::test]
async fn a_client_dropping_its_socket_without_a_close_frame_is_reported_as_1006() {
    let (server, addr) = start(Server::builder().build()).await;
    let mut closed = report_disconnects(&server);
    let (raw, _) = Raw::handshaked(addr, Value::Null).await;
    drop(raw);
    let (_conn, info) = within(closed.recv()).await.unwrap();
    assert_eq!(info.code, 1006, "{info:?}");
}

#[tokio::test]
async fn a_client_shutting_down_its_write_half_without_a_close_frame_is_reported_as_1006() {
    let (server, addr) = start(Server::builder().build()).await;
    let mut closed = report_disconnects(&server);
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let MaybeTlsStream::Plain(tcp) = raw.ws.get_mut() else {
        unreachable!()
    };
    tcp.shutdown().await.unwrap();
    let (_conn, info) = within(closed.recv()).await.unwrap();
    assert_eq!(info.code, 1006, "{info:?}");
    drop(raw);
}

#[tokio::test]
async fn a_5_mb_message_gets_a_1009_close_frame_every_time() {
    let (_server, addr) = start(Server::builder().build()).await;
    let big = "x".repeat(5 << 20);
    let config = WebSocketConfig::default()
        .max_write_buffer_size(usize::MAX)
        .max_message_size(None)
        .max_frame_size(None);
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
            format!("ws://{addr}"),
            Some(config),
            false,
        )
        .await
        .unwrap();
        // The server stops reading at the frame's header: the write may fail; read on anyway.
        let _ = within(ws.send(Message::text(big.clone()))).await;
        let outcome = within(async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => {
                        return format!("close {}", u16::from(frame.code))
                    }
                    Some(Ok(Message::Close(None))) => return "close without a code".to_owned(),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return format!("error: {e}"),
                    None => return "ended without a close frame".to_owned(),
                }
            }
        })
        .await;
        outcomes.push(outcome);
    }
    assert!(outcomes.iter().all(|o| o == "close 1009"), "{outcomes:?}");
}
