//! Hostile and broken peers: each gets its documented outcome, everyone else is served, and
//! nothing leaks (the registry, the rooms and the connection tasks return to empty).

mod common;

use std::time::Duration;

use common::{eventually, start_handing_out, start_with, within, Raw};
use roomwire::{CloseInfo, Rejection, Server, ServerConnection};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::MaybeTlsStream;

fn echo(s: &Server) {
    s.on_request("echo", |_c: ServerConnection, v: Value| async move {
        Ok::<_, Rejection>(v)
    });
}

/// Every connection task has ended, and no connection or room is left.
async fn nothing_left(server: &Server) {
    eventually("every connection is gone", || {
        server.open_connections() == 0
    })
    .await;
    assert!(server.connections().is_empty());
    assert!(server.rooms().is_empty());
}

#[tokio::test]
async fn a_name_past_the_limit_is_refused_and_the_connection_stays() {
    let (_server, addr) = start_with(Server::builder().max_name_len(8), echo).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    raw.send(json!({"n": "x".repeat(9)})).await; // fire-and-forget: dropped
    let refused = raw.request(&"x".repeat(9), json!(1), Value::Null).await;
    assert_eq!(refused["e"]["name"], "NameTooLong");
    assert_eq!(raw.request("echo", json!(2), json!("ok")).await["p"], "ok");
}

#[tokio::test]
async fn half_an_http_upgrade_is_dropped_after_the_upgrade_timeout() {
    let (server, addr) = start_with(
        Server::builder().upgrade_timeout(Duration::from_millis(200)),
        echo,
    )
    .await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    // Meanwhile others are served.
    let (mut other, _) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(
        other.request("echo", json!(1), json!("ok")).await["p"],
        "ok"
    );
    // The half-upgraded connection is dropped: EOF (or a reset) within the timeout.
    let mut buf = [0u8; 64];
    let read = within(tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected the server to drop it, got {read:?}"
    );
    other.close().await;
    nothing_left(&server).await;
}

#[tokio::test]
async fn a_reset_mid_frame_ends_only_that_connection_and_rejects_its_pending() {
    let (tx, mut disconnected) = mpsc::unbounded_channel();
    let (server, addr, mut conns) = start_handing_out(Server::builder()).await;
    echo(&server);
    server.on_disconnect(move |c: ServerConnection, info: CloseInfo| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((info, c.pending_requests()));
        }
    });
    let (mut victim, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    conn.join("room").unwrap();
    let waiting = {
        let conn = conn.clone();
        tokio::spawn(async move { conn.send::<_, Value>("never", &()).await })
    };
    let _ = victim.recv().await; // the request arrived
                                 // Half a masked frame (a 100-byte text frame, 6 bytes of it), then a TCP reset.
    let MaybeTlsStream::Plain(tcp) = victim.ws.get_mut() else {
        unreachable!()
    };
    tcp.write_all(&[0x81, 0x80 | 100, 1, 2, 3, 4, b'{', b'"'])
        .await
        .unwrap();
    tcp.set_zero_linger().unwrap();
    drop(victim);
    assert!(matches!(
        within(waiting).await.unwrap(),
        Err(roomwire::SendError::Disconnected)
    ));
    let (info, pending) = within(disconnected.recv()).await.unwrap();
    assert_eq!(info.code, 1006, "{info:?}");
    assert_eq!(pending, 0);
    let (mut other, _) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(
        other.request("echo", json!(1), json!("ok")).await["p"],
        "ok"
    );
    other.close().await;
    nothing_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_opened_at_once_are_all_served() {
    let (server, addr) = start_with(Server::builder(), |s| {
        echo(s);
        s.on_connection(|c: ServerConnection| async move {
            let _ = c.join("everyone");
        });
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        tasks.push(tokio::spawn(async move {
            let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
            let reply = raw.request("echo", json!(i), json!(i)).await;
            assert_eq!(reply["p"], i);
            raw
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(within(t).await.unwrap());
    }
    eventually("all joined", || server.room_size("everyone") == 300).await;
    assert_eq!(server.to("everyone").emit("hi", &()).unwrap(), 300);
    for mut c in clients {
        assert_eq!(c.recv().await["n"], "hi");
        c.close().await;
    }
    nothing_left(&server).await;
}
