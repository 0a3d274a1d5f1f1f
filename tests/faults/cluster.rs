//! natter over a 3-node NATS cluster losing nodes, and scaled out over one with each role
//! killed in turn.

use super::*;
use crate::read_side::active_projector;

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
