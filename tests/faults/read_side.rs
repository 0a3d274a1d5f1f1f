//! The read side under faults: Postgres unreachable, the projector killed with a standby.

use super::*;

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
    let (status, _) = readyz(&base).await.expect("an answer");
    assert_eq!(status, 503, "readyz says Postgres is down");
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
pub(crate) async fn active_projector(processes: &[NatterProcess]) -> Option<usize> {
    for (i, p) in processes.iter().enumerate() {
        if let Some((_, body)) = p.readyz().await
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

/// Postgres killed with SIGKILL while messages stream in: the read models' sessions commit
/// asynchronously, so the last commits before the kill may be gone after its recovery,
/// batch and checkpoint together. The projector resumes from the checkpoint Postgres kept, so
/// afterwards every acknowledged message is in the read model once and the read models equal
/// a rebuild from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_postgres_killed_with_sigkill_mid_stream() {
    // The WAL writer flushes asynchronous commits every 10 s instead of 200 ms, so that the
    // kill surely loses the last of them.
    let mut postgres = PostgresServer::start_with(&["wal_writer_delay=10s"]);
    let isolation = Isolation::on("t", &nats_url(), &postgres.server_url());
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let natter = natter_all(&isolation, &isolation.nats_url);
    let base = natter.base();
    let (token, room) = user_and_room(&base, "loader").await;
    // Besides the stream of messages, events of the projector's other path (a join, a
    // reaction) before and after the kill.
    let api = natter_testkit::api::Api::server(&base);
    let other = api.register("other").await;
    let room_id: uuid::Uuid = room.parse().unwrap();
    api.join(&other.token, room_id).await;
    let load = Workload::start(
        vec![base.clone()],
        base.clone(),
        token.clone(),
        room.clone(),
    );
    load.wait_acked(100, Duration::from_secs(30)).await;
    // In a room of its own: the workload checks that its room holds its messages alone.
    let side = api
        .create_room(&other.token, serde_json::json!({ "name": "side" }))
        .await;
    let (target, _) = api
        .send_with(
            &other.token,
            side,
            serde_json::json!({ "content": "react to me" }),
        )
        .await;
    let client = client();
    let react = |emoji: &'static str| {
        let (client, base, token) = (client.clone(), base.clone(), other.token.clone());
        async move {
            let r = client
                .put(format!(
                    "{base}/api/v1/rooms/{side}/messages/{target}/reactions/{emoji}"
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{emoji}");
        }
    };
    react("👍").await;
    load.wait_acked(50, Duration::from_secs(30)).await;

    postgres.kill();
    // The last batch Postgres acknowledged before it died.
    let (_, ready) = readyz(&base).await.expect("an answer");
    let committed = ready["projection"]["position"]
        .as_u64()
        .expect("a position");
    // Commands need only NATS: sends go on while Postgres is away.
    load.wait_acked(20, Duration::from_secs(20)).await;
    react("🎉").await;
    postgres.restart();
    let restarted = Instant::now();
    let messages = format!("{base}/api/v1/rooms/{room}/messages?limit=1");
    loop {
        let r = client.get(&messages).bearer_auth(&token).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "queries did not come back after Postgres restarted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report(&format!(
        "Postgres killed (SIGKILL) and restarted: queries answer again {:.2} s after it started",
        restarted.elapsed().as_secs_f64()
    ));
    load.wait_acked(50, Duration::from_secs(30)).await;
    let verified = load.finish_and_verify(&base).await;
    // Where the projector started again: the checkpoint Postgres kept through the crash.
    let resumed = natter
        .log_lines()
        .iter()
        .rev()
        .filter(|l| l.contains("projecting from the checkpoint"))
        .filter_map(|l| {
            let at = l.split("checkpoint=").nth(1)?;
            at.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .next()
        .expect("the projector logged where it resumed");
    report(&format!(
        "Postgres killed mid-stream: it lost the commits after position {resumed} (the projector had committed up to {committed}); \
         applied again from the log, {} messages checked",
        verified.acked
    ));
    assert!(
        resumed < committed,
        "the kill lost no asynchronous commit (resumed at {resumed}, committed {committed}): the test proves nothing"
    );

    let pool = sqlx::PgPool::connect(&isolation.database_url)
        .await
        .unwrap();
    let live = readmodels::dump(&pool).await;
    let out = std::process::Command::new(NATTER.as_str())
        .arg("rebuild")
        .envs(NatterProcess::env_for(
            &isolation,
            &isolation.nats_url,
            &isolation.database_url,
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    readmodels::assert_same_models(
        &live,
        &readmodels::dump(&pool).await,
        "a rebuild after the kill",
    );
    let reactions: Value = client
        .get(format!("{base}/api/v1/rooms/{side}/messages/{target}"))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reactions["reactions"].as_array().map(Vec::len),
        Some(2),
        "both reactions, the one made while Postgres was down too: {reactions}"
    );
    pool.close().await;
}
