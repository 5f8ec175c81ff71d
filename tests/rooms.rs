//! Rooms and group broadcasts.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, report_disconnects, start_handing_out, start_with, within, Raw};
use roomwire::{CloseInfo, Error, Handshake, JoinError, SendError, Server, ServerConnection};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

async fn server() -> (
    Server,
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<ServerConnection>,
) {
    start_handing_out(Server::builder()).await
}

/// Connects `n` raw clients; returns them with their server-side connections, in order.
async fn members(
    addr: std::net::SocketAddr,
    conns: &mut mpsc::UnboundedReceiver<ServerConnection>,
    n: usize,
) -> Vec<(Raw, ServerConnection)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (raw, p) = Raw::handshaked(addr, Value::Null).await;
        let conn = within(conns.recv()).await.unwrap();
        assert_eq!(&*conn.id(), p["id"].as_str().unwrap());
        out.push((raw, conn));
    }
    out
}

fn sorted(mut v: Vec<Arc<str>>) -> Vec<Arc<str>> {
    v.sort();
    v
}

/// The next frame `raw` receives must be `marker`: proves nothing else came before it.
async fn next_is(raw: &mut Raw, expected: Value) {
    assert_eq!(raw.recv().await, expected);
}

#[tokio::test]
async fn rooms_are_created_on_first_join_and_removed_on_last_leave() {
    let (server, addr, mut conns) = server().await;
    let m = members(addr, &mut conns, 2).await;
    let (a, b) = (m[0].1.clone(), m[1].1.clone());
    assert!(server.rooms().is_empty());
    a.join("red").unwrap();
    a.join("red").unwrap(); // idempotent
    a.join("blue").unwrap();
    b.join("red").unwrap();
    assert_eq!(
        sorted(server.rooms()),
        vec![Arc::from("blue"), Arc::from("red")]
    );
    assert_eq!(server.room_size("red"), 2);
    assert_eq!(sorted(a.rooms()), vec![Arc::from("blue"), Arc::from("red")]);
    assert_eq!(sorted(server.rooms_of(&a.id()).unwrap()), sorted(a.rooms()));
    let red: HashSet<Arc<str>> = server.room_members("red").iter().map(|c| c.id()).collect();
    assert_eq!(red, HashSet::from([a.id(), b.id()]));
    assert!(a.leave("blue"));
    assert!(!a.leave("blue"));
    assert_eq!(server.rooms(), vec![Arc::from("red")]);
    assert!(server.leave_all(&b.id()));
    assert_eq!(server.room_size("red"), 1);
    a.leave_all();
    assert!(server.rooms().is_empty() && a.rooms().is_empty());
    assert!(server.rooms_of("nobody").is_none());
}

#[tokio::test]
async fn emit_reaches_the_union_of_rooms_once_and_honours_except() {
    let (server, addr, mut conns) = server().await;
    let mut m = members(addr, &mut conns, 4).await;
    m[0].1.join("a").unwrap();
    m[0].1.join("b").unwrap(); // in both rooms: must get one copy
    m[1].1.join("a").unwrap();
    m[2].1.join("b").unwrap();
    // m[3] is in no room.
    let reached = server.to("a").to("b").emit("news", &1).unwrap();
    assert_eq!(reached, 3);
    let excluded = m[1].1.id();
    assert_eq!(
        server
            .to("a")
            .to("b")
            .except(&excluded)
            .emit("news", &2)
            .unwrap(),
        2
    );
    // From a member to the others: the sender is left out.
    assert_eq!(m[0].1.to("a").emit("news", &3).unwrap(), 1);
    server.broadcast("marker", &()).unwrap();
    let marker = json!({"n": "marker", "p": null});
    next_is(&mut m[0].0, json!({"n": "news", "p": 1})).await;
    next_is(&mut m[0].0, json!({"n": "news", "p": 2})).await;
    next_is(&mut m[0].0, marker.clone()).await;
    next_is(&mut m[1].0, json!({"n": "news", "p": 1})).await;
    next_is(&mut m[1].0, json!({"n": "news", "p": 3})).await;
    next_is(&mut m[1].0, marker.clone()).await;
    next_is(&mut m[2].0, json!({"n": "news", "p": 1})).await;
    next_is(&mut m[2].0, json!({"n": "news", "p": 2})).await;
    next_is(&mut m[2].0, marker.clone()).await;
    next_is(&mut m[3].0, marker).await;
}

