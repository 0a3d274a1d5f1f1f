//! Operators and service clients across instances, as deployed: two command processes, two
//! query/gateway processes and a projector on one NATS. A revocation made through one
//! instance is enforced by the others within a bound; a disconnect and the stats reach every
//! gateway; no secret shows in the logs or `natter replay`.

use std::process::Command;
use std::time::{Duration, Instant};

use natter_testkit::api::Api;
use natter_testkit::process::NatterProcess;
use natter_testkit::ws::Ws;
use natter_testkit::{Cleanup, Isolation, nats_url};
use serde_json::{Value, json};

/// How soon every instance must refuse a revoked token.
const REVOCATION_BOUND: Duration = Duration::from_secs(3);

fn natter(isolation: &Isolation, role: &str) -> NatterProcess {
    let mut env = NatterProcess::env_for(isolation, &nats_url(), &isolation.database_url);
    env.push(("NATTER_ADMINS".into(), "root".into()));
    // Debug logs, so the check that no secret is logged covers request spans too.
    env.push((
        "RUST_LOG".into(),
        "info,natter=debug,natter_query=debug,natter_command=debug,natter_edge=debug,tower_http=debug"
            .into(),
    ));
    NatterProcess::start(env!("CARGO_BIN_EXE_natter"), role, env)
}

fn addr(process: &NatterProcess) -> std::net::SocketAddr {
    format!("127.0.0.1:{}", process.port).parse().unwrap()
}

