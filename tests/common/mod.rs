//! Shared test helpers: a server on 127.0.0.1:0 and a raw WebSocket peer that speaks the
//! protocol by hand, so each test can send exactly the frames it means to.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomwire::{Server, ServerBuilder};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for anything a test waits on, so a broken behaviour fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts `server` on 127.0.0.1 with a port the system chooses.
pub async fn start(server: Server) -> (Server, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = server.clone();
    tokio::spawn(async move { s.serve(listener).await.unwrap() });
    (server, addr)
}

pub async fn start_with(
    builder: ServerBuilder,
    setup: impl FnOnce(&Server),
) -> (Server, SocketAddr) {
    let server = builder.build();
    setup(&server);
    start(server).await
}

/// Starts a server whose `on_connection` hook hands every connection to the test.
pub async fn start_handing_out(
    builder: ServerBuilder,
) -> (
    Server,
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<roomwire::ServerConnection>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (server, addr) = start_with(builder, move |s| {
        s.on_connection(move |c: roomwire::ServerConnection| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(c);
            }
        });
    })
    .await;
    (server, addr, rx)
}

/// Registers an `on_disconnect` hook that reports every closed connection and how it closed.
pub fn report_disconnects(
    server: &Server,
) -> tokio::sync::mpsc::UnboundedReceiver<(roomwire::ServerConnection, roomwire::CloseInfo)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    server.on_disconnect(
        move |c: roomwire::ServerConnection, info: roomwire::CloseInfo| {
            let _ = tx.send((c, info));
            async {}
        },
    );
    rx
}

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
pub async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("timed out waiting for the expected event")
}

/// A raw protocol peer.
pub struct Raw<S = MaybeTlsStream<TcpStream>> {
    pub ws: WebSocketStream<S>,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Self::connect_path(addr, "/").await
    }

    pub async fn connect_path(addr: SocketAddr, path: &str) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
            .await
            .expect("WebSocket connect");
        Raw { ws }
    }

    /// Connects and completes the handshake with `payload`; returns the response's `p`.
    pub async fn handshaked(addr: SocketAddr, payload: Value) -> (Raw, Value) {
        Self::handshaked_path(addr, "/", payload).await
    }

    /// [`handshaked`](Self::handshaked) on `path`.
    pub async fn handshaked_path(addr: SocketAddr, path: &str, payload: Value) -> (Raw, Value) {
        let mut raw = Raw::connect_path(addr, path).await;
        raw.send(json!({"n": "_h", "i": "hs01", "p": payload}))
            .await;
        let reply = raw.recv().await;
        assert_eq!(reply["n"], "_r");
        assert_eq!(reply["i"], "hs01");
        assert!(reply["e"].is_null(), "handshake rejected: {reply}");
        (raw, reply["p"].clone())
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Raw<S> {
    /// A raw peer on a WebSocket the test opened itself (over any stream).
    pub fn from_stream(ws: WebSocketStream<S>) -> Self {
        Raw { ws }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// The next JSON frame (answering nothing itself).
    pub async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).unwrap()
    }

    /// The next text frame as it came (answering nothing itself).
    pub async fn recv_text(&mut self) -> String {
        loop {
            match within(self.ws.next()).await {
                Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
                Some(Ok(Message::Close(f))) => panic!("closed while a frame was expected: {f:?}"),
                Some(Ok(_)) => continue,
                other => panic!("socket ended while a frame was expected: {other:?}"),
            }
        }
    }

    /// Reads until the close frame; returns its code and reason. Frames before it are returned too.
    pub async fn recv_close(&mut self) -> (u16, String, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            match within(self.ws.next()).await {
                Some(Ok(Message::Text(t))) => before.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(f))) => {
                    // Keep polling so tungstenite sends the close reply, as a real peer does.
                    while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
                    return match f {
                        Some(f) => (u16::from(f.code), f.reason.to_string(), before),
                        None => (1005, String::new(), before),
                    };
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    }

    /// Sends a request and returns the response frame.
    pub async fn request(&mut self, name: &str, id: Value, payload: Value) -> Value {
        self.send(json!({"n": name, "i": id, "p": payload})).await;
        self.recv().await
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
        // Drain until the server's close reply ends the stream.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }
}

/// Polls `cond` until it holds; for state that has no event to await (registry sizes after
/// cleanup tasks). Bounded by [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `ws://` URL of a server on `addr`.
pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}")
}

/// Waits (at most [`WAIT`]) for the first client event that `pick` accepts, skipping others.
pub async fn next_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<roomwire::client::ClientEvent>,
    mut pick: impl FnMut(&roomwire::client::ClientEvent) -> Option<T>,
) -> T {
    within(async {
        loop {
            let event = events.recv().await.expect("event stream ended");
            if let Some(t) = pick(&event) {
                return t;
            }
        }
    })
    .await
}

/// An HTTP response as a test reads it off the socket.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` (raw HTTP/1.1 bytes) to `addr` and reads the response until the server
/// closes the socket (bounded by [`WAIT`]).
pub async fn http(addr: SocketAddr, request: &str) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    within(socket.read_to_end(&mut raw)).await.unwrap();
    parse_http(&raw)
}

/// Parses a whole HTTP/1.1 response (a `Content-Length` body, or everything to the end).
pub fn parse_http(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A WebSocket upgrade request for `path` with `extra` header lines (each ending in `\r\n`).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Sends `request` and reads only the response's head (for a `101`, after which the socket
/// stays open). The socket is returned with it.
pub async fn http_head(addr: SocketAddr, request: &str) -> (HttpResponse, TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = within(socket.read(&mut byte)).await.unwrap();
        assert!(n == 1, "the socket ended inside the response head: {raw:?}");
        raw.push(byte[0]);
    }
    (parse_http(&raw), socket)
}

/// A request builder for a WebSocket upgrade of `uri`, with every header RFC 6455 asks for.
pub fn upgrade_builder(uri: &str) -> roomwire::http::request::Builder {
    roomwire::http::Request::builder()
        .uri(uri)
        .header("host", "localhost")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}
