//! Close codes that say what happened: a socket dropped without a close frame is 1006, and
//! an oversized message gets its 1009 close frame to the client every time.

mod common;

use common::{report_disconnects, start, start_with, within, Raw};
use futures_util::{SinkExt, StreamExt};
use roomwire::{CloseCode, Server, ServerConnection};
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

// ---------------------------------------------------------------------------------------
// Closing while the server's write is stalled by a peer that is not reading (yet).

/// A server whose `on_connection` queues far more than the socket buffers hold (12.8 MB), so
/// that its write stalls until the client reads; then `and_then` runs.
async fn flooding_server(
    builder: roomwire::ServerBuilder,
    and_then: fn(&ServerConnection),
) -> std::net::SocketAddr {
    let (_server, addr) = start_with(builder.outbound_queue(100_000), move |s| {
        s.on_connection(move |c: ServerConnection| async move {
            let big = "a".repeat(32 * 1024);
            for _ in 0..400 {
                let _ = c.send_without_response("big", &big);
            }
            and_then(&c);
        });
    })
    .await;
    addr
}

/// A client of the flooding server at `addr`, handshaked, whose socket takes in little (a 4 KiB
/// receive buffer): with 12.8 MB queued for it, the server's write is sure to stall (its own
/// send buffer holds at most a few MB).
async fn slow_reader(addr: std::net::SocketAddr, config: Option<WebSocketConfig>) -> Raw {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}"),
        MaybeTlsStream::Plain(stream),
        config,
    )
    .await
    .unwrap();
    let mut raw = Raw { ws };
    raw.send(serde_json::json!({"n": "_h", "i": "h"})).await;
    raw
}

/// Waits for the flood's first frame: by then all of it is queued (the hook queues it without
/// awaiting), far more than the socket buffers hold, so the server's write is stalled.
async fn flood_started(raw: &mut Raw) {
    loop {
        if raw.recv().await["n"] == "big" {
            return;
        }
    }
}

/// Reads (and counts) text frames until a close frame: its code. Fails on a reset or EOF.
async fn read_until_close(raw: &mut Raw) -> u16 {
    let mut texts = 0;
    loop {
        match within(raw.ws.next()).await {
            Some(Ok(Message::Text(_))) => texts += 1,
            Some(Ok(Message::Close(frame))) => return frame.map_or(1005, |f| f.code.into()),
            Some(Ok(_)) => {}
            other => panic!("after {texts} text frames, no close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_answer_to_a_peers_close_gets_out_even_while_the_write_is_stalled() {
    let addr = flooding_server(Server::builder(), |_| {}).await;
    let mut raw = slow_reader(addr, None).await;
    flood_started(&mut raw).await;
    raw.ws.send(Message::Close(None)).await.unwrap();
    // Our close had no code, so the answer echoes none.
    assert_eq!(read_until_close(&mut raw).await, 1005);
}

#[tokio::test]
async fn a_close_from_both_ends_at_once_still_ends_with_a_close_frame() {
    let addr = flooding_server(Server::builder(), |c| c.close(CloseCode::from(4000), "bye")).await;
    let mut raw = slow_reader(addr, None).await;
    flood_started(&mut raw).await;
    raw.ws.send(Message::Close(None)).await.unwrap();
    let code = read_until_close(&mut raw).await;
    assert!(code == 4000 || code == 1005, "{code}");
}

/// A client of a flooding server (limit 64 KiB) that, once the server's write is stalled,
/// sends a 16 MiB message — more than the socket buffers hold, so the server must read (and
/// drop) it while its own write is stalled, or neither end gets anywhere. The close code the
/// client then reads.
async fn too_big_while_flooded(and_then: fn(&ServerConnection)) -> u16 {
    let builder = Server::builder().max_message_size(64 * 1024);
    let addr = flooding_server(builder, and_then).await;
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let mut raw = slow_reader(addr, Some(config)).await;
    flood_started(&mut raw).await;
    let sent = within(raw.ws.send(Message::text("x".repeat(16 << 20)))).await;
    assert!(sent.is_ok(), "{sent:?}");
    read_until_close(&mut raw).await
}

#[tokio::test]
async fn a_message_too_big_gets_1009_even_while_the_servers_write_is_stalled() {
    assert_eq!(too_big_while_flooded(|_| {}).await, 1009);
}

#[tokio::test]
async fn a_peer_breaking_a_limit_while_the_server_closes_still_gets_the_close_frame() {
    assert_eq!(
        too_big_while_flooded(|c| c.close(CloseCode::from(4000), "bye")).await,
        4000
    );
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_gets_1007() {
    let (server, addr) = start(Server::builder().build()).await;
    let mut closed = report_disconnects(&server);
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let MaybeTlsStream::Plain(tcp) = raw.ws.get_mut() else {
        unreachable!()
    };
    // A masked text frame (mask 0) of two bytes that are not UTF-8.
    tcp.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])
        .await
        .unwrap();
    assert_eq!(read_until_close(&mut raw).await, 1007);
    drop(raw); // the server reads until the peer's end is closed
    let (_conn, info) = within(closed.recv()).await.unwrap();
    assert_eq!(info.code, 1007, "{info:?}");
}
