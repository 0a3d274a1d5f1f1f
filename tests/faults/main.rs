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

mod edge;
mod workload;

use std::io::Write as _;
use std::time::{Duration, Instant};

use natter_testkit::nats::{NatsCluster, NatsServer, current_binary, default_binary};
use natter_testkit::process::NatterProcess;
use natter_testkit::proxy::{Cut, TcpProxy};
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
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
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
async fn fault_postgres_unreachable_for_a_while() {
    let setup = Setup::new(nats_url());
    // natter reaches its database through a proxy the test can cut.
    let upstream = postgres_server_url()
        .rsplit('@')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let proxy = TcpProxy::start(&upstream);
    let user = postgres_server_url()
        .split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .unwrap_or("postgres")
        .to_string();
    let database_url = format!(
        "postgres://{user}@127.0.0.1:{}/{}",
        proxy.port, setup.isolation.database
    );
    let natter = NatterProcess::start(
        NATTER.as_str(),
        "all",
        NatterProcess::env_for(&setup.isolation, &setup.nats, &database_url),
    );
    let base = natter.base();
    let (token, room) = user_and_room(&base, "loader").await;
    let load = Workload::start(
        vec![base.clone()],
        base.clone(),
        token.clone(),
        room.clone(),
    );
    load.wait_acked(20, Duration::from_secs(20)).await;
    let client = client();
    let messages = format!("{base}/api/v1/rooms/{room}/messages?limit=1");

    proxy.set(Cut::Blackhole);
    let cut = Instant::now();
    // Commands need only NATS: sends go on while Postgres is away.
    load.wait_acked(20, Duration::from_secs(10)).await;
    // Queries fail fast and cleanly (the first may meet a pooled connection that the
    // partition froze, the next ones a pool that cannot connect).
    let mut took: f64 = 0.0;
    for _ in 0..3 {
        let started = Instant::now();
        let r = client.get(&messages).bearer_auth(&token).send().await;
        let elapsed = started.elapsed().as_secs_f64();
        took = took.max(elapsed);
        let Ok(r) = r else {
            report(&format!(
                "Postgres partitioned: a query got no answer within {elapsed:.1} s"
            ));
            panic!("a query hung while Postgres was unreachable");
        };
        assert_eq!(r.status(), 503);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
    }
    report(&format!(
        "Postgres partitioned (packets dropped): queries answered 503 within {took:.2} s"
    ));
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "readyz says Postgres is down");
    assert!(
        took < 2.5,
        "a query waited {took:.2} s for a Postgres that is down"
    );
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(cut.elapsed())).await;

    proxy.set(Cut::Open);
    let cleared = Instant::now();
    let back = loop {
        let r = client
            .get(&messages)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break cleared.elapsed().as_secs_f64();
        }
        assert!(
            cleared.elapsed() < Duration::from_secs(10),
            "queries did not recover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    report(&format!(
        "Postgres partitioned for 5 s: sends kept succeeding; queries answer again {back:.2} s after it is reachable"
    ));
    assert!(back < RECOVERY_BOUND);
    load.finish_and_verify(&base).await;
}

