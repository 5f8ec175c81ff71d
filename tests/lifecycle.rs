//! A connection's life from accept to cleanup: panics in user code, deadlines while a write
//! stalls, handlers that outlive their connection, the clock the timeouts run on, frames
//! pipelined behind a pending handshake, and when the Rust client reconnects.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    eventually, next_event, report_disconnects, start_handing_out, start_with, url, within, Raw,
};
use futures_util::{SinkExt, StreamExt};
use roomwire::client::{Backoff, Client, ClientEvent, ClientState};
use roomwire::{
    CloseCode, CloseInfo, Handshake, Rejection, SendError, ServeError, Server, ServerConnection,
};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// A handshake handler that gives every connection the id "alice".
fn as_alice(s: &Server) {
    s.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
        match conn.set_id("alice") {
            Ok(()) => hs.resolve(()),
            Err(e) => hs.reject(e),
        }
    });
}

fn add(s: &Server) {
    s.on_request(
        "add",
        |_c: ServerConnection, (a, b): (i64, i64)| async move { Ok::<_, Rejection>(a + b) },
    );
}

fn echo(s: &Server) {
    s.on_request("echo", |_c: ServerConnection, v: Value| async move {
        Ok::<_, Rejection>(v)
    });
}

/// No connection is left under the id "alice", and the room "lobby" is empty.
async fn alice_is_gone(server: &Server) {
    eventually("the id \"alice\" is freed and \"lobby\" is empty", || {
        server.rooms_of("alice").is_none() && server.room_size("lobby") == 0
    })
    .await;
    assert!(server.connection("alice").is_none());
}

// ---------------------------------------------------------------------------------------
// A. Panics never leave a ghost.

#[tokio::test]
async fn panicking_on_connection_closes_with_1011_and_leaves_no_ghost() {
    let armed = Arc::new(AtomicBool::new(true));
    let (server, addr) = start_with(Server::builder(), |s| {
        as_alice(s);
        s.on_connection(move |c: ServerConnection| {
            let armed = armed.clone();
            async move {
                c.join("lobby").unwrap();
                if armed.swap(false, Ordering::SeqCst) {
                    panic!("on_connection exploded");
                }
            }
        });
    })
    .await;
    let mut closed = report_disconnects(&server);
    let mut raw = Raw::connect(addr).await;
    raw.send(json!({"n": "_h", "i": "h1"})).await;
    let (code, _reason, before) = raw.recv_close().await;
    assert_eq!(code, 1011, "close code after on_connection panicked");
    assert_eq!(before.len(), 1, "only the handshake response: {before:?}");
    assert!(before[0]["e"].is_null(), "{before:?}");
    let (conn, info) = within(closed.recv()).await.unwrap();
    assert_eq!(&*conn.id(), "alice");
    assert_eq!(info.code, 1011, "on_disconnect saw {info:?}");
    alice_is_gone(&server).await;
    let (again, p) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(p["id"], "alice");
    again.close().await;
}

#[tokio::test]
async fn handler_panicking_before_returning_its_future_answers_internal_error_and_stays() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        add(s);
        s.on_request(
            "boom",
            |_c: ServerConnection, (): ()| -> std::future::Ready<Result<(), Rejection>> {
                panic!("the handler's closure exploded")
            },
        );
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let reply = raw.request("boom", json!(1), Value::Null).await;
    assert_eq!(reply["i"], 1);
    assert_eq!(reply["e"]["name"], "InternalError", "{reply}");
    assert_eq!(raw.request("add", json!(2), json!([1, 2])).await["p"], 3);
}

/// A payload whose `Deserialize` panics.
struct ExplodesOnArrival;

impl<'de> serde::Deserialize<'de> for ExplodesOnArrival {
    fn deserialize<D: serde::Deserializer<'de>>(_deserializer: D) -> Result<Self, D::Error> {
        panic!("Deserialize exploded")
    }
}

#[tokio::test]
async fn payload_whose_deserialize_panics_answers_internal_error_and_stays() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        add(s);
        s.on_request(
            "boom",
            |_c: ServerConnection, _p: ExplodesOnArrival| async move { Ok::<_, Rejection>(()) },
        );
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let reply = raw.request("boom", json!(1), json!({})).await;
    assert_eq!(reply["e"]["name"], "InternalError", "{reply}");
    assert_eq!(raw.request("add", json!(2), json!([1, 2])).await["p"], 3);
}