#[tokio::test]
async fn members_still_handshaking_get_no_broadcast() {
    let gate = Arc::new(Semaphore::new(0));
    let open = gate.clone();
    let (server, addr) = start_with(Server::builder(), move |s| {
        s.on_handshake(move |conn: ServerConnection, hs: Handshake| {
            let open = open.clone();
            async move {
                conn.join("lobby").unwrap();
                open.acquire().await.unwrap().forget();
                hs.resolve(())
            }
        });
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    raw.send(json!({"n": "_h", "i": "h"})).await;
    eventually("the handshake joined the lobby", || {
        server.room_size("lobby") == 1
    })
    .await;
    assert_eq!(server.to("lobby").emit("early", &()).unwrap(), 0);
    let early = server
        .to("lobby")
        .send::<_, Value>("early", &())
        .await
        .unwrap();
    assert!(early.is_empty());
    gate.add_permits(1);
    let first = raw.recv().await;
    assert_eq!(
        first["i"], "h",
        "the handshake response comes first: {first}"
    );
    assert_eq!(server.to("lobby").emit("late", &()).unwrap(), 1);
    assert_eq!(raw.recv().await["n"], "late");
}

#[tokio::test]
async fn awaited_broadcast_reports_each_members_outcome() {
    let (server, addr, mut conns) = server().await;
    let mut m = members(addr, &mut conns, 4).await;
    for (_, c) in &m {
        c.join("team").unwrap();
    }
    let ids: Vec<Arc<str>> = m.iter().map(|(_, c)| c.id()).collect();
    let s = server.clone();
    let vote = tokio::spawn(async move {
        s.to("team")
            .timeout(Duration::from_millis(300))
            .send::<_, String>("vote", &"pizza?")
            .await
            .unwrap()
    });
    let mut requests = Vec::new();
    for (raw, _) in m.iter_mut() {
        requests.push(raw.recv().await);
    }
    // One encoded frame: the same id for everyone.
    assert!(requests.iter().all(|r| r == &requests[0]), "{requests:?}");
    assert_eq!(requests[0]["n"], "vote");
    let id = requests[0]["i"].clone();
    m[0].0.send(json!({"n": "_r", "i": id, "p": "yes"})).await;
    m[1].0
        .send(json!({"n": "_r", "i": id, "e": {"name": "Veto", "message": "no pizza"}}))
        .await;
    // m[2] stays silent: timeout. m[3] disconnects mid-way.
    let (raw3, _) = m.remove(3);
    raw3.close().await;
    let replies = within(vote).await.unwrap();
    assert_eq!(replies.len(), 4);
    let outcome = |i: usize| {
        replies
            .iter()
            .find(|r| r.connection.id() == ids[i])
            .map(|r| &r.result)
            .unwrap()
    };
    assert!(matches!(outcome(0), Ok(v) if v == "yes"));
    assert!(matches!(outcome(1), Err(SendError::Rejected(r)) if r.name() == "Veto"));
    assert!(matches!(outcome(2), Err(SendError::Timeout { .. })));
    assert!(matches!(outcome(3), Err(SendError::Disconnected)));
    for (_, c) in &m {
        assert_eq!(c.pending_requests(), 0);
    }
}

#[tokio::test]
async fn awaited_broadcast_streams_results_as_they_arrive() {
    let (server, addr, mut conns) = server().await;
    let mut m = members(addr, &mut conns, 2).await;
    for (_, c) in &m {
        c.join("pair").unwrap();
    }
    let mut stream = server
        .to("pair")
        .timeout(Duration::from_secs(30))
        .send_stream::<_, i64>("n", &())
        .unwrap();
    assert_eq!(stream.len(), 2);
    let req = m[1].0.recv().await;
    m[1].0.send(json!({"n": "_r", "i": req["i"], "p": 1})).await;
    let first = within(stream.next()).await.unwrap();
    assert_eq!(first.connection.id(), m[1].1.id());
    assert_eq!(first.result.unwrap(), 1);
    let req = m[0].0.recv().await;
    m[0].0.send(json!({"n": "_r", "i": req["i"], "p": 0})).await;
    let second = within(stream.next()).await.unwrap();
    assert_eq!(second.result.unwrap(), 0);
    assert!(within(stream.next()).await.is_none());
}

#[tokio::test]
async fn a_room_member_that_never_reads_is_closed_as_a_slow_consumer() {
    let (server, addr, mut conns) = start_handing_out(
        Server::builder()
            .outbound_queue(4)
            .close_timeout(Duration::from_millis(200)),
    )
    .await;
    let mut closed = report_disconnects(&server);
    let mut m = members(addr, &mut conns, 2).await;
    for (_, c) in &m {
        c.join("flood").unwrap();
    }
    let stuck = m[0].1.id();
    let big = "x".repeat(64 * 1024);
    let mut info = None;
    for _ in 0..10_000 {
        server.to("flood").emit("big", &big).unwrap();
        assert_eq!(m[1].0.recv().await["n"], "big");
        if let Ok(c) = closed.try_recv() {
            info = Some(c);
            break;
        }
    }
    let (conn, info) = info.expect("the slow consumer was never closed");
    assert_eq!(conn.id(), stuck);
    assert_eq!(info.code, 4210);
    assert_eq!(
        server.room_size("flood"),
        1,
        "it left the room; the reader stays"
    );
}

#[tokio::test]
async fn disconnect_hook_sees_the_rooms_then_the_connection_leaves_them_all() {
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (server, addr, mut conns) = server().await;
    server.on_disconnect(move |c: ServerConnection, _info: CloseInfo| {
        let tx = tx.clone();
        async move {
            // Joining from the hook is refused or undone: nothing is left behind.
            let _ = c.join("after");
            let _ = tx.send(sorted(c.rooms()));
        }
    });
    let mut m = members(addr, &mut conns, 1).await;
    let (raw, conn) = m.remove(0);
    conn.join("x").unwrap();
    conn.join("y").unwrap();
    raw.close().await;
    let rooms = within(seen.recv()).await.unwrap();
    assert!(rooms.contains(&Arc::from("x")) && rooms.contains(&Arc::from("y")));
    eventually("every room is gone", || server.rooms().is_empty()).await;
    assert!(conn.rooms().is_empty());
    assert!(matches!(conn.join("late"), Err(JoinError::Disconnected)));
    assert!(server.rooms().is_empty());
}

#[tokio::test]
async fn closing_a_room_removes_its_members_and_can_disconnect_them() {
    let (server, addr, mut conns) = server().await;
    let mut m = members(addr, &mut conns, 2).await;
    m[0].1.join("a").unwrap();
    m[1].1.join("a").unwrap();
    m[1].1.join("b").unwrap();
    assert_eq!(server.close_room("a").len(), 2);
    assert_eq!(server.rooms(), vec![Arc::from("b")]);
    assert_eq!(m[1].1.rooms(), vec![Arc::from("b")]);
    assert_eq!(server.disconnect_room("b"), 1);
    let (code, reason, _) = m[1].0.recv_close().await;
    assert_eq!((code, reason.as_str()), (4211, "Room closed"));
    assert!(server.rooms().is_empty());
}

#[tokio::test]
async fn set_id_during_the_handshake_keeps_room_membership() {
    let (server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
            conn.join("early").unwrap();
            conn.set_id("renamed").unwrap();
            hs.resolve(())
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let members: Vec<Arc<str>> = server
        .room_members("early")
        .iter()
        .map(|c| c.id())
        .collect();
    assert_eq!(members, vec![Arc::from("renamed")]);
    assert_eq!(
        server.to("early").except("renamed").emit("x", &()).unwrap(),
        0
    );
    assert_eq!(server.to("early").emit("x", &()).unwrap(), 1);
    assert_eq!(raw.recv().await["n"], "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_joining_leaving_and_broadcasting_leave_consistent_membership() {
    let (server, addr, mut conns) = server().await;
    let m = members(addr, &mut conns, 16).await;
    let mut readers = Vec::new();
    let mut handles = Vec::new();
    for (mut raw, conn) in m {
        // Each client keeps reading so no one becomes a slow consumer.
        readers.push(tokio::spawn(async move {
            while let Ok(Some(Ok(_))) = tokio::time::timeout(
                Duration::from_secs(5),
                futures_util::StreamExt::next(&mut raw.ws),
            )
            .await
            {}
        }));
        handles.push(conn);
    }
    let rooms = ["r0", "r1", "r2", "r3", "r4"];
    let mut tasks = Vec::new();
    for (t, conn) in handles.iter().cloned().enumerate() {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut x: u64 = t as u64 * 7919 + 1;
            for _ in 0..500 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let room = rooms[(x >> 33) as usize % rooms.len()];
                match (x >> 40) % 5 {
                    0 | 1 => conn.join(room).unwrap(),
                    2 => {
                        conn.leave(room);
                    }
                    3 => {
                        server
                            .to(room)
                            .to(rooms[(x >> 50) as usize % rooms.len()])
                            .emit("tick", &t)
                            .unwrap();
                    }
                    _ => {
                        conn.to(room).emit("tick", &t).unwrap();
                    }
                }
                if x % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    // Every connection's view agrees with the registry, and no room is empty.
    for room in server.rooms() {
        let members = server.room_members(&room);
        assert!(!members.is_empty(), "empty room {room} left behind");
        for c in &members {
            assert!(c.in_room(&room));
        }
    }
    for conn in &handles {
        for room in conn.rooms() {
            assert!(server.room_members(&room).iter().any(|c| c.same(conn)));
        }
    }
    assert_eq!(
        server.connections().len(),
        16,
        "nobody became a slow consumer"
    );
    within(server.close()).await;
    assert!(server.rooms().is_empty());
    for r in readers {
        let _ = within(r).await;
    }
}

#[tokio::test]
async fn a_relay_passes_a_raw_payload_on_exactly_as_it_came() {
    let (server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
            conn.join("lobby").unwrap();
            hs.resolve(())
        });
        s.on_request(
            "say",
            |conn: ServerConnection, msg: Box<serde_json::value::RawValue>| async move {
                conn.to("lobby").emit("said", &msg)?;
                Ok::<_, Error>(msg)
            },
        );
    })
    .await;
    let (mut speaker, _) = Raw::handshaked(addr, Value::Null).await;
    let (mut listener, _) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(server.room_size("lobby"), 2);
    // Spacing, key order, number forms and escapes that typed values would not keep.
    let payload = r#"{ "z": 1.50, "a": [1e3, -0.0], "s": "caf\u00e9 \"x\"" }"#;
    speaker
        .send_text(&format!(r#"{{"n":"say","i":"r1","p":{payload}}}"#))
        .await;
    assert_eq!(
        listener.recv_text().await,
        format!(r#"{{"n":"said","p":{payload}}}"#)
    );
    assert_eq!(
        speaker.recv_text().await,
        format!(r#"{{"n":"_r","i":"r1","p":{payload},"e":null}}"#)
    );
    // A payload that is not JSON is still a malformed frame: dropped, nothing relayed.
    speaker
        .send_text(r#"{"n":"say","i":"r2","p":{"a":]}"#)
        .await;
    speaker.send_text(r#"{"n":"say","i":"r3","p":2}"#).await;
    assert_eq!(listener.recv_text().await, r#"{"n":"said","p":2}"#);
}
