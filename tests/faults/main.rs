//! The fault suite: natter as operators run it (child processes), under a steady load, while
//! its parts fail: nats-server killed and restarted (Debian's 2.9 and the current release),
//! a 3-node cluster losing nodes, Postgres unreachable, natter and the projector killed.
//! Every scenario ends with the workload's outside checks (every acknowledged message once
//! and in order in the read model, the history and the websocket; every failure a clean
//! error of the contract) and writes its recovery times to the report
//! (`target/tmp/fault-report.txt`, printed by `.ci/run`).
//!
//! The tests start their own nats-server processes and proxies; they never touch the
//! machine's shared servers but for their own stream, prefix and database.

mod checks;
mod cluster;
mod edge;
mod read_side;
mod workload;

use std::io::Write as _;
use std::time::{Duration, Instant};

use natter_testkit::nats::{NatsCluster, NatsServer, current_binary, default_binary};
use natter_testkit::postgres::PostgresServer;
use natter_testkit::process::{NatterProcess, readyz};
use natter_testkit::proxy::{Cut, TcpProxy};
use natter_testkit::readmodels;
use natter_testkit::{Cleanup, Isolation, nats_url, postgres_server_url};
use serde_json::Value;

use workload::{Workload, client, user_and_room};

/// The natter under test: this build, or `NATTER_FAULT_BINARY` (to measure another build,
/// such as an older release, under the same faults).
static NATTER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("NATTER_FAULT_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_natter").to_string())
});
/// Sends must succeed within this long of a fault clearing (the goal is 1 s).
const RECOVERY_BOUND: f64 = 5.0;
/// What natter may add to the time a cluster itself needs to serve again: a request sent
/// while the cluster had no leader waits out its 2 s timeout before it is retried.
const REQUEST_SLACK: f64 = 3.0;

