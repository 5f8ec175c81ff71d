//! Chaos: many clients make requests both ways and answer awaited broadcasts while
//! connections are killed at random from both ends. Every awaited call must end with a
//! definite outcome (none hangs), no reply may reach the wrong caller, and at the end every
//! pending table, the registry and the rooms are empty. Bounded in time; 127.0.0.1 only.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, start_handing_out, within};
use roomwire::client::Client;
use roomwire::{CloseCode, Error, Rejection, SendError, Server, ServerConnection};

const CLIENTS: usize = 24;
const CALLS: usize = 60;

/// A deterministic generator, one per task.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A definite outcome: the right reply, or one of the documented errors.
fn check(result: Result<String, SendError>, token: &str, tally: &Tally) {
    match result {
        Ok(reply) => {
            assert_eq!(reply, token, "a reply reached the wrong caller");
            tally.ok.fetch_add(1, Ordering::Relaxed);
        }
        Err(
            SendError::Disconnected
            | SendError::Timeout { .. }
            | SendError::QueueFull
            | SendError::HandshakePending,
        ) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
        Err(SendError::Rejected(r))
            if r.name() == "Disconnected" || r.name() == "MessageTimeout" =>
        {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
        Err(other) => panic!("unexpected outcome for {token}: {other:?}"),
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_end_definitely_and_nothing_leaks_while_connections_die() {
    let (server, addr, mut conns) = start_handing_out(
        Server::builder()
            .response_timeout(Duration::from_millis(500))
            .close_timeout(Duration::from_millis(300)),
    )
    .await;
    server.on_request("echo", |_c: ServerConnection, token: String| async move {
        // A little work, so requests overlap with the kills.
        tokio::task::yield_now().await;
        Ok::<_, Rejection>(token)
    });
    // The server asks the client back before answering: a request inside a request.
    server.on_request("relay", |c: ServerConnection, token: String| async move {
        let back: String = c.send("ask", &token).await?;
        Ok::<_, Error>(back)
    });
    let seen: Arc<Mutex<Vec<ServerConnection>>> = Arc::default();
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Some(c) = conns.recv().await {
            let _ = c.join("all");
            keep.lock().unwrap().push(c);
        }
    });

    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let client = Client::builder(format!("ws://{addr}"))
            .no_reconnect()
            .response_timeout(Duration::from_millis(500))
            .close_timeout(Duration::from_millis(300))
            .on_request("ask", |_c: Client, token: String| async move {
                Ok::<_, Rejection>(token)
            })
            .connect()
            .await
            .unwrap();
        clients.push(client);
    }
    eventually("every client joined", || server.room_size("all") == CLIENTS).await;

    let mut tasks = Vec::new();
    // Clients calling the server (directly, and through a server-to-client relay).
    for (i, client) in clients.iter().cloned().enumerate() {
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(i as u64 * 7919 + 17);
            for k in 0..CALLS {
                let token = format!("client-{i}-{k}");
                let name = if rng.below(3) == 0 { "relay" } else { "echo" };
                check(client.send(name, &token).await, &token, &tally);
            }
        }));
    }
    // The server calling clients, one by one and by awaited broadcast.
    for t in 0..4 {
        let (server, seen, tally) = (server.clone(), seen.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(t * 104_729 + 3);
            for k in 0..CALLS {
                let token = format!("server-{t}-{k}");
                if rng.below(4) == 0 {
                    let replies = server
                        .to("all")
                        .timeout(Duration::from_millis(500))
                        .send::<_, String>("ask", &token)
                        .await
                        .unwrap();
                    for reply in replies {
                        check(reply.result, &token, &tally);
                    }
                } else {
                    let target = {
                        let seen = seen.lock().unwrap();
                        seen[rng.below(seen.len() as u64) as usize].clone()
                    };
                    check(target.send("ask", &token).await, &token, &tally);
                }
            }
        }));
    }
    // The killer: closes connections from both ends while all that runs.
    {
        let (seen, clients) = (seen.clone(), clients.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(99);
            for kill in 0..CLIENTS / 2 {
                tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
                let i = rng.below(CLIENTS as u64) as usize;
                if kill % 2 == 0 {
                    clients[i].close().await;
                } else {
                    let target = seen.lock().unwrap()[i].clone();
                    target.close(CloseCode::from(4000), "chaos");
                }
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("an awaited call hung")
            .unwrap();
    }
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    println!("{ok} calls answered, {failed} ended with a documented error");
    assert!(
        ok > 0 && failed > 0,
        "the chaos must both serve and cut calls ({ok} ok, {failed} failed)"
    );

    for client in &clients {
        within(client.close()).await;
        assert_eq!(client.pending_requests(), 0);
    }
    eventually("every connection is gone", || {
        server.open_connections() == 0
    })
    .await;
    assert!(server.connections().is_empty());
    assert!(server.rooms().is_empty());
    for conn in seen.lock().unwrap().iter() {
        assert_eq!(conn.pending_requests(), 0);
        assert!(conn.rooms().is_empty());
    }
}
