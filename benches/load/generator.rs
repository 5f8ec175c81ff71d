//! The load generator: drives a server process over 127.0.0.1 and reads its CPU time and
//! memory around each measured phase.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::measure::{cpu_time, percentile, rss, Cpu};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What one scenario measured on one server.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Operations performed (requests, deliveries, handshakes, connections).
    pub ops: u64,
    /// Server CPU time over the phase.
    pub cpu: Cpu,
    /// Wall time of the phase (for fan-out: until the last member had everything).
    pub wall: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// Server RSS growth (idle memory).
    pub rss_delta: u64,
}

impl Outcome {
    /// Server CPU (user + kernel) per operation, in microseconds.
    pub fn cpu_per_op_us(&self) -> f64 {
        self.cpu.total().as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }
    /// The part of it spent in the kernel (syscalls, TCP).
    pub fn kernel_per_op_us(&self) -> f64 {
        self.cpu.kernel.as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

async fn connect(addr: SocketAddr, payload: &str) -> Ws {
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}"), Some(config), true)
            .await
            .expect("connect");
    ws.send(Message::text(format!(
        r#"{{"n":"_h","i":"h","p":{payload}}}"#
    )))
    .await
    .unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains(r#""i":"h""#) => return ws,
            Some(Ok(_)) => continue,
            other => panic!("handshake failed: {other:?}"),
        }
    }
}

async fn connect_many(addr: SocketAddr, n: usize, payload: &'static str) -> Vec<Ws> {
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            connect(addr, payload).await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The raw text of the value of `"i"` in `frame`.
fn raw_id(frame: &str) -> Option<&str> {
    let start = frame.find(r#""i":"#)? + 4;
    let rest = &frame[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Scenario 1: `conns` connections, `inflight` requests named `name` in flight each,
/// `per_conn` requests each.
pub async fn request_response(
    addr: SocketAddr,
    pid: u32,
    name: &'static str,
    conns: usize,
    inflight: usize,
    per_conn: usize,
) -> Outcome {
    let sockets = connect_many(addr, conns, "null").await;
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in sockets {
        tasks.push(tokio::spawn(async move {
            let frames: Vec<String> = (0..inflight)
                .map(|slot| format!(r#"{{"n":"{name}","p":{{"a":1,"b":"hello"}},"i":"k{slot}"}}"#))
                .collect();
            let mut sent_at = vec![Instant::now(); inflight];
            let mut latencies = Vec::with_capacity(per_conn);
            let mut sent = 0;
            for (slot, frame) in frames.iter().enumerate().take(per_conn) {
                sent_at[slot] = Instant::now();
                ws.feed(Message::text(frame.as_str())).await.unwrap();
                sent += 1;
            }
            ws.flush().await.unwrap();
            while latencies.len() < per_conn {
                let mut next = ws.next().await;
                loop {
                    let Some(Ok(Message::Text(t))) = next else {
                        panic!("lost the connection: {next:?}")
                    };
                    let slot: usize = raw_id(&t)
                        .and_then(|id| id.trim_matches('"').strip_prefix('k'))
                        .and_then(|n| n.parse().ok())
                        .expect("a response with our id");
                    latencies.push(sent_at[slot].elapsed());
                    if sent < per_conn {
                        sent_at[slot] = Instant::now();
                        ws.feed(Message::text(frames[slot].as_str())).await.unwrap();
                        sent += 1;
                    }
                    match ws.next().now_or_never() {
                        Some(more) => next = more,
                        None => break,
                    }
                }
                ws.flush().await.unwrap();
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let wall = t0.elapsed();
    let cpu = cpu_time(pid) - cpu0;
    latencies.sort();
    Outcome {
        ops: latencies.len() as u64,
        cpu,
        wall,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        rss_delta: 0,
    }
}

/// Scenario 2: the server sends `per_conn` requests to each of `conns` clients, `inflight`
/// at a time; the clients answer each at once.
pub async fn server_to_client(
    addr: SocketAddr,
    pid: u32,
    conns: usize,
    inflight: usize,
    per_conn: usize,
) -> Outcome {
    let sockets = connect_many(addr, conns, "null").await;
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in sockets {
        tasks.push(tokio::spawn(async move {
            let control = format!(
                r#"{{"n":"s2c","p":{{"count":{per_conn},"inflight":{inflight}}},"i":"c"}}"#
            );
            ws.send(Message::text(control)).await.unwrap();
            loop {
                let mut next = ws.next().await;
                loop {
                    let Some(Ok(Message::Text(t))) = next else {
                        panic!("lost the connection: {next:?}")
                    };
                    let id = raw_id(&t).expect("an id");
                    if id == r#""c""# {
                        assert!(!t.contains(r#""e":{"#), "s2c failed: {t}");
                        return;
                    }
                    let answer =
                        format!(r#"{{"n":"_r","i":{id},"p":{{"a":1,"b":"hello"}},"e":null}}"#);
                    ws.feed(Message::text(answer)).await.unwrap();
                    match ws.next().now_or_never() {
                        Some(more) => next = more,
                        None => break,
                    }
                }
                ws.flush().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Outcome {
        ops: (conns * per_conn) as u64,
        cpu: cpu_time(pid) - cpu0,
        wall: t0.elapsed(),
        ..Outcome::default()
    }
}

/// Scenario 3: one room of `members`; the server broadcasts `count` messages of `size` bytes.
pub async fn fan_out(
    addr: SocketAddr,
    pid: u32,
    members: usize,
    count: usize,
    size: usize,
) -> Outcome {
    let sockets = connect_many(addr, members, "null").await;
    let mut control = connect(addr, r#""control""#).await;
    let mut tasks = Vec::new();
    for mut ws in sockets {
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < count {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) if t.starts_with(r#"{"n":"news""#) => got += 1,
                    Some(Ok(_)) => {}
                    other => panic!("member lost: {other:?}"),
                }
            }
            Instant::now()
        }));
    }
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    control
        .send(Message::text(format!(
            r#"{{"n":"fanout","p":{{"count":{count},"size":{size}}},"i":"f"}}"#
        )))
        .await
        .unwrap();
    let mut last = t0;
    for t in tasks {
        last = last.max(t.await.unwrap());
    }
    let cpu = cpu_time(pid) - cpu0;
    Outcome {
        ops: (members * count) as u64,
        cpu,
        wall: last - t0,
        ..Outcome::default()
    }
}

/// Scenario 4: `n` connections opened, handshaked and closed, `concurrency` at a time.
pub async fn handshakes(addr: SocketAddr, pid: u32, n: usize, concurrency: usize) -> Outcome {
    let gate = Arc::new(Semaphore::new(concurrency));
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let mut ws = connect(addr, "null").await;
            ws.close(None).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Outcome {
        ops: n as u64,
        cpu: cpu_time(pid) - cpu0,
        wall: t0.elapsed(),
        ..Outcome::default()
    }
}

/// Scenario 5: server RSS growth per handshaked, idle connection.
pub async fn idle_memory(addr: SocketAddr, pid: u32, n: usize) -> Outcome {
    // A few connections first, so one-time allocations are not counted per connection.
    let warm = connect_many(addr, 64, "null").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss(pid);
    let t0 = Instant::now();
    let sockets = connect_many(addr, n, "null").await;
    let wall = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss(pid);
    drop(sockets);
    drop(warm);
    Outcome {
        ops: n as u64,
        wall,
        rss_delta: after.saturating_sub(before),
        ..Outcome::default()
    }
}