/// A result whose `Serialize` panics.
struct Explodes;

impl Serialize for Explodes {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        panic!("Serialize exploded")
    }
}

#[tokio::test]
async fn result_whose_serialize_panics_answers_internal_error_and_stays() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        add(s);
        s.on_request("boom", |_c: ServerConnection, (): ()| async move {
            Ok::<_, Rejection>(Explodes)
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let reply = raw.request("boom", json!(1), Value::Null).await;
    assert_eq!(reply["i"], 1);
    assert_eq!(reply["e"]["name"], "InternalError", "{reply}");
    assert_eq!(raw.request("add", json!(2), json!([1, 2])).await["p"], 3);
}

/// An error whose conversion into a [`Rejection`] panics.
struct MyErr;

impl From<MyErr> for Rejection {
    fn from(_: MyErr) -> Rejection {
        panic!("Into<Rejection> exploded")
    }
}

#[tokio::test]
async fn error_whose_into_rejection_panics_answers_internal_error_and_stays() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        add(s);
        s.on_request("boom", |_c: ServerConnection, (): ()| async move {
            Err::<(), _>(MyErr)
        });
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let reply = raw.request("boom", json!(1), Value::Null).await;
    assert_eq!(reply["i"], 1);
    assert_eq!(reply["e"]["name"], "InternalError", "{reply}");
    assert_eq!(raw.request("add", json!(2), json!([1, 2])).await["p"], 3);
}

/// Starts a server where "alice" joins "lobby" on connection, and `on_disconnect` is `hook`.
async fn alice_in_lobby<F, Fut>(hook: F) -> (Server, std::net::SocketAddr)
where
    F: Fn(ServerConnection, CloseInfo) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    start_with(Server::builder(), move |s| {
        as_alice(s);
        s.on_connection(|c: ServerConnection| async move {
            c.join("lobby").unwrap();
        });
        s.on_disconnect(hook);
    })
    .await
}

/// Connects as "alice", waits until she is in "lobby", closes, and waits for the hook.
async fn alice_comes_and_goes(
    server: &Server,
    addr: std::net::SocketAddr,
    hook_ran: &mut mpsc::UnboundedReceiver<()>,
) {
    let (raw, _) = Raw::handshaked(addr, Value::Null).await;
    eventually("alice joined the lobby", || server.room_size("lobby") == 1).await;
    raw.close().await;
    within(hook_ran.recv()).await.unwrap();
}

#[tokio::test]
async fn on_disconnect_panicking_in_its_future_still_frees_the_id_and_leaves_rooms() {
    let (tx, mut hook_ran) = mpsc::unbounded_channel();
    let (server, addr) = alice_in_lobby(move |_c: ServerConnection, _info: CloseInfo| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(());
            panic!("on_disconnect exploded");
        }
    })
    .await;
    alice_comes_and_goes(&server, addr, &mut hook_ran).await;
    alice_is_gone(&server).await;
    let (again, p) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(p["id"], "alice");
    again.close().await;
}

#[tokio::test]
async fn on_disconnect_panicking_before_returning_its_future_still_frees_the_id_and_leaves_rooms() {
    let (tx, mut hook_ran) = mpsc::unbounded_channel();
    let (server, addr) = alice_in_lobby(
        move |_c: ServerConnection, _info: CloseInfo| -> std::future::Ready<()> {
            let _ = tx.send(());
            panic!("on_disconnect's closure exploded")
        },
    )
    .await;
    alice_comes_and_goes(&server, addr, &mut hook_ran).await;
    alice_is_gone(&server).await;
    let (again, p) = Raw::handshaked(addr, Value::Null).await;
    assert_eq!(p["id"], "alice");
    again.close().await;
}

// ---------------------------------------------------------------------------------------
// B. A stalled write does not suspend deadlines.

