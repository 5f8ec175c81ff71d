//! The server: lookup, broadcast, limits, slow consumers and graceful close.

mod common;

use std::time::Duration;

use common::{start, start_handing_out, start_with, within, Raw};
use roomwire::{CloseInfo, Error, Server, ServerConnection, ServerStatus};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[tokio::test]
async fn lookup_and_listing_see_only_handshaked_connections() {
    let (server, addr) = start(Server::builder().build()).await;
    let (_a, p) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(server.status(), ServerStatus::Listening);
    assert_eq!(server.local_addr(), Some(addr));
    let mut waiting = Raw::connect(addr).await;
    // A ping answered proves the second connection is open (and still handshaking).
    assert_eq!(
        waiting.request("_p", json!(1), Value::Null).await["p"],
        "pong"
    );
    assert_eq!(server.open_connections(), 2);
    let listed = server.connections();
    assert_eq!(listed.len(), 1);
    let id = p["id"].as_str().unwrap();
    assert_eq!(&*listed[0].id(), id);
    assert!(server.connection(id).unwrap().same(&listed[0]));
    assert!(server.connection("nobody").is_none());
}

#[tokio::test]
async fn broadcast_reaches_every_handshaked_connection_and_no_other() {
    let (server, addr) = start(Server::builder().build()).await;
    let (mut a, _) = Raw::handshaked(addr, Value::Null).await;
    let (mut b, _) = Raw::handshaked(addr, Value::Null).await;
    let mut waiting = Raw::connect(addr).await;
    assert_eq!(
        waiting.request("_p", json!(1), Value::Null).await["p"],
        "pong"
    );
    assert_eq!(server.broadcast("news", &json!({"n": 1})).unwrap(), 2);
    let expected = json!({"n": "news", "p": {"n": 1}});
    assert_eq!(a.recv().await, expected);
    assert_eq!(b.recv().await, expected);
    // The handshaking connection got nothing: the next frame it sees answers its ping.
    assert_eq!(waiting.request("_p", json!(2), Value::Null).await["i"], 2);
}

#[tokio::test]
async fn close_sends_1001_rejects_pending_and_waits_for_every_connection() {
    let (server, addr, mut rx) = start_handing_out(Server::builder()).await;
    let (mut a, _) = Raw::handshaked(addr, Value::Null).await;
    let (mut b, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(rx.recv()).await.unwrap();
    let c = conn.clone();
    let pending = tokio::spawn(async move { c.send::<_, Value>("never", &()).await });
    let client_sides = tokio::spawn(async move {
        let ra = a.recv_close().await;
        let rb = b.recv_close().await;
        (ra, rb)
    });
    within(server.close()).await;
    assert_eq!(server.status(), ServerStatus::Closed);
    let ((ca, ra, _), (cb, rb, _)) = within(client_sides).await.unwrap();
    assert_eq!((ca, ra.as_str()), (1001, "Server closing"));
    assert_eq!((cb, rb.as_str()), (1001, "Server closing"));
    assert!(matches!(
        within(pending).await.unwrap(),
        Err(Error::Disconnected)
    ));
    assert_eq!(server.open_connections(), 0);
    assert!(server.connections().is_empty());
    // Closed for good: no new connections, no serving again.
    assert!(tokio_tungstenite::connect_async(format!("ws://{addr}"))
        .await
        .is_err());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert!(matches!(
        server.serve(listener).await,
        Err(Error::ServerClosed)
    ));
}

#[tokio::test]
async fn close_is_bounded_when_a_peer_never_answers_the_close_frame() {
    let (server, addr) = start(
        Server::builder()
            .close_timeout(Duration::from_millis(200))
            .build(),
    )
    .await;
    // Handshake, then stop reading: the close frame is never answered.
    let (_silent, _) = Raw::handshaked(addr, Value::Null).await;
    within(server.close()).await;
    assert_eq!(server.open_connections(), 0);
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_with_503() {
    let (server, addr) = start(Server::builder().max_connections(1).build()).await;
    let (_first, _) = Raw::handshaked(addr, Value::Null).await;
    match tokio_tungstenite::connect_async(format!("ws://{addr}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    assert_eq!(server.connections().len(), 1);
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_as_a_slow_consumer() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let builder = Server::builder()
        .outbound_queue(4)
        .close_timeout(Duration::from_millis(200));
    let (server, addr) = start_with(builder, move |s| {
        s.on_disconnect(move |_c: ServerConnection, info: CloseInfo| {
            let tx = tx.clone();
            async move {
                tx.send(info).unwrap();
            }
        });
    })
    .await;
    let (_reader_that_never_reads, _) = Raw::handshaked(addr, Value::Null).await;
    let (mut healthy, _) = Raw::handshaked(addr, Value::Null).await;
    let big = "x".repeat(64 * 1024);
    let mut closed = None;
    for _ in 0..10_000 {
        server.broadcast("flood", &big).unwrap();
        // The healthy reader keeps up with every frame.
        assert_eq!(healthy.recv().await["n"], "flood");
        if let Ok(info) = rx.try_recv() {
            closed = Some(info);
            break;
        }
    }
    let info = closed.expect("the slow consumer was never closed");
    assert_eq!(info.code, 4210);
    assert!(info.reason.contains("Slow consumer"), "{}", info.reason);
    assert_eq!(server.connections().len(), 1, "the healthy reader stays");
}
