//! Malformed input from the peer (docs/PROTOCOL.md, "Malformed input"): the frame is dropped and
//! the connection stays open; an oversized frame closes with 1009.

mod common;

use common::{start_handing_out, start_with, within, Raw};
use futures_util::SinkExt;
use roomwire::{Rejection, Server, ServerConnection};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn echo_server(builder: roomwire::ServerBuilder) -> std::net::SocketAddr {
    start_with(builder, |s| {
        s.on_request("echo", |_c: ServerConnection, v: Value| async move {
            Ok::<_, Rejection>(v)
        });
    })
    .await
    .1
}

#[tokio::test]
async fn malformed_frames_are_dropped_and_the_connection_stays_open() {
    let addr = echo_server(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    for bad in [
        "this is not json",
        "{\"n\":",
        "[1,2,3]",
        "\"a string\"",
        "42",
        "null",
        "{}",
        "{\"p\": 1, \"i\": \"x\"}",
        "{\"n\": 5, \"i\": \"x\"}",
        "{\"n\": null, \"i\": \"x\"}",
        "{\"n\": \"echo\", \"i\": 1.5}",
        "{\"n\": \"echo\", \"i\": {\"a\": 1}}",
        "{\"n\": \"echo\", \"i\": [1]}",
        "{\"n\": \"echo\", \"i\": true}",
    ] {
        raw.send_text(bad).await;
    }
    raw.ws
        .send(Message::binary(vec![0xff, 0xfe, 0x00]))
        .await
        .unwrap();
    // Nothing was answered; the next frame is the echo.
    let reply = raw.request("echo", json!("ok"), json!("still here")).await;
    assert_eq!(
        reply,
        json!({"n": "_r", "i": "ok", "p": "still here", "e": null})
    );
}

#[tokio::test]
async fn a_payload_that_is_not_json_drops_the_frame_whoever_would_have_read_it() {
    let (server, addr, mut conns) = start_handing_out(Server::builder()).await;
    server.on_request("num", |_c: ServerConnection, n: u32| async move {
        Ok::<_, Rejection>(n)
    });
    server.on_request("echo", |_c: ServerConnection, v: Value| async move {
        Ok::<_, Rejection>(v)
    });
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    let bad = [
        // A handler whose type fails first on what it sees, before the syntax error.
        r#"{"n":"num","p":{"a" 1},"i":"a"}"#,
        r#"{"n":"num","p":[1,],"i":"b"}"#,
        r#"{"n":"echo","p":tru,"i":"c"}"#,
        r#"{"n":"echo","p":{"a":01},"i":"d"}"#,
        // No handler, and a message that wants no answer.
        r#"{"n":"nope","p":[1,],"i":"e"}"#,
        r#"{"n":"echo","p":"\x"}"#,
    ];
    for frame in bad {
        raw.send_text(frame).await;
    }
    // JSON of the wrong type is a rejection, not a malformed frame; and it is the first
    // answer: none of the frames above got one.
    raw.send_text(r#"{"n":"num","p":"x","i":"w"}"#).await;
    let reply = raw.recv().await;
    assert_eq!(reply["i"], "w", "{reply}");
    assert_eq!(reply["e"]["name"], "InvalidPayload", "{reply}");
    assert_eq!(conn.malformed_frames(), bad.len() as u32);
    let reply = raw.request("num", json!("ok"), json!(7)).await;
    assert_eq!(reply["p"], 7);
}

#[tokio::test]
async fn a_binary_frame_holding_json_is_handled_as_text() {
    let addr = echo_server(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let frame = json!({"n": "echo", "i": "b", "p": [1]}).to_string();
    raw.ws
        .send(Message::binary(frame.into_bytes()))
        .await
        .unwrap();
    assert_eq!(raw.recv().await["p"], json!([1]));
}

#[tokio::test]
async fn an_oversized_message_closes_1009_and_other_connections_go_on() {
    let addr = echo_server(Server::builder().max_message_size(1024)).await;
    let (mut big, _) = Raw::handshaked(addr, Value::Null).await;
    let (mut other, _) = Raw::handshaked(addr, Value::Null).await;
    big.send(json!({"n": "echo", "i": 1, "p": "x".repeat(2000)}))
        .await;
    let (code, _, before) = big.recv_close().await;
    assert!(before.is_empty());
    assert_eq!(code, 1009);
    assert_eq!(
        other.request("echo", json!(2), json!("fine")).await["p"],
        "fine"
    );
}