#[tokio::test]
async fn a_write_stalled_by_a_peer_that_never_reads_does_not_suspend_the_handshake_timeout() {
    let (server, addr) = start_with(
        Server::builder()
            .handshake_timeout(Duration::from_millis(300))
            .max_id_len(100_000)
            // Not what the test is about: a margin for a close that waits on the stalled write.
            .close_timeout(Duration::from_secs(1)),
        |_| {},
    )
    .await;
    let started = tokio::time::Instant::now();
    let mut raw = Raw::connect(addr).await;
    // Pings with 60 KB ids, never reading the pongs: the server's writes stall.
    let ping = json!({"n": "_p", "i": "x".repeat(60_000)}).to_string();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        for _ in 0..300 {
            if raw.ws.send(Message::text(ping.clone())).await.is_err() {
                break; // the server closed it meanwhile
            }
        }
    })
    .await;
    // The socket stays open (and unread) while the server is watched.
    let deadline = started + Duration::from_secs(5);
    while server.open_connections() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection is still open 5 s after connecting, past its 300 ms handshake timeout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(raw);
}

// ---------------------------------------------------------------------------------------
// C. Handlers end with their connection.

/// Counts itself live from creation to drop.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn handlers_still_running_are_dropped_before_on_disconnect_runs() {
    let live = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (server, addr) = start_with(Server::builder().max_requests_in_flight(16), |s| {
        let count = live.clone();
        s.on_request("hang", move |_c: ServerConnection, (): ()| {
            let count = count.clone();
            let started = started_tx.clone();
            async move {
                let _live = Live::new(&count);
                let _ = started.send(());
                std::future::pending::<()>().await;
                Ok::<(), Rejection>(())
            }
        });
        let count = live.clone();
        s.on_disconnect(move |_c: ServerConnection, _info: CloseInfo| {
            // Read when the hook is called: the connection's handlers must be gone by then.
            let _ = seen_tx.send(count.load(Ordering::SeqCst));
            async {}
        });
    })
    .await;
    for round in 0..10 {
        let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
        for i in 0..16 {
            raw.send(json!({"n": "hang", "i": i})).await;
        }
        for _ in 0..16 {
            within(started.recv()).await.unwrap();
        }
        assert_eq!(live.load(Ordering::SeqCst), 16);
        drop(raw);
        let at_disconnect = within(seen.recv()).await.unwrap();
        assert_eq!(
            at_disconnect, 0,
            "round {round}: {at_disconnect} handlers still live when on_disconnect ran"
        );
    }
    within(server.close()).await;
    assert_eq!(live.load(Ordering::SeqCst), 0, "handlers live after close");
}

// ---------------------------------------------------------------------------------------
// D. One clock: every timeout runs on tokio's clock.

/// Awaits `request`, which must time out after its 5 s of tokio's (paused) clock and take
/// well under 2 s of the wall clock.
async fn times_out_on_tokios_clock<T: std::fmt::Debug>(
    request: impl std::future::Future<Output = Result<T, SendError>>,
) {
    let (virt, wall) = (tokio::time::Instant::now(), std::time::Instant::now());
    let result = tokio::time::timeout(Duration::from_secs(60), request)
        .await
        .expect("the 5 s request never timed out (60 s of tokio time)");
    assert!(
        matches!(result, Err(SendError::Timeout { .. })),
        "{result:?}"
    );
    assert!(
        virt.elapsed() >= Duration::from_secs(5),
        "{:?}",
        virt.elapsed()
    );
    assert!(
        wall.elapsed() < Duration::from_secs(2),
        "the timeout took {:?} of wall-clock time under a paused clock",
        wall.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn server_request_timeout_runs_on_tokios_clock() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let (_raw, _) = Raw::handshaked(addr, Value::Null).await; // never answers
    let conn = within(conns.recv()).await.unwrap();
    times_out_on_tokios_clock(conn.send_timeout::<_, Value>("whoami", &(), Duration::from_secs(5)))
        .await;
}

#[tokio::test(start_paused = true)]
async fn client_request_timeout_runs_on_tokios_clock() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_request("never", |_c: ServerConnection, (): ()| async move {
            std::future::pending::<()>().await;
            Ok::<(), Rejection>(())
        });
    })
    .await;
    let client = within(Client::builder(url(addr)).no_reconnect().connect())
        .await
        .unwrap();
    times_out_on_tokios_clock(client.send_timeout::<_, Value>(
        "never",
        &(),
        Duration::from_secs(5),
    ))
    .await;
}