/// Polls `attempt` until it returns true; returns how long that took, or fails after
/// `bound`.
async fn within<F: Future<Output = bool>>(
    bound: Duration,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Duration {
    let start = Instant::now();
    loop {
        if attempt().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < bound, "{what} took over {bound:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The next frame that is not `typing`/`presence` noise.
async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let frame = ws.next().await;
        if frame["type"] != "presence" {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_clients_and_operators_across_two_commands_and_two_gateways() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let mut processes = vec![
        natter(&isolation, "command"),
        natter(&isolation, "command"),
        natter(&isolation, "query"),
        natter(&isolation, "query"),
        natter(&isolation, "projector"),
    ];
    let (command_a, command_b) = (
        Api::server(&processes[0].base()),
        Api::server(&processes[1].base()),
    );
    let (query_a, query_b) = (
        Api::server(&processes[2].base()),
        Api::server(&processes[3].base()),
    );
    let (gateway_a, gateway_b) = (addr(&processes[2]), addr(&processes[3]));

    // The operator issues an API token for the app's backend through one command instance...
    let root = command_a.register("root").await.token;
    let issued = command_a
        .post(
            "/admin/tokens",
            Some(&root),
            json!({ "name": "app backend" }),
        )
        .await
        .expect(201)
        .clone();
    let service = issued["token"].as_str().unwrap().to_string();
    let service_id = issued["id"].as_str().unwrap().to_string();

    // ...and the backend uses it at once through the other: it creates a user, mints a
    // second token for them, and the user chats over both gateways.
    let created = command_b
        .post("/users", Some(&service), json!({ "username": "app_user" }))
        .await
        .expect(201)
        .clone();
    let user_id = created["user"]["id"].as_str().unwrap().to_string();
    let user_token = created["token"].as_str().unwrap().to_string();
    let minted = command_b
        .post(
            &format!("/users/{user_id}/tokens"),
            Some(&service),
            json!({}),
        )
        .await
        .expect(201)
        .clone();
    let minted_token = minted["token"].as_str().unwrap().to_string();
    let room = command_b
        .create_room(&user_token, json!({ "name": "app room" }))
        .await;
    let mut on_a = Ws::connect(gateway_a, &user_token).await;
    let mut on_b = Ws::connect(gateway_b, &minted_token).await;
    for ws in [&mut on_a, &mut on_b] {
        ws.subscribe(room, None).await;
        assert_eq!(next_frame(ws).await["type"], "subscribed");
    }
    on_a.send(json!({
        "op": "send", "room_id": room, "client_id": "hello-1", "content": "hello"
    }))
    .await;
    let ack = on_a
        .until(|f| f["type"] == "ack" || f["type"] == "error")
        .await
        .pop()
        .unwrap();
    assert_eq!(ack["type"], "ack", "{ack}");
    let sent_at = ack["position"].as_u64().unwrap();
    let event = on_b.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(event["position"], sent_at);
    assert_eq!(event["event"]["data"]["content"], "hello");

    // Stats and the connection list count both gateways.
    let stats = query_b
        .get(&format!("/admin/stats?min_position={sent_at}"), Some(&root))
        .await
        .expect(200)
        .clone();
    assert_eq!(stats["connections"], 2, "{stats}");
    assert_eq!(stats["gateways"], 2, "{stats}");
    assert_eq!(stats["users"], 2, "{stats}");
    assert_eq!(stats["messages"], 1, "{stats}");
    let listed = query_a
        .get("/admin/connections", Some(&root))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        listed["connections"],
        json!([{ "user_id": user_id, "username": "app_user", "connections": 2 }]),
        "{listed}"
    );

    // Revoked through one command instance: refused by the other, and by the query side,
    // within the bound; the user's tokens keep working.
    assert_eq!(
        query_b
            .get(&format!("/users/{user_id}"), Some(&service))
            .await
            .status,
        403,
        "before: a valid API token, but not a user"
    );
    command_a
        .delete(&format!("/admin/tokens/{service_id}"), Some(&root))
        .await
        .expect(200);
    let took = within(REVOCATION_BOUND, "the other command instance", || async {
        command_b
            .post("/users", Some(&service), json!({ "username": "too_late" }))
            .await
            .status
            == 401
    })
    .await;
    println!("revocation seen by the other command instance after {took:?}");
    within(REVOCATION_BOUND, "a query instance", || async {
        query_b
            .get(&format!("/users/{user_id}"), Some(&service))
            .await
            .status
            == 401
    })
    .await;
    command_b
        .post(
            &format!("/users/{user_id}/tokens"),
            Some(&service),
            json!({}),
        )
        .await
        .expect_error(401, "unauthorized");
    for token in [&user_token, &minted_token] {
        command_b.send(token, room, "still chatting").await;
    }
    for ws in [&mut on_a, &mut on_b] {
        ws.send(json!({ "op": "ping" })).await;
        let pong = ws.until(|f| f["type"] == "pong").await;
        assert!(!pong.is_empty());
    }

    // A password changed through one instance revokes older login tokens on every other,
    // an open websocket on another gateway included (4001).
    let carol = command_a.register("carol").await;
    let mut carol_ws = Ws::connect(gateway_b, &carol.token).await;
    carol_ws.send(json!({ "op": "ping" })).await;
    assert_eq!(next_frame(&mut carol_ws).await["type"], "pong");
    let changed = Instant::now();
    command_a
        .patch(
            "/me",
            Some(&carol.token),
            json!({ "password": "a brand new password", "current_password": "password123" }),
        )
        .await
        .expect(200);
    within(REVOCATION_BOUND, "the other command instance", || async {
        command_b
            .post("/rooms", Some(&carol.token), json!({ "name": "x" }))
            .await
            .status
            == 401
    })
    .await;
    assert_eq!(carol_ws.close_code().await, Some(4001));
    assert!(
        changed.elapsed() < REVOCATION_BOUND,
        "the socket closed after {:?}",
        changed.elapsed()
    );

    // Cutting the user off closes their sockets on both gateways with 4003.
    let cut = command_b
        .delete(&format!("/admin/connections/{user_id}"), Some(&root))
        .await
        .expect(200)
        .clone();
    assert_eq!(cut["closed"], 2, "{cut}");
    assert_eq!(cut["gateways"], 2, "{cut}");
    assert_eq!(on_a.close_code().await, Some(4003));
    assert_eq!(on_b.close_code().await, Some(4003));

    // No secret in clear: not in `natter replay`, not in any process's log.
    let replay = Command::new(env!("CARGO_BIN_EXE_natter"))
        .arg("replay")
        .env("NATS_URL", nats_url())
        .env("NATTER_STREAM", &isolation.stream)
        .env("NATTER_SUBJECT_PREFIX", &isolation.prefix)
        .output()
        .unwrap();
    assert!(replay.status.success());
    let replay = String::from_utf8(replay.stdout).unwrap();
    assert!(replay.contains("token.issued") && replay.contains("token.revoked"));
    let secrets = [
        service.as_str(),
        user_token.as_str(),
        minted_token.as_str(),
        carol.token.as_str(),
        root.as_str(),
        "$argon2",
    ];
    for secret in secrets {
        assert!(!replay.contains(secret), "replay shows {secret}");
    }
    let gateway_log = processes[2].log_lines().join("\n");
    assert!(
        gateway_log.contains("/api/v1/ws"),
        "request spans are logged, so the check below means something:\n{gateway_log}"
    );
    for process in &mut processes {
        let log = process.log_lines().join("\n");
        for secret in secrets {
            assert!(!log.contains(secret), "a log shows {secret}:\n{log}");
        }
        assert!(process.stop().success());
    }
}
