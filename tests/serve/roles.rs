//! The roles in one process and apart: readiness, Postgres out of reach, production's
//! refusal without a secret, and a rebuild from the CLI.

use super::*;

#[tokio::test]
async fn the_command_role_keeps_accepting_commands_while_postgres_is_unreachable() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    // Nothing listens on port 1: Postgres is unreachable for this process.
    let mut natter = natter(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/natter",
    );
    let api = Api::server(&natter.base());
    let (status, _) = natter.readyz().await.expect("an answer");
    assert_eq!(status, 200, "the command role does not need Postgres");
    let ops = api.register("ops").await;
    let room = api
        .create_room(&ops.token, json!({ "name": "still up" }))
        .await;
    for i in 0..5 {
        api.send(&ops.token, room, &format!("m{i}")).await;
    }
    assert!(natter.stop().success(), "SIGTERM is a clean shutdown");
}

#[tokio::test]
async fn serve_runs_every_role_on_one_port_and_reports_readiness() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let mut natter = natter(&isolation, "all", &isolation.database_url);
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", natter.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let (_, ready) = natter.readyz().await.expect("an answer");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        ready["checks"]["postgres"]["ok"], true,
        "the database was created and migrated"
    );
    Api::server(&natter.base()).register("all").await;
    let missing = client
        .get(format!("{}/api/v1/nothing", natter.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    assert!(natter.stop().success());
}

#[test]
fn production_refuses_to_start_without_a_jwt_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(["serve", "--role", "command"])
        .env("NATTER_ENV", "production")
        .env_remove("NATTER_JWT_SECRET")
        .env("NATS_URL", nats_url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NATTER_JWT_SECRET"));
}

#[tokio::test]
async fn command_query_and_projector_run_as_separate_processes_and_rebuild_works_from_the_cli() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let mut projector = natter(&isolation, "projector", &isolation.database_url);
    let mut query = natter(&isolation, "query", &isolation.database_url);
    let mut command = natter(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/unused",
    );
    let client = reqwest::Client::new();
    let api = Api::server(&command.base());
    let token = api.register("split").await.token;
    let position = api
        .post("/rooms", Some(&token), json!({ "name": "apart" }))
        .await
        .expect(201)["position"]
        .as_u64()
        .unwrap();
    let mine: Value = client
        .get(format!(
            "{}/api/v1/me/rooms?min_position={position}",
            query.base()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["rooms"][0]["name"], "apart");
    let (_, ready) = projector.readyz().await.expect("an answer");
    assert_eq!(ready["projection"]["active"], true, "{ready}");
    assert_eq!(ready["projection"]["lag"], 0, "{ready}");

    let out = Command::new(env!("CARGO_BIN_EXE_natter"))
        .arg("rebuild")
        .env("NATS_URL", nats_url())
        .env("DATABASE_URL", &isolation.database_url)
        .env("NATTER_STREAM", &isolation.stream)
        .env("NATTER_SUBJECT_PREFIX", &isolation.prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("up to position {position}")),
        "{summary}"
    );
    let mine: Value = client
        .get(format!("{}/api/v1/me/rooms", query.base()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        mine["rooms"][0]["name"], "apart",
        "the rebuilt model serves the same answer"
    );
    // Chat over the query process's socket: it has no write side, so the op goes over NATS
    // to the command process.
    let room = mine["rooms"][0]["id"].as_str().unwrap().to_string();
    let addr = format!("127.0.0.1:{}", query.port).parse().unwrap();
    let mut ws = natter_testkit::ws::Ws::connect(addr, &token).await;
    ws.send(
        json!({ "op": "send", "room_id": room, "client_id": "split-1", "content": "via nats" }),
    )
    .await;
    let ack = ws
        .until(|f| f["type"] == "ack" || f["type"] == "error")
        .await
        .pop()
        .unwrap();
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["message"]["content"], "via nats");
    for p in [&mut projector, &mut query, &mut command] {
        assert!(p.stop().success());
    }
}
