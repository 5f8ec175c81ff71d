//! What a server operator reads in the logs: a span per connection naming its peer and id,
//! and an event for each step of its life.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{report_disconnects, start_with, within, Raw};
use roomwire::{Handshake, Server, ServerConnection};
use serde_json::json;

/// Everything the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The line that contains every one of `parts`.
    fn line_with(&self, parts: &[&str]) -> String {
        let text = self.text();
        text.lines()
            .find(|line| parts.iter().all(|p| line.contains(p)))
            .unwrap_or_else(|| panic!("no log line with {parts:?} in:\n{text}"))
            .to_owned()
    }
}

#[tokio::test]
async fn every_step_of_a_connections_life_is_logged_in_a_span_that_names_it() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("roomwire=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let (server, addr) = start_with(Server::builder(), |s| {
        s.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
            match hs.payload::<String>() {
                Ok(name) if name != "mallory" => match conn.set_id(name) {
                    Ok(()) => hs.resolve(()),
                    Err(e) => hs.reject(e),
                },
                _ => hs.reject(roomwire::Rejection::new("Unauthorized", "not you")),
            }
        });
    })
    .await;
    let mut disconnects = report_disconnects(&server);

    let (mut alice, _) = Raw::handshaked(addr, json!("alice")).await;
    alice.send_text("this is not JSON").await;
    assert_eq!(
        alice.request("_p", json!(1), json!(null)).await["p"],
        "pong",
        "the connection stays open"
    );
    let local = alice.ws.get_ref().get_ref().local_addr().unwrap();
    alice.close().await;
    within(disconnects.recv()).await.unwrap();

    let mut mallory = Raw::connect(addr).await;
    mallory
        .send(json!({"n": "_h", "i": "h1", "p": "mallory"}))
        .await;
    assert_eq!(mallory.recv_close().await.0, 4203);

    let peer = format!("peer={local}");
    captured.line_with(&["connection accepted", &peer]);
    captured.line_with(&["handshake accepted", "id=alice", &peer]);
    // The malformed frame's warning names the connection through its span.
    captured.line_with(&["malformed frame", "id=alice", &peer]);
    let closed = captured.line_with(&["connection closed", "id=alice"]);
    assert!(closed.contains("code=1000"), "{closed}");
    assert!(closed.contains("lifetime_ms="), "{closed}");
    captured.line_with(&["handshake rejected", "not you"]);
    assert!(
        !captured.text().contains('\u{1b}'),
        "no ANSI colours when told so"
    );
}
