//! The front door: the path, the upgrade filter (by header, by address behind a proxy, by
//! origin), and HTTP answers to requests that are not WebSocket upgrades. None of them
//! becomes a connection once answered.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{http, http_head, start_with, upgrade_request, within, Raw};
use roomwire::http::StatusCode;
use roomwire::upgrade::{AllowedOrigins, Deny, TrustedProxies, UpgradeRequest};
use roomwire::{Server, ServerConnection};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server whose `on_connection` reports each connection, so a test can show none came.
async fn counting(
    builder: roomwire::ServerBuilder,
    setup: impl FnOnce(&Server),
) -> (
    Server,
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<ServerConnection>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (server, addr) = start_with(builder, |s| {
        setup(s);
        s.on_connection(move |c: ServerConnection| {
            let _ = tx.send(c);
            async {}
        });
    })
    .await;
    (server, addr, rx)
}

#[tokio::test]
async fn a_configured_path_serves_only_that_path_and_answers_404_elsewhere() {
    let (server, addr, mut connected) = counting(Server::builder().path("/ws"), |_| {}).await;

    let wrong = http(addr, &upgrade_request("/other", "")).await;
    assert_eq!(wrong.status, 404);
    assert!(
        wrong.body.contains("/ws"),
        "the body names the path: {wrong:?}"
    );
    assert_eq!(server.open_connections(), 0);

    // The query string is not part of the path.
    let (raw, _) = Raw::handshaked_path(addr, "/ws?room=1", json!(null)).await;
    let conn = within(connected.recv()).await.unwrap();
    assert_eq!(server.connections().len(), 1);
    drop((raw, conn));
    assert!(connected.try_recv().is_err(), "the 404 made no connection");
}

#[tokio::test]
async fn without_a_path_every_path_is_served() {
    let (_server, addr, mut connected) = counting(Server::builder(), |_| {}).await;
    for path in ["/", "/line", "/a/b?c=d"] {
        let _ = Raw::handshaked_path(addr, path, json!(null)).await;
        within(connected.recv()).await.unwrap();
    }
}

#[tokio::test]
async fn requests_that_are_not_websocket_upgrades_get_an_http_error_that_says_why() {
    let (server, addr, mut connected) = counting(Server::builder(), |_| {}).await;

    let plain = http(addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(plain.status, 426);
    assert_eq!(plain.header("upgrade"), Some("websocket"));
    assert!(plain.body.contains("WebSocket"), "{plain:?}");

    let post = upgrade_request("/", "").replacen("GET", "POST", 1);
    let post = http(addr, &post).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));

    let old =
        upgrade_request("/", "").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let old = http(addr, &old).await;
    assert_eq!(old.status, 426);
    assert_eq!(old.header("sec-websocket-version"), Some("13"));

    let keyless =
        upgrade_request("/", "").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let keyless = http(addr, &keyless).await;
    assert_eq!(keyless.status, 400);
    assert!(keyless.body.contains("Sec-WebSocket-Key"), "{keyless:?}");

    let no_connection =
        upgrade_request("/", "").replace("Connection: Upgrade", "Connection: keep-alive");
    assert_eq!(http(addr, &no_connection).await.status, 400);

    // Bytes that are not HTTP at all: the socket is closed, with a 400 or without a word.
    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = within(garbage.read_to_end(&mut rest)).await;
    if !rest.is_empty() {
        assert_eq!(common::parse_http(&rest).status, 400);
    }

    common::eventually("every answered socket gives its slot back", || {
        server.open_connections() == 0
    })
    .await;
    assert!(
        connected.try_recv().is_err(),
        "none of them is a connection"
    );
}

#[tokio::test]
async fn the_filter_denies_by_header_with_its_status_and_body_and_allows_the_rest() {
    let seen: Arc<Mutex<Vec<UpgradeRequest>>> = Arc::default();
    let record = seen.clone();
    let (server, addr, mut connected) = counting(Server::builder(), |s| {
        s.on_upgrade(move |req: UpgradeRequest| {
            record.lock().unwrap().push(req.clone());
            async move {
                match req.headers().get("x-api-key") {
                    Some(key) if key == "letmein" => Ok(()),
                    _ => Err(Deny::new(StatusCode::UNAUTHORIZED, "send x-api-key")),
                }
            }
        });
    })
    .await;

    let denied = http(addr, &upgrade_request("/room?x=1", "X-Api-Key: wrong\r\n")).await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.body.trim(), "send x-api-key");
    assert_eq!(
        server.open_connections(),
        0,
        "a denied upgrade holds no slot once answered"
    );

    let request = common::upgrade_builder(&format!("ws://{addr}/room?x=1"))
        .header("x-api-key", "letmein")
        .body(())
        .unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut raw = Raw { ws };
    raw.send(json!({"n": "_h", "i": "h", "p": null})).await;
    assert!(raw.recv().await["e"].is_null());
    within(connected.recv()).await.unwrap();

    // The filter saw everything the issue promises: method, path, query, headers, address.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for req in seen.iter() {
        assert_eq!(req.method(), "GET");
        assert_eq!(req.path(), "/room");
        assert_eq!(req.query(), Some("x=1"));
        assert_eq!(
            req.remote_addr().map(|a| a.ip()),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
    }
    assert_eq!(seen[0].headers()["x-api-key"], "wrong");
}

