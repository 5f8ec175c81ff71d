//! `wss://`: the built-in listener serving TLS (`Serve::with_tls`), the Rust client
//! (`ClientBuilder::tls_config`) and Line's Node client over it, with a self-signed
//! certificate made at run time; and what the TLS port does with peers that do not speak
//! TLS, do not trust the certificate, or never finish.
#![cfg(feature = "tls")]

mod common;
#[path = "common/line_suite.rs"]
mod line_suite;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, next_event, within};
use futures_util::{SinkExt, StreamExt};
use roomwire::client::{Backoff, Client, ClientEvent, ConnectError};
use roomwire::{Rejection, Server, ServerBuilder, ServerConnection};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for `localhost` and `127.0.0.1`, made for this test run, with
/// the configurations that serve it and trust it.
struct TestCertificate {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    pem: String,
}

impl TestCertificate {
    fn new() -> Self {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("a self-signed certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .expect("a server configuration");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(cert.der().clone())
            .expect("the certificate as a root");
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TestCertificate {
            server: Arc::new(server),
            client: Arc::new(client),
            pem: cert.pem(),
        }
    }
}

/// A server (built from `builder`) with an `add` handler, serving TLS with `certificate` on
/// 127.0.0.1; its `on_connection` hook hands every connection to the test.
async fn start_tls(
    builder: ServerBuilder,
    certificate: &TestCertificate,
) -> (
    Server,
    SocketAddr,
    mpsc::UnboundedReceiver<ServerConnection>,
) {
    let server = builder.build();
    server.on_request(
        "add",
        |_c: ServerConnection, (a, b): (i64, i64)| async move { Ok::<_, Rejection>(a + b) },
    );
    let (tx, rx) = mpsc::unbounded_channel();
    server.on_connection(move |conn: ServerConnection| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(conn);
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server.serve(listener).with_tls(certificate.server.clone());
    tokio::spawn(async move { serving.await.unwrap() });
    (server, addr, rx)
}

fn wss(addr: SocketAddr) -> String {
    format!("wss://{addr}")
}

/// A Rust client that trusts `certificate` and answers `whoami`.
fn client(addr: SocketAddr, certificate: &TestCertificate) -> roomwire::client::ClientBuilder {
    Client::builder(wss(addr))
        .tls_config(certificate.client.clone())
        .on_request("whoami", |_c: Client, (): ()| async move {
            Ok::<_, Rejection>("rust over tls")
        })
}

/// Reads until the server drops the socket (EOF, or a reset), at most [`common::WAIT`];
/// returns what came before (a TLS alert, if anything).
async fn until_dropped(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    within(async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    received
}

/// The server is healthy after a bad peer: it holds no connection for it any more, and a
/// good client connects and is answered.
async fn assert_healthy(server: &Server, addr: SocketAddr, certificate: &TestCertificate) {
    eventually("the dropped socket no longer counts as open", || {
        server.open_connections() == 0
    })
    .await;
    let good = client(addr, certificate).connect().await.unwrap();
    assert_eq!(good.send::<_, i64>("add", &(1, 2)).await.unwrap(), 3);
    good.close().await;
}

#[tokio::test]
async fn the_rust_client_handshakes_and_requests_both_ways_over_wss() {
    let certificate = TestCertificate::new();
    let (server, addr, mut connections) = start_tls(Server::builder(), &certificate).await;
    let client = client(addr, &certificate).connect().await.unwrap();
    assert!(client.id().is_some(), "the handshake was accepted");

    assert_eq!(client.send::<_, i64>("add", &(20, 22)).await.unwrap(), 42);
    let conn = within(connections.recv()).await.unwrap();
    assert_eq!(
        conn.send::<_, String>("whoami", &()).await.unwrap(),
        "rust over tls"
    );
    assert_eq!(
        conn.remote_addr().map(|a| a.ip()),
        Some([127, 0, 0, 1].into()),
        "the peer's address survives TLS"
    );

    client.close().await;
    eventually("the connection is gone", || server.open_connections() == 0).await;
}

#[tokio::test]
async fn the_rust_client_reconnects_over_wss_with_its_tls_config() {
    let certificate = TestCertificate::new();
    let (_server, addr, mut connections) = start_tls(Server::builder(), &certificate).await;
    let client = client(addr, &certificate)
        .reconnect(Backoff::new(Duration::from_millis(10)).jitter(0.0))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let first = within(connections.recv()).await.unwrap();
    first.close(roomwire::CloseCode::GOING_AWAY, "go and come back");

    // Only the certificate the builder was given is trusted: a reconnect with any other
    // configuration would fail (ConnectFailed) instead.
    let reconnected = next_event(&mut events, |e| match e {
        ClientEvent::Connected { .. } => Some(Ok(())),
        ClientEvent::ConnectFailed { error, .. } => Some(Err(error.to_string())),
        _ => None,
    })
    .await;
    assert_eq!(reconnected, Ok(()));
    let second = within(connections.recv()).await.unwrap();
    assert!(!second.same(&first));
    assert_eq!(client.send::<_, i64>("add", &(2, 3)).await.unwrap(), 5);
    client.close().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_dropped_and_the_server_stays_healthy() {
    let certificate = TestCertificate::new();
    let (server, addr, _connections) = start_tls(Server::builder(), &certificate).await;
    // The default configuration trusts Mozilla's roots, which did not sign this certificate.
    let error = Client::builder(wss(addr))
        .no_reconnect()
        .connect()
        .await
        .expect_err("the certificate is not trusted");
    assert!(matches!(error, ConnectError::WebSocket(_)), "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
    assert_healthy(&server, addr, &certificate).await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_dropped_and_the_server_stays_healthy() {
    let certificate = TestCertificate::new();
    let (server, addr, _connections) = start_tls(Server::builder(), &certificate).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = until_dropped(&mut socket).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a TLS port answers no plain HTTP: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_healthy(&server, addr, &certificate).await;
}

#[tokio::test]
async fn garbage_bytes_on_the_tls_port_are_dropped_and_the_server_stays_healthy() {
    let certificate = TestCertificate::new();
    let (server, addr, _connections) = start_tls(Server::builder(), &certificate).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    // The server may drop the socket before it has read everything: a reset is fine.
    let _ = socket.write_all(&garbage).await;
    until_dropped(&mut socket).await;
    assert_healthy(&server, addr, &certificate).await;
}

#[tokio::test]
async fn a_finished_tls_connection_sends_close_notify_and_reads_the_peers_instead_of_resetting() {
    let certificate = TestCertificate::new();
    let (server, addr, mut connections) = start_tls(Server::builder(), &certificate).await;
    let mut disconnects = common::report_disconnects(&server);
    let socket = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(certificate.client.clone());
    let tls = within(connector.connect(ServerName::try_from("localhost").unwrap(), socket))
        .await
        .unwrap();
    let (mut ws, _) = within(tokio_tungstenite::client_async(wss(addr), tls))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"n":"_h","i":"h1"}"#))
        .await
        .unwrap();
    let _accepted = within(ws.next()).await;
    let conn = within(connections.recv()).await.unwrap();

    // The server closes; tungstenite answers and ends the stream; the connection is over.
    conn.close(roomwire::CloseCode::GOING_AWAY, "bye");
    while let Some(Ok(_)) = within(ws.next()).await {}
    within(disconnects.recv()).await.unwrap();

    // The peer's close_notify comes after all that (Node's `ws` sends it right after its
    // close frame): the server reads it, rather than resetting the socket, and says
    // close_notify itself, so the stream ends cleanly (a reset, or a FIN without
    // close_notify, would be an error here).
    let mut tls = ws.into_inner();
    tls.shutdown().await.unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(within(tls.read(&mut buf)).await.unwrap(), 0);
}

/// The upgrade timeout of the two tests below: short, so a test waits little for it.
const UPGRADE_TIMEOUT: Duration = Duration::from_millis(200);

/// How much later than the upgrade timeout the server may drop a silent socket: generous,
/// for a loaded machine, and still far below the 10 s default it would wait if the timeout
/// did not bound this phase.
const DROP_SLACK: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_client_that_never_starts_tls_is_dropped_within_the_upgrade_timeout() {
    let certificate = TestCertificate::new();
    let (server, addr, _connections) = start_tls(
        Server::builder().upgrade_timeout(UPGRADE_TIMEOUT),
        &certificate,
    )
    .await;
    // Taken before connecting: the server's deadline starts after this.
    let started = Instant::now();
    let mut socket = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(UPGRADE_TIMEOUT + DROP_SLACK, until_dropped(&mut socket))
        .await
        .expect("a silent socket is dropped once the upgrade timeout has passed");
    assert!(
        started.elapsed() >= UPGRADE_TIMEOUT,
        "dropped before the upgrade timeout: {:?}",
        started.elapsed()
    );
    assert_healthy(&server, addr, &certificate).await;
}

#[tokio::test]
async fn a_client_that_finishes_tls_but_never_upgrades_is_dropped_within_the_upgrade_timeout() {
    let certificate = TestCertificate::new();
    let (server, addr, _connections) = start_tls(
        Server::builder().upgrade_timeout(UPGRADE_TIMEOUT),
        &certificate,
    )
    .await;
    let started = Instant::now();
    let socket = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(certificate.client.clone());
    let mut tls = within(connector.connect(ServerName::try_from("localhost").unwrap(), socket))
        .await
        .expect("the TLS handshake succeeds");
    // The one deadline bounds the TLS handshake and the HTTP request together.
    tokio::time::timeout(UPGRADE_TIMEOUT + DROP_SLACK, until_dropped(&mut tls))
        .await
        .expect("a socket that sends no request is dropped once the upgrade timeout has passed");
    assert!(
        started.elapsed() >= UPGRADE_TIMEOUT,
        "dropped before the upgrade timeout: {:?}",
        started.elapsed()
    );
    assert_healthy(&server, addr, &certificate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_published_client_works_unchanged_over_wss() {
    let certificate = TestCertificate::new();
    // Node trusts the certificate through NODE_EXTRA_CA_CERTS, read at its start-up (Line's
    // client opens its socket with the `ws` package, on Node's TLS and its CA list).
    let pem = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tls-test-{}.pem", std::process::id()));
    std::fs::write(&pem, &certificate.pem).unwrap();
    let config = certificate.server.clone();
    line_suite::run(
        "wss",
        &[("NODE_EXTRA_CA_CERTS", pem.as_os_str())],
        move |server, listener| server.serve(listener).with_tls(config.clone()),
    )
    .await;
    let _ = std::fs::remove_file(&pem);
}
