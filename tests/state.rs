//! Application state given once to the server, and per-connection data set during the
//! handshake: both reachable from every handler and hook, without globals.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{within, Raw};
use roomwire::{CloseInfo, Handshake, Rejection, Server, ServerConnection};
use serde_json::json;
use tokio::sync::mpsc;

/// The application's state: a counter every hook and handler bumps.
#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Who the connection is, as the handshake decided.
#[derive(Clone, Debug, PartialEq)]
struct User {
    name: String,
}

#[tokio::test]
async fn state_and_connection_data_reach_every_handler_and_hook() {
    let hits = Hits::default();
    let server = Server::builder().app_state(hits.clone()).build();
    assert!(server.app_state::<Hits>().is_some());
    assert!(server.app_state::<User>().is_none(), "only what was given");

    let (events, mut seen) = mpsc::unbounded_channel::<(&'static str, Option<User>, usize)>();
    let tx = events.clone();
    server.on_handshake(move |conn: ServerConnection, hs: Handshake| {
        let tx = tx.clone();
        async move {
            let Ok(name) = hs.payload::<String>() else {
                return hs.reject(Rejection::new("BadRequest", "send a name"));
            };
            let n = conn.app_state::<Hits>().unwrap().hit();
            assert!(conn.set_data(User { name }).is_none());
            let _ = tx.send(("handshake", conn.data::<User>(), n));
            hs.resolve(())
        }
    });
    let tx = events.clone();
    server.on_connection(move |conn: ServerConnection| {
        let n = conn.app_state::<Hits>().unwrap().hit();
        let _ = tx.send(("on_connection", conn.data::<User>(), n));
        async {}
    });
    server.on_request("whoami", |conn: ServerConnection, _: ()| async move {
        conn.app_state::<Hits>().unwrap().hit();
        Ok::<_, Rejection>(conn.data::<User>().map(|u| u.name))
    });
    server.on_request(
        "rename",
        |conn: ServerConnection, name: String| async move {
            let old = conn.set_data(User { name });
            Ok::<_, Rejection>(old.map(|u| u.name))
        },
    );
    let tx = events.clone();
    server.on_disconnect(move |conn: ServerConnection, _: CloseInfo| {
        let n = conn.app_state::<Hits>().unwrap().hit();
        let _ = tx.send(("on_disconnect", conn.data::<User>(), n));
        async {}
    });
    let (_server, addr) = common::start(server).await;

    let (mut raw, _) = Raw::handshaked(addr, json!("ann")).await;
    let ann = Some(User { name: "ann".into() });
    assert_eq!(
        within(seen.recv()).await.unwrap(),
        ("handshake", ann.clone(), 1)
    );
    assert_eq!(
        within(seen.recv()).await.unwrap(),
        ("on_connection", ann, 2)
    );
    assert_eq!(
        raw.request("whoami", json!(1), json!(null)).await["p"],
        "ann"
    );
    assert_eq!(
        raw.request("rename", json!(2), json!("bea")).await["p"],
        "ann"
    );
    assert_eq!(
        raw.request("whoami", json!(3), json!(null)).await["p"],
        "bea"
    );
    raw.close().await;
    let bea = Some(User { name: "bea".into() });
    assert_eq!(
        within(seen.recv()).await.unwrap(),
        ("on_disconnect", bea, 5)
    );
    assert_eq!(
        hits.0.load(Ordering::SeqCst),
        5,
        "two hooks, two requests, one disconnect"
    );
}

#[tokio::test]
async fn connection_data_is_per_connection() {
    let server = Server::builder().build();
    server.on_handshake(|conn: ServerConnection, hs: Handshake| async move {
        let name = hs.payload::<String>().unwrap_or_default();
        conn.set_data(User { name });
        hs.resolve(())
    });
    server.on_request("whoami", |conn: ServerConnection, _: ()| async move {
        Ok::<_, Rejection>(conn.data::<User>().map(|u| u.name))
    });
    server.on_request("forget", |conn: ServerConnection, _: ()| async move {
        Ok::<_, Rejection>(conn.remove_data::<User>().is_some())
    });
    let (_server, addr) = common::start(server).await;
    let (mut a, _) = Raw::handshaked(addr, json!("a")).await;
    let (mut b, _) = Raw::handshaked(addr, json!("b")).await;
    assert_eq!(a.request("whoami", json!(1), json!(null)).await["p"], "a");
    assert_eq!(b.request("whoami", json!(1), json!(null)).await["p"], "b");
    assert_eq!(a.request("forget", json!(2), json!(null)).await["p"], true);
    assert_eq!(
        a.request("whoami", json!(3), json!(null)).await["p"],
        json!(null)
    );
    assert_eq!(b.request("whoami", json!(3), json!(null)).await["p"], "b");
}
