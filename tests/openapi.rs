//! The OpenAPI and AsyncAPI descriptions are the routes: every operation the description names
//! is routed, every route is described (routes are only ever added through utoipa-axum's
//! `routes!`, which describes them), and the server serves what `natter describe` prints.

use std::process::Command;

use natter_testkit::process::NatterProcess;
use natter_testkit::{Cleanup, Isolation, nats_url};
use serde_json::Value;

fn describe(document: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(["describe", document])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_route_bypasses_the_description() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "command/src", "query/src", "edge/src"] {
        sources(&root.join(dir), &mut files);
    }
    let mut undescribed = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if code.contains(".route(") || code.contains(".route_service(") {
                undescribed.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        undescribed.is_empty(),
        "routes added without `routes!` are missing from the OpenAPI description:\n{}",
        undescribed.join("\n")
    );
}

#[tokio::test]
async fn every_described_operation_is_routed_and_the_server_serves_the_description() {
    let isolation = Isolation::new();
    let _cleanup = Cleanup {
        isolation: isolation.clone(),
    };
    let natter = NatterProcess::start(
        env!("CARGO_BIN_EXE_natter"),
        "all",
        NatterProcess::env_for(&isolation, &nats_url(), &isolation.database_url),
    );
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", natter.base())).send();
    let served: Value = get("/api/v1/openapi.json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spec = describe("openapi");
    assert_eq!(
        served, spec,
        "the server serves what `natter describe` prints"
    );
    assert_eq!(spec["openapi"], "3.1.0");
    let asyncapi: Value = get("/api/v1/asyncapi.json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // What `natter describe` prints, but for the server: the one this request reached.
    let mut described = describe("asyncapi");
    let host = natter.base().trim_start_matches("http://").to_string();
    described["servers"]["natter"]["host"] = Value::from(host);
    assert_eq!(asyncapi, described);
    assert_eq!(asyncapi["asyncapi"], "3.0.0");
    let proxied: Value = client
        .get(format!("{}/api/v1/asyncapi.json", natter.base()))
        .header("x-forwarded-host", "chat.example.com")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &proxied["servers"]["natter"]["host"],
            &proxied["servers"]["natter"]["protocol"]
        ),
        (&Value::from("chat.example.com"), &Value::from("wss"))
    );
    // Every operation says what a generator needs: a summary, a verb-first id, its security.
    for item in spec["paths"].as_object().unwrap().values() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                op["summary"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty() && s.len() <= 80),
                "{id}: a short summary"
            );
            assert!(
                op["security"].is_array(),
                "{id}: security, [{{}}] when public"
            );
            let authenticated = op["security"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s.as_object().is_some_and(|s| !s.is_empty()));
            if method != "get" && authenticated {
                let takes_key = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
                assert!(takes_key, "{id}: a command takes Idempotency-Key");
            }
            if let Some(limited) = op["responses"].get("429") {
                assert!(
                    limited["headers"]["Retry-After"].is_object(),
                    "{id}: 429 Retry-After"
                );
            }
        }
    }
    assert_eq!(spec["servers"][0]["url"], "/");

    let paths = spec["paths"].as_object().unwrap();
    let mut ids = std::collections::HashSet::new();
    for item in paths.values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_string()), "operationId {id} is not unique");
            }
        }
    }
    // The contract's paths, all described.
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/users/{user_id}",
        "/api/v1/users",
        "/api/v1/users/{user_id}/tokens",
        "/api/v1/rooms",
        "/api/v1/rooms/{room_id}",
        "/api/v1/rooms/{room_id}/join",
        "/api/v1/rooms/{room_id}/leave",
        "/api/v1/rooms/{room_id}/invites",
        "/api/v1/rooms/{room_id}/invites/{token}",
        "/api/v1/invites/{token}/accept",
        "/api/v1/rooms/{room_id}/messages",
        "/api/v1/rooms/{room_id}/messages/{message_id}",
        "/api/v1/rooms/{room_id}/read",
        "/api/v1/rooms/{room_id}/members",
        "/api/v1/rooms/{room_id}/members/{user_id}",
        "/api/v1/me/rooms",
        "/api/v1/direct/{user_id}",
        "/api/v1/match",
        "/api/v1/rooms/{room_id}/events",
        "/api/v1/rooms/{room_id}/state",
        "/api/v1/admin/events",
        "/api/v1/admin/stats",
        "/api/v1/admin/rooms/{room_id}/broadcast",
        "/api/v1/admin/connections",
        "/api/v1/admin/connections/{user_id}",
        "/api/v1/admin/tokens",
        "/api/v1/admin/tokens/{token_id}",
        "/api/v1/openapi.json",
        "/api/v1/ws",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    // Every described operation reaches a handler: never the router's "no such endpoint" or
    // "method not allowed".
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    part.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else {
                continue;
            };
            operations += 1;
            let response = client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}{concrete}", natter.base()),
                )
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is not routed: {body}");
            assert!(
                !(status == 404 && body.contains("no such endpoint")),
                "{method} {path} is not routed"
            );
            let documented = op["responses"]
                .as_object()
                .unwrap()
                .contains_key(&status.to_string());
            assert!(
                documented,
                "{method} {path} answered {status}, which it does not describe: {body}"
            );
        }
    }
    assert!(operations >= 44, "{operations} operations");
}