// ---------------------------------------------------------------------------------------
// E. Frames pipelined behind a pending handshake.

/// Sends `_h` (id "h1") and `requests` in one write: fed one by one, flushed once.
async fn pipeline(raw: &mut Raw, requests: impl IntoIterator<Item = Value>) {
    raw.ws
        .feed(Message::text(json!({"n": "_h", "i": "h1"}).to_string()))
        .await
        .unwrap();
    for request in requests {
        raw.ws
            .feed(Message::text(request.to_string()))
            .await
            .unwrap();
    }
    raw.ws.flush().await.unwrap();
}

/// A handshake handler that takes 50 ms, then accepts (or rejects).
fn slow_handshake(s: &Server, accept: bool) {
    s.on_handshake(move |_c: ServerConnection, hs: Handshake| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if accept {
            hs.resolve(())
        } else {
            hs.reject(Rejection::new("Unauthorized", "no"))
        }
    });
}

/// Sends `_h` and `count` requests `add [i, i]` in one write on a fresh connection, and
/// checks that every request gets its sum and the handshake its acceptance.
async fn pipelined_round(addr: std::net::SocketAddr, count: i64, round: usize) {
    let mut raw = Raw::connect(addr).await;
    pipeline(
        &mut raw,
        (0..count).map(|i| json!({"n": "add", "i": i, "p": [i, i]})),
    )
    .await;
    let mut handshake = None;
    let mut answers = BTreeMap::new();
    let mut errors = Vec::new();
    for _ in 0..=count {
        let frame = raw.recv().await;
        if frame["i"] == "h1" {
            handshake = Some(frame);
        } else if frame["e"].is_null() {
            answers.insert(frame["i"].as_i64().unwrap(), frame["p"].clone());
        } else {
            errors.push(frame);
        }
    }
    assert!(
        errors.is_empty(),
        "round {round}: {} errors, the first: {}",
        errors.len(),
        errors[0]
    );
    let handshake = handshake.expect("no handshake response");
    assert!(handshake["e"].is_null(), "{handshake}");
    assert_eq!(answers.len() as i64, count);
    for (i, p) in answers {
        assert_eq!(p, json!(2 * i), "round {round}: request {i}");
    }
    raw.close().await;
}

#[tokio::test]
async fn requests_pipelined_behind_a_pending_handshake_are_answered_once_it_is_accepted() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        slow_handshake(s, true);
        add(s);
    })
    .await;
    // As many as may wait behind a handshake (max_requests_in_flight, 128 by default).
    for round in 0..3 {
        pipelined_round(addr, 128, round).await;
    }
}

/// What a browser does when it sends its first requests from `onopen` right after `_h`
/// (the README's browser snippet): 200 fresh connections, 0 errors.
#[tokio::test]
async fn two_hundred_connections_pipelining_behind_an_immediate_handshake_get_no_errors() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|c: ServerConnection, hs: Handshake| async move {
            match c.set_id(format!("user-{}", c.id())) {
                Ok(()) => hs.resolve(()),
                Err(e) => hs.reject(e),
            }
        });
        add(s);
    })
    .await;
    for round in 0..200 {
        pipelined_round(addr, 3, round).await;
    }
}

#[tokio::test]
async fn requests_pipelined_behind_a_rejected_handshake_are_dropped_unanswered() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (_server, addr) = start_with(Server::builder(), |s| {
        slow_handshake(s, false);
        let calls = calls.clone();
        s.on_request("add", move |_c: ServerConnection, (a, b): (i64, i64)| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Rejection>(a + b) }
        });
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    pipeline(
        &mut raw,
        (0..20).map(|i| json!({"n": "add", "i": i, "p": [i, i]})),
    )
    .await;
    let (code, _reason, before) = raw.recv_close().await;
    assert_eq!(
        before.len(),
        1,
        "only the handshake's rejection is sent: {before:?}"
    );
    assert_eq!(before[0]["i"], "h1");
    assert_eq!(before[0]["e"]["name"], "Unauthorized");
    assert_eq!(code, 4203);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a dropped request ran");
}

