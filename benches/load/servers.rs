//! The servers under test, each run in a process of its own: roomwire, and the floor — a
//! plain tokio-tungstenite server that answers the same frames with the least work possible
//! (one task per connection, batched flushes, TCP_NODELAY, small read buffer).
//!
//! A second, informational reference, the *JSON floor*, is the same server doing the JSON
//! work roomwire does and the floor skips: it parses each frame's envelope with serde_json,
//! deserializes the payload into its type and serializes the answer; for server-to-client
//! requests it encodes each one and matches each response to a table of pending ids. Against
//! it, the ratio shows what the framework costs beyond the JSON. A third, run by hand for
//! server-to-client, awaits each request as an API with `send(..).await` must
//! ([`serve_floor_awaiting`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use roomwire::{Handshake, Rejection, Server, ServerConnection};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The small request payload of the request/response scenarios.
#[derive(Serialize, Deserialize, Clone)]
pub struct Small {
    pub a: i64,
    pub b: String,
}

#[derive(Deserialize)]
struct Count {
    count: usize,
    #[serde(default)]
    inflight: usize,
    #[serde(default)]
    size: usize,
}

/// The runtime both servers use: two worker threads, as many as the machine has cores.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn announce() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("LISTENING {}", listener.local_addr().unwrap().port());
    listener
}

pub fn serve_roomwire() {
    runtime().block_on(async {
        let server = Server::builder()
            .max_connections(19_000)
            .outbound_queue(4096)
            .build();
        server.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
            if hs.payload::<String>().ok().as_deref() != Some("control") {
                let _ = conn.join("fan");
            }
            hs.resolve(())
        });
        server.on_request("echo", |_c: ServerConnection, p: Small| async move {
            Ok::<_, Rejection>(p)
        });
        // The payload passed through untouched, as the floor's echo does.
        server.on_request(
            "echo_raw",
            |_c: ServerConnection, p: Box<RawValue>| async move { Ok::<_, Rejection>(p) },
        );
        server.on_request("s2c", |conn: ServerConnection, c: Count| async move {
            let payload = Small {
                a: 1,
                b: "hello".into(),
            };
            let (conn, payload) = (&conn, &payload);
            // `inflight` lanes, each sending its share one request after another: as many in
            // flight as the floor keeps, with no future (and no allocation) per request in
            // this harness, which is not what the scenario measures.
            let lanes = c.inflight.clamp(1, c.count.max(1));
            let mut running: FuturesUnordered<_> = (0..lanes)
                .map(|lane| async move {
                    let share = c.count / lanes + usize::from(lane < c.count % lanes);
                    for _ in 0..share {
                        conn.send::<_, Small>("echo", payload).await?;
                    }
                    Ok::<_, roomwire::Error>(())
                })
                .collect();
            while let Some(lane) = running.next().await {
                lane?;
            }
            Ok::<_, roomwire::Error>(())
        });
        server.on_request("fanout", |conn: ServerConnection, c: Count| async move {
            let payload = "x".repeat(c.size);
            let room = conn.server().to("fan");
            for _ in 0..c.count {
                room.emit("news", &payload)?;
            }
            Ok::<_, roomwire::Error>(())
        });
        server.serve(announce().await).await.unwrap();
    });
}

/// Connections registered for fan-out: their outbound queues.
type Members = Arc<Mutex<Vec<mpsc::Sender<Utf8Bytes>>>>;

type FloorSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

pub fn serve_floor(json: bool) {
    let members: Members = Arc::default();
    serve_floor_with(move |ws| floor_connection(ws, members.clone(), json));
}

/// The floors' accept loop: each connection tuned as roomwire's are (TCP_NODELAY, a small
/// read buffer, batched writes), upgraded and handed to `connection` in a task of its own.
fn serve_floor_with<F, Fut>(connection: F)
where
    F: Fn(FloorSocket) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let connection = Arc::new(connection);
    runtime().block_on(async {
        let listener = announce().await;
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let connection = connection.clone();
            tokio::spawn(async move {
                stream.set_nodelay(true).unwrap();
                let config = WebSocketConfig::default()
                    .read_buffer_size(4096)
                    .write_buffer_size(64 * 1024);
                if let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                {
                    connection(ws).await;
                }
            });
        }
    });
}

const HANDSHAKE_OK: &str = r#"{"n":"_r","i":"h","p":{"id":"floor","payload":null},"e":null}"#;

/// The envelope, for the JSON floor.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    n: &'a str,
    #[serde(borrow, default)]
    p: Option<&'a RawValue>,
    #[serde(borrow, default)]
    i: Option<&'a RawValue>,
}

