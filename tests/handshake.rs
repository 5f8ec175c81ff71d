//! The handshake phase (docs/PROTOCOL.md, "Handshake").

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{start, start_with, within, Raw};
use roomwire::{Handshake, IdError, Rejection, Server, ServerConnection};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[tokio::test]
async fn accepted_handshake_returns_the_id_and_payload() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
            let name: String = hs.payload::<Value>().unwrap()["name"]
                .as_str()
                .unwrap()
                .into();
            conn.set_id(format!("user-{name}")).unwrap();
            hs.resolve(json!({ "hello": name }))
        });
    })
    .await;
    let (_raw, p) = Raw::handshaked(addr, json!({"name": "ann"})).await;
    assert_eq!(p, json!({"id": "user-ann", "payload": {"hello": "ann"}}));
}

#[tokio::test]
async fn without_a_handler_the_handshake_resolves_with_a_random_unique_id() {
    let (_server, addr) = start(Server::builder().build()).await;
    let (_a, pa) = Raw::handshaked(addr, Value::Null).await;
    let (_b, pb) = Raw::handshaked(addr, Value::Null).await;
    assert!(pa["payload"].is_null());
    let (ida, idb) = (pa["id"].as_str().unwrap(), pb["id"].as_str().unwrap());
    assert_eq!(ida.len(), 20);
    assert!(ida.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(ida, idb);
}

#[tokio::test]
async fn rejected_handshake_sends_the_error_then_closes_4203() {
    let (server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|_c: ServerConnection, hs: Handshake| async move {
            hs.reject(Rejection::new("Unauthorized", "unknown token").with_code(401))
        });
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    raw.send(json!({"n": "_h", "i": "a1", "p": {"token": "x"}}))
        .await;
    let (code, reason, before) = raw.recv_close().await;
    assert_eq!(
        before,
        vec![
            json!({"n": "_r", "i": "a1", "e": {"name": "Unauthorized", "message": "unknown token", "code": 401}})
        ]
    );
    assert_eq!((code, reason.as_str()), (4203, "Handshake rejected"));
    server.close().await;
    assert_eq!(server.open_connections(), 0);
}

#[tokio::test]
async fn no_handshake_within_the_timeout_closes_4202_with_lines_reason() {
    let (_server, addr) = start(
        Server::builder()
            .handshake_timeout(Duration::from_millis(200))
            .build(),
    )
    .await;
    let mut raw = Raw::connect(addr).await;
    let (code, reason, before) = raw.recv_close().await;
    assert!(
        before.is_empty(),
        "nothing is sent before the handshake: {before:?}"
    );
    assert_eq!(code, 4202);
    assert_eq!(reason, "Handshake not completed after 200 ms");
}

#[tokio::test]
async fn a_handshake_handler_that_never_resolves_is_bounded_by_the_timeout() {
    let (_server, addr) = start_with(
        Server::builder().handshake_timeout(Duration::from_millis(200)),
        |s| {
            s.on_handshake(|_c: ServerConnection, hs: Handshake| async move {
                std::future::pending::<()>().await;
                hs.resolve(())
            });
        },
    )
    .await;
    let mut raw = Raw::connect(addr).await;
    raw.send(json!({"n": "_h", "i": "a1"})).await;
    let (code, _, before) = raw.recv_close().await;
    assert!(before.is_empty());
    assert_eq!(code, 4202);
}

#[tokio::test]
async fn second_handshake_is_answered_with_handshake_ended_and_the_connection_stays() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_request(
            "add",
            |_c: ServerConnection, (a, b): (i64, i64)| async move { Ok::<_, Rejection>(a + b) },
        );
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let again = raw.request("_h", json!("h2"), Value::Null).await;
    assert_eq!(
        again,
        json!({"n": "_r", "i": "h2", "e": {"name": "HandshakeEnded", "message": "Handshake is already resolved"}})
    );
    let sum = raw.request("add", json!("r1"), json!([2, 3])).await;
    assert_eq!(sum["p"], 5);
}

