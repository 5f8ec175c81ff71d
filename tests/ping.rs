//! Ping and keep-alive (docs/PROTOCOL.md, "Ping").

mod common;

use std::time::Duration;

use common::{report_disconnects, start, start_handing_out, start_with, within, Raw};
use roomwire::{PingError, Server};
use serde_json::{json, Value};

#[tokio::test]
async fn pings_are_answered_with_pong_when_connected() {
    let (_server, addr) = start_with(Server::builder(), |_| {}).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let pong = raw.request("_p", json!(42), Value::Null).await;
    assert_eq!(pong, json!({"n": "_r", "i": 42, "p": "pong", "e": null}));
}

#[tokio::test]
async fn a_silent_client_is_pinged_and_stays_when_it_answers() {
    let (_server, addr) = start_with(
        Server::builder().ping_interval(Duration::from_millis(100)),
        |_| {},
    )
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    for _ in 0..3 {
        let ping = raw.recv().await;
        assert_eq!(ping["n"], "_p");
        assert!(ping["i"].is_u64());
        raw.send(json!({"n": "_r", "i": ping["i"], "p": "pong", "e": null}))
            .await;
    }
}

#[tokio::test]
async fn an_unanswered_ping_closes_4201() {
    let (server, addr) = start(
        Server::builder()
            .ping_interval(Duration::from_millis(100))
            .response_timeout(Duration::from_millis(100))
            .build(),
    )
    .await;
    let mut rx = report_disconnects(&server);
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let (code, reason, before) = raw.recv_close().await;
    assert_eq!(
        before.len(),
        1,
        "one unanswered ping, then the close: {before:?}"
    );
    assert_eq!(before[0]["n"], "_p");
    assert_eq!((code, reason.as_str()), (4201, "Ping failed"));
    let (_, info) = within(rx.recv()).await.unwrap();
    assert_eq!(info.code, 4201);
}

#[tokio::test]
async fn server_ping_returns_the_round_trip_time_and_fails_when_unanswered() {
    let (_server, addr, mut rx) =
        start_handing_out(Server::builder().response_timeout(Duration::from_millis(150))).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(rx.recv()).await.unwrap();
    let c = conn.clone();
    let rtt = tokio::spawn(async move { c.ping().await });
    let ping = raw.recv().await;
    raw.send(json!({"n": "_r", "i": ping["i"], "p": "pong"}))
        .await;
    let rtt = within(rtt).await.unwrap().unwrap();
    assert!(rtt < common::WAIT);
    // Unanswered: PingFailed, and the pending table is clean.
    let c = conn.clone();
    let failed = tokio::spawn(async move { c.ping().await });
    let _ = raw.recv().await;
    assert!(matches!(
        within(failed).await.unwrap(),
        Err(PingError::Timeout(_))
    ));
    assert_eq!(conn.pending_requests(), 0);
}

#[tokio::test]
async fn a_ping_answered_with_an_error_still_counts_as_the_pong() {
    let (_server, addr, mut rx) = start_handing_out(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(rx.recv()).await.unwrap();
    let c = conn.clone();
    let rtt = tokio::spawn(async move { c.ping().await });
    let ping = raw.recv().await;
    raw.send(json!({"n": "_r", "i": ping["i"], "e": {"name": "Busy", "message": "later"}}))
        .await;
    assert!(within(rtt).await.unwrap().unwrap() < common::WAIT);
}

#[tokio::test]
async fn a_ping_on_a_closed_connection_fails_as_disconnected() {
    let (server, addr, mut rx) = start_handing_out(Server::builder()).await;
    let mut closed = report_disconnects(&server);
    let (raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(rx.recv()).await.unwrap();
    raw.close().await;
    within(closed.recv()).await.unwrap();
    assert!(matches!(conn.ping().await, Err(PingError::Disconnected)));
}

#[tokio::test]
async fn a_zero_ping_interval_turns_the_servers_pings_off() {
    let (_server, addr) = start_with(Server::builder().ping_interval(Duration::ZERO), |_| {}).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    // Silence is the condition under test: long enough for many pings at any small interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pong = raw.request("_p", json!("mine"), Value::Null).await;
    assert_eq!(
        pong["i"], "mine",
        "the server sent something before answering: {pong}"
    );
}
