//! Requests and responses in both directions (docs/PROTOCOL.md, "Requests and responses").

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{start_handing_out, start_with, within, Raw};
use roomwire::{
    CloseCode, CloseInfo, Error, NotifyError, Rejection, SendError, Server, ServerConnection,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

#[tokio::test]
async fn handlers_resolve_reject_and_refuse_payloads_that_do_not_fit() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_request(
            "div",
            |_c: ServerConnection, (a, b): (i64, i64)| async move {
                if b == 0 {
                    return Err(Rejection::new("DivideByZero", "b must not be 0")
                        .with_data(json!({"a": a})));
                }
                Ok(a / b)
            },
        );
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(
        raw.request("div", json!("zg5b"), json!([6, 3])).await,
        json!({"n": "_r", "i": "zg5b", "p": 2, "e": null})
    );
    assert_eq!(
        raw.request("div", json!("a2"), json!([6, 0])).await,
        json!({"n": "_r", "i": "a2", "e": {"name": "DivideByZero", "message": "b must not be 0", "data": {"a": 6}}})
    );
    let bad = raw.request("div", json!(77), json!("six")).await;
    assert_eq!(bad["i"], 77);
    assert_eq!(bad["e"]["name"], "InvalidPayload");
}

#[tokio::test]
async fn what_a_handler_sends_reaches_the_peer_before_its_response() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_request("count", |c: ServerConnection, n: u32| async move {
            for i in 0..n {
                c.send_without_response("step", &i)?;
                // Some steps while the handler is still pending, not only on its first poll.
                tokio::task::yield_now().await;
            }
            c.send_without_response("step", &n)?;
            Ok::<_, Error>("done")
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    for (id, n) in [("first", 0u32), ("second", 3)] {
        raw.send(json!({"n": "count", "p": n, "i": id})).await;
        for i in 0..=n {
            assert_eq!(raw.recv().await, json!({"n": "step", "p": i}), "{id}");
        }
        assert_eq!(
            raw.recv().await,
            json!({"n": "_r", "i": id, "p": "done", "e": null})
        );
    }
}

#[tokio::test]
async fn unknown_names_get_no_handler_at_once_and_unknown_reserved_names_unknown_message() {
    let (_server, addr) = start_with(Server::builder(), |_| {}).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let reply = raw.request("missing", json!("m1"), Value::Null).await;
    assert_eq!(
        reply,
        json!({"n": "_r", "i": "m1", "e": {"name": "NoHandler", "message": "no handler for \"missing\""}})
    );
    raw.send(json!({"n": "_x"})).await; // dropped: no id
    let reply = raw.request("_x", json!("m2"), Value::Null).await;
    assert_eq!(reply["i"], "m2");
    assert_eq!(reply["e"]["name"], "UnknownMessage");
}

#[tokio::test]
async fn fire_and_forget_reaches_its_handler_and_gets_no_response() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_server, addr) = start_with(Server::builder(), move |s| {
        s.on_request("note", move |_c: ServerConnection, text: String| {
            let tx = tx.clone();
            async move {
                tx.send(text).unwrap();
                Ok::<_, Rejection>("ignored")
            }
        });
        s.on_request("echo", |_c: ServerConnection, v: Value| async move {
            Ok::<_, Rejection>(v)
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    raw.send(json!({"n": "note", "p": "hello"})).await;
    assert_eq!(within(rx.recv()).await.unwrap(), "hello");
    // The next frame is the echo's response: nothing was sent for the note.
    assert_eq!(raw.request("echo", json!("e1"), json!(1)).await["i"], "e1");
}

#[tokio::test]
async fn concurrent_requests_are_answered_out_of_order() {
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let (_server, addr) = start_with(Server::builder(), move |s| {
        s.on_request("slow", move |_c: ServerConnection, (): ()| {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                Ok::<_, Rejection>("slow")
            }
        });
        s.on_request("fast", |_c: ServerConnection, (): ()| async move {
            Ok::<_, Rejection>("fast")
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    raw.send(json!({"n": "slow", "i": "s"})).await;
    let fast = raw.request("fast", json!("f"), Value::Null).await;
    assert_eq!(
        (fast["i"].as_str(), fast["p"].as_str()),
        (Some("f"), Some("fast"))
    );
    release.notify_one();
    let slow = raw.recv().await;
    assert_eq!(
        (slow["i"].as_str(), slow["p"].as_str()),
        (Some("s"), Some("slow"))
    );
}

#[tokio::test]
async fn requests_past_the_in_flight_limit_are_refused_and_the_connection_stays() {
    // Permits accumulate, so releasing never races the handlers' start.
    let release = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (gate, count) = (release.clone(), started.clone());
    let (_server, addr) = start_with(Server::builder().max_requests_in_flight(2), move |s| {
        s.on_request("wait", move |_c: ServerConnection, n: u32| {
            let (gate, count) = (gate.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
                Ok::<_, Rejection>(n)
            }
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    raw.send(json!({"n": "wait", "i": 1, "p": 1})).await;
    raw.send(json!({"n": "wait", "i": 2, "p": 2})).await;
    raw.send(json!({"n": "wait", "p": 9})).await; // fire-and-forget past the limit: dropped
    let refused = raw.request("wait", json!(3), json!(3)).await;
    assert_eq!(refused["i"], 3);
    assert_eq!(refused["e"]["name"], "TooManyRequests");
    release.add_permits(2);
    let mut answered = vec![
        raw.recv().await["p"].as_u64().unwrap(),
        raw.recv().await["p"].as_u64().unwrap(),
    ];
    answered.sort();
    assert_eq!(answered, [1, 2]);
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "the dropped message never ran"
    );
    // Below the limit again: accepted.
    raw.send(json!({"n": "wait", "i": 4, "p": 4})).await;
    release.add_permits(1);
    assert_eq!(raw.recv().await["p"], 4);
}

#[tokio::test]
async fn a_panicking_handler_rejects_with_internal_error_and_the_connection_stays() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_request("boom", |_c: ServerConnection, (): ()| async move {
            if true {
                panic!("boom");
            }
            Ok::<(), Rejection>(())
        });
        s.on_request("ok", |_c: ServerConnection, (): ()| async move {
            Ok::<_, Rejection>(true)
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(
        raw.request("boom", json!(1), Value::Null).await["e"]["name"],
        "InternalError"
    );
    assert_eq!(raw.request("ok", json!(2), Value::Null).await["p"], true);
}

#[tokio::test]
async fn server_send_awaits_typed_replies_out_of_order() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    let c1 = conn.clone();
    let first = tokio::spawn(async move { c1.send::<_, String>("q", &1).await });
    let c2 = conn.clone();
    let second = tokio::spawn(async move { c2.send::<_, String>("q", &2).await });
    let a = raw.recv().await;
    let b = raw.recv().await;
    assert_eq!(a["n"], "q");
    assert!(a["i"].is_u64() && b["i"].is_u64() && a["i"] != b["i"]);
    // Answer in reverse order, each with its own payload.
    for req in [&b, &a] {
        raw.send(json!({"n": "_r", "i": req["i"], "p": format!("answer {}", req["p"]), "e": null}))
            .await;
    }
    assert_eq!(within(first).await.unwrap().unwrap(), "answer 1");
    assert_eq!(within(second).await.unwrap().unwrap(), "answer 2");
    assert_eq!(conn.pending_requests(), 0);
}

#[tokio::test]
async fn server_send_reports_the_clients_rejection_and_type_mismatches() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    let c = conn.clone();
    let rejected = tokio::spawn(async move { c.send::<_, Value>("q", &()).await });
    let req = raw.recv().await;
    raw.send(json!({"n": "_r", "i": req["i"], "e": {"name": "Nope", "message": "not today"}}))
        .await;
    match within(rejected).await.unwrap() {
        Err(SendError::Rejected(r)) => assert_eq!((r.name(), r.message()), ("Nope", "not today")),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let c = conn.clone();
    let mismatch = tokio::spawn(async move { c.send::<_, u32>("q", &()).await });
    let req = raw.recv().await;
    raw.send(json!({"n": "_r", "i": req["i"], "p": "not a number"}))
        .await;
    assert!(matches!(
        within(mismatch).await.unwrap(),
        Err(SendError::Decode(_))
    ));
    assert_eq!(conn.pending_requests(), 0);
}

#[tokio::test]
async fn a_request_times_out_while_the_socket_is_stalled_by_a_peer_that_does_not_read() {
    let (_server, addr, mut conns) =
        start_handing_out(Server::builder().outbound_queue(100_000)).await;
    let (_never_reads, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    // Far more than the socket buffers on both ends hold: the connection's writer stalls,
    // and the request below stays queued behind these frames.
    let big = "x".repeat(64 * 1024);
    for _ in 0..400 {
        conn.send_without_response("flood", &big).unwrap();
    }
    let outcome = within(conn.send_timeout::<_, Value>("q", &(), Duration::from_millis(200))).await;
    assert!(
        matches!(outcome, Err(SendError::Timeout { .. })),
        "expected a timeout, got {outcome:?}"
    );
    assert_eq!(conn.pending_requests(), 0);
}

#[tokio::test]
async fn handlers_registered_or_replaced_while_connected_take_effect_at_once() {
    let (server, addr) = start_with(Server::builder(), |_| {}).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let reply = raw.request("late", json!(1), Value::Null).await;
    assert_eq!(reply["e"]["name"], "NoHandler", "{reply}");
    server.on_request("late", |_c: ServerConnection, (): ()| async move {
        Ok::<_, Rejection>("first")
    });
    let reply = raw.request("late", json!(2), Value::Null).await;
    assert_eq!(reply["p"], "first", "{reply}");
    server.on_request("late", |_c: ServerConnection, (): ()| async move {
        Ok::<_, Rejection>("second")
    });
    let reply = raw.request("late", json!(3), Value::Null).await;
    assert_eq!(reply["p"], "second", "{reply}");
}

#[tokio::test]
async fn a_late_response_after_the_timeout_is_ignored_and_nothing_leaks() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    let c = conn.clone();
    let timed_out = tokio::spawn(async move {
        c.send_timeout::<_, Value>("slow", &(), Duration::from_millis(100))
            .await
    });
    let req = raw.recv().await;
    match within(timed_out).await.unwrap() {
        Err(SendError::Timeout { name, timeout }) => {
            assert_eq!(name, "slow");
            assert_eq!(timeout, Duration::from_millis(100));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(conn.pending_requests(), 0);
    // The late response, a duplicate and an unknown id: all ignored, the connection stays.
    raw.send(json!({"n": "_r", "i": req["i"], "p": "late"}))
        .await;
    raw.send(json!({"n": "_r", "i": req["i"], "p": "late again"}))
        .await;
    raw.send(json!({"n": "_r", "i": "nobody", "p": 1})).await;
    let c = conn.clone();
    let next = tokio::spawn(async move { c.send::<_, String>("q", &()).await });
    let req2 = raw.recv().await;
    raw.send(json!({"n": "_r", "i": req2["i"], "p": "fresh"}))
        .await;
    assert_eq!(within(next).await.unwrap().unwrap(), "fresh");
    assert_eq!(conn.pending_requests(), 0);
}

#[tokio::test]
async fn a_dropped_send_future_leaves_nothing_pending() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    let c = conn.clone();
    let task = tokio::spawn(async move { c.send::<_, Value>("q", &()).await });
    let _ = raw.recv().await;
    assert_eq!(conn.pending_requests(), 1);
    task.abort();
    let _ = task.await;
    assert_eq!(conn.pending_requests(), 0);
}

#[tokio::test]
async fn disconnect_rejects_everything_pending() {
    let (closed_tx, closed_rx) = oneshot::channel();
    let closed_tx = std::sync::Mutex::new(Some(closed_tx));
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let server = _server.clone();
    server.on_disconnect(move |conn: ServerConnection, info: CloseInfo| {
        let tx = closed_tx.lock().unwrap().take();
        async move {
            if let Some(tx) = tx {
                let _ = tx.send((info, conn.pending_requests()));
            }
        }
    });
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    let mut waiting = Vec::new();
    for i in 0..5 {
        let c = conn.clone();
        waiting.push(tokio::spawn(
            async move { c.send::<_, Value>("q", &i).await },
        ));
    }
    for _ in 0..5 {
        raw.recv().await;
    }
    raw.close().await;
    for w in waiting {
        assert!(matches!(
            within(w).await.unwrap(),
            Err(SendError::Disconnected)
        ));
    }
    let (info, pending) = within(closed_rx).await.unwrap();
    assert_eq!(
        (info.code, info.reason.as_str()),
        (CloseCode::NORMAL, "bye")
    );
    assert_eq!(pending, 0);
    assert!(matches!(
        conn.send::<_, Value>("q", &()).await,
        Err(SendError::Disconnected)
    ));
    assert!(matches!(
        conn.send_without_response("q", &()),
        Err(NotifyError::Disconnected)
    ));
}

#[tokio::test]
async fn send_without_response_has_no_id_and_close_uses_the_given_code() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    conn.send_without_response("news", &json!({"x": 1}))
        .unwrap();
    assert_eq!(raw.recv().await, json!({"n": "news", "p": {"x": 1}}));
    conn.close(CloseCode::from(4242), "go away");
    let (code, reason, _) = raw.recv_close().await;
    assert_eq!((code, reason.as_str()), (4242, "go away"));
}

#[tokio::test]
async fn sending_before_the_handshake_is_accepted_is_refused() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_server, addr) = start_with(Server::builder(), move |s| {
        s.on_handshake(move |conn: ServerConnection, hs: roomwire::Handshake| {
            let tx = tx.clone();
            async move {
                let sent = conn.send_without_response("early", &()).unwrap_err();
                let asked = conn.send::<_, Value>("early", &()).await.unwrap_err();
                tx.send((sent.name(), asked.name())).unwrap();
                hs.resolve(())
            }
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(
        within(rx.recv()).await.unwrap(),
        ("HandshakePending", "HandshakePending")
    );
    // Nothing was sent before the handshake response: the next frame answers this ping.
    assert_eq!(raw.request("_p", json!("p"), Value::Null).await["i"], "p");
}

#[tokio::test]
async fn a_close_code_not_allowed_on_the_wire_is_sent_as_1000() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    conn.close(CloseCode::ABNORMAL, "not a sendable code");
    let (code, reason, _) = raw.recv_close().await;
    assert_eq!((code, reason.as_str()), (1000, "not a sendable code"));
}
