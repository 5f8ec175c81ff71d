//! The load benchmark: roomwire against a plain tokio-tungstenite floor, each server in a
//! process of its own, driven by the same load generator in the same run.
//!
//! ```text
//! cargo bench --bench load
//! cargo bench --bench load -- --connections 100 --inflight 16 --requests 10000 \
//!     --members 5000 --broadcasts 20 --size 1024 --handshakes 3000 --idle 10000 --rounds 3
//! ```
//!
//! Reports server CPU microseconds per operation (utime + stime from /proc around each
//! measured phase), throughput and latency, then one line per target:
//! `scenario=<name> ratio=<roomwire/floor> target=<t> ok=<true|false>`.
//!
//! Each scenario runs in rounds, floor and roomwire alternating (a fresh process each), and
//! reports the round with the median ratio: on a shared machine the speed of both drifts
//! over seconds, and a ratio of two runs taken back to back cancels most of that drift.

mod generator;
mod measure;
mod servers;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use generator::Outcome;

struct Sizes {
    connections: usize,
    inflight: usize,
    requests: usize,
    members: usize,
    broadcasts: usize,
    size: usize,
    handshakes: usize,
    idle: usize,
    rounds: usize,
}

impl Sizes {
    fn from_args(args: &[String]) -> Self {
        let mut sizes = Sizes {
            connections: 100,
            inflight: 16,
            requests: 10_000,
            members: 5000,
            broadcasts: 20,
            size: 1024,
            handshakes: 3000,
            idle: 10_000,
            rounds: 5,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let slot = match arg.as_str() {
                "--connections" => &mut sizes.connections,
                "--inflight" => &mut sizes.inflight,
                "--requests" => &mut sizes.requests,
                "--members" => &mut sizes.members,
                "--broadcasts" => &mut sizes.broadcasts,
                "--size" => &mut sizes.size,
                "--handshakes" => &mut sizes.handshakes,
                "--idle" => &mut sizes.idle,
                "--rounds" => &mut sizes.rounds,
                _ => continue, // cargo passes --bench; ignore what is not ours
            };
            *slot = it
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} takes a number"));
        }
        sizes
    }
}