/// Appends a line to the fault report and prints it.
fn report(line: &str) {
    println!("RECOVERY {line}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-report.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Waits for sends to go on after a fault `cleared`, reports how long the first one begun
/// after it took to succeed (`what {seconds} s after`), and holds it to [`RECOVERY_BOUND`].
async fn recovered(load: &Workload, cleared: Instant, what: &str, after: &str) -> f64 {
    load.wait_acked(20, Duration::from_secs(30)).await;
    let recovery = load
        .recovery_after(cleared)
        .expect("a send after the fault cleared");
    report(&format!("{what} {recovery:.2} s {after}"));
    assert!(
        recovery < RECOVERY_BOUND,
        "{what} only {recovery:.2} s {after}"
    );
    recovery
}

/// A test's own stream and database, and the NATS servers natter uses. (Streams on a
/// private server go with its store; [`Cleanup`] removes the database, and the streams on
/// the shared server.)
struct Setup {
    isolation: Isolation,
    nats: String,
    _cleanup: Cleanup,
}

impl Setup {
    fn new(nats: String) -> Setup {
        let isolation = Isolation::new();
        Setup {
            _cleanup: Cleanup {
                isolation: isolation.clone(),
            },
            isolation,
            nats,
        }
    }
}

fn natter_all(isolation: &Isolation, nats: &str) -> NatterProcess {
    NatterProcess::start(
        NATTER.as_str(),
        "all",
        NatterProcess::env_for(isolation, nats, &isolation.database_url),
    )
}

/// Polls `/readyz` every 50 ms for `during`; each time it says ready, sends a message into
/// `room` at once. Returns how many sends followed a ready answer and those that failed:
/// a load balancer trusting `/readyz` must not be sent to an instance whose sends fail.
async fn sends_when_ready(
    base: &str,
    token: &str,
    room: &str,
    during: Duration,
) -> (usize, Vec<u16>) {
    let client = client();
    let until = Instant::now() + during;
    let (mut tried, mut failed) = (0, Vec::new());
    while Instant::now() < until {
        if readyz(base).await.is_some_and(|(status, _)| status == 200) {
            tried += 1;
            let sent = client
                .post(format!("{base}/api/v1/rooms/{room}/messages"))
                .bearer_auth(token)
                .json(&serde_json::json!({ "content": "probe" }))
                .send()
                .await;
            let status = sent.map(|r| r.status().as_u16()).unwrap_or(0);
            if status != 201 {
                failed.push(status);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (tried, failed)
}

async fn nats_restart(binary: std::path::PathBuf, label: &str) {
    let mut nats = NatsServer::start(&binary);
    let setup = Setup::new(nats.url());
    let natter = natter_all(&setup.isolation, &nats.url());
    let (token, room) = user_and_room(&natter.base(), "loader").await;
    let probe_room = {
        let r = client()
            .post(format!("{}/api/v1/rooms", natter.base()))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": "probe" }))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["room"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let load = Workload::start(vec![natter.base()], natter.base(), token, room);
    load.wait_acked(20, Duration::from_secs(20)).await;

    nats.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.restart();
    let cleared = Instant::now();
    // From the restart on, whenever /readyz says ready, a send works.
    let (tried, failed) = sends_when_ready(
        &natter.base(),
        &load.token,
        &probe_room,
        Duration::from_secs(3),
    )
    .await;
    assert!(tried > 0, "/readyz never said ready again");
    assert!(
        failed.is_empty(),
        "/readyz said ready, yet {} of {tried} sends right after failed ({failed:?})",
        failed.len()
    );
    recovered(
        &load,
        cleared,
        &format!("nats-server {label} killed for 3 s and restarted: sends succeed"),
        "after it is reachable again",
    )
    .await;
    let done = load.finish_and_verify(&natter.base()).await;
    report(&format!("  nats-server {label}: {}", done.summary()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_nats_server_restart_debian() {
    nats_restart(default_binary(), "(the default)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_nats_server_restart_current_release() {
    let binary =
        current_binary().expect("a current nats-server (.ci/run installs one; see testkit::nats)");
    nats_restart(binary, "(current release)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_nats_server_frozen_and_thawed() {
    // SIGSTOP: the server's sockets stay open and nothing answers, as on a hung host.
    let nats = NatsServer::start(&default_binary());
    let setup = Setup::new(nats.url());
    let natter = natter_all(&setup.isolation, &nats.url());
    let (token, room) = user_and_room(&natter.base(), "loader").await;
    let load = Workload::start(vec![natter.base()], natter.base(), token, room);
    load.wait_acked(20, Duration::from_secs(20)).await;

    let frozen = Instant::now();
    nats.freeze(true);
    tokio::time::sleep(Duration::from_secs(4)).await;
    nats.freeze(false);
    recovered(
        &load,
        Instant::now(),
        "nats-server frozen (SIGSTOP) for 4 s, then thawed: sends succeed",
        "after it thawed",
    )
    .await;
    report(&format!(
        "  while frozen, sends failed cleanly over {:.1} s (none hung past the request timeouts)",
        load.failing_window(frozen)
    ));
    load.finish_and_verify(&natter.base()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_natter_killed_and_restarted_under_load() {
    let setup = Setup::new(nats_url());
    let mut natter = natter_all(&setup.isolation, &setup.nats);
    let (token, room) = user_and_room(&natter.base(), "loader").await;
    let load = Workload::start(vec![natter.base()], natter.base(), token, room);
    load.wait_acked(20, Duration::from_secs(20)).await;
    for round in 0..2 {
        natter.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        natter.restart();
        recovered(
            &load,
            Instant::now(),
            &format!("natter (role all) killed -9 and restarted (round {round}): sends succeed"),
            "after it listens",
        )
        .await;
    }
    load.finish_and_verify(&natter.base()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_slow_websocket_reader_under_a_burst_is_cut_with_4008_and_resumes_gap_free() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let setup = Setup::new(nats_url());
    let natter = natter_all(&setup.isolation, &setup.nats);
    let base = natter.base();
    let (token, room) = user_and_room(&base, "bursty").await;
    // A reader with a small receive buffer that stops reading after subscribing.
    let tcp = {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", natter.port).parse().unwrap();
        socket.connect(&addr.into()).unwrap();
        socket.set_nonblocking(true).unwrap();
        tokio::net::TcpStream::from_std(socket.into()).unwrap()
    };
    let url = format!(
        "{}/api/v1/ws?token={token}",
        base.replace("http://", "ws://")
    );
    let (mut slow, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .unwrap();
    let subscribe = serde_json::json!({ "op": "subscribe", "room_id": room, "since": 0 });
    slow.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();

    // The burst: big messages from 16 senders at once.
    let client = client();
    let content = "x".repeat(3900);
    let sends = futures::stream::iter(0..1200)
        .map(|i| {
            let (client, token, room, base, content) = (
                client.clone(),
                token.clone(),
                room.clone(),
                base.clone(),
                content.clone(),
            );
            async move {
                let r = client
                    .post(format!("{base}/api/v1/rooms/{room}/messages"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "content": format!("{i} {content}") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                r.json::<Value>().await.unwrap()["position"]
                    .as_u64()
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<u64>>()
        .await;
    let last = *sends.iter().max().unwrap();

    // Reading now, the slow reader finds it was cut off with 4008, having read some frames.
    let mut since = 0;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(30), slow.next())
            .await
            .expect("a frame or the close")
        {
            Some(Ok(Message::Text(t))) => {
                let f: Value = serde_json::from_str(&t).unwrap();
                if f["type"] == "event" && f["feed"] != "me" {
                    since = f["position"].as_u64().unwrap();
                }
            }
            Some(Ok(Message::Close(c))) => break c.map(|c| u16::from(c.code)),
            Some(Ok(_)) => {}
            other => panic!("the slow reader was dropped without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(4008), "too slow: told to resume");
    report(&format!(
        "a websocket reader that stopped reading under a burst of 1,200 4 KB messages: closed with 4008 after {since} of {last} positions; it resumes gap-free"
    ));

    // It resumes from its last position and gets the rest, chained, each once.
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let subscribe = serde_json::json!({ "op": "subscribe", "room_id": room, "since": since });
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let mut previous = since;
    let mut messages = 0;
    while previous < last {
        let t = match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the rest arrives")
        {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(c))) => panic!("closed while resuming at {previous}: {c:?}"),
            Some(Ok(_)) => continue,
            other => panic!("the resumed socket ended at {previous}: {other:?}"),
        };
        let f: Value = serde_json::from_str(&t).unwrap();
        if f["type"] != "event" {
            continue;
        }
        assert_eq!(
            f["prev_position"].as_u64(),
            Some(previous),
            "no gap after resuming"
        );
        previous = f["position"].as_u64().unwrap();
        if f["event"]["type"] == "message.sent" {
            messages += 1;
        }
    }
    let read_before = sends.iter().filter(|p| **p <= since).count();
    assert_eq!(
        read_before + messages,
        sends.len(),
        "every message once across the cut"
    );
}