/// The JSON floor's answer to an echo request: parsed, deserialized, serialized again.
fn json_echo(text: &str) -> Option<Utf8Bytes> {
    let env: Envelope<'_> = serde_json::from_str(text).ok()?;
    if env.n != "echo" {
        return None;
    }
    let small: Small = serde_json::from_str(env.p?.get()).ok()?;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(br#"{"n":"_r","i":"#);
    out.extend_from_slice(env.i?.get().as_bytes());
    out.extend_from_slice(br#","p":"#);
    serde_json::to_writer(&mut out, &small).ok()?;
    out.extend_from_slice(br#","e":null}"#);
    Utf8Bytes::try_from(out).ok()
}

/// The JSON floor's request to the client: encoded each time, with a fresh id.
fn json_request(id: u64, pending: &mut HashSet<u64>) -> Utf8Bytes {
    pending.insert(id);
    encode_request(id)
}

/// A server-to-client request `echo` with id `id`, encoded with serde_json each time.
fn encode_request(id: u64) -> Utf8Bytes {
    let small = Small {
        a: 1,
        b: "hello".into(),
    };
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(br#"{"n":"echo","p":"#);
    serde_json::to_writer(&mut out, &small).unwrap();
    out.extend_from_slice(format!(r#","i":{id}}}"#).as_bytes());
    Utf8Bytes::try_from(out).unwrap()
}

/// The counts of a control request (`s2c`, `fanout`): its payload.
fn control_count(text: &str) -> Count {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::from_value(v["p"].clone()).ok())
        .expect("a control request with counts")
}

/// The JSON floor's handling of a response: parsed, matched, its payload deserialized.
fn json_response(text: &str, pending: &mut HashSet<u64>) -> bool {
    let Ok(env) = serde_json::from_str::<Envelope<'_>>(text) else {
        return false;
    };
    if env.n != "_r" {
        return false;
    }
    let id = env.i.and_then(|i| i.get().parse::<u64>().ok());
    let small = env
        .p
        .and_then(|p| serde_json::from_str::<Small>(p.get()).ok());
    matches!(
        (id.map(|id| pending.remove(&id)), small),
        (Some(true), Some(_))
    )
}

async fn floor_connection(mut ws: FloorSocket, members: Members, json: bool) {
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(4096);
    // Scenario 2: responses still awaited, and requests still to send.
    let mut s2c_left = 0usize;
    let mut s2c_unsent = 0usize;
    let mut s2c_frame = Utf8Bytes::from_static("");
    // The JSON floor's pending ids and its id counter.
    let mut pending = HashSet::new();
    let mut next_id = 0u64;
    let mut request = |frame: &Utf8Bytes, pending: &mut HashSet<u64>| {
        if json {
            next_id += 1;
            json_request(next_id, pending)
        } else {
            frame.clone()
        }
    };
    loop {
        tokio::select! {
            msg = ws.next() => {
                let Some(Ok(Message::Text(mut text))) = msg else { return };
                // Handle every frame already read, then flush once.
                loop {
                    let bytes = text.as_str();
                    if bytes.starts_with(r#"{"n":"_h""#) {
                        if !bytes.contains("\"control\"") {
                            members.lock().unwrap().push(tx.clone());
                        }
                        if ws.feed(Message::text(HANDSHAKE_OK)).await.is_err() { return; }
                    } else if bytes.starts_with(r#"{"n":"_r""#) {
                        // A response to the floor's own request (scenario 2).
                        if json && !json_response(bytes, &mut pending) {
                            return;
                        }
                        s2c_left -= 1;
                        if s2c_unsent > 0 {
                            s2c_unsent -= 1;
                            let frame = request(&s2c_frame, &mut pending);
                            if ws.feed(Message::Text(frame)).await.is_err() { return; }
                        }
                        if s2c_left == 0
                            && ws.feed(Message::text(r#"{"n":"_r","i":"c","p":null,"e":null}"#)).await.is_err()
                        {
                            return;
                        }
                    } else if bytes.starts_with(r#"{"n":"s2c""#) {
                        let c = control_count(bytes);
                        let first = c.inflight.min(c.count);
                        s2c_left = c.count;
                        s2c_unsent = c.count - first;
                        s2c_frame = Utf8Bytes::from(r#"{"n":"echo","p":{"a":1,"b":"hello"},"i":7}"#);
                        for _ in 0..first {
                            let frame = request(&s2c_frame, &mut pending);
                            if ws.feed(Message::Text(frame)).await.is_err() { return; }
                        }
                    } else if bytes.starts_with(r#"{"n":"fanout""#) {
                        let c = control_count(bytes);
                        let frame = Utf8Bytes::from(format!(r#"{{"n":"news","p":"{}"}}"#, "x".repeat(c.size)));
                        let targets = members.lock().unwrap().clone();
                        for _ in 0..c.count {
                            for t in &targets {
                                let _ = t.try_send(frame.clone());
                            }
                        }
                        if ws.feed(Message::text(r#"{"n":"_r","i":"f","p":null,"e":null}"#)).await.is_err() { return; }
                    } else if json {
                        let Some(answer) = json_echo(bytes) else { return };
                        if ws.feed(Message::Text(answer)).await.is_err() { return; }
                    } else {
                        // Echo: the request frame itself is the answer.
                        if ws.feed(Message::Text(text)).await.is_err() { return; }
                    }
                    match ws.next().now_or_never() {
                        Some(Some(Ok(Message::Text(t)))) => text = t,
                        Some(Some(Ok(_))) | None => break,
                        Some(_) => return,
                    }
                }
                if ws.flush().await.is_err() { return; }
            }
            Some(frame) = rx.recv() => {
                if ws.feed(Message::Text(frame)).await.is_err() { return; }
                while let Ok(frame) = rx.try_recv() {
                    if ws.feed(Message::Text(frame)).await.is_err() { return; }
                }
                if ws.flush().await.is_err() { return; }
            }
        }
    }
}

/// A third reference, for the server-to-client scenario only (`--serve floor_json_await`,
/// run by hand: see docs/BENCHMARKS.md): the JSON floor whose requests are *awaited*, in a
/// straightforward hand-written way. Each request registers a tokio oneshot in a
/// shared table of pending ids (a mutex: a sender may run on any task) before it is queued
/// for the writer; the connection's reader completes it; the sender — one of `inflight`
/// lanes polled together, as in roomwire's harness — awaits it. No timeouts, no close
/// handling. Against it, roomwire's ratio shows what the framework costs beyond awaiting.
pub fn serve_floor_awaiting() {
    serve_floor_with(awaiting_connection);
}

type AwaitedReplies =
    Arc<Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<Small>>>>;

async fn awaiting_connection(mut ws: FloorSocket) {
    let pending: AwaitedReplies = Arc::default();
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let (out, mut queued) = mpsc::unbounded_channel::<Utf8Bytes>();
    let mut lanes = FuturesUnordered::new();
    let mut control_pending = false;
    loop {
        tokio::select! {
            msg = ws.next() => {
                let Some(Ok(Message::Text(mut text))) = msg else { return };
                loop {
                    let bytes = text.as_str();
                    if bytes.starts_with(r#"{"n":"_h""#) {
                        if ws.feed(Message::text(HANDSHAKE_OK)).await.is_err() { return; }
                    } else if bytes.starts_with(r#"{"n":"_r""#) {
                        let Ok(env) = serde_json::from_str::<Envelope<'_>>(bytes) else { return };
                        let id = env.i.and_then(|i| i.get().parse::<u64>().ok());
                        let small = env.p.and_then(|p| serde_json::from_str::<Small>(p.get()).ok());
                        let waiter = id.and_then(|id| pending.lock().unwrap().remove(&id));
                        match (waiter, small) {
                            (Some(waiter), Some(small)) => { let _ = waiter.send(small); }
                            _ => return,
                        }
                    } else if bytes.starts_with(r#"{"n":"s2c""#) {
                        let c = control_count(bytes);
                        let count = c.count;
                        let n = c.inflight.clamp(1, count.max(1));
                        for lane in 0..n {
                            let share = count / n + usize::from(lane < count % n);
                            let (pending, next_id, out) = (pending.clone(), next_id.clone(), out.clone());
                            lanes.push(async move {
                                for _ in 0..share {
                                    let id = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    let (tx, rx) = tokio::sync::oneshot::channel();
                                    pending.lock().unwrap().insert(id, tx);
                                    let _ = out.send(encode_request(id));
                                    let _reply: Small = rx.await.unwrap();
                                }
                            });
                        }
                        control_pending = true;
                    } else {
                        return;
                    }
                    match ws.next().now_or_never() {
                        Some(Some(Ok(Message::Text(t)))) => text = t,
                        Some(Some(Ok(_))) | None => break,
                        Some(_) => return,
                    }
                }
                if ws.flush().await.is_err() { return; }
            }
            Some(frame) = queued.recv() => {
                if ws.feed(Message::Text(frame)).await.is_err() { return; }
                while let Ok(frame) = queued.try_recv() {
                    if ws.feed(Message::Text(frame)).await.is_err() { return; }
                }
                if ws.flush().await.is_err() { return; }
            }
            Some(()) = lanes.next(), if !lanes.is_empty() => {
                if lanes.is_empty() && control_pending {
                    control_pending = false;
                    if ws.send(Message::text(r#"{"n":"_r","i":"c","p":null,"e":null}"#)).await.is_err() { return; }
                }
            }
        }
    }
}
