//! The `natter` binary as operators run it.
//!
//! One file, over 400 lines: each test is one operator's session with the binary (roles
//! apart, readiness, shutdown, the CLI tools), on the same process helpers.

use std::process::Command;
use std::time::Duration;

use natter_testkit::api::Api;
use natter_testkit::process::NatterProcess;
use natter_testkit::ws::Ws;
use natter_testkit::{Cleanup, Isolation, nats_url};
use serde_json::{Value, json};

/// `natter serve --role role` of this build, on `isolation`'s stream with `database_url`.
fn natter(isolation: &Isolation, role: &str, database_url: &str) -> NatterProcess {
    NatterProcess::start(
        env!("CARGO_BIN_EXE_natter"),
        role,
        NatterProcess::env_for(isolation, &nats_url(), database_url),
    )
}

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

/// `--role gateway` serves sockets apart from the reads, on NATS alone: it is ready with
/// Postgres unreachable, streams a room, and its sends reach the command role over NATS.
#[tokio::test]
async fn the_gateway_role_serves_websockets_without_postgres() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let unreachable = "postgres://postgres@127.0.0.1:1/unused";
    let gateway = natter(&isolation, "gateway", unreachable);
    let command = natter(&isolation, "command", unreachable);
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", gateway.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "the gateway role does not need Postgres"
    );
    let api = Api::server(&command.base());
    let alice = api.register("alice").await;
    let room = api
        .create_room(&alice.token, json!({ "name": "sockets" }))
        .await;

    let addr = gateway
        .base()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let mut ws = Ws::connect(addr, &alice.token).await;
    ws.subscribe(room, Some(0)).await;
    ws.until(|f| f["type"] == "subscribed").await;
    ws.send(json!({ "op": "send", "room_id": room, "client_id": "c1", "content": "hi" }))
        .await;
    // The ack and the event, in whichever order they come.
    let (mut ack, mut event) = (None, None);
    while ack.is_none() || event.is_none() {
        let frame = ws.next().await;
        match frame["type"].as_str() {
            Some("ack") => ack = Some(frame),
            Some("event") if frame["event"]["type"] == "message.sent" => event = Some(frame),
            _ => {}
        }
    }
    let (ack, event) = (ack.unwrap(), event.unwrap());
    assert_eq!(ack["client_id"], "c1");
    assert_eq!(ack["position"], event["position"]);
    assert_eq!(event["event"]["data"]["content"], "hi");
    // It serves no queries: those are the query role's.
    let me = client
        .get(format!("{}/api/v1/me/rooms", gateway.base()))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 404);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_with_4008_and_the_gateways_memory_stays_flat() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let gateway = natter(&isolation, "query", &isolation.database_url);
    let command = natter(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/unused",
    );
    let client = reqwest::Client::new();
    let api = Api::server(&command.base());
    let token = api.register("flooder").await.token;
    let room = api.create_room(&token, json!({ "name": "flood" })).await;

    let ws_url = format!(
        "{}/api/v1/ws?token={token}",
        gateway.base().replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    use futures::SinkExt;
    ws.send(Message::Text(
        json!({ "op": "subscribe", "room_id": room })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await
            && t.as_str().contains("subscribed")
        {
            break;
        }
    }
    let before = rss_kib(gateway.pid().expect("running"));
    // 48 MB of events the client never reads.
    let body = json!({ "content": "x".repeat(3900) });
    let url = format!("{}/api/v1/rooms/{room}/messages", command.base());
    futures::stream::iter(0..12_000)
        .for_each_concurrent(16, |_| {
            let (client, url, token, body) =
                (client.clone(), url.clone(), token.clone(), body.clone());
            async move {
                let _ = client.post(url).bearer_auth(token).json(&body).send().await;
            }
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(gateway.pid().expect("running"));
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("gateway RSS {before} KiB before, {after} KiB after a 48 MB backlog");
    assert!(
        grown_mib < 25,
        "the gateway grew by {grown_mib} MiB for a 48 MB backlog"
    );
    let mut code = None;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        if let Ok(Message::Close(frame)) = message {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(4008));
}

fn natter_cli(isolation: &Isolation, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(args)
        .env("NATS_URL", nats_url())
        .env("NATTER_STREAM", &isolation.stream)
        .env("NATTER_SUBJECT_PREFIX", &isolation.prefix)
        .output()
        .unwrap()
}

#[tokio::test]
async fn replay_prints_the_log_and_verify_names_a_corrupt_event() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let command = natter(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/unused",
    );
    let api = Api::server(&command.base());
    let auditor = api.register("auditor").await;
    let token = auditor.token;
    let room = api.create_room(&token, json!({ "name": "audited" })).await;
    for i in 0..5 {
        api.send(&token, room, &format!("m{i}")).await;
    }

    let out = natter_cli(&isolation, &["replay"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["position"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert!(!stdout.contains("$argon2"), "credentials are redacted");
    let out = natter_cli(
        &isolation,
        &[
            "replay",
            "--room",
            &room.to_string(),
            "--type",
            "message.sent",
            "--from",
            "4",
        ],
    );
    let lines = String::from_utf8(out.stdout).unwrap();
    assert_eq!(lines.lines().count(), 4);
    let out = natter_cli(&isolation, &["replay", "--format", "table", "--to", "2"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("  position"), "{table}");
    assert!(
        table.contains("room.created") && !table.contains("message.sent"),
        "{table}"
    );

    // Threads, reactions and mentions are part of a sound log too.
    let root = api
        .post(
            &format!("/rooms/{room}/messages"),
            Some(&token),
            json!({ "content": "root" }),
        )
        .await
        .expect(201)["message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = json!({ "content": "reply", "thread_id": root, "reply_to": root, "mentions": [auditor.id] });
    api.post(&format!("/rooms/{room}/messages"), Some(&token), reply)
        .await
        .expect(201);
    let reaction = format!("/rooms/{room}/messages/{root}/reactions/%F0%9F%91%8D");
    api.request(
        axum::http::Method::PUT,
        &reaction,
        Some(&token),
        Vec::new(),
        &[],
    )
    .await
    .expect(200);
    api.delete(&reaction, Some(&token)).await.expect(200);

    let out = natter_cli(&isolation, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("message.sent")
            && report.contains("message.reaction_added")
            && report.contains("message.reaction_removed")
            && report.contains("the log is sound"),
        "{report}"
    );

    // A corrupt event, published straight to the stream.
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    let subject = format!("{}.events.room.{room}.msg", isolation.prefix);
    let bad = js
        .publish(subject, "{\"type\":\"message.sent\",\"oops\":".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let out = natter_cli(&isolation, &["verify"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains(&format!("position {bad}:")), "{stdout}");
    assert!(stderr.contains(&format!("at positions {bad}")), "{stderr}");
    drop(command);
}
