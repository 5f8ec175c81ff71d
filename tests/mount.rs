//! Other front doors than the built-in listener: an axum app serving its own routes and
//! roomwire on one port (with Line's published client), plain hyper 1, and any stream given
//! to `serve_connection` (an in-memory pipe, a Unix socket). The handshake sees the same
//! request either way.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use axum::routing::get;
use common::{http, upgrade_request, within, Raw};
use roomwire::upgrade::ConnectionInfo;
use roomwire::{Handshake, Rejection, Server, ServerConnection};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// What a handshake saw of its request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    path: String,
    query: Option<String>,
    header: Option<String>,
    remote_ip: Option<std::net::IpAddr>,
}

/// A server whose handshake reports what it saw, that names the connection after the
/// payload, adds numbers and asks the client who it is once connected.
fn recording_server() -> (Server, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Server::builder().build();
    server.on_handshake(move |conn: ServerConnection, hs: Handshake| {
        let _ = tx.send(Seen {
            path: hs.path().to_owned(),
            query: hs.query().map(str::to_owned),
            header: hs
                .headers()
                .get("x-test")
                .map(|v| v.to_str().unwrap().to_owned()),
            remote_ip: hs.remote_addr().map(|a| a.ip()),
        });
        async move {
            let name = hs
                .payload::<Value>()
                .ok()
                .and_then(|p| p["name"].as_str().map(str::to_owned));
            if let Some(name) = name {
                if let Err(e) = conn.set_id(name) {
                    return hs.reject(e);
                }
            }
            hs.resolve(json!({ "welcome": true }))
        }
    });
    server.on_request(
        "add",
        |_c: ServerConnection, (a, b): (i64, i64)| async move { Ok::<_, Rejection>(a + b) },
    );
    (server, rx)
}