#[tokio::test]
async fn requests_pipelined_behind_a_pending_handshake_count_against_the_in_flight_limit() {
    let gate = Arc::new(Semaphore::new(0));
    let (_server, addr) = start_with(Server::builder().max_requests_in_flight(4), |s| {
        slow_handshake(s, true);
        let gate = gate.clone();
        s.on_request("held", move |_c: ServerConnection, i: i64| {
            let gate = gate.clone();
            async move {
                let _permit = gate.acquire().await.unwrap();
                Ok::<_, Rejection>(2 * i)
            }
        });
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    pipeline(
        &mut raw,
        (0..10).map(|i| json!({"n": "held", "i": i, "p": i})),
    )
    .await;
    // While the first four are held: the handshake response and six refusals.
    let mut refused = BTreeSet::new();
    let mut handshake = None;
    for _ in 0..7 {
        let frame = raw.recv().await;
        if frame["i"] == "h1" {
            handshake = Some(frame);
            continue;
        }
        assert_eq!(frame["e"]["name"], "TooManyRequests", "{frame}");
        refused.insert(frame["i"].as_i64().unwrap());
    }
    assert!(handshake.expect("no handshake response")["e"].is_null());
    assert_eq!(refused, (4..10).collect::<BTreeSet<i64>>());
    gate.add_permits(4);
    let mut answered = BTreeMap::new();
    for _ in 0..4 {
        let frame = raw.recv().await;
        assert!(frame["e"].is_null(), "{frame}");
        answered.insert(frame["i"].as_i64().unwrap(), frame["p"].as_i64().unwrap());
    }
    assert_eq!(
        answered,
        (0..4).map(|i| (i, 2 * i)).collect::<BTreeMap<_, _>>()
    );
}

// ---------------------------------------------------------------------------------------
// G. Smaller items.

#[tokio::test]
async fn a_request_id_longer_than_max_id_len_is_dropped_as_malformed_and_the_connection_stays() {
    let (server, addr, mut conns) = start_handing_out(Server::builder()).await;
    echo(&server);
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    raw.send(json!({"n": "echo", "i": "x".repeat(129), "p": "long"}))
        .await;
    let reply = raw.request("echo", json!(2), json!("short")).await;
    assert_eq!(
        reply["i"], 2,
        "the request with a 129-byte id was answered: {reply}"
    );
    assert_eq!(reply["p"], "short");
    assert_eq!(conn.malformed_frames(), 1);
}

#[tokio::test]
async fn on_connection_does_not_take_a_request_slot() {
    let (_server, addr) = start_with(Server::builder().max_requests_in_flight(1), |s| {
        echo(s);
        s.on_connection(|_c: ServerConnection| std::future::pending::<()>());
    })
    .await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let reply = raw.request("echo", json!(1), json!("hi")).await;
    assert!(reply["e"].is_null(), "{reply}");
    assert_eq!(reply["p"], "hi");
}

/// Waits for the client's `Disconnected` event, then for it to be closed for good.
async fn closed_for_good(
    client: &Client,
    events: &mut broadcast::Receiver<ClientEvent>,
) -> CloseCode {
    let (info, reconnecting) = next_event(events, |e| match e {
        ClientEvent::Disconnected { info, reconnecting } => Some((info.clone(), *reconnecting)),
        _ => None,
    })
    .await;
    assert!(!reconnecting, "the client reconnects after {info:?}");
    next_event(events, |e| matches!(e, ClientEvent::Closed).then_some(())).await;
    assert_eq!(client.state(), ClientState::Closed);
    info.code
}

#[tokio::test]
async fn the_client_does_not_reconnect_after_its_room_is_disconnected_4211() {
    let (joined_tx, mut joined) = mpsc::unbounded_channel();
    let (server, addr) = start_with(Server::builder(), |s| {
        s.on_connection(move |c: ServerConnection| {
            c.join("lobby").unwrap();
            let _ = joined_tx.send(());
            async {}
        });
    })
    .await;
    let client = Client::builder(url(addr))
        .reconnect(Backoff::new(Duration::from_millis(10)).jitter(0.0))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    within(joined.recv()).await.unwrap();
    assert_eq!(server.disconnect_room("lobby"), 1);
    assert_eq!(
        closed_for_good(&client, &mut events).await,
        CloseCode::ROOM_CLOSED
    );
}

#[tokio::test]
async fn the_client_does_not_reconnect_after_a_slow_consumer_close_4210() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let client = Client::builder(url(addr))
        .reconnect(Backoff::new(Duration::from_millis(10)).jitter(0.0))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let conn = within(conns.recv()).await.unwrap();
    conn.close(
        CloseCode::SLOW_CONSUMER,
        "Slow consumer: outbound queue full",
    );
    assert_eq!(
        closed_for_good(&client, &mut events).await,
        CloseCode::SLOW_CONSUMER
    );
}

#[tokio::test]
async fn client_close_returns_promptly_during_a_reconnect_attempt_that_hangs_in_the_upgrade() {
    // A stand-in server: the first connection is upgraded and handshaked by hand, then
    // dropped; every later one is accepted and held, never upgraded.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let (drop_tx, drop_now) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let hs: Value = match ws.next().await {
            Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
            other => panic!("expected the handshake, got {other:?}"),
        };
        let accept = json!({"n": "_r", "i": hs["i"], "p": {"id": "x", "payload": null}, "e": null});
        ws.send(Message::text(accept.to_string())).await.unwrap();
        let _ = drop_now.await;
        drop(ws); // no close frame: the client should reconnect
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = held_tx.send(tcp);
        }
    });
    let client = within(
        Client::builder(url(addr))
            .reconnect(Backoff::new(Duration::from_millis(10)).jitter(0.0))
            .connect(),
    )
    .await
    .unwrap();
    drop_tx.send(()).unwrap();
    let _attempt = within(held.recv()).await.unwrap();
    assert_ne!(client.state(), ClientState::Connected);
    let closing = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(2), client.close())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "close() still waiting after {:?}: the reconnect attempt was not cancelled",
                closing.elapsed()
            )
        });
    assert_eq!(client.state(), ClientState::Closed);
}