#[tokio::test]
async fn requests_before_the_handshake_are_refused_and_messages_dropped() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let (_server, addr) = start_with(Server::builder(), move |s| {
        s.on_request("count", move |_c: ServerConnection, (): ()| {
            let calls = counted.clone();
            async move { Ok::<_, Rejection>(calls.fetch_add(1, Ordering::SeqCst) + 1) }
        });
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    raw.send(json!({"n": "count"})).await;
    let refused = raw.request("count", json!("r1"), Value::Null).await;
    assert_eq!(refused["e"]["name"], "HandshakeRequired");
    // A ping is answered in every state.
    let pong = raw.request("_p", json!("p1"), Value::Null).await;
    assert_eq!(pong, json!({"n": "_r", "i": "p1", "p": "pong", "e": null}));
    raw.send(json!({"n": "_h", "i": "h1"})).await;
    assert!(raw.recv().await["e"].is_null());
    // Neither early message reached the handler: this is its first call.
    let first = raw.request("count", json!("r2"), Value::Null).await;
    assert_eq!(first["p"], 1);
}

#[tokio::test]
async fn a_taken_id_is_an_id_conflict_until_its_connection_leaves() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
            match conn.set_id("same") {
                Ok(()) => hs.resolve(()),
                Err(e) => hs.reject(e),
            }
        });
    })
    .await;
    let (first, p) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(p["id"], "same");
    let mut second = Raw::connect(addr).await;
    second.send(json!({"n": "_h", "i": "x"})).await;
    let (code, _, before) = second.recv_close().await;
    assert_eq!(before[0]["e"]["name"], "IdConflict");
    assert_eq!(code, 4203);
    first.close().await;
    // The id is free again once the first connection is gone.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let mut third = Raw::connect(addr).await;
        third.send(json!({"n": "_h", "i": "y"})).await;
        let reply = third.recv().await;
        if reply["e"].is_null() {
            assert_eq!(reply["p"]["id"], "same");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the id was never freed"
        );
    }
}

#[tokio::test]
async fn set_id_after_the_handshake_is_handshake_ended_and_bad_ids_are_refused() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_server, addr) = start_with(Server::builder().max_id_len(8), move |s| {
        let tx2 = tx.clone();
        s.on_handshake(move |conn: ServerConnection, hs: Handshake| {
            let tx = tx2.clone();
            async move {
                tx.send(format!("empty:{}", conn.set_id("").unwrap_err().name()))
                    .unwrap();
                tx.send(format!(
                    "long:{}",
                    conn.set_id("123456789").unwrap_err().name()
                ))
                .unwrap();
                hs.resolve(())
            }
        });
        s.on_connection(move |conn: ServerConnection| {
            let tx = tx.clone();
            async move {
                let err = conn.set_id("late").unwrap_err();
                assert!(matches!(err, IdError::HandshakeEnded));
                tx.send(format!("late:{}", err.name())).unwrap();
            }
        });
    })
    .await;
    let (_raw, _) = Raw::handshaked(addr, Value::Null).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(within(rx.recv()).await.unwrap());
    }
    assert_eq!(
        seen,
        ["empty:InvalidId", "long:InvalidId", "late:HandshakeEnded"]
    );
}

#[tokio::test]
async fn the_handshake_sees_path_query_headers_and_peer_address() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_server, addr) = start_with(Server::builder(), move |s| {
        s.on_handshake(move |_c: ServerConnection, hs: Handshake| {
            let tx = tx.clone();
            async move {
                tx.send((
                    hs.path().to_owned(),
                    hs.query().map(str::to_owned),
                    hs.headers()
                        .get("host")
                        .map(|h| h.to_str().unwrap().to_owned()),
                    hs.remote_addr().expect("a TCP peer").ip().to_string(),
                ))
                .unwrap();
                hs.resolve(())
            }
        });
    })
    .await;
    let mut raw = Raw::connect_path(addr, "/live?room=7").await;
    raw.send(json!({"n": "_h", "i": 1})).await;
    assert!(raw.recv().await["e"].is_null());
    let (path, query, host, ip) = within(rx.recv()).await.unwrap();
    assert_eq!(path, "/live");
    assert_eq!(query.as_deref(), Some("room=7"));
    assert_eq!(host, Some(addr.to_string()));
    assert_eq!(ip, "127.0.0.1");
}

#[tokio::test]
async fn a_payload_of_the_wrong_shape_gives_a_clear_error() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Creds {
        token: String,
    }
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|_c: ServerConnection, hs: Handshake| async move {
            match hs.payload::<Creds>() {
                Ok(_) => hs.resolve(()),
                Err(e) => hs.reject(e),
            }
        });
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    raw.send(json!({"n": "_h", "i": 1, "p": {"tokn": "x"}}))
        .await;
    let reply = raw.recv().await;
    assert_eq!(reply["i"], 1, "integer ids are echoed as integers");
    assert_eq!(reply["e"]["name"], "InvalidJson");
    assert!(reply["e"]["message"]
        .as_str()
        .unwrap()
        .contains("missing field `token`"));
}

#[tokio::test]
async fn a_panicking_handshake_handler_rejects_with_internal_error() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|_c: ServerConnection, _hs: Handshake| async move {
            panic!("boom");
        });
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    raw.send(json!({"n": "_h", "i": "a"})).await;
    let (code, _, before) = raw.recv_close().await;
    assert_eq!(before[0]["e"]["name"], "InternalError");
    assert_eq!(code, 4203);
    // The server keeps serving.
    let mut other = Raw::connect(addr).await;
    other.send(json!({"n": "_p", "i": "p"})).await;
    assert_eq!(other.recv().await["p"], "pong");
}