#[tokio::test]
async fn the_filter_denies_by_client_address_behind_a_trusted_proxy() {
    // The test's own address (127.0.0.1) plays the proxy.
    let proxies = TrustedProxies::loopback();
    let (_server, addr, mut connected) = counting(Server::builder(), |s| {
        s.on_upgrade(move |req: UpgradeRequest| {
            let client = req.client_ip(&proxies);
            async move {
                match client {
                    Some(ip) if ip == IpAddr::from([203, 0, 113, 9]) => {
                        Err(Deny::forbidden("banned"))
                    }
                    Some(_) => Ok(()),
                    None => Err(Deny::new(StatusCode::BAD_REQUEST, "who are you?")),
                }
            }
        });
    })
    .await;

    let banned = http(
        addr,
        &upgrade_request("/", "X-Forwarded-For: 203.0.113.9\r\n"),
    )
    .await;
    assert_eq!((banned.status, banned.body.trim()), (403, "banned"));
    // The banned client cannot hide behind a `Forwarded` header of its own: the proxy
    // writes X-Forwarded-For, and only that is read.
    let banned = http(
        addr,
        &upgrade_request(
            "/",
            "Forwarded: for=198.51.100.1\r\nX-Forwarded-For: 203.0.113.9\r\n",
        ),
    )
    .await;
    assert_eq!(banned.status, 403);
    let unknown = http(addr, &upgrade_request("/", "X-Forwarded-For: unknown\r\n")).await;
    assert_eq!(unknown.status, 400);

    let (ok, socket) = http_head(
        addr,
        &upgrade_request("/", "X-Forwarded-For: 198.51.100.1\r\n"),
    )
    .await;
    assert_eq!(ok.status, 101);
    drop(socket);
    assert!(
        connected.try_recv().is_err(),
        "no handshake was sent: no connection yet"
    );
}