// ---------------------------------------------------------------------------------------
// Found while writing the above: a response that arrives just before the socket ends.

#[tokio::test]
async fn a_response_arriving_just_before_the_socket_ends_is_delivered_not_lost() {
    let (_server, addr, mut conns) = start_handing_out(Server::builder()).await;
    let (mut raw, _) = Raw::handshaked(addr, Value::Null).await;
    let conn = within(conns.recv()).await.unwrap();
    let asked = tokio::spawn(async move { conn.send::<_, String>("whoami", &()).await });
    let request = raw.recv().await;
    assert_eq!(request["n"], "whoami");
    // The answer, then at once the end of the socket: both reach the server together.
    raw.send(json!({"n": "_r", "i": request["i"], "p": "raw", "e": null}))
        .await;
    drop(raw);
    match within(asked).await.unwrap() {
        Ok(answer) => assert_eq!(answer, "raw"),
        Err(e) => panic!("the response that arrived was lost to the disconnect: {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown.

/// What Ctrl-C does in the examples: `serve(..).with_graceful_shutdown(signal)`. Every
/// client gets 1001, every `on_disconnect` has run by the time `serve` returns.
#[tokio::test]
async fn a_shutdown_signal_closes_every_client_with_1001_before_serve_returns() {
    let server = Server::builder().build();
    let disconnects = Arc::new(AtomicUsize::new(0));
    {
        let disconnects = disconnects.clone();
        server.on_disconnect(move |_c: ServerConnection, info: CloseInfo| {
            let disconnects = disconnects.clone();
            async move {
                assert_eq!(info.code, 1001, "{info:?}");
                // Slow hooks too are waited for.
                tokio::time::sleep(Duration::from_millis(20)).await;
                disconnects.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .serve(listener)
                .with_graceful_shutdown(async move {
                    let _ = signal_rx.await;
                })
                .await
        }
    });
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(Raw::handshaked(addr, Value::Null).await.0);
    }
    signal_tx.send(()).unwrap();
    // The clients read their close frames while the server closes; the server returns only
    // once every close is complete.
    let closes = futures_util::future::join_all(clients.iter_mut().map(|c| c.recv_close()));
    let codes: Vec<u16> = within(closes).await.into_iter().map(|c| c.0).collect();
    assert_eq!(codes, vec![1001; 20]);
    within(serving).await.unwrap().unwrap();
    assert_eq!(disconnects.load(Ordering::SeqCst), 20);
    assert_eq!(server.status(), roomwire::ServerStatus::Closed);
    assert!(matches!(
        server
            .serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await,
        Err(ServeError::Closed)
    ));
}

/// `serve` does not return while another task's `close` is still under way.
#[tokio::test]
async fn serve_returns_only_once_a_close_started_elsewhere_has_completed() {
    let server = Server::builder().build();
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = done.clone();
        server.on_disconnect(move |_c: ServerConnection, _info: CloseInfo| {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                done.store(true, Ordering::SeqCst);
            }
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    let (mut client, _) = Raw::handshaked(addr, Value::Null).await;
    let closing = tokio::spawn({
        let server = server.clone();
        async move { server.close().await }
    });
    assert_eq!(within(client.recv_close()).await.0, 1001);
    within(serving).await.unwrap().unwrap();
    assert!(
        done.load(Ordering::SeqCst),
        "serve returned before on_disconnect ran"
    );
    within(closing).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Found in review.

/// The client's own full queue (it closes itself with 4210) is no reason to give up: only
/// the server's 4210 or 4211 is.
#[tokio::test]
async fn the_client_reconnects_after_closing_itself_because_its_own_queue_was_full() {
    let (_server, addr) = start_with(Server::builder(), echo).await;
    let client = Client::builder(url(addr))
        .outbound_queue(4)
        .reconnect(Backoff::new(Duration::from_millis(10)))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    // No await in between: the client's driver cannot drain the queue meanwhile.
    let refused = (0..10)
        .filter(|i| client.send_without_response("echo", i).is_err())
        .count();
    assert!(refused > 0, "the queue of 4 should have filled");
    let (info, reconnecting) = next_event(&mut events, |e| match e {
        ClientEvent::Disconnected { info, reconnecting } => Some((info.clone(), *reconnecting)),
        _ => None,
    })
    .await;
    assert_eq!(info.code, 4210, "{info:?}");
    assert!(reconnecting, "gave up after its own close {info:?}");
    next_event(&mut events, |e| {
        matches!(e, ClientEvent::Connected { .. }).then_some(())
    })
    .await;
    client.close().await;
}

/// `on_connection` starts before the requests a client pipelined behind its handshake, as
/// it does before any request that comes later.
#[tokio::test]
async fn on_connection_starts_before_requests_pipelined_behind_the_handshake() {
    let started = Arc::new(AtomicBool::new(false));
    let (_server, addr) = start_with(Server::builder(), |s| {
        slow_handshake(s, true);
        let hook_started = started.clone();
        s.on_connection(move |_c: ServerConnection| {
            hook_started.store(true, Ordering::SeqCst);
            async {}
        });
        let started = started.clone();
        s.on_request("started", move |_c: ServerConnection, (): ()| {
            let seen = started.load(Ordering::SeqCst);
            async move { Ok::<_, Rejection>(seen) }
        });
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    pipeline(&mut raw, [json!({"n": "started", "i": 1})]).await;
    assert!(raw.recv().await["e"].is_null(), "the handshake is accepted");
    assert_eq!(raw.recv().await["p"], json!(true));
}

/// What waits behind a pending handshake is bounded in bytes too (64 KiB), not only in
/// requests: a peer nobody has authenticated parks little.
#[tokio::test]
async fn at_most_64_kib_wait_behind_a_pending_handshake() {
    let (_server, addr) = start_with(Server::builder(), |s| {
        slow_handshake(s, true);
        echo(s);
    })
    .await;
    let mut raw = Raw::connect(addr).await;
    let big = "x".repeat(30 * 1024);
    pipeline(
        &mut raw,
        (0..3).map(|i| json!({"n": "echo", "i": i, "p": big})),
    )
    .await;
    let mut answers = BTreeMap::new();
    for _ in 0..4 {
        let frame = raw.recv().await;
        if frame["i"] != "h1" {
            answers.insert(frame["i"].as_i64().unwrap(), frame);
        }
    }
    assert_eq!(
        answers[&2]["e"]["name"], "TooManyRequests",
        "{}",
        answers[&2]
    );
    for i in 0..2 {
        assert_eq!(answers[&i]["p"], json!(big), "request {i}");
    }
}
