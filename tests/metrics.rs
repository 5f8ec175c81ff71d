//! Metrics: the app of `examples/metrics.rs` (roomwire on axum, Prometheus' text on
//! `/metrics`) on 127.0.0.1, scraped over real HTTP before and after a client's life.
//!
//! A recorder is installed once per process, so everything is one test function.
#![cfg(all(feature = "metrics", feature = "axum"))]

mod common;

// The example's `app`, served here as it is there.
#[allow(dead_code)]
#[path = "../examples/metrics.rs"]
mod example;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::{url, within};
use metrics_exporter_prometheus::PrometheusBuilder;
use roomwire::client::Client;
use roomwire::metrics::*;
use roomwire::{Rejection, Server, ServerConnection};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A minimal HTTP/1.1 GET: the status and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within(stream.read_to_string(&mut response)).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).expect("a status line");
    (status.parse().unwrap(), body.to_owned())
}

/// A scrape: every series (`name{labels}`) and its value.
struct Scrape {
    text: String,
    series: HashMap<String, f64>,
}

async fn scrape(addr: SocketAddr) -> Scrape {
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let series = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a series and its value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect();
    Scrape { text, series }
}

impl Scrape {
    /// The value of `series`; 0 when it is not there.
    fn get(&self, series: &str) -> f64 {
        self.series.get(series).copied().unwrap_or(0.0)
    }

    /// How much `series` moved since `before`.
    fn moved(&self, before: &Scrape, series: &str) -> f64 {
        self.get(series) - before.get(series)
    }
}

fn labelled(name: &str, label: &str, value: &str) -> String {
    format!("{name}{{{label}=\"{value}\"}}")
}

