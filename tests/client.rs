//! The Rust client against a roomwire server.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{next_event, report_disconnects, start, start_with, url, within};
use roomwire::client::{Backoff, Client, ClientEvent, ClientState, ConnectError};
use roomwire::{CloseCode, Handshake, Rejection, SendError, Server, ServerConnection};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

fn app(s: &Server) {
    s.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
        let name: String = match hs.payload::<Value>() {
            Ok(v) if v["name"].is_string() => v["name"].as_str().unwrap().into(),
            _ => return hs.reject(Rejection::new("BadRequest", "name missing")),
        };
        match conn.set_id(name.clone()) {
            Ok(()) => hs.resolve(json!({ "hello": name })),
            Err(e) => hs.reject(e),
        }
    });
    s.on_request(
        "add",
        |_c: ServerConnection, (a, b): (i64, i64)| async move { Ok::<_, Rejection>(a + b) },
    );
    s.on_request("fail", |_c: ServerConnection, (): ()| async move {
        Err::<(), _>(Rejection::new("Nope", "always fails"))
    });
    s.on_request("never", |_c: ServerConnection, (): ()| async move {
        std::future::pending::<()>().await;
        Ok::<_, Rejection>(())
    });
}

#[tokio::test]
async fn connects_with_a_payload_and_makes_requests() {
    let (_server, addr) = start_with(Server::builder(), app).await;
    let client = Client::builder(url(addr))
        .handshake_payload(&json!({"name": "rusty"}))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(client.id().as_deref(), Some("rusty"));
    assert_eq!(
        client.handshake_payload::<Value>().unwrap(),
        json!({"hello": "rusty"})
    );
    assert_eq!(client.state(), ClientState::Connected);
    assert_eq!(client.send::<_, i64>("add", &(20, 22)).await.unwrap(), 42);
    match client.send::<_, Value>("fail", &()).await {
        Err(SendError::Rejected(r)) => assert_eq!(r.name(), "Nope"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    match client.send::<_, Value>("missing", &()).await {
        Err(SendError::Rejected(r)) => assert_eq!(r.name(), "NoHandler"),
        other => panic!("expected NoHandler, got {other:?}"),
    }
    match client
        .send_timeout::<_, Value>("never", &(), Duration::from_millis(100))
        .await
    {
        Err(SendError::Timeout { name, .. }) => assert_eq!(name, "never"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(client.pending_requests(), 0);
    assert!(client.ping().await.unwrap() < common::WAIT);
    client.close().await;
    assert_eq!(client.state(), ClientState::Closed);
    assert!(matches!(
        client.send::<_, i64>("add", &(1, 2)).await,
        Err(SendError::Disconnected)
    ));
    // The last handshake's payload stays readable; a type it does not fit is a DecodeError.
    assert_eq!(
        client.handshake_payload::<Value>().unwrap(),
        json!({"hello": "rusty"})
    );
    assert!(client.handshake_payload::<u32>().is_err());
}

#[tokio::test]
async fn a_rejected_handshake_fails_connect_with_the_servers_error() {
    let (_server, addr) = start_with(Server::builder(), app).await;
    match Client::builder(url(addr)).connect().await {
        Err(ConnectError::HandshakeRejected(r)) => {
            assert_eq!((r.name(), r.message()), ("BadRequest", "name missing"))
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_socket_closed_before_the_handshake_response_fails_connect_as_disconnected() {
    use futures_util::StreamExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A server that reads the handshake request and closes instead of answering it.
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let _handshake = ws.next().await;
        let _ = ws.close(None).await;
        while ws.next().await.is_some() {}
    });
    let connected = within(Client::builder(url(addr)).no_reconnect().connect()).await;
    assert!(
        matches!(connected, Err(ConnectError::Disconnected)),
        "{connected:?}"
    );
}

#[tokio::test]
async fn connecting_to_nothing_fails_with_a_websocket_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(matches!(
        Client::builder(url(addr)).connect().await,
        Err(ConnectError::WebSocket(_))
    ));
}

#[tokio::test]
async fn the_client_answers_server_requests_and_receives_messages() {
    let (conns_tx, mut conns) = mpsc::unbounded_channel();
    let (_server, addr) = start_with(Server::builder(), move |s| {
        s.on_connection(move |c: ServerConnection| {
            let tx = conns_tx.clone();
            async move {
                tx.send(c).unwrap();
            }
        });
    })
    .await;
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let client = Client::builder(url(addr))
        .on_request("double", |_c: Client, n: i64| async move {
            Ok::<_, Rejection>(n * 2)
        })
        .on_request("refuse", |_c: Client, (): ()| async move {
            Err::<(), _>(Rejection::new("Refused", "client says no"))
        })
        .on_request("note", move |_c: Client, text: String| {
            let tx = notes_tx.clone();
            async move {
                tx.send(text).unwrap();
                Ok::<_, Rejection>(())
            }
        })
        .connect()
        .await
        .unwrap();
    let conn = within(conns.recv()).await.unwrap();
    assert_eq!(conn.send::<_, i64>("double", &21).await.unwrap(), 42);
    match conn.send::<_, Value>("refuse", &()).await {
        Err(SendError::Rejected(r)) => {
            assert_eq!((r.name(), r.message()), ("Refused", "client says no"))
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    match conn.send::<_, Value>("unknown", &()).await {
        Err(SendError::Rejected(r)) => assert_eq!(r.name(), "NoHandler"),
        other => panic!("expected NoHandler, got {other:?}"),
    }
    conn.send_without_response("note", "hi").unwrap();
    assert_eq!(within(notes.recv()).await.unwrap(), "hi");
    assert!(conn.ping().await.is_ok());
    client.close().await;
}

#[tokio::test]
async fn disconnect_rejects_what_the_client_has_pending() {
    let (conns_tx, mut conns) = mpsc::unbounded_channel();
    let (_server, addr) = start_with(Server::builder(), move |s| {
        app(s);
        s.on_connection(move |c: ServerConnection| {
            let tx = conns_tx.clone();
            async move {
                tx.send(c).unwrap();
            }
        });
    })
    .await;
    let client = Client::builder(url(addr))
        .handshake_payload(&json!({"name": "p"}))
        .unwrap()
        .no_reconnect()
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let conn = within(conns.recv()).await.unwrap();
    let c = client.clone();
    let waiting = tokio::spawn(async move { c.send::<_, Value>("never", &()).await });
    // The request has reached the server once the server counts its handler running…
    // there is no such counter, so wait until the client has it pending.
    common::eventually("request pending", || client.pending_requests() == 1).await;
    conn.close(CloseCode::from(4000), "kicked");
    assert!(matches!(
        within(waiting).await.unwrap(),
        Err(SendError::Disconnected)
    ));
    let (info, reconnecting) = next_event(&mut events, |e| match e {
        ClientEvent::Disconnected { info, reconnecting } => Some((info.clone(), *reconnecting)),
        _ => None,
    })
    .await;
    assert_eq!(
        (info.code, info.reason.as_str(), reconnecting),
        (CloseCode::from(4000), "kicked", false)
    );
    next_event(&mut events, |e| {
        matches!(e, ClientEvent::Closed).then_some(())
    })
    .await;
    assert_eq!(client.state(), ClientState::Closed);
}

#[tokio::test]
async fn the_client_reconnects_after_the_server_restarts() {
    let (server, addr) = start_with(Server::builder(), app).await;
    let client = Client::builder(url(addr))
        .handshake_payload(&json!({"name": "phoenix"}))
        .unwrap()
        .reconnect(Backoff::new(Duration::from_millis(20)).jitter(0.0))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    server.close().await;
    let (info, reconnecting) = next_event(&mut events, |e| match e {
        ClientEvent::Disconnected { info, reconnecting } => Some((info.clone(), *reconnecting)),
        _ => None,
    })
    .await;
    assert_eq!((info.code, reconnecting), (CloseCode::GOING_AWAY, true));
    assert!(matches!(
        client.send::<_, i64>("add", &(1, 1)).await,
        Err(SendError::Disconnected)
    ));
    // A new server on the same address.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server2 = Server::builder().build();
    app(&server2);
    let s2 = server2.clone();
    tokio::spawn(async move { s2.serve(listener).await });
    let id = next_event(&mut events, |e| match e {
        ClientEvent::Connected { id } => Some(id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(&*id, "phoenix");
    assert_eq!(client.send::<_, i64>("add", &(1, 1)).await.unwrap(), 2);
    assert_eq!(server2.connections().len(), 1);
    client.close().await;
}

#[tokio::test]
async fn the_client_never_reconnects_after_its_handshake_was_rejected() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let kick = Arc::new(Notify::new());
    let (count, kicker) = (accepted.clone(), kick.clone());
    let (_server, addr) = start_with(Server::builder(), move |s| {
        s.on_handshake(move |_c: ServerConnection, hs: Handshake| {
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    hs.resolve(())
                } else {
                    hs.reject(Rejection::new("Banned", "go away"))
                }
            }
        });
        s.on_connection(move |c: ServerConnection| {
            let kick = kicker.clone();
            async move {
                kick.notified().await;
                c.close(CloseCode::from(4000), "kicked");
            }
        });
    })
    .await;
    let client = Client::builder(url(addr))
        .reconnect(Backoff::new(Duration::from_millis(10)).jitter(0.0))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    kick.notify_one();
    let rejection = next_event(&mut events, |e| match e {
        ClientEvent::HandshakeRejected(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(rejection.name(), "Banned");
    next_event(&mut events, |e| {
        matches!(e, ClientEvent::Closed).then_some(())
    })
    .await;
    assert_eq!(client.state(), ClientState::Closed);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "exactly one reconnect attempt"
    );
}

#[tokio::test]
async fn closing_the_client_is_a_normal_close_for_the_server() {
    let (server, addr) = start(Server::builder().build()).await;
    let mut rx = report_disconnects(&server);
    let client = Client::builder(url(addr)).connect().await.unwrap();
    client.close().await;
    let (_, info) = within(rx.recv()).await.unwrap();
    assert_eq!(
        (info.code, info.reason.as_str()),
        (CloseCode::NORMAL, "Client closed")
    );
}

#[tokio::test]
async fn a_server_without_handlers_accepts_the_client() {
    let (_server, addr) = start(Server::builder().build()).await;
    let client = Client::builder(url(addr)).connect().await.unwrap();
    assert!(client.id().is_some());
    assert_eq!(client.handshake_payload::<Value>().unwrap(), Value::Null);
    client.close().await;
}

#[tokio::test]
async fn dropping_every_client_handle_closes_the_connection() {
    let (server, addr) = start(Server::builder().build()).await;
    let mut rx = report_disconnects(&server);
    let client = Client::builder(url(addr)).connect().await.unwrap();
    let clone = client.clone();
    drop(client);
    // One handle is left: still connected.
    assert_eq!(
        clone
            .send::<_, Value>("missing", &())
            .await
            .unwrap_err()
            .name(),
        "MessageRejected"
    );
    drop(clone);
    let (_, info) = within(rx.recv()).await.unwrap();
    assert_eq!(
        (info.code, info.reason.as_str()),
        (CloseCode::NORMAL, "Client closed")
    );
}

#[tokio::test]
async fn the_longest_durations_mean_never_rather_than_a_panic() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_request("twice", |_c: ServerConnection, n: u32| async move {
            Ok::<_, Rejection>(n * 2)
        });
    })
    .await;
    let client = Client::builder(url(addr))
        .response_timeout(Duration::MAX)
        .handshake_timeout(Duration::MAX)
        .ping_interval(Duration::MAX)
        .connect()
        .await
        .unwrap();
    assert_eq!(
        within(client.send::<_, u32>("twice", &21)).await.unwrap(),
        42
    );
    let again = client.send_timeout::<_, u32>("twice", &2, Duration::MAX);
    assert_eq!(within(again).await.unwrap(), 4);
    client.close().await;
}

/// Both ends write far more than the socket buffers hold to each other at once: each must
/// keep reading while its own write is stalled, or they would wait on each other for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ends_flooding_each_other_both_get_everything() {
    const N: usize = 400;
    let (to_test, mut server_got) = mpsc::unbounded_channel::<()>();
    let (_server, addr) = start_with(Server::builder().outbound_queue(100_000), move |s| {
        s.on_request("flood", move |_c: ServerConnection, _p: String| {
            let _ = to_test.send(());
            async { Ok::<_, Rejection>(()) }
        });
        s.on_connection(|c: ServerConnection| async move {
            let big = "s".repeat(64 * 1024);
            for _ in 0..N {
                c.send_without_response("flood", &big).unwrap();
            }
        });
    })
    .await;
    let (to_test, mut client_got) = mpsc::unbounded_channel::<()>();
    let client = Client::builder(url(addr))
        .outbound_queue(100_000)
        .on_request("flood", move |_c: Client, _p: String| {
            let _ = to_test.send(());
            async { Ok::<_, Rejection>(()) }
        })
        .connect()
        .await
        .unwrap();
    let big = "c".repeat(64 * 1024);
    for _ in 0..N {
        client.send_without_response("flood", &big).unwrap();
    }
    // 26 MB each way; without reading while writing, nothing arrives at all.
    within(async {
        for _ in 0..N {
            server_got.recv().await.unwrap();
            client_got.recv().await.unwrap();
        }
    })
    .await;
    client.close().await;
}
