//! `PATCH /me`: the display name, the password (with the current one), and old tokens refused
//! by every instance once the password changed.

use std::time::{Duration, Instant};

use axum::http::Method;
use natter_testkit::http::Resp;
use serde_json::{Value, json};

use crate::helpers::User;
use crate::helpers::{TestApp, test_config};

async fn patch_me(app: &TestApp, token: &str, body: Value) -> Resp {
    app.api.patch("/me", Some(token), body).await
}

async fn login(app: &TestApp, username: &str, password: &str) -> Resp {
    app.post(
        "/auth/login",
        None,
        json!({ "username": username, "password": password }),
    )
    .await
}

#[tokio::test]
async fn a_display_name_change_is_one_event_and_the_same_name_is_none() {
    let app = TestApp::spawn().await;
    let User { token, id, .. } = app.register("renamer").await;
    let r = patch_me(&app, &token, json!({ "display_name": "Ren Amer" })).await;
    let body = r.expect(200);
    assert_eq!(body["user"]["display_name"], "Ren Amer");
    assert_eq!(body["user"]["id"], id.to_string());
    assert!(
        body.get("token").is_none(),
        "no new token without a password change"
    );
    let position = body["position"].as_u64().unwrap();
    let again = patch_me(&app, &token, json!({ "display_name": "Ren Amer" })).await;
    assert_eq!(again.expect(200)["position"].as_u64(), Some(position));
    let updates: Vec<_> = app
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "user.updated")
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0].3["data"],
        json!({ "user_id": id, "display_name": "Ren Amer" })
    );
    assert_eq!(
        login(&app, "renamer", "password123").await.expect(200)["user"]["display_name"],
        "Ren Amer"
    );
}

#[tokio::test]
async fn bad_profile_changes_are_refused_and_append_nothing() {
    let app = TestApp::spawn().await;
    let User { token, .. } = app.register("careful").await;
    let before = app.stream_messages().await.len();
    for (body, status, code) in [
        (json!({ "display_name": "" }), 422, "validation_failed"),
        (
            json!({ "display_name": "x".repeat(65) }),
            422,
            "validation_failed",
        ),
        (
            json!({ "display_name": "tab\there" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "password": "short", "current_password": "password123" }),
            422,
            "validation_failed",
        ),
        (json!({ "password": "a new password" }), 403, "forbidden"),
        (
            json!({ "password": "a new password", "current_password": "not it at all" }),
            403,
            "forbidden",
        ),
        (json!({ "display_name": 7 }), 400, "bad_request"),
    ] {
        patch_me(&app, &token, body.clone())
            .await
            .expect_error(status, code);
    }
    app.raw(Method::PATCH, "/me", None, b"{}".to_vec(), &[])
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(
        app.stream_messages().await.len(),
        before,
        "nothing appended"
    );
    login(&app, "careful", "password123").await.expect(200);
}

#[tokio::test]
async fn after_a_password_change_old_tokens_are_refused_by_every_instance() {
    let (a, b) = TestApp::two().await;
    let User { token: old, .. } = a.register("rotator").await;
    // A second old token, from a login, and both work on both instances.
    let old_login = login(&a, "rotator", "password123").await.expect(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    for app in [&a, &b] {
        for token in [&old, &old_login] {
            app.create_room(token, json!({ "name": "before" })).await;
        }
    }
    let r = patch_me(
        &a,
        &old,
        json!({ "password": "a brand new one", "current_password": "password123",
                "display_name": "Rotated" }),
    )
    .await;
    let body = r.expect(200).clone();
    assert_eq!(body["user"]["display_name"], "Rotated");
    let new = body["token"].as_str().expect("a fresh token").to_string();

    // The instance that made the change refuses the old tokens at once; the other within
    // moments, from the log.
    for token in [&old, &old_login] {
        a.post("/rooms", Some(token), json!({ "name": "after" }))
            .await
            .expect_error(401, "unauthorized");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = b
            .post("/rooms", Some(&old), json!({ "name": "after" }))
            .await;
        if r.status == 401 {
            r.expect_error(401, "unauthorized");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b still takes the old token: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.post("/rooms", Some(&old_login), json!({ "name": "after" }))
        .await
        .expect_error(401, "unauthorized");
    for app in [&a, &b] {
        app.create_room(&new, json!({ "name": "with the new token" }))
            .await;
    }
    login(&a, "rotator", "password123")
        .await
        .expect_error(401, "unauthorized");
    let fresh = login(&b, "rotator", "a brand new one").await;
    assert_eq!(fresh.expect(200)["user"]["display_name"], "Rotated");
    a.create_room(
        fresh.body["token"].as_str().unwrap(),
        json!({ "name": "fresh" }),
    )
    .await;

    // One credentials event, its hash never in clear in the log's public shape.
    let creds: Vec<_> = a
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "user.credentials_set")
        .collect();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].3["data"]["display_name"], "Rotated");

    // An instance started after the change refuses the old token from the start.
    let c = TestApp::on(&a.isolation, test_config()).await;
    c.post("/rooms", Some(&old), json!({ "name": "late" }))
        .await
        .expect_error(401, "unauthorized");
    c.create_room(&new, json!({ "name": "late" })).await;
}