/// Which of `processes` (projector role) is the active projector, by its `/readyz`.
async fn active_projector(processes: &[NatterProcess]) -> Option<usize> {
    for (i, p) in processes.iter().enumerate() {
        if let Ok(r) = client().get(format!("{}/readyz", p.base())).send().await
            && let Ok(body) = r.json::<Value>().await
            && body["projection"]["active"] == true
        {
            return Some(i);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_projector_killed_repeatedly_with_a_standby() {
    let setup = Setup::new(nats_url());
    let env = NatterProcess::env_for(&setup.isolation, &setup.nats, &setup.isolation.database_url);
    let command = NatterProcess::start(NATTER.as_str(), "command", env.clone());
    let query = NatterProcess::start(NATTER.as_str(), "query", env.clone());
    let mut projectors = vec![
        NatterProcess::start(NATTER.as_str(), "projector", env.clone()),
        NatterProcess::start(NATTER.as_str(), "projector", env.clone()),
    ];
    let (token, room) = user_and_room(&command.base(), "loader").await;
    // Sends go to the command instance; the reader follows the query instance.
    let load = Workload::start(vec![command.base()], query.base(), token, room);
    for round in 0..3 {
        load.wait_acked(15, Duration::from_secs(20)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let active = loop {
            if let Some(i) = active_projector(&projectors).await {
                break i;
            }
            assert!(Instant::now() < deadline, "no projector is active");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        projectors[active].kill();
        let killed = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if active_projector(&projectors).await.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "the standby did not take over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        report(&format!(
            "active projector killed -9 (round {round}): the standby took over in {:.2} s",
            killed.elapsed().as_secs_f64()
        ));
        projectors[active].restart();
    }
    load.finish_and_verify(&query.base()).await;
}

/// Which node of `cluster` natter's connection (named `natter-all`) is on, by the nodes'
/// monitoring endpoints.
async fn connected_node(cluster: &NatsCluster) -> Option<usize> {
    for (i, node) in cluster.nodes.iter().enumerate() {
        let Some(port) = node.monitor_port else {
            continue;
        };
        if !node.is_running() {
            continue;
        }
        let Ok(r) = client()
            .get(format!("http://127.0.0.1:{port}/connz"))
            .send()
            .await
        else {
            continue;
        };
        if r.text().await.is_ok_and(|t| t.contains("natter-all")) {
            return Some(i);
        }
    }
    None
}

/// The node leading the stream, by the stream's cluster info.
async fn stream_leader(cluster: &NatsCluster, stream: &str) -> Option<usize> {
    let servers = natter_events::connection::server_list(&cluster.urls()).ok()?;
    let client = async_nats::connect(servers).await.ok()?;
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.ok()?;
    let info = s.info().await.ok()?;
    let leader = info.cluster.as_ref()?.leader.clone()?;
    leader.trim_start_matches('n').parse().ok()
}

/// Seconds from `lost` until a raw JetStream client could do through `urls` what a send
/// needs: a put into the idempotency bucket (a key no request uses) is acknowledged; a
/// publish to the event stream that expects an impossible subject sequence is refused by the
/// stream's leader (which proves a leader is writing, and stores nothing); and a consumer of
/// the log can be created (as a client whose connection moved must, to follow the log again;
/// creating one needs the cluster's meta leader).
async fn raw_stream_recovery(urls: String, prefix: String, stream: String, lost: Instant) -> f64 {
    use async_nats::jetstream::context::PublishErrorKind;
    use async_nats::jetstream::message::PublishMessage as Publish;
    let servers = natter_events::connection::server_list(&urls).unwrap();
    let client = async_nats::connect(servers).await.unwrap();
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(250))
        .build(client);
    let probe = |subject: String, publish: Publish| {
        let js = js.clone();
        async move {
            match js.send_publish(subject, publish).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.kind()),
                Err(e) => Err(if e.kind() == PublishErrorKind::TimedOut {
                    PublishErrorKind::TimedOut
                } else {
                    PublishErrorKind::Other
                }),
            }
        }
    };
    loop {
        let bucket = probe(
            format!("$KV.{stream}_idem.fault-probe"),
            Publish::build().payload("probe".into()),
        )
        .await;
        let log = probe(
            format!("{prefix}.events.fault-probe"),
            Publish::build()
                .payload("never stored".into())
                .expected_last_subject_sequence(u64::MAX),
        )
        .await;
        if bucket.is_ok() && log == Err(PublishErrorKind::WrongLastSequence) {
            let follow = async {
                let stream = js.get_stream(&stream).await.ok()?;
                stream
                    .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                        filter_subject: format!("{prefix}.events.>"),
                        deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
                        ..Default::default()
                    })
                    .await
                    .ok()
            };
            if follow.await.is_some() {
                return lost.elapsed().as_secs_f64();
            }
        }
        assert!(
            lost.elapsed() < Duration::from_secs(30),
            "the cluster never accepted writes again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_three_node_cluster_loses_nodes() {
    let binary =
        current_binary().expect("a current nats-server (.ci/run installs one; see testkit::nats)");
    let mut cluster = NatsCluster::start(&binary, 3);
    let setup = Setup::new(cluster.urls());
    let mut env = NatterProcess::env_for(
        &setup.isolation,
        &cluster.urls(),
        &setup.isolation.database_url,
    );
    env.push(("NATTER_STREAM_REPLICAS".into(), "3".into()));
    let natter = NatterProcess::start(NATTER.as_str(), "all", env);
    let (token, room) = user_and_room(&natter.base(), "loader").await;
    let load = Workload::start(vec![natter.base()], natter.base(), token, room);
    load.wait_acked(20, Duration::from_secs(30)).await;

    let stream = setup.isolation.stream.clone();
    type Pick = fn(&[usize]) -> usize;
    let steps: [(&str, Pick); 3] = [
        ("the stream leader", |c| c[0]),
        ("a follower", |c| c[1]),
        ("the node natter is connected to", |c| c[2]),
    ];
    for (what, pick) in steps {
        let leader = stream_leader(&cluster, &stream)
            .await
            .expect("a stream leader");
        let follower = (0..3).find(|i| *i != leader).unwrap();
        let connected = connected_node(&cluster).await.expect("natter's node");
        let victim = pick(&[leader, follower, connected]);
        let survivors: Vec<String> = (0..3)
            .filter(|i| *i != victim)
            .map(|i| cluster.nodes[i].url())
            .collect();
        let before = load.acked();
        let lost = Instant::now();
        cluster.nodes[victim].kill();
        // What JetStream itself needs: how long until the streams accept writes again
        // through the surviving nodes (a new leader, when a leader was lost).
        let raw = raw_stream_recovery(
            survivors.join(","),
            setup.isolation.prefix.clone(),
            stream.clone(),
            lost,
        )
        .await;
        load.wait_acked(20, Duration::from_secs(30)).await;
        let recovery = load.recovery_after(lost).unwrap_or(0.0);
        report(&format!(
            "3-node cluster (current release, R3) lost {what} (n{victim}{}): sends succeed {recovery:.2} s after the loss; a raw client could write and follow again after {raw:.2} s ({} acknowledged meanwhile)",
            if victim == connected {
                ", natter's node"
            } else {
                ""
            },
            load.acked() - before
        ));
        // natter adds at most one request timeout to what the cluster itself needs.
        assert!(
            recovery < raw + REQUEST_SLACK && recovery < 12.0,
            "{what}: {recovery:.2} s (its streams: {raw:.2} s); natter's log: {}",
            natter
                .log_lines()
                .iter()
                .filter(|l| !l.contains(" INFO tower_http"))
                .rev()
                .take(30)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        cluster.nodes[victim].restart();
        // Let it catch up and rejoin before the next loss.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Two nodes at once: no quorum. Sends fail cleanly (never hang), and resume after.
    let lost = Instant::now();
    cluster.nodes[1].kill();
    cluster.nodes[2].kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.nodes[1].restart();
    cluster.nodes[2].restart();
    let cleared = Instant::now();
    let raw = raw_stream_recovery(
        cluster.urls(),
        setup.isolation.prefix.clone(),
        stream.clone(),
        cleared,
    )
    .await;
    load.wait_acked(20, Duration::from_secs(60)).await;
    let recovery = load.recovery_after(cleared).unwrap_or(0.0);
    report(&format!(
        "3-node cluster lost two nodes for 4 s (sends failed cleanly, over {:.1} s): sends succeed {recovery:.2} s after both are back; a raw client could write and follow again after {raw:.2} s",
        load.failing_window(lost)
    ));
    assert!(
        recovery < raw + REQUEST_SLACK,
        "{recovery:.2} s after two nodes came back (its streams: {raw:.2} s)"
    );
    load.finish_and_verify(&natter.base()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_scaled_out_over_a_cluster_one_of_each_role_killed() {
    let binary =
        current_binary().expect("a current nats-server (.ci/run installs one; see testkit::nats)");
    let cluster = NatsCluster::start(&binary, 3);
    let setup = Setup::new(cluster.urls());
    let mut env = NatterProcess::env_for(
        &setup.isolation,
        &cluster.urls(),
        &setup.isolation.database_url,
    );
    env.push(("NATTER_STREAM_REPLICAS".into(), "3".into()));
    let start = |role: &str| NatterProcess::start(NATTER.as_str(), role, env.clone());
    let mut commands = [start("command"), start("command")];
    let mut queries = [start("query"), start("query")];
    let mut projectors = vec![start("projector"), start("projector")];
    let (token, room) = user_and_room(&commands[0].base(), "loader").await;
    // Sends alternate between the command instances; the reader follows the second gateway,
    // which survives.
    let load = Workload::start(
        commands.iter().map(NatterProcess::base).collect(),
        queries[1].base(),
        token,
        room,
    );
    load.wait_acked(20, Duration::from_secs(30)).await;

    let killed = Instant::now();
    commands[0].kill();
    queries[0].kill();
    let active = active_projector(&projectors).await.unwrap_or(0);
    projectors[active].kill();
    load.wait_acked(20, Duration::from_secs(30)).await;
    let recovery = load.recovery_after(killed).unwrap_or(0.0);
    report(&format!(
        "scaled out (2 command, 2 query, 2 projector over a 3-node cluster): one of each killed -9, sends succeed {recovery:.2} s later through the survivors"
    ));
    assert!(recovery < RECOVERY_BOUND);
    // The dead ones come back and take their share again.
    commands[0].restart();
    queries[0].restart();
    projectors[active].restart();
    load.wait_acked(20, Duration::from_secs(30)).await;
    load.finish_and_verify(&queries[0].base()).await;
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
                if f["type"] == "event" {
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