#[tokio::test]
async fn an_untrusted_peer_cannot_forge_its_address() {
    let (_server, addr, _connected) = counting(Server::builder(), |s| {
        let nobody = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        s.on_upgrade(move |req: UpgradeRequest| {
            let client = req.client_ip(&nobody);
            async move {
                if client == Some(IpAddr::from([127, 0, 0, 1])) {
                    Err(Deny::forbidden("127.0.0.1 is the client"))
                } else {
                    Ok(())
                }
            }
        });
    })
    .await;
    let forged = http(
        addr,
        &upgrade_request("/", "X-Forwarded-For: 198.51.100.1\r\n"),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(forged.body.trim(), "127.0.0.1 is the client");
}

#[tokio::test]
async fn the_origin_allow_list_refuses_other_sites_pages() {
    let origins = AllowedOrigins::new(["https://app.example.com"]);
    let (_server, addr, _connected) = counting(Server::builder(), |s| {
        s.on_upgrade(move |req: UpgradeRequest| {
            let verdict = origins.check(&req);
            async move { verdict }
        });
    })
    .await;
    let evil = http(
        addr,
        &upgrade_request("/", "Origin: https://evil.example\r\n"),
    )
    .await;
    assert_eq!(evil.status, 403);
    assert!(evil.body.contains("https://evil.example"), "{evil:?}");
    let (ours, _socket) = http_head(
        addr,
        &upgrade_request("/", "Origin: HTTPS://App.Example.com\r\n"),
    )
    .await;
    assert_eq!(ours.status, 101, "{ours:?}");
    // Not a browser page: no Origin at all.
    let (tool, _socket) = http_head(addr, &upgrade_request("/", "")).await;
    assert_eq!(tool.status, 101);
}

#[tokio::test]
async fn a_denied_upgrade_costs_no_slot_so_a_full_server_still_takes_the_next() {
    let (server, addr, mut connected) = counting(Server::builder().max_connections(1), |s| {
        s.on_upgrade(|req: UpgradeRequest| async move {
            if req.query() == Some("deny") {
                Err(Deny::forbidden("no"))
            } else {
                Ok(())
            }
        });
    })
    .await;
    for _ in 0..3 {
        assert_eq!(http(addr, &upgrade_request("/?deny", "")).await.status, 403);
        assert_eq!(server.open_connections(), 0);
    }
    let (_raw, _) = Raw::handshaked(addr, json!(null)).await;
    within(connected.recv()).await.unwrap();
    assert_eq!(server.open_connections(), 1);
}

#[tokio::test]
async fn a_panicking_filter_answers_500_and_the_server_goes_on() {
    let (_server, addr, mut connected) = counting(Server::builder(), |s| {
        s.on_upgrade(|req: UpgradeRequest| async move {
            assert!(req.query() != Some("boom"), "the filter blew up");
            Ok(())
        });
    })
    .await;
    assert_eq!(http(addr, &upgrade_request("/?boom", "")).await.status, 500);
    let _ = Raw::handshaked(addr, json!(null)).await;
    within(connected.recv()).await.unwrap();
}

#[tokio::test]
async fn a_filter_that_panics_before_its_future_answers_500_too() {
    let (_server, addr, _connected) = counting(Server::builder(), |s| {
        s.on_upgrade(|req: UpgradeRequest| {
            assert!(req.query() != Some("boom"), "the filter's closure blew up");
            async { Ok(()) }
        });
    })
    .await;
    assert_eq!(http(addr, &upgrade_request("/?boom", "")).await.status, 500);
    let (ok, _socket) = http_head(addr, &upgrade_request("/", "")).await;
    assert_eq!(ok.status, 101);
}

#[tokio::test]
async fn a_filter_that_never_answers_is_answered_503_at_the_upgrade_timeout() {
    let (server, addr, _connected) = counting(
        Server::builder().upgrade_timeout(Duration::from_millis(300)),
        |s| {
            s.on_upgrade(|_req: UpgradeRequest| std::future::pending());
        },
    )
    .await;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A client that takes a moment to send its request, as over a real network: the
    // filter's time is what is left of the upgrade timeout, and the answer still goes out.
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket
        .write_all(upgrade_request("/", "").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    within(socket.read_to_end(&mut rest)).await.unwrap();
    assert_eq!(common::parse_http(&rest).status, 503);
    common::eventually("the slot is given back", || server.open_connections() == 0).await;
}

#[tokio::test]
async fn malformed_or_repeated_keys_and_versions_get_400_or_426() {
    let (_server, addr, _connected) = counting(Server::builder(), |_| {}).await;
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    for bad in [
        "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!!!",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ] {
        let request = upgrade_request("/", "").replace(key, bad);
        assert_eq!(http(addr, &request).await.status, 400, "{bad}");
    }
    let twice = upgrade_request("/", "Sec-WebSocket-Version: 13\r\n");
    let twice = http(addr, &twice).await;
    assert_eq!(twice.status, 426);
    assert_eq!(twice.header("upgrade"), Some("websocket"));
}

#[tokio::test]
async fn serve_connection_on_a_closed_server_answers_503() {
    let server = Server::builder().build();
    server.close().await;
    let (mut client, server_io) = tokio::io::duplex(4096);
    tokio::spawn(server.serve_connection(server_io, roomwire::upgrade::ConnectionInfo::default()));
    client
        .write_all(upgrade_request("/", "").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    within(client.read_to_end(&mut rest)).await.unwrap();
    assert_eq!(common::parse_http(&rest).status, 503);
    assert_eq!(server.open_connections(), 0);
}

#[tokio::test]
async fn frames_sent_right_behind_the_request_are_read() {
    let (_server, addr, mut connected) = counting(Server::builder(), |_| {}).await;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The request and a masked `_h` frame in one write, without waiting for the 101.
    let payload = br#"{"n":"_h","i":"h1","p":null}"#;
    let mask = [1u8, 2, 3, 4];
    let mut bytes = upgrade_request("/", "").into_bytes();
    bytes.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    socket.write_all(&bytes).await.unwrap();
    within(connected.recv()).await.unwrap();
}

#[tokio::test]
async fn an_oversized_request_head_gets_431_and_no_connection() {
    let (server, addr, _connected) = counting(Server::builder(), |_| {}).await;
    let big = format!("X-Big: {}\r\n", "a".repeat(200 * 1024));
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = socket
        .write_all(upgrade_request("/", &big).as_bytes())
        .await;
    let mut rest = Vec::new();
    let _ = within(socket.read_to_end(&mut rest)).await;
    assert_eq!(common::parse_http(&rest).status, 431);
    common::eventually("the slot is given back", || server.open_connections() == 0).await;
}
