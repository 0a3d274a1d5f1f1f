//! The `natter` binary as operators run it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use natter_testkit::{Cleanup, Isolation, nats_url};
use serde_json::{Value, json};

/// A running `natter serve` and the address it bound.
struct Natter {
    child: Child,
    base: String,
}

impl Natter {
    fn start(isolation: &Isolation, role: &str, database_url: &str) -> Natter {
        let mut child = Command::new(env!("CARGO_BIN_EXE_natter"))
            .args(["serve", "--role", role])
            .env("NATTER_HTTP_ADDR", "127.0.0.1:0")
            .env("NATS_URL", nats_url())
            .env("DATABASE_URL", database_url)
            .env("NATTER_STREAM", &isolation.stream)
            .env("NATTER_SUBJECT_PREFIX", &isolation.prefix)
            .env("NATTER_SEND_RATE_LIMIT", "off")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("natter starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("natter reports its address");
        Natter { child, base }
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("natter did not stop on SIGTERM");
    }
}

impl Drop for Natter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_command_role_keeps_accepting_commands_while_postgres_is_unreachable() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    // Nothing listens on port 1: Postgres is unreachable for this process.
    let mut natter = Natter::start(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/natter",
    );
    let api = format!("{}/api/v1", natter.base);
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", natter.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "the command role does not need Postgres"
    );
    let (status, body) = post(
        &client,
        format!("{api}/auth/register"),
        None,
        json!({ "username": "ops", "password": "password123" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let (status, body) = post(
        &client,
        format!("{api}/rooms"),
        Some(&token),
        json!({ "name": "still up" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let room = body["room"]["id"].as_str().unwrap().to_string();
    for i in 0..5 {
        let (status, body) = post(
            &client,
            format!("{api}/rooms/{room}/messages"),
            Some(&token),
            json!({ "content": format!("m{i}") }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    assert!(natter.stop().success(), "SIGTERM is a clean shutdown");
}

#[tokio::test]
async fn serve_runs_every_role_on_one_port_and_reports_readiness() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let mut natter = Natter::start(&isolation, "all", &isolation.database_url);
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", natter.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = client
        .get(format!("{}/readyz", natter.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        ready["checks"]["postgres"]["ok"], true,
        "the database was created and migrated"
    );
    let (status, _) = post(
        &client,
        format!("{}/api/v1/auth/register", natter.base),
        None,
        json!({ "username": "all", "password": "password123" }),
    )
    .await;
    assert_eq!(status, 201);
    let missing = client
        .get(format!("{}/api/v1/nothing", natter.base))
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
    let mut projector = Natter::start(&isolation, "projector", &isolation.database_url);
    let mut query = Natter::start(&isolation, "query", &isolation.database_url);
    let mut command = Natter::start(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/unused",
    );
    let client = reqwest::Client::new();
    let (status, body) = post(
        &client,
        format!("{}/api/v1/auth/register", command.base),
        None,
        json!({ "username": "split", "password": "password123" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let (_, body) = post(
        &client,
        format!("{}/api/v1/rooms", command.base),
        Some(&token),
        json!({ "name": "apart" }),
    )
    .await;
    let position = body["position"].as_u64().unwrap();
    let mine: Value = client
        .get(format!(
            "{}/api/v1/me/rooms?min_position={position}",
            query.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["rooms"][0]["name"], "apart");
    let ready: Value = client
        .get(format!("{}/readyz", projector.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        .get(format!("{}/api/v1/me/rooms", query.base))
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
    for p in [&mut projector, &mut query, &mut command] {
        assert!(p.stop().success());
    }
}

/// Registers a user through the command API at `api` and creates a room they own; returns
/// (token, room id).
async fn user_with_room(
    client: &reqwest::Client,
    api: &str,
    username: &str,
    password: &str,
    room: &str,
) -> (String, String) {
    let (status, body) = post(
        client,
        format!("{api}/auth/register"),
        None,
        json!({ "username": username, "password": password }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let (status, body) = post(
        client,
        format!("{api}/rooms"),
        Some(&token),
        json!({ "name": room }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (token, body["room"]["id"].as_str().unwrap().to_string())
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
    let gateway = Natter::start(&isolation, "query", &isolation.database_url);
    let command = Natter::start(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/unused",
    );
    let client = reqwest::Client::new();
    let api = format!("{}/api/v1", command.base);
    let (token, room) = user_with_room(&client, &api, "flooder", "password123", "flood").await;

    let ws_url = format!(
        "{}/api/v1/ws?token={token}",
        gateway.base.replace("http://", "ws://")
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
    let before = rss_kib(gateway.child.id());
    // 48 MB of events the client never reads.
    let body = json!({ "content": "x".repeat(3900) });
    let url = format!("{api}/rooms/{room}/messages");
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
    let after = rss_kib(gateway.child.id());
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
    let command = Natter::start(
        &isolation,
        "command",
        "postgres://postgres@127.0.0.1:1/unused",
    );
    let client = reqwest::Client::new();
    let api = format!("{}/api/v1", command.base);
    let (token, room) =
        user_with_room(&client, &api, "auditor", "secret password", "audited").await;
    for i in 0..5 {
        post(
            &client,
            format!("{api}/rooms/{room}/messages"),
            Some(&token),
            json!({ "content": format!("m{i}") }),
        )
        .await;
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
            &room,
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

    let out = natter_cli(&isolation, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("message.sent") && report.contains("the log is sound"),
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
