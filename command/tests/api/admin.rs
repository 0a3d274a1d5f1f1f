//! Operators and service clients on the write side: API tokens, app-managed users, system
//! broadcasts. (Across instances and gateways: `tests/admin.rs` at the workspace root.)

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, test_config};

/// `root` is in `NATTER_ADMINS` in the test configuration.
async fn root(app: &TestApp) -> String {
    app.register("root").await.0
}

async fn api_token(app: &TestApp, admin: &str, body: Value) -> (Uuid, String) {
    let issued = app
        .post("/admin/tokens", Some(admin), body)
        .await
        .expect(201)
        .clone();
    let id = issued["id"].as_str().unwrap().parse().unwrap();
    (id, issued["token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn an_api_token_works_until_revoked_and_its_users_tokens_outlive_it() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let issued = app
        .post("/admin/tokens", Some(&root), json!({ "name": "backend" }))
        .await
        .expect(201)
        .clone();
    assert_eq!(issued["role"], "service", "{issued}");
    assert_eq!(issued["name"], "backend");
    assert!(issued["expires_at"].is_null(), "no expiry unless asked");
    let service = issued["token"].as_str().unwrap().to_string();
    let token_id = issued["id"].as_str().unwrap().to_string();
    assert!(service.starts_with("natter_"), "{service}");

    // The app creates a user (no password) and that user chats with the token it got.
    let created = app
        .post(
            "/users",
            Some(&service),
            json!({ "username": "App_User", "display_name": "App User" }),
        )
        .await
        .expect(201)
        .clone();
    assert_eq!(created["user"]["username"], "app_user");
    assert_eq!(created["user"]["display_name"], "App User");
    assert!(created["position"].as_u64().unwrap() > 0);
    let user_id = created["user"]["id"].as_str().unwrap().to_string();
    let user_token = created["token"].as_str().unwrap().to_string();
    let room = app
        .create_room(&user_token, json!({ "name": "app room" }))
        .await;
    app.post(
        &format!("/rooms/{room}/messages"),
        Some(&user_token),
        json!({ "content": "hello from the app" }),
    )
    .await
    .expect(201);

    let minted = app
        .post(
            &format!("/users/{user_id}/tokens"),
            Some(&service),
            json!({}),
        )
        .await
        .expect(201)
        .clone();
    let minted_token = minted["token"].as_str().unwrap().to_string();
    assert!(minted["expires_at"].is_string(), "{minted}");

    // Revoked: the service can do nothing more; its users' tokens keep working.
    let revoked = app
        .delete(&format!("/admin/tokens/{token_id}"), Some(&root))
        .await
        .expect(200)
        .clone();
    let position = revoked["position"].as_u64().unwrap();
    app.post("/users", Some(&service), json!({ "username": "another" }))
        .await
        .expect_error(401, "unauthorized");
    app.post(
        &format!("/users/{user_id}/tokens"),
        Some(&service),
        json!({}),
    )
    .await
    .expect_error(401, "unauthorized");
    for token in [&user_token, &minted_token] {
        app.post(
            &format!("/rooms/{room}/messages"),
            Some(token),
            json!({ "content": "still here" }),
        )
        .await
        .expect(201);
    }
    // Revoking again changes nothing; an unknown id is 404.
    let again = app
        .delete(&format!("/admin/tokens/{token_id}"), Some(&root))
        .await
        .expect(200)
        .clone();
    assert_eq!(again["position"].as_u64(), Some(position));
    app.delete(&format!("/admin/tokens/{}", Uuid::new_v4()), Some(&root))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn only_admins_issue_tokens_and_only_services_create_users() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let (alice, _) = app.register("alice").await;
    let body = json!({ "name": "x" });
    app.post("/admin/tokens", Some(&alice), body.clone())
        .await
        .expect_error(403, "forbidden");
    app.post("/admin/tokens", None, body.clone())
        .await
        .expect_error(401, "unauthorized");
    let (service_id, service) = api_token(&app, &root, json!({ "name": "svc" })).await;
    app.post("/admin/tokens", Some(&service), body.clone())
        .await
        .expect_error(403, "forbidden");
    for token in [&alice, &service] {
        app.delete(&format!("/admin/tokens/{service_id}"), Some(token))
            .await
            .expect_error(403, "forbidden");
    }
    // An admin token is an admin; it also acts as a service.
    let (_, admin) = api_token(&app, &root, json!({ "name": "ops", "role": "admin" })).await;
    let (_, from_admin_token) = api_token(&app, &admin, body.clone()).await;
    app.post(
        "/users",
        Some(&admin),
        json!({ "username": "by_admin_token" }),
    )
    .await
    .expect(201);
    app.post(
        "/users",
        Some(&from_admin_token),
        json!({ "username": "by_service" }),
    )
    .await
    .expect(201);

    // Users, admins among them, create no users: that is for an app's API token.
    for user in [&alice, &root] {
        app.post("/users", Some(user), json!({ "username": "nope" }))
            .await
            .expect_error(403, "forbidden");
    }
    // An API token acts for no user.
    app.post("/rooms", Some(&service), json!({ "name": "r" }))
        .await
        .expect_error(403, "forbidden");
    // A forged or malformed API token is 401.
    let mut forged = service.clone();
    forged.pop();
    forged.push(if service.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        forged,
        "natter_".to_string(),
        format!("natter_{}_x", Uuid::new_v4().simple()),
    ] {
        app.post("/users", Some(&bad), json!({ "username": "nope" }))
            .await
            .expect_error(401, "unauthorized");
    }
    // Bad bodies are refused before anything is written.
    for (body, why) in [
        (json!({ "name": "" }), "empty name"),
        (json!({ "name": "x\u{7}" }), "control character"),
        (json!({ "name": "x", "role": "root" }), "unknown role"),
        (
            json!({ "name": "x", "expires_in_secs": 0 }),
            "zero lifetime",
        ),
        (json!({ "name": 5 }), "wrong type"),
    ] {
        let resp = app.post("/admin/tokens", Some(&root), body).await;
        assert!(
            matches!(resp.status.as_u16(), 400 | 422),
            "{why}: {}",
            resp.body
        );
    }
}

#[tokio::test]
async fn an_app_managed_user_has_no_password_and_shares_the_username_space() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let (_, service) = api_token(&app, &root, json!({ "name": "svc" })).await;
    app.register("taken").await;
    app.post("/users", Some(&service), json!({ "username": "TAKEN" }))
        .await
        .expect_error(409, "conflict");
    app.post("/users", Some(&service), json!({ "username": "x" }))
        .await
        .expect_error(422, "validation_failed");
    let created = app
        .post("/users", Some(&service), json!({ "username": "dana" }))
        .await
        .expect(201)
        .clone();
    let dana = created["token"].as_str().unwrap().to_string();
    let dana_id = created["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["user"]["display_name"], "dana");
    app.post(
        "/auth/register",
        None,
        json!({ "username": "dana", "password": "correct horse" }),
    )
    .await
    .expect_error(409, "conflict");
    // No password to log in with, none to change.
    for password in ["", "correct horse", "anything at all"] {
        app.post(
            "/auth/login",
            None,
            json!({ "username": "dana", "password": password }),
        )
        .await
        .expect_error(401, "unauthorized");
    }
    app.api
        .patch(
            "/me",
            Some(&dana),
            json!({ "password": "a new password", "current_password": "" }),
        )
        .await
        .expect_error(403, "forbidden");
    app.api
        .patch("/me", Some(&dana), json!({ "display_name": "Dana" }))
        .await
        .expect(200);

    // Minting: a lifetime in range, for app-managed users the instance knows.
    let minted = app
        .post(
            &format!("/users/{dana_id}/tokens"),
            Some(&service),
            json!({ "expires_in_secs": 60 }),
        )
        .await
        .expect(201)
        .clone();
    let expires: chrono::DateTime<chrono::Utc> =
        minted["expires_at"].as_str().unwrap().parse().unwrap();
    let left = (expires - chrono::Utc::now()).num_seconds();
    assert!((55..=61).contains(&left), "{left}");
    app.create_room(minted["token"].as_str().unwrap(), json!({ "name": "ok" }))
        .await;
    for secs in [0, -5, 3601] {
        app.post(
            &format!("/users/{dana_id}/tokens"),
            Some(&service),
            json!({ "expires_in_secs": secs }),
        )
        .await
        .expect_error(422, "validation_failed");
    }
    let (_, registered) = app.register("erin").await;
    app.post(
        &format!("/users/{registered}/tokens"),
        Some(&service),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/users/{}/tokens", Uuid::new_v4()),
        Some(&service),
        json!({}),
    )
    .await
    .expect_error(404, "not_found");
    app.post("/users/not-a-uuid/tokens", Some(&service), json!({}))
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn an_app_managed_user_named_like_an_admin_is_no_admin() {
    let app = TestApp::spawn().await;
    let config = natter_command::CommandConfig {
        admins: vec!["ops".into(), "boss".into()],
        ..test_config()
    };
    let other = TestApp::on(&app.isolation, config).await;
    let ops = other.register("ops").await.0;
    let (_, service) = api_token(&other, &ops, json!({ "name": "svc" })).await;
    let boss = other
        .post("/users", Some(&service), json!({ "username": "boss" }))
        .await
        .expect(201)
        .clone();
    let token = boss["token"].as_str().unwrap();
    other
        .post("/admin/tokens", Some(token), json!({ "name": "escalate" }))
        .await
        .expect_error(403, "forbidden");
    let id = boss["user"]["id"].as_str().unwrap();
    let minted = other
        .post(&format!("/users/{id}/tokens"), Some(&service), json!({}))
        .await
        .expect(201)
        .clone();
    other
        .post(
            "/admin/tokens",
            minted["token"].as_str(),
            json!({ "name": "escalate" }),
        )
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_token_issued_through_one_instance_works_at_once_through_another() {
    let app = TestApp::spawn().await;
    let other = TestApp::on(&app.isolation, test_config()).await;
    let root = root(&app).await;
    // Many in a row, each used on the other instance the moment it is issued: the other
    // instance either has it from its tail or looks the unknown id up in the log.
    for i in 0..10 {
        let (_, service) = api_token(&app, &root, json!({ "name": format!("s{i}") })).await;
        other
            .post(
                "/users",
                Some(&service),
                json!({ "username": format!("user{i}") }),
            )
            .await
            .expect(201);
    }
}

#[tokio::test]
async fn a_retried_token_request_does_not_show_the_token_again() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "issue-once"),
    ];
    let body = serde_json::to_vec(&json!({ "name": "once" })).unwrap();
    let first = app
        .raw(
            axum::http::Method::POST,
            "/admin/tokens",
            Some(&root),
            body.clone(),
            &headers,
        )
        .await;
    let first = first.expect(201).clone();
    let token = first["token"].as_str().unwrap().to_string();
    let again = app
        .raw(
            axum::http::Method::POST,
            "/admin/tokens",
            Some(&root),
            body,
            &headers,
        )
        .await;
    let again = again.expect(201).clone();
    assert_eq!(again["id"], first["id"], "the same token, not a second");
    assert!(again.get("token").is_none(), "shown once: {again}");
    // Nothing in the stream (events or stored responses) holds the token in clear.
    for (_, subject, _, payload) in app.stream_messages().await {
        assert!(
            !payload.to_string().contains(&token),
            "{subject}: {payload}"
        );
    }
    let kv = app.idempotency_values().await;
    assert!(!kv.is_empty(), "the response was stored");
    for value in kv {
        assert!(!value.contains(&token), "{value}");
    }
}

#[tokio::test]
async fn a_broadcast_is_a_system_message_in_any_room_that_exists() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let (alice, _) = app.register("alice").await;
    let room = app
        .create_room(
            &alice,
            json!({ "name": "private", "visibility": "private" }),
        )
        .await;
    let sent = app
        .post(
            &format!("/admin/rooms/{room}/broadcast"),
            Some(&root),
            json!({ "content": "maintenance at 22:00" }),
        )
        .await
        .expect(201)
        .clone();
    let message = &sent["message"];
    assert_eq!(message["kind"], "system", "{sent}");
    assert!(message["sender_id"].is_null(), "no human sender: {sent}");
    assert_eq!(message["content"], "maintenance at 22:00");
    assert_eq!(message["room_id"], room.to_string());
    assert_eq!(message["position"], sent["position"]);

    // An admin token broadcasts too; members and services do not.
    let (_, admin) = api_token(&app, &root, json!({ "name": "ops", "role": "admin" })).await;
    let (_, service) = api_token(&app, &root, json!({ "name": "svc" })).await;
    app.post(
        &format!("/admin/rooms/{room}/broadcast"),
        Some(&admin),
        json!({ "content": "from a token" }),
    )
    .await
    .expect(201);
    for token in [&alice, &service] {
        app.post(
            &format!("/admin/rooms/{room}/broadcast"),
            Some(token),
            json!({ "content": "x" }),
        )
        .await
        .expect_error(403, "forbidden");
    }
    for (body, status, code) in [
        (json!({ "content": "" }), 422, "validation_failed"),
        (json!({ "content": "a\u{0}b" }), 422, "validation_failed"),
        (
            json!({ "content": "x".repeat(4001) }),
            422,
            "validation_failed",
        ),
        (json!({}), 422, "validation_failed"),
    ] {
        let resp = app
            .post(&format!("/admin/rooms/{room}/broadcast"), Some(&root), body)
            .await;
        if resp.status.as_u16() == 400 {
            resp.expect_error(400, "bad_request");
        } else {
            resp.expect_error(status, code);
        }
    }
    app.post(
        &format!("/admin/rooms/{}/broadcast", Uuid::new_v4()),
        Some(&root),
        json!({ "content": "x" }),
    )
    .await
    .expect_error(404, "not_found");
    app.delete(&format!("/rooms/{room}"), Some(&alice))
        .await
        .expect(200);
    app.post(
        &format!("/admin/rooms/{room}/broadcast"),
        Some(&root),
        json!({ "content": "x" }),
    )
    .await
    .expect_error(404, "not_found");

    // In the log: a message.sent of kind system, its actor the admin (for auditors).
    let (_, root_id) = (root.clone(), sent["message"]["id"].clone());
    let logged = app
        .stream_messages()
        .await
        .into_iter()
        .find(|(_, _, _, p)| p["data"]["message_id"] == root_id)
        .expect("the broadcast is in the log");
    assert_eq!(logged.3["type"], "message.sent");
    assert_eq!(logged.3["data"]["kind"], "system");
    assert!(logged.3["actor_id"].is_string());
}

