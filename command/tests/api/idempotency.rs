//! `Idempotency-Key`: one event and the same response for a retry.

use axum::http::Method;
use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::User;

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
    let User { token, .. } = app.register("alice").await;
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
    let User { token: bob, .. } = app.register("bob").await;
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
    let User { token, .. } = app.register("alice").await;
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
    let User { token, .. } = app.register("alice").await;
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

/// A `PATCH` with an idempotency key.
async fn patch_with_key(
    app: &TestApp,
    path: &str,
    token: &str,
    body: Value,
    key: &str,
) -> crate::helpers::Resp {
    app.raw(
        Method::PATCH,
        path,
        Some(token),
        body.to_string().into_bytes(),
        &[("idempotency-key", key)],
    )
    .await
}

/// Every command that answers a token says what its replay mints: a fresh login token that
/// works (login, a password change, a service's new user), one that expires when the first
/// did (a mint), or none (an API token, shown once); the rest of the answer is the same.
#[tokio::test]
async fn every_replay_of_a_token_answer_mints_what_its_command_declares() {
    let app = TestApp::spawn().await;
    let root = crate::helpers::root(&app).await;
    let works = |token: String| {
        let app = &app;
        async move {
            app.post("/rooms", Some(&token), json!({ "name": "works" }))
                .await
                .expect(201);
        }
    };

    let body = json!({ "username": "root", "password": "password123" });
    let first = post_with_key(&app, "/auth/login", None, body.clone(), "login-1").await;
    let again = post_with_key(&app, "/auth/login", None, body, "login-1").await;
    assert_eq!(first.expect(200)["user"], again.expect(200)["user"]);
    works(again.body["token"].as_str().unwrap().to_string()).await;

    let change = json!({ "password": "a new password", "current_password": "password123" });
    let first = patch_with_key(&app, "/me", &root, change.clone(), "pw-1").await;
    let fresh = first.expect(200)["token"].as_str().unwrap().to_string();
    let again = patch_with_key(&app, "/me", &fresh, change, "pw-1").await;
    // The key belongs to the caller (root), whichever of its tokens asks.
    assert_eq!(again.expect(200)["position"], first.body["position"]);
    works(again.body["token"].as_str().unwrap().to_string()).await;

    let issue = json!({ "name": "backend" });
    let first = post_with_key(&app, "/admin/tokens", Some(&fresh), issue.clone(), "api-1").await;
    let again = post_with_key(&app, "/admin/tokens", Some(&fresh), issue, "api-1").await;
    let service = first.expect(201)["token"].as_str().unwrap().to_string();
    assert_eq!(again.expect(201)["id"], first.body["id"]);
    assert!(
        again.body.get("token").is_none(),
        "shown once: {}",
        again.body
    );

    let user = json!({ "username": "app_user" });
    let first = post_with_key(&app, "/users", Some(&service), user.clone(), "user-1").await;
    let again = post_with_key(&app, "/users", Some(&service), user, "user-1").await;
    assert_eq!(first.expect(201)["user"], again.expect(201)["user"]);
    works(again.body["token"].as_str().unwrap().to_string()).await;
    let user_id = first.body["user"]["id"].as_str().unwrap().to_string();

    let path = format!("/users/{user_id}/tokens");
    let mint = json!({ "expires_in_secs": 600 });
    let first = post_with_key(&app, &path, Some(&service), mint.clone(), "mint-1").await;
    let again = post_with_key(&app, &path, Some(&service), mint, "mint-1").await;
    assert_eq!(
        again.expect(201)["expires_at"],
        first.expect(201)["expires_at"]
    );
    let token = again.body["token"].as_str().unwrap().to_string();
    works(token.clone()).await;
    let claims: Value = {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(first.body["expires_at"].as_str().unwrap())
            .unwrap()
            .timestamp();
    let exp = claims["exp"].as_i64().unwrap();
    // Whole seconds from now: within a second of the first.
    assert!(
        (exp - expires_at).abs() <= 1,
        "it expires when the first did: {exp} vs {expires_at}"
    );
}
