//! The server: lookup, broadcast, limits, slow consumers and graceful close.

mod common;

use std::time::Duration;

use common::{eventually, report_disconnects, start, start_handing_out, start_with, within, Raw};
use roomwire::{CloseCode, SendError, ServeError, Server, ServerConnection, ServerStatus};
use serde_json::{json, Value};

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
        Err(SendError::Disconnected)
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
        Err(ServeError::Closed)
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
    refused_with_503(addr).await;
    assert_eq!(server.connections().len(), 1);
}

/// Asserts that a WebSocket upgrade to `addr` is refused with HTTP 503.
async fn refused_with_503(addr: std::net::SocketAddr) {
    match tokio_tungstenite::connect_async(format!("ws://{addr}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
}

#[tokio::test]
async fn a_socket_still_upgrading_holds_a_slot_until_the_upgrade_timeout_drops_it() {
    let builder = Server::builder()
        .max_connections(1)
        .upgrade_timeout(Duration::from_millis(300));
    let (server, addr) = start(builder.build()).await;
    // A TCP connection that never sends its upgrade request.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    eventually("the idle socket is counted", || {
        server.open_connections() == 1
    })
    .await;
    // It holds the only slot.
    refused_with_503(addr).await;
    // The upgrade timeout drops it (EOF), and its slot is free again.
    let mut buf = [0u8; 16];
    let read = within(tokio::io::AsyncReadExt::read(&mut idle, &mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "expected EOF, got {read:?}");
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(raw.request("_p", json!(1), Value::Null).await["p"], "pong");
    assert_eq!(server.open_connections(), 1);
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_as_a_slow_consumer() {
    let builder = Server::builder()
        .outbound_queue(4)
        .close_timeout(Duration::from_millis(200));
    let (server, addr) = start(builder.build()).await;
    let mut rx = report_disconnects(&server);
    let (_reader_that_never_reads, _) = Raw::handshaked(addr, Value::Null).await;
    let (mut healthy, _) = Raw::handshaked(addr, Value::Null).await;
    let big = "x".repeat(64 * 1024);
    let mut closed = None;
    for _ in 0..10_000 {
        server.broadcast("flood", &big).unwrap();
        // The healthy reader keeps up with every frame.
        assert_eq!(healthy.recv().await["n"], "flood");
        if let Ok((_, info)) = rx.try_recv() {
            closed = Some(info);
            break;
        }
    }
    let info = closed.expect("the slow consumer was never closed");
    assert_eq!(info.code, 4210);
    assert!(info.reason.contains("Slow consumer"), "{}", info.reason);
    assert_eq!(server.connections().len(), 1, "the healthy reader stays");
}

#[tokio::test]
async fn frames_queued_before_close_go_out_before_the_close_frame() {
    let (server, addr) = start(Server::builder().build()).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Raw::handshaked(addr, Value::Null).await.0);
    }
    assert_eq!(server.broadcast("last words", &"goodbye").unwrap(), 3);
    let closing = tokio::spawn({
        let server = server.clone();
        async move { server.close().await }
    });
    for mut c in clients {
        let (code, _, before) = c.recv_close().await;
        assert_eq!(before, vec![json!({"n": "last words", "p": "goodbye"})]);
        assert_eq!(code, 1001);
    }
    within(closing).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_under_load_ends_every_call_and_finishes_in_bounded_time() {
    use roomwire::client::Client;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let (server, addr) = start_with(
        Server::builder().close_timeout(Duration::from_millis(300)),
        |s| {
            s.on_request("work", |_c: ServerConnection, n: u64| async move {
                tokio::task::yield_now().await;
                Ok::<_, roomwire::Rejection>(n)
            });
        },
    )
    .await;
    let answered = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for c in 0..16u64 {
        let client = Client::builder(format!("ws://{addr}"))
            .no_reconnect()
            .connect()
            .await
            .unwrap();
        let (answered, cut) = (answered.clone(), cut.clone());
        load.push(tokio::spawn(async move {
            // Calls keep coming until the server closes; each ends one way or the other.
            for k in 0..100_000u64 {
                match client.send::<_, u64>("work", &(c * 1_000_000 + k)).await {
                    Ok(n) => {
                        assert_eq!(n, c * 1_000_000 + k);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(SendError::Disconnected) => {
                        cut.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(other) => panic!("unexpected outcome: {other:?}"),
                }
            }
        }));
    }
    common::eventually("the load is running", || {
        answered.load(Ordering::Relaxed) > 1000
    })
    .await;
    within(server.close()).await;
    for task in load {
        within(task).await.unwrap();
    }
    assert_eq!(
        cut.load(Ordering::Relaxed),
        16,
        "every client saw the close"
    );
    assert_eq!(server.open_connections(), 0);
    assert_eq!(server.status(), ServerStatus::Closed);
}

#[tokio::test]
async fn the_longest_durations_mean_never_rather_than_a_panic() {
    let forever = Duration::MAX;
    let builder = Server::builder()
        .response_timeout(forever)
        .handshake_timeout(forever)
        .ping_interval(forever)
        .close_timeout(forever)
        .upgrade_timeout(forever);
    let (server, addr, mut conns) = start_handing_out(builder).await;
    let mut closed = report_disconnects(&server);
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    conn.join("r").unwrap();
    let (c, s) = (conn.clone(), server.clone());
    let asked = tokio::spawn(async move {
        let a = c.send::<_, u32>("a", &()).await;
        let b = c.send_timeout::<_, u32>("b", &(), forever).await;
        let all = s.to("r").timeout(forever).send::<_, u32>("c", &()).await;
        (a, b, all)
    });
    for answer in [1, 2, 3] {
        let req = raw.recv().await;
        raw.send(json!({"n": "_r", "i": req["i"], "p": answer}))
            .await;
    }
    let (a, b, all) = within(asked).await.unwrap();
    assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
    let all = all.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(*all[0].result.as_ref().unwrap(), 3);
    conn.close(CloseCode::from(4000), "done");
    let (code, _, _) = raw.recv_close().await;
    assert_eq!(code, 4000);
    let (_, info) = within(closed.recv()).await.unwrap();
    assert_eq!(info.code, 4000);
}

/// hyper attaches `OnUpgrade` only to a request that asks for an upgrade: a plain GET that
/// an HTTP server routes to `handle_upgrade` gets the front door's 426, not the 500 meant for
/// a server that cannot upgrade.
#[tokio::test]
async fn handle_upgrade_answers_a_plain_get_with_426() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::builder().build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |req| {
            let answer = server.handle_upgrade(req, peer);
            async move { Ok::<_, std::convert::Infallible>(answer.await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    within(tcp.read_to_string(&mut response)).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
}
