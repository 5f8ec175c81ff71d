//! Property tests (proptest): arbitrary sequences of frames, good and bad, sent over a real
//! socket. Whatever a peer sends, the server answers every request at most once, keeps the
//! connection's state machine consistent (a ping is answered afterwards unless the peer's
//! own frames closed it), keeps serving everyone else, and leaks nothing.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use roomwire::{Rejection, Server, ServerConnection};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn server() -> &'static (Server, SocketAddr) {
    static SERVER: OnceLock<(Server, SocketAddr)> = OnceLock::new();
    SERVER.get_or_init(|| {
        runtime().block_on(async {
            let server = Server::builder()
                .max_message_size(4096)
                .max_requests_in_flight(4)
                .response_timeout(Duration::from_millis(200))
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
            common::start(server).await
        })
    })
}

/// One frame a peer might send.
#[derive(Debug, Clone)]
enum Frame {
    Handshake(String),
    Request(String, u8, Value),
    Notify(String, Value),
    Response(Value, bool),
    Ping(u16),
    Text(String),
    Binary(Vec<u8>),
    Oversized,
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z\\\\\"\\u{e9}]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn frame() -> impl Strategy<Value = Frame> {
    let name = prop_oneof![
        Just("echo".to_string()),
        Just("join".to_string()),
        Just("ask".to_string()),
        Just("_x".to_string()),
        "[a-z_]{0,6}",
    ];
    prop_oneof![
        "[a-z0-9]{0,4}".prop_map(Frame::Handshake),
        (name.clone(), any::<u8>(), json_value()).prop_map(|(n, i, p)| Frame::Request(n, i, p)),
        (name, json_value()).prop_map(|(n, p)| Frame::Notify(n, p)),
        (json_value(), any::<bool>()).prop_map(|(i, e)| Frame::Response(i, e)),
        any::<u16>().prop_map(Frame::Ping),
        ".{0,40}".prop_map(Frame::Text),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Frame::Binary),
        Just(Frame::Oversized),
    ]
}

fn encode(frame: &Frame) -> Message {
    match frame {
        Frame::Handshake(p) => Message::text(json!({"n": "_h", "i": "h", "p": p}).to_string()),
        Frame::Request(n, i, p) => {
            Message::text(json!({"n": n, "i": format!("r{i}"), "p": p}).to_string())
        }
        Frame::Notify(n, p) => Message::text(json!({"n": n, "p": p}).to_string()),
        Frame::Response(i, e) => {
            let err = if *e {
                json!({"name": "No", "message": "no"})
            } else {
                Value::Null
            };
            Message::text(json!({"n": "_r", "i": i, "p": 1, "e": err}).to_string())
        }
        Frame::Ping(i) => Message::text(json!({"n": "_p", "i": i}).to_string()),
        Frame::Text(t) => Message::text(t.clone()),
        Frame::Binary(b) => Message::binary(b.clone()),
        Frame::Oversized => Message::text("x".repeat(5000)),
    }
}

/// Sends `frames`, then a ping; reads everything back. Returns whether the connection is
/// still open (the ping answered), and every response id seen.
async fn run(addr: SocketAddr, frames: &[Frame]) -> (bool, Vec<Value>) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}"), None, true)
            .await
            .unwrap();
    for f in frames {
        if ws.send(encode(f)).await.is_err() {
            break;
        }
    }
    let _ = ws
        .send(Message::text(json!({"n": "_p", "i": "final"}).to_string()))
        .await;
    let mut ids = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["n"] == "_r" {
                    if v["i"] == "final" {
                        let _ = ws.close(None).await;
                        return (true, ids);
                    }
                    ids.push(v["i"].clone());
                } else if v["n"] == "q" {
                    // A server request: answer it.
                    let _ = ws
                        .send(Message::text(
                            json!({"n": "_r", "i": v["i"], "p": 1}).to_string(),
                        ))
                        .await;
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return (false, ids),
            Ok(Some(Ok(_))) => {}
            Err(_) => {
                panic!("the server went silent: neither the ping answered nor the socket closed")
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn any_frame_sequence_leaves_the_server_consistent(frames in prop::collection::vec(frame(), 0..24)) {
        let (server, addr) = server();
        let (open, ids) = runtime().block_on(run(*addr, &frames));
        // No request is answered more than once (ids may repeat across frames, so count).
        let requests: usize = frames.iter().filter(|f| matches!(f, Frame::Request(..) | Frame::Handshake(_) | Frame::Ping(_))).count();
        prop_assert!(ids.len() <= requests, "more responses than requests: {ids:?}");
        // Only an oversized frame closes the connection.
        if !frames.iter().any(|f| matches!(f, Frame::Oversized)) {
            prop_assert!(open, "the connection closed without an oversized frame");
        }
        // Everyone else is still served.
        let (fresh_open, _) = runtime().block_on(run(*addr, &[]));
        prop_assert!(fresh_open);
        // And nothing is left behind once both have gone.
        runtime().block_on(common::eventually("every connection is gone", || {
            server.open_connections() == 0 && server.rooms().is_empty()
        }));
    }
}