/// Connects with tungstenite to `url` with an `x-test` header, handshakes, adds.
async fn talk(url: &str) -> i64 {
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request
        .headers_mut()
        .insert("x-test", "yes".parse().unwrap());
    let (ws, _) = within(tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    let mut raw = Raw { ws };
    raw.send(json!({"n": "_h", "i": "h", "p": null})).await;
    assert!(raw.recv().await["e"].is_null());
    let reply = raw.request("add", json!(1), json!([20, 22])).await;
    reply["p"].as_i64().unwrap()
}

/// An axum app with its own routes and roomwire on `/ws`, with connect info.
async fn axum_app(server: &Server) -> SocketAddr {
    let app = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ws", get(roomwire::axum::handler(server.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_app_serves_its_routes_and_roomwire_on_one_port_with_lines_client() {
    let (server, mut seen) = recording_server();
    let addr = axum_app(&server).await;

    let health = http(
        addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    // Not an upgrade: roomwire's answer, through axum, which leaves the app's keep-alive
    // connection to the app (closed here because the first request asks for it).
    let plain = http(
        addr,
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(plain.status, 426);
    let (kept, _socket) = common::http_head(addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(kept.status, 426);
    assert_eq!(kept.header("connection"), None, "{kept:?}");
    let elsewhere = http(addr, &upgrade_request("/nope", "Connection: close\r\n")).await;
    assert_eq!(
        elsewhere.status, 404,
        "the app's router answers other paths"
    );

    assert_eq!(talk(&format!("ws://{addr}/ws?room=1")).await, 42);
    let seen_rust = within(seen.recv()).await.unwrap();
    assert_eq!(
        seen_rust,
        Seen {
            path: "/ws".into(),
            query: Some("room=1".into()),
            header: Some("yes".into()),
            remote_ip: Some([127, 0, 0, 1].into()),
        }
    );

    // Line's published client, unchanged, through the axum route.
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/line-socket").is_dir(),
        "Line's client is not installed: run `npm ci --prefix tests/js` (the README's test command does)"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("node")
            .arg(js.join("line_smoke.js"))
            .arg(format!("ws://{addr}/ws"))
            .current_dir(&js)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("Line's client did not finish")
    .expect("could not start node: install Node.js (the README's test command does)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Line's client failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        report,
        json!({"id": "line", "payload": {"welcome": true}, "sum": 5})
    );
    assert_eq!(within(seen.recv()).await.unwrap().path, "/ws");
}

#[tokio::test]
async fn plain_hyper_mounts_roomwire_through_its_upgrades() {
    let (server, mut seen) = recording_server();
    let addr = hyper_mount(server.clone()).await;

    assert_eq!(talk(&format!("ws://{addr}/socket?room=1")).await, 42);
    assert_eq!(
        within(seen.recv()).await.unwrap(),
        Seen {
            path: "/socket".into(),
            query: Some("room=1".into()),
            header: Some("yes".into()),
            remote_ip: Some([127, 0, 0, 1].into()),
        }
    );
    // The same request to the built-in listener is seen the same way.
    let (_, listened) = common::start(server.clone()).await;
    assert_eq!(talk(&format!("ws://{listened}/socket?room=1")).await, 42);
    assert_eq!(within(seen.recv()).await.unwrap().path, "/socket");

    // `close` closes mounted connections too, and waits for them.
    let (mut raw, _) = (
        Raw {
            ws: tokio_tungstenite::connect_async(format!("ws://{addr}/socket"))
                .await
                .unwrap()
                .0,
        },
        (),
    );
    raw.send(json!({"n": "_h", "i": "h", "p": null})).await;
    raw.recv().await;
    within(server.close()).await;
    let (code, _, _) = raw.recv_close().await;
    assert_eq!(code, 1001);
}

#[tokio::test]
async fn a_request_that_cannot_be_upgraded_gets_500_that_says_so() {
    let (server, _seen) = recording_server();
    // An upgrade request that did not come through hyper's HTTP/1 (nothing to upgrade).
    let request = common::upgrade_builder("/ws").body(()).unwrap();
    let answer = server.handle_upgrade(request, None).await;
    assert_eq!(answer.status(), 500);
    assert!(answer.body().contains("with_upgrades"), "{answer:?}");
    assert_eq!(server.open_connections(), 0);
}

#[tokio::test]
async fn serve_connection_serves_an_in_memory_pipe_and_a_unix_socket() {
    let (server, mut seen) = recording_server();

    // An in-memory pipe: no address.
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(server.serve_connection(server_io, ConnectionInfo::default()));
    let (ws, _) = within(tokio_tungstenite::client_async(
        "ws://memory/pipe?x=1",
        client_io,
    ))
    .await
    .unwrap();
    let mut pipe = Raw::from_stream(ws);
    pipe.send(json!({"n": "_h", "i": "h", "p": {"name": "piped"}}))
        .await;
    assert_eq!(pipe.recv().await["p"]["id"], "piped");
    assert_eq!(pipe.request("add", json!(1), json!([1, 2])).await["p"], 3);
    let seen_pipe = within(seen.recv()).await.unwrap();
    assert_eq!(
        (seen_pipe.path.as_str(), seen_pipe.remote_ip),
        ("/pipe", None)
    );
    assert_eq!(server.connection("piped").unwrap().remote_addr(), None);

    // A Unix socket pair.
    let (client_io, server_io) = tokio::net::UnixStream::pair().unwrap();
    tokio::spawn(server.serve_connection(server_io, ConnectionInfo::default()));
    let (ws, _) = within(tokio_tungstenite::client_async("ws://unix/", client_io))
        .await
        .unwrap();
    let mut unix = Raw::from_stream(ws);
    unix.send(json!({"n": "_h", "i": "h", "p": {"name": "unix"}}))
        .await;
    assert_eq!(unix.recv().await["p"]["id"], "unix");
    within(seen.recv()).await.unwrap();

    // Closing the server closes them, and waits for them.
    within(server.close()).await;
    assert_eq!(pipe.recv_close().await.0, 1001);
    assert_eq!(unix.recv_close().await.0, 1001);
    assert_eq!(server.open_connections(), 0);
}

/// A hyper HTTP/1 server that hands every request to `server.handle_upgrade`.
async fn hyper_mount(server: Server) -> SocketAddr {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let server = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let server = server.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(server.handle_upgrade(req, peer).await)
                    }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let _ = conn.with_upgrades().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn close_during_a_mounted_upgrade_filter_waits_for_it_and_answers_503() {
    let server = Server::builder().build();
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let g = gate.clone();
    server.on_upgrade(move |_req: roomwire::upgrade::UpgradeRequest| {
        let g = g.clone();
        let _ = entered_tx.send(());
        async move {
            g.notified().await;
            Ok(())
        }
    });
    let addr = hyper_mount(server.clone()).await;
    let request = upgrade_request("/", "");
    let answer = tokio::spawn(async move { common::http_head(addr, &request).await.0 });
    within(entered.recv()).await.unwrap();
    // The filter is deciding when the server closes: the close ends the decision (503)
    // and returns only then, with no connection made.
    let close = tokio::spawn({
        let server = server.clone();
        async move { server.close().await }
    });
    assert_eq!(within(answer).await.unwrap().status, 503);
    within(close).await.unwrap();
    gate.notify_one();
    assert_eq!(server.open_connections(), 0);
    assert!(server.connections().is_empty());
}

#[tokio::test]
async fn close_does_not_wait_for_a_mounted_upgrade_the_http_server_holds_back() {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let server = Server::builder()
        .upgrade_timeout(Duration::from_secs(30))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (answered_tx, mut answered) = mpsc::unbounded_channel();
    let mounted = server.clone();
    tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let server = mounted.clone();
            let answered_tx = answered_tx.clone();
            async move {
                let response = server.handle_upgrade(req, peer).await;
                let _ = answered_tx.send(());
                // Middleware between roomwire and the socket that never lets the 101 out.
                std::future::pending::<()>().await;
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    });
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut socket, upgrade_request("/", "").as_bytes())
        .await
        .unwrap();
    within(answered.recv()).await.unwrap();
    // Bounded by `within` (10 s), far below the 30 s upgrade timeout.
    within(server.close()).await;
    assert_eq!(server.open_connections(), 0);
}
