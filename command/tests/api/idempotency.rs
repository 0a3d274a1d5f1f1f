//! `Idempotency-Key`: one event and the same response for a retry.

use axum::http::Method;
use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn post_with_key(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    body: Value,
    key: &str,
) -> crate::helpers::Resp {
    app.raw(
        Method::POST,
        path,
        token,
        body.to_string().into_bytes(),
        &[("idempotency-key", key)],
    )
    .await
}

#[tokio::test]
async fn a_retried_send_appends_once_and_answers_the_same() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("alice").await;
    let room = app.create_room(&token, json!({ "name": "r" })).await;
    let path = format!("/rooms/{room}/messages");
    let body = json!({ "content": "only once" });
    let first = post_with_key(&app, &path, Some(&token), body.clone(), "send-1").await;
    let second = post_with_key(&app, &path, Some(&token), body.clone(), "send-1").await;
    assert_eq!(first.expect(201), second.expect(201));
    assert_eq!(second.headers["idempotent-replayed"], "true");
    let sent = app
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "message.sent")
        .count();
    assert_eq!(sent, 1);
    // The same key with another request is a conflict, and appends nothing.
    let other = post_with_key(
        &app,
        &path,
        Some(&token),
        json!({ "content": "something else" }),
        "send-1",
    )
    .await;
    other.expect_error(409, "conflict");
    // Another user's identical key is their own.
    let (bob, _) = app.register("bob").await;
    app.post(&format!("/rooms/{room}/join"), Some(&bob), json!({}))
        .await
        .expect(200);
    post_with_key(&app, &path, Some(&bob), body, "send-1")
        .await
        .expect(201);
    let sent = app
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "message.sent")
        .count();
    assert_eq!(sent, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_append_once() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("alice").await;
    let body = json!({ "name": "once" });
    let results = join_all(
        (0..8).map(|_| post_with_key(&app, "/rooms", Some(&token), body.clone(), "create-1")),
    )
    .await;
    let created: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    // Each either ran it, replayed it, or was told it is still in progress; never a second room.
    assert!(!created.is_empty());
    assert!(
        results
            .iter()
            .all(|r| r.status == 201
                || (r.status == 409 && r.body["error"]["code"] == "in_progress")),
        "{results:?}"
    );
    let ids: std::collections::HashSet<_> = created
        .iter()
        .map(|r| r.body["room"]["id"].clone())
        .collect();
    assert_eq!(ids.len(), 1);
    let rooms = app
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "room.created")
        .count();
    assert_eq!(rooms, 1);
}

#[tokio::test]
async fn a_retried_registration_replays_with_a_fresh_valid_token() {
    let app = TestApp::spawn().await;
    let body = json!({ "username": "carol", "password": "password123" });
    let first = post_with_key(&app, "/auth/register", None, body.clone(), "reg-1").await;
    let second = post_with_key(&app, "/auth/register", None, body, "reg-1").await;
    assert_eq!(first.expect(201)["user"], second.expect(201)["user"]);
    assert_eq!(first.body["position"], second.body["position"]);
    let token = second.body["token"].as_str().unwrap();
    app.post("/rooms", Some(token), json!({ "name": "mine" }))
        .await
        .expect(201);
    // The stored response holds no token.
    let kv = format!("KV_{}_idem", app.isolation.stream);
    let client = async_nats::connect(natter_testkit::nats_url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(&kv).await.unwrap();
    let n = stream.info().await.unwrap().state.last_sequence;
    for seq in 1..=n {
        if let Ok(m) = stream.get_raw_message(seq).await {
            let text = String::from_utf8_lossy(&m.payload);
            assert!(!text.contains("eyJ"), "a token was stored: {text}");
        }
    }
}

#[tokio::test]
async fn a_failed_request_does_not_pin_its_key() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register("alice").await;
    // Unauthenticated: not kept, so the same key works once the caller logs in.
    post_with_key(
        &app,
        "/rooms",
        Some("not-a-token"),
        json!({ "name": "r" }),
        "k",
    )
    .await
    .expect_error(401, "unauthorized");
    post_with_key(&app, "/rooms", Some(&token), json!({ "name": "r" }), "k")
        .await
        .expect(201);
    let too_long = "k".repeat(129);
    post_with_key(
        &app,
        "/rooms",
        Some(&token),
        json!({ "name": "r" }),
        &too_long,
    )
    .await
    .expect_error(400, "bad_request");
}

/// The pending claims in the test's idempotency bucket.
async fn pending_claims(app: &TestApp) -> usize {
    let client = async_nats::connect(natter_testkit::nats_url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let kv = js
        .get_key_value(format!("{}_idem", app.isolation.stream))
        .await
        .unwrap();
    let mut pending = 0;
    let mut keys = kv.keys().await.unwrap();
    while let Some(key) = futures::StreamExt::next(&mut keys).await {
        let Some(value) = kv.get(key.unwrap()).await.unwrap() else {
            continue;
        };
        let record: Value = serde_json::from_slice(&value).unwrap();
        if record["response"].is_null() {
            pending += 1;
        }
    }
    pending
}

#[tokio::test]
async fn a_request_that_died_blocks_its_key_for_a_few_seconds_with_in_progress_then_the_retry_runs()
{
    let app = TestApp::spawn().await;
    let body = json!({ "username": "crashy", "password": "password123" });
    // Start a registration (slow: it hashes a password) and drop it mid-way, as a crash or a
    // client going away would, once its claim is taken.
    let mut died = false;
    for _ in 0..20 {
        let request = {
            let app = app.app.clone();
            let body = body.to_string().into_bytes();
            tokio::spawn(async move {
                natter_testkit::http::call(
                    &app,
                    Method::POST,
                    "/auth/register",
                    None,
                    body,
                    &[("idempotency-key", "dies")],
                )
                .await
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while pending_claims(&app).await == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        request.abort();
        if request.await.is_err_and(|e| e.is_cancelled()) && pending_claims(&app).await == 1 {
            died = true;
            break;
        }
    }
    assert!(died, "a request was dropped while its claim was pending");

    let started = std::time::Instant::now();
    let first = post_with_key(&app, "/auth/register", None, body.clone(), "dies").await;
    first.expect_error(409, "in_progress");
    assert_eq!(first.headers["retry-after"], "1");
    let done = loop {
        let r = post_with_key(&app, "/auth/register", None, body.clone(), "dies").await;
        if r.status != 409 {
            break r;
        }
        r.expect_error(409, "in_progress");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "the dead request's key is still blocked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(done.expect(201)["user"]["username"], "crashy");
    // A different request with the key is a conflict, not in progress.
    post_with_key(
        &app,
        "/auth/register",
        None,
        json!({ "username": "other", "password": "password123" }),
        "dies",
    )
    .await
    .expect_error(409, "conflict");
}