#[tokio::test]
async fn metrics_count_a_connection_its_request_and_a_refusal_exactly() {
    // The recorder before the server: roomwire registers its metrics when it is built.
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let server = Server::builder().build();
    server.on_request(
        "add",
        |_conn: ServerConnection, (a, b): (i64, i64)| async move { Ok::<_, Rejection>(a + b) },
    );
    // Once connected, the server puts the connection in a room and asks it who it is.
    let (asked_tx, mut asked) = tokio::sync::mpsc::unbounded_channel();
    server.on_connection(move |conn: ServerConnection| {
        let asked_tx = asked_tx.clone();
        async move {
            conn.join("lobby")?;
            let name: String = conn.send("whoami", &()).await?;
            let _ = asked_tx.send(name);
            Ok::<_, roomwire::Error>(())
        }
    });
    let (closed_tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    server.on_disconnect(move |_conn: ServerConnection, info: roomwire::CloseInfo| {
        let _ = closed_tx.send(info.code);
        async {}
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = example::app(server.clone(), handle);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });

    assert_eq!(get(addr, "/health").await, (200, "ok".to_owned()));
    let before = scrape(addr).await;
    // Every metric is there from the start, described.
    for name in [
        CONNECTIONS_OPEN,
        CONNECTIONS_ACCEPTED,
        CONNECTIONS_REFUSED,
        CONNECTIONS_CLOSED,
        HANDSHAKES,
        REQUESTS_RECEIVED,
        REQUESTS_SENT,
        REQUESTS_PENDING,
        FRAMES_RECEIVED,
        RECEIVED_BYTES,
        FRAMES_SENT,
        SENT_BYTES,
        MALFORMED_FRAMES,
        SLOW_CONSUMER_CLOSES,
        MESSAGE_TOO_BIG_CLOSES,
        ROOMS,
        ROOM_MEMBERS,
    ] {
        assert!(
            before.text.contains(&format!("# TYPE {name} ")),
            "{name} is not registered:\n{}",
            before.text
        );
        assert!(
            before.text.contains(&format!("# HELP {name} ")),
            "{name} has no description"
        );
    }
    assert_eq!(before.get(CONNECTIONS_OPEN), 0.0);

    // A client: its handshake, one request, and the server's request answered.
    let client = Client::builder(format!("{}/ws", url(addr)))
        .no_reconnect()
        .on_request("whoami", |_client: Client, (): ()| async move {
            Ok::<_, Rejection>("rusty")
        })
        .connect()
        .await
        .unwrap();
    let sum: i64 = within(client.send("add", &(20, 22))).await.unwrap();
    assert_eq!(sum, 42);
    assert_eq!(within(asked.recv()).await.unwrap(), "rusty");
    let connected = scrape(addr).await;
    assert_eq!(connected.get(CONNECTIONS_OPEN), 1.0);
    assert_eq!(connected.get(ROOMS), 1.0);
    assert_eq!(connected.get(ROOM_MEMBERS), 1.0);

    // A request on the WebSocket path that is not a WebSocket upgrade: 426.
    let (status, _) = get(addr, "/ws").await;
    assert_eq!(status, 426);

    // The client leaves; `on_disconnect` runs after the connection is counted closed.
    client.close().await;
    let code = within(closed.recv()).await.unwrap();
    assert_eq!(code, 1000);
    let after = scrape(addr).await;

    let moved = |series: &str| after.moved(&before, series);
    assert_eq!(moved(CONNECTIONS_ACCEPTED), 1.0);
    assert_eq!(after.get(CONNECTIONS_OPEN), 0.0);
    assert_eq!(
        moved(&labelled(CONNECTIONS_REFUSED, "reason", "not_websocket")),
        1.0
    );
    for reason in ["limit", "denied", "path", "closing", "failed"] {
        assert_eq!(
            moved(&labelled(CONNECTIONS_REFUSED, "reason", reason)),
            0.0,
            "refused for {reason}"
        );
    }
    assert_eq!(moved(&labelled(CONNECTIONS_CLOSED, "code", "1000")), 1.0);
    assert_eq!(moved(&labelled(HANDSHAKES, "outcome", "accepted")), 1.0);
    assert_eq!(moved(&labelled(HANDSHAKES, "outcome", "rejected")), 0.0);
    assert_eq!(moved(&labelled(REQUESTS_RECEIVED, "outcome", "ok")), 1.0);
    assert_eq!(
        moved(&labelled(REQUESTS_RECEIVED, "outcome", "no_handler")),
        0.0
    );
    assert_eq!(moved(&labelled(REQUESTS_SENT, "outcome", "ok")), 1.0);
    assert_eq!(moved(&labelled(REQUESTS_SENT, "outcome", "timeout")), 0.0);
    assert_eq!(after.get(REQUESTS_PENDING), 0.0);
    // In: the handshake, the request and the response to `whoami`; out: the two responses
    // and `whoami` (close frames are not counted).
    assert_eq!(moved(FRAMES_RECEIVED), 3.0);
    assert_eq!(moved(FRAMES_SENT), 3.0);
    let request = json!({"n": "add", "i": 1, "p": [20, 22]}).to_string();
    assert!(moved(RECEIVED_BYTES) >= request.len() as f64);
    assert!(moved(SENT_BYTES) > 0.0);
    assert_eq!(moved(MALFORMED_FRAMES), 0.0);
    assert_eq!(after.get(ROOMS), 0.0);
    assert_eq!(after.get(ROOM_MEMBERS), 0.0);

    // Once the roomwire server is closed (the app still serves), an upgrade gets 503 and
    // counts as refused because the server is closing.
    server.close().await;
    let upgrade = "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
                   Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, upgrade.as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    within(tokio::io::AsyncReadExt::read_exact(&mut socket, &mut head))
        .await
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 503");
    let closed = scrape(addr).await;
    assert_eq!(
        closed.moved(&after, &labelled(CONNECTIONS_REFUSED, "reason", "closing")),
        1.0
    );
    assert_eq!(closed.moved(&after, CONNECTIONS_ACCEPTED), 0.0);
}
