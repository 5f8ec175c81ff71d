//! Broadcast fan-out: the server-side cost of `to(room).emit(..)` (encode once, queue for
//! every member), against real member connections on 127.0.0.1 that keep reading.
//!
//! `cargo bench --bench broadcast`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use roomwire::{Server, ServerConnection};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

struct Room {
    server: Server,
    members: u64,
    received: Arc<AtomicU64>,
}

/// A server with `members` connections in the room "bench"; every client counts what it receives.
fn room(rt: &Runtime, members: u64) -> Room {
    rt.block_on(async {
        let server = Server::builder().outbound_queue(4096).build();
        server.on_connection(|c: ServerConnection| async move {
            c.join("bench").unwrap();
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = server.clone();
        tokio::spawn(async move { s.serve(listener).await });
        let received = Arc::new(AtomicU64::new(0));
        for _ in 0..members {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
                .await
                .unwrap();
            ws.send(Message::text(json!({"n": "_h", "i": 1}).to_string()))
                .await
                .unwrap();
            ws.next().await.unwrap().unwrap();
            let received = received.clone();
            tokio::spawn(async move {
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while server.room_size("bench") < members as usize {
            tokio::task::yield_now().await;
        }
        Room {
            server,
            members,
            received,
        }
    })
}

fn fan_out(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let payload = "x".repeat(1024);
    let mut group = c.benchmark_group("emit_1KiB");
    group.measurement_time(Duration::from_secs(5));
    for members in [100u64, 1000] {
        let room = room(&rt, members);
        group.throughput(Throughput::Elements(members));
        group.bench_function(BenchmarkId::from_parameter(members), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let expected = room.received.load(Ordering::Relaxed) + room.members;
                    let started = Instant::now();
                    let reached = room.server.to("bench").emit("news", &payload).unwrap();
                    spent += started.elapsed();
                    assert_eq!(reached as u64, room.members);
                    // Untimed: let the members drain so queues never fill up.
                    rt.block_on(async {
                        while room.received.load(Ordering::Relaxed) < expected {
                            tokio::task::yield_now().await;
                        }
                    });
                }
                spent
            })
        });
        rt.block_on(room.server.close());
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
