//! Operators on the write side: API tokens and system broadcasts (app-managed users are in
//! `services.rs`; across instances and gateways: `tests/admin.rs` at the workspace root).

use serde_json::json;
use uuid::Uuid;

use crate::helpers::User;
use crate::helpers::{TestApp, api_token, root, test_config};

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
    let User { token: alice, .. } = app.register("alice").await;
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
    let User { token: alice, .. } = app.register("alice").await;
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
async fn an_api_token_is_refused_once_it_expires() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let (_, brief) = api_token(
        &app,
        &root,
        json!({ "name": "brief", "expires_in_secs": 1 }),
    )
    .await;
    app.post("/users", Some(&brief), json!({ "username": "in_time" }))
        .await
        .expect(201);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.post("/users", Some(&brief), json!({ "username": "too_late" }))
        .await
        .expect_error(401, "unauthorized");
}
