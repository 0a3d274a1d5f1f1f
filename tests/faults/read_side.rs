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