/// A server under test, in its own process.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(kind: &str) -> Self {
        // The server gets a core of its own (the generator has the other), so the two do not
        // compete for one and the figures are steadier; without taskset they share.
        let exe = std::env::current_exe().unwrap();
        let mut command = if pinning() {
            let mut c = Command::new("taskset");
            c.args(["-c", "1"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let mut child = command
            .args(["--serve", kind])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected server output: {line:?}"));
        ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one scenario measured: the round with the median ratio, every round's ratio, and
/// the JSON floor's rounds where it took part.
struct Measured {
    median: (Outcome, Outcome),
    ratios: Vec<f64>,
    json: Option<JsonFloor>,
    /// p99 latency, roomwire / floor, in every round.
    p99_ratios: Vec<f64>,
}

/// The JSON floor in one scenario: its median round (by roomwire's ratio to it), roomwire /
/// JSON floor in every round, and JSON floor / floor in every round — how far a server doing
/// the protocol's JSON work, and nothing else, is from the floor.
struct JsonFloor {
    median: Outcome,
    roomwire_ratios: Vec<f64>,
    floor_ratios: Vec<f64>,
}

/// The item whose `key` is the median of all the items' (the upper one of an even count).
fn median_by<T>(mut items: Vec<T>, key: impl Fn(&T) -> f64) -> Option<T> {
    items.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let middle = items.len() / 2;
    (middle < items.len()).then(|| items.swap_remove(middle))
}

/// The median of `values` (NaN when there are none).
fn median(values: &[f64]) -> f64 {
    median_by(values.to_vec(), |v| *v).unwrap_or(f64::NAN)
}

/// Runs `scenario` `rounds` times against a fresh process of each server in turn — the floor,
/// the JSON floor when `json`, then roomwire — and picks the round whose ratio (by `ratio`)
/// is the median.
fn measure<F, Fut>(
    rt: &tokio::runtime::Runtime,
    rounds: usize,
    json: bool,
    ratio: fn(&(Outcome, Outcome)) -> f64,
    scenario: F,
) -> Measured
where
    F: Fn(SocketAddr, u32) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let run = |kind: &str| {
        let server = ServerProcess::start(kind);
        rt.block_on(scenario(server.addr, server.pid()))
    };
    let all: Vec<((Outcome, Outcome), Option<Outcome>)> = (0..rounds.max(1))
        .map(|_| {
            let floor = run("floor");
            let json_floor = json.then(|| run("floor_json"));
            ((floor, run("roomwire")), json_floor)
        })
        .collect();
    let ratios: Vec<f64> = all.iter().map(|(pair, _)| ratio(pair)).collect();
    let p99_ratios = all
        .iter()
        .map(|((floor, roomwire), _)| roomwire.p99.as_secs_f64() / floor.p99.as_secs_f64())
        .collect();
    // The JSON floor's rounds, with roomwire's CPU ratio to each and each one's to the floor.
    let vs_json: Vec<(f64, f64, Outcome)> = all
        .iter()
        .filter_map(|((floor, roomwire), json)| {
            let json = json.clone()?;
            let per_op = json.cpu_per_op_us();
            Some((
                roomwire.cpu_per_op_us() / per_op,
                per_op / floor.cpu_per_op_us(),
                json,
            ))
        })
        .collect();
    let roomwire_ratios = vs_json.iter().map(|(r, _, _)| *r).collect();
    let floor_ratios = vs_json.iter().map(|(_, f, _)| *f).collect();
    let json = median_by(vs_json, |(r, _, _)| *r).map(|(_, _, median)| JsonFloor {
        median,
        roomwire_ratios,
        floor_ratios,
    });
    let median = median_by(all, |(pair, _)| ratio(pair))
        .expect("at least one round")
        .0;
    Measured {
        median,
        ratios,
        json,
        p99_ratios,
    }
}

/// Server CPU per operation, roomwire / floor.
fn cpu_ratio((floor, roomwire): &(Outcome, Outcome)) -> f64 {
    roomwire.cpu_per_op_us() / floor.cpu_per_op_us()
}

/// Idle memory per connection, roomwire's (the floor's is reported, not compared).
fn memory_per_conn((_, roomwire): &(Outcome, Outcome)) -> f64 {
    roomwire.rss_delta as f64 / roomwire.ops.max(1) as f64
}

/// Whether the processes are pinned to cores (needs `taskset` and two cores).
fn pinning() -> bool {
    std::env::var_os("LOAD_PINNED").is_some()
}

/// Scenario `name` with sizes `s`, against the server at `addr` (process `pid`).
fn scenario<'a>(
    name: &str,
    s: &'a Sizes,
    addr: SocketAddr,
    pid: u32,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + 'a>> {
    let (conns, inflight, requests) = (s.connections, s.inflight, s.requests);
    match name {
        "request_response" => Box::pin(generator::request_response(
            addr, pid, "echo", conns, inflight, requests,
        )),
        // The same, with a handler that passes the payload through as raw JSON: no typed
        // payload work, as in the floor's echo; what the framework itself costs.
        "request_response_passthrough" => Box::pin(generator::request_response(
            addr, pid, "echo_raw", conns, inflight, requests,
        )),
        "server_send" => Box::pin(generator::server_to_client(
            addr, pid, conns, inflight, requests,
        )),
        "broadcast_fanout" => Box::pin(generator::fan_out(
            addr,
            pid,
            s.members,
            s.broadcasts,
            s.size,
        )),
        "handshake" => Box::pin(generator::handshakes(addr, pid, s.handshakes, 32)),
        "idle_memory" => Box::pin(generator::idle_memory(addr, pid, s.idle)),
        other => panic!("unknown scenario {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The generator runs on core 0: re-run this process under taskset once.
    let orchestrating = !args.iter().any(|a| a == "--serve" || a == "--scenario");
    if orchestrating
        && !pinning()
        && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
    {
        let status = Command::new("taskset")
            .args(["-c", "0"])
            .args(&args)
            .env("LOAD_PINNED", "1")
            .status();
        if let Ok(status) = status {
            std::process::exit(status.code().unwrap_or(1));
        }
        // No taskset: run unpinned.
    }
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        match args.get(i + 1).map(String::as_str) {
            Some("roomwire") => servers::serve_roomwire(),
            Some("floor") => servers::serve_floor(false),
            Some("floor_json") => servers::serve_floor(true),
            Some("floor_json_await") => servers::serve_floor_awaiting(),
            other => panic!("unknown server {other:?}"),
        }
        return;
    }
    let s = Sizes::from_args(&args[1..]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Profiling: run one scenario against a server started by hand (under perf, say):
    // `load --serve roomwire` prints its port; then `load --port P --pid PID --scenario NAME`.
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        let value = |flag: &str| {
            let at = args
                .iter()
                .position(|a| a == flag)
                .unwrap_or_else(|| panic!("{flag} is needed"));
            args[at + 1].clone()
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], value("--port").parse::<u16>().unwrap()));
        let pid: u32 = value("--pid").parse().unwrap();
        let outcome = rt.block_on(scenario(&args[i + 1], &s, addr, pid));
        println!("{outcome:?}\ncpu us/op {:.2}", outcome.cpu_per_op_us());
        return;
    }

    println!(
        "roomwire load benchmark: {} connections x {} in flight x {} requests; {} members x {} broadcasts of {} B; {} handshakes; {} idle connections",
        s.connections, s.inflight, s.requests, s.members, s.broadcasts, s.size, s.handshakes, s.idle
    );
    println!(
        "{} rounds per scenario, floor and roomwire alternating; the round with the median ratio is reported",
        s.rounds
    );
    println!("(json floor: the floor doing roomwire's JSON work; for reference, no target)");
    // `--only a,b` runs a subset; the others report nothing (no figure, no target line).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args[i + 1].split(',').map(str::to_owned).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
    let mut rounds_seen = Vec::new();
    let mut json_seen = Vec::new();
    let mut run = |name: &str, ratio: fn(&(Outcome, Outcome)) -> f64| {
        if !wanted(name) {
            return None;
        }
        // The JSON floor answers the request scenarios only.
        let json = matches!(name, "request_response" | "server_send");
        let m = measure(&rt, s.rounds, json, ratio, |addr, pid| {
            scenario(name, &s, addr, pid)
        });
        rounds_seen.push((name.to_owned(), m.ratios));
        if name == "request_response" {
            rounds_seen.push(("request_response_p99".to_owned(), m.p99_ratios));
        }
        if let Some(json) = m.json {
            json_seen.push((name.to_owned(), json));
        }
        Some(m.median)
    };
    let rr = run("request_response", cpu_ratio);
    let passthrough = run("request_response_passthrough", cpu_ratio);
    let s2c = run("server_send", cpu_ratio);
    let fan = run("broadcast_fanout", cpu_ratio);
    let hs = run("handshake", cpu_ratio);
    let idle = run("idle_memory", memory_per_conn);

    println!();
    println!(
        "{:<40} {:>8} {:>10} {:>13} {:>10} {:>8} {:>8}",
        "scenario / server", "ops", "cpu us/op", "of it kernel", "ops/s", "p50 us", "p99 us"
    );
    let row = |name: String, o: &Outcome| {
        let micros = |d: std::time::Duration| {
            if d.is_zero() {
                "-".into()
            } else {
                d.as_micros().to_string()
            }
        };
        println!(
            "{:<40} {:>8} {:>10.2} {:>13.2} {:>10.0} {:>8} {:>8}",
            name,
            o.ops,
            o.cpu_per_op_us(),
            o.kernel_per_op_us(),
            o.per_sec(),
            micros(o.p50),
            micros(o.p99),
        );
    };
    for (name, pair) in [
        ("request_response", &rr),
        ("request_response_passthrough", &passthrough),
        ("server_send", &s2c),
        ("broadcast_fanout", &fan),
        ("handshake", &hs),
    ] {
        if let Some((floor, roomwire)) = pair {
            row(format!("{name} / floor"), floor);
            row(format!("{name} / roomwire"), roomwire);
        }
    }
    for (name, json) in &json_seen {
        row(format!("{name} / json floor"), &json.median);
    }
    let per_conn = |o: &Outcome| o.rss_delta / o.ops.max(1);
    if let Some((floor, roomwire)) = &idle {
        println!(
            "{:<40} floor {} B/conn, roomwire {} B/conn (RSS growth / connections)",
            "idle_memory",
            per_conn(floor),
            per_conn(roomwire)
        );
    }
    if let Some((floor, roomwire)) = &fan {
        println!(
            "{:<40} floor {:.0} ms, roomwire {:.0} ms (until the last member had every message)",
            "fanout time to last",
            floor.wall.as_secs_f64() * 1e3,
            roomwire.wall.as_secs_f64() * 1e3
        );
    }

    let rounds = |name: &str, ratios: &[f64]| {
        let ratios: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!("{name:<40} every round: {}", ratios.join(" "));
    };
    for (name, ratios) in &rounds_seen {
        rounds(name, ratios);
    }
    for (name, json) in &json_seen {
        rounds(&format!("{name} vs json floor"), &json.roomwire_ratios);
        // Not roomwire's ratio: the JSON floor's own to the floor, the least any server doing
        // the protocol's JSON work costs against the echo floor. Kept out of the
        // `scenario=` lines, whose ratios are all roomwire's.
        rounds(&format!("{name} json floor / floor"), &json.floor_ratios);
        println!(
            "{:<40} median: {:.2}",
            format!("{name} json floor / floor"),
            median(&json.floor_ratios)
        );
    }

    println!();
    let line = |name: &str, ratio: f64, target: Option<f64>| match target {
        Some(target) => println!(
            "scenario={name} ratio={ratio:.2} target={target} ok={}",
            ratio <= target
        ),
        None => println!("scenario={name} ratio={ratio:.2} target=none ok=true"),
    };
    // The targets (issue 12): request/response and server-to-client against the JSON floor
    // (the least any server doing the protocol's JSON work costs); the echo-floor ratios of
    // those two stay printed as figures.
    if let Some(rr) = &rr {
        line("request_response", cpu_ratio(rr), None);
        // Latency is noisier than CPU: the median over the rounds, not the median round's.
        let p99 = rounds_seen
            .iter()
            .find(|(name, _)| name == "request_response_p99")
            .map_or(f64::NAN, |(_, ratios)| median(ratios));
        line("request_response_p99", p99, Some(1.5));
    }
    if let Some(s2c) = &s2c {
        line("server_send", cpu_ratio(s2c), None);
    }
    for (name, json) in &json_seen {
        let target = match name.as_str() {
            "request_response" => Some(1.05),
            "server_send" => Some(1.10),
            _ => None,
        };
        line(
            &format!("{name}_vs_json_floor"),
            median(&json.roomwire_ratios),
            target,
        );
    }
    if let Some(fan) = &fan {
        line("broadcast_fanout", cpu_ratio(fan), Some(1.2));
        let time = fan.1.wall.as_secs_f64() / fan.0.wall.as_secs_f64();
        line("broadcast_fanout_time", time, Some(1.5));
    }
    if let Some(passthrough) = &passthrough {
        line("request_response_passthrough", cpu_ratio(passthrough), None);
    }
    if let Some(hs) = &hs {
        line("handshake", cpu_ratio(hs), Some(1.2));
    }
    if let Some((_, roomwire)) = &idle {
        let bytes = per_conn(roomwire);
        println!(
            "scenario=idle_memory bytes_per_conn={bytes} target=5000 ok={}",
            bytes <= 5000
        );
    }
}
