//! Line's published JavaScript client (`line-socket` from npm, `client-node`, in tests/js)
//! against a roomwire server: the server the suite (tests/js/line_client.js) talks to, and
//! [`run`], which starts node on it. Used by tests/line_client.rs (`ws://`) and tests/tls.rs
//! (`wss://`).
//!
//! Needs Node.js and `npm ci --prefix tests/js` (the README's test command does both).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roomwire::{Error, Handshake, Rejection, SendError, Serve, Server, ServerConnection};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

/// The server the JavaScript suite talks to.
fn suite_server() -> Server {
    let server = Server::builder().build();
    server.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
        let name = match hs.payload::<Value>() {
            Ok(v) => v["name"].as_str().unwrap_or_default().to_owned(),
            Err(e) => return hs.reject(e),
        };
        if name == "reject-me" {
            return hs.reject(Rejection::new("Unauthorized", "bad name"));
        }
        match conn.set_id(name.clone()) {
            Ok(()) => hs.resolve(json!({ "greeting": format!("hello, {name}") })),
            Err(e) => hs.reject(e),
        }
    });
    server.on_request(
        "add",
        |_c: ServerConnection, (a, b): (i64, i64)| async move { Ok::<_, Rejection>(a + b) },
    );
    server.on_request("fail", |_c: ServerConnection, _: Value| async move {
        Err::<(), _>(Rejection::new("Nope", "always fails"))
    });
    server.on_request("slow", |_c: ServerConnection, _: Value| async move {
        std::future::pending::<()>().await;
        Ok::<_, Rejection>(())
    });

    #[derive(Deserialize)]
    struct Ask {
        name: String,
        payload: Value,
        timeout_ms: Option<u64>,
    }
    // Makes a request to the client and reports its outcome, so the suite can check
    // server-to-client resolve, reject and timeout from the client's side.
    server.on_request("ask", |conn: ServerConnection, ask: Ask| async move {
        let timeout = ask.timeout_ms.map_or(
            conn.server().config().response_timeout,
            Duration::from_millis,
        );
        let outcome = match conn
            .send_timeout::<_, Value>(&ask.name, &ask.payload, timeout)
            .await
        {
            Ok(v) => json!({ "ok": v }),
            // The client's own error object, or the error's stable name and message.
            Err(e) => json!({ "err": Rejection::from(e) }),
        };
        Ok::<_, Rejection>(outcome)
    });
    server.on_request("tell", |conn: ServerConnection, v: Value| async move {
        conn.send_without_response(v["name"].as_str().unwrap_or("told"), &v["payload"])?;
        Ok::<_, Error>(())
    });
    // (connection id, note) pairs, so each scenario sees only its own notes.
    type Notes = Arc<Mutex<Vec<(Arc<str>, String)>>>;
    let notes: Notes = Arc::default();
    let recorded = notes.clone();
    server.on_request("note", move |conn: ServerConnection, text: String| {
        recorded.lock().unwrap().push((conn.id(), text));
        async move { Ok::<_, Rejection>(()) }
    });
    server.on_request("notes", move |conn: ServerConnection, _: Value| {
        let mine: Vec<String> = notes
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| *id == conn.id())
            .map(|(_, text)| text.clone())
            .collect();
        async move { Ok::<_, Rejection>(mine) }
    });
    server.on_request("join", |conn: ServerConnection, room: String| async move {
        conn.join(&room)?;
        Ok::<_, Error>(())
    });
    #[derive(Deserialize)]
    struct RoomCall {
        room: String,
        name: String,
        payload: Value,
    }
    server.on_request(
        "room_emit",
        |conn: ServerConnection, call: RoomCall| async move {
            conn.server().to(&call.room).emit(&call.name, &call.payload)
        },
    );
    // An awaited broadcast; reports every member's outcome, sorted by member id.
    server.on_request(
        "room_ask",
        |conn: ServerConnection, call: RoomCall| async move {
            let replies = conn
                .server()
                .to(&call.room)
                .send::<_, Value>(&call.name, &call.payload)
                .await?;
            let mut outcomes: Vec<(String, Value)> = replies
                .into_iter()
                .map(|r| {
                    let outcome = match r.result {
                        Ok(v) => json!({ "ok": v }),
                        Err(SendError::Rejected(rej)) => json!({ "err": rej }),
                        Err(e) => json!({ "err": { "name": Rejection::from(e).name() } }),
                    };
                    (r.connection.id().to_string(), outcome)
                })
                .collect();
            outcomes.sort_by(|a, b| a.0.cmp(&b.0));
            Ok::<_, Error>(outcomes)
        },
    );
    server.on_request("ping_me", |conn: ServerConnection, _: Value| async move {
        conn.ping().await?;
        Ok::<_, Error>(json!({ "ok": true }))
    });
    server
}

/// Runs the whole JavaScript suite against [`suite_server`] on 127.0.0.1, at
/// `{scheme}://{addr}`, and asserts that every scenario ran and passed. `serve` puts a server
/// on a bound listener (plain, or with TLS); when the suite asks for a restart, the server is
/// closed and a new one served on the same address. `env` goes to node's environment.
pub async fn run(
    scheme: &str,
    env: &[(&str, &OsStr)],
    serve: impl Fn(&Server, TcpListener) -> Serve,
) {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/line-socket").is_dir(),
        "Line's client is not installed: run `npm ci --prefix tests/js` (the README's test command does)"
    );
    let start = |listener: TcpListener| {
        let server = suite_server();
        let serving = serve(&server, listener);
        tokio::spawn(async move { serving.await.unwrap() });
        server
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut server = start(listener);

    let mut node = Command::new("node")
        .arg(js.join("line_client.js"))
        .arg(format!("{scheme}://{addr}"))
        .envs(env.iter().copied())
        .current_dir(&js)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("could not start node: install Node.js (the README's test command does)");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut output = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "RESTART" {
                server.close().await;
                server = start(TcpListener::bind(addr).await.unwrap());
            }
            output.push(line);
        }
        node.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the JavaScript suite did not finish in time");
    let report = output.join("\n");
    println!("{report}");
    assert!(status.success(), "Line's client suite failed:\n{report}");
    assert!(
        report.contains("13 passed, 0 failed"),
        "every scenario must run and pass:\n{report}"
    );
}
