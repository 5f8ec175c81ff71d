//! Micro-benchmarks of the per-message hot paths: envelope decode (fast scanner and the
//! serde_json reference), frame encode, and request dispatch (decode, route, typed handler,
//! encode, queue) without a socket.
//!
//! `cargo bench --bench hot_paths --features internals`

use criterion::{criterion_group, criterion_main, Criterion};
use roomwire::internals::{self, Dispatcher};
use roomwire::{Rejection, Server, ServerConnection};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Serialize, Deserialize, Clone)]
struct Small {
    a: i64,
    b: String,
}

const REQUEST: &str = r#"{"n":"echo","p":{"a":1,"b":"hello"},"i":"zg5b"}"#;
const RESPONSE: &str = r#"{"n":"_r","i":7,"p":{"a":1,"b":"hello"},"e":null}"#;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, frame) in [("request", REQUEST), ("response", RESPONSE)] {
        group.bench_function(format!("{name}/scanner"), |b| {
            b.iter(|| internals::decode(black_box(frame)))
        });
        group.bench_function(format!("{name}/serde_json"), |b| {
            b.iter(|| internals::decode_reference(black_box(frame)))
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let small = Small {
        a: 1,
        b: "hello".into(),
    };
    let mut group = c.benchmark_group("encode");
    group.bench_function("request", |b| {
        b.iter(|| internals::encode_request(black_box("echo"), black_box(&small), 7))
    });
    group.bench_function("response", |b| {
        b.iter(|| internals::encode_response(black_box("\"zg5b\""), black_box(&small)))
    });
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let server = Server::builder().build();
    server.on_request("echo", |_c: ServerConnection, p: Small| async move {
        Ok::<_, Rejection>(p)
    });
    let mut dispatcher = Dispatcher::new(&server);
    c.bench_function("dispatch/request_to_queued_response", |b| {
        b.iter(|| assert_eq!(dispatcher.dispatch(black_box(REQUEST)), 1))
    });
}

criterion_group!(benches, decode, encode, dispatch);
criterion_main!(benches);