#[tokio::test]
async fn a_retried_user_creation_or_mint_answers_with_a_working_token_for_the_same_user() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let (_, service) = api_token(&app, &root, json!({ "name": "svc" })).await;
    let retry = |path: String, key: &'static str, body: Value| {
        let (app, service) = (&app, service.clone());
        async move {
            let headers = [
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ];
            let body = serde_json::to_vec(&body).unwrap();
            let mut answers = Vec::new();
            for _ in 0..2 {
                let resp = app
                    .raw(
                        axum::http::Method::POST,
                        &path,
                        Some(&service),
                        body.clone(),
                        &headers,
                    )
                    .await;
                answers.push(resp.expect(201).clone());
            }
            answers
        }
    };
    let created = retry("/users".into(), "create-fay", json!({ "username": "fay" })).await;
    assert_eq!(created[0]["user"], created[1]["user"], "one user");
    assert_eq!(created[0]["position"], created[1]["position"]);
    let user_id = created[0]["user"]["id"].as_str().unwrap().to_string();
    let path = format!("/users/{user_id}/tokens");
    let minted = retry(path, "mint-fay", json!({ "expires_in_secs": 600 })).await;
    assert_eq!(minted[0]["expires_at"], minted[1]["expires_at"]);
    for answer in created.iter().chain(&minted) {
        let token = answer["token"].as_str().expect("a token in every answer");
        app.create_room(token, json!({ "name": "works" })).await;
    }
}
