//! The write endpoints' answers to requests that are malformed: wrong JSON, fields that
//! break the input rules, bodies over the limit, unknown routes and text with NUL or
//! control characters, each with the contract's error body. Refusals of well-formed
//! requests by the rooms' and accounts' rules are in `refusals.rs`.

use axum::http::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::helpers::User;

#[tokio::test]
async fn malformed_json_wrong_types_and_bad_ids_are_bad_requests() {
    let app = TestApp::spawn().await;
    let User { token, .. } = app.register("alice").await;
    let t = Some(token.as_str());
    app.raw(Method::POST, "/rooms", t, b"{\"name\": ".to_vec(), &[])
        .await
        .expect_error(400, "bad_request");
    app.raw(Method::POST, "/rooms", t, Vec::new(), &[])
        .await
        .expect_error(400, "bad_request");
    app.post("/rooms", t, json!({ "name": 42 }))
        .await
        .expect_error(400, "bad_request");
    app.post("/rooms", t, json!({ "visibility": "public" }))
        .await
        .expect_error(400, "bad_request");
    app.post("/rooms", t, json!({ "name": "x", "visibility": "secret" }))
        .await
        .expect_error(400, "bad_request");
    app.post("/rooms", t, json!({ "name": "x", "max_members": -1 }))
        .await
        .expect_error(400, "bad_request");
    app.post("/rooms/not-a-uuid/join", t, json!({}))
        .await
        .expect_error(400, "bad_request");
    app.post("/rooms/not-a-uuid/messages", t, json!({ "content": "hi" }))
        .await
        .expect_error(400, "bad_request");
    app.post("/auth/register", None, json!(["alice"]))
        .await
        .expect_error(400, "bad_request");
    let room = app.create_room(&token, json!({ "name": "r" })).await;
    app.post(
        &format!("/rooms/{room}/read"),
        t,
        json!({ "up_to_position": "seven" }),
    )
    .await
    .expect_error(400, "bad_request");
    app.post(
        &format!("/rooms/{room}/invites"),
        t,
        json!({ "user_id": "nobody" }),
    )
    .await
    .expect_error(400, "bad_request");
}

#[tokio::test]
async fn rule_breaking_fields_fail_validation() {
    let app = TestApp::spawn().await;
    let User { token, id: me, .. } = app.register("alice").await;
    let t = Some(token.as_str());
    let reg =
        |username: &str, password: &str| json!({ "username": username, "password": password });
    for body in [
        reg("ab", "password123"),
        reg(&"a".repeat(33), "password123"),
        reg("bad name", "password123"),
        reg("bob", "short"),
        reg("bob", &"p".repeat(257)),
        json!({ "username": "bob", "password": "password123", "display_name": "" }),
        json!({ "username": "bob", "password": "password123", "display_name": "d".repeat(65) }),
    ] {
        app.post("/auth/register", None, body)
            .await
            .expect_error(422, "validation_failed");
    }
    app.post("/rooms", t, json!({ "name": "" }))
        .await
        .expect_error(422, "validation_failed");
    app.post("/rooms", t, json!({ "name": "n".repeat(101) }))
        .await
        .expect_error(422, "validation_failed");
    app.post("/rooms", t, json!({ "name": "x", "max_members": 1 }))
        .await
        .expect_error(422, "validation_failed");
    let room = app.create_room(&token, json!({ "name": "r" })).await;
    let messages = format!("/rooms/{room}/messages");
    app.post(&messages, t, json!({ "content": "" }))
        .await
        .expect_error(422, "validation_failed");
    app.post(&messages, t, json!({ "content": "x".repeat(4001) }))
        .await
        .expect_error(422, "validation_failed");
    app.post(&messages, t, json!({ "content": "x", "kind": "system" }))
        .await
        .expect_error(422, "validation_failed");
    app.post(&messages, t, json!({ "content": "", "kind": "image" }))
        .await
        .expect_error(422, "validation_failed");
    let bad_attachment =
        json!({ "url": "javascript:alert(1)", "name": "a.png", "mime": "image/png", "size": 1 });
    app.post(
        &messages,
        t,
        json!({ "content": "", "kind": "image", "attachment": bad_attachment }),
    )
    .await
    .expect_error(422, "validation_failed");
    // 4000 characters (not bytes) is the limit: multi-byte text at the limit is fine.
    app.post(&messages, t, json!({ "content": "é".repeat(4000) }))
        .await
        .expect(201);
    let attachment = json!({ "url": "https://cdn.example/a.png", "name": "a.png", "mime": "image/png", "size": 1234 });
    let sent = app
        .post(
            &messages,
            t,
            json!({ "content": "", "kind": "image", "attachment": attachment }),
        )
        .await;
    assert_eq!(sent.expect(201)["message"]["attachment"]["size"], 1234);
    let invites = format!("/rooms/{room}/invites");
    app.post(&invites, t, json!({ "expires_in_secs": 0 }))
        .await
        .expect_error(422, "validation_failed");
    app.post(&invites, t, json!({ "max_uses": 0 }))
        .await
        .expect_error(422, "validation_failed");
    app.post(&invites, t, json!({ "user_id": me }))
        .await
        .expect_error(422, "validation_failed");
    let read = format!("/rooms/{room}/read");
    app.post(&read, t, json!({ "up_to_position": 0 }))
        .await
        .expect_error(422, "validation_failed");
    app.post(&read, t, json!({ "up_to_position": 1_000_000 }))
        .await
        .expect_error(422, "validation_failed");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let User { token, .. } = app.register("alice").await;
    let room = app.create_room(&token, json!({ "name": "r" })).await;
    let big = json!({ "content": "x".repeat(70 * 1024) });
    app.post(
        &format!("/rooms/{room}/messages"),
        Some(&token),
        big.clone(),
    )
    .await
    .expect_error(413, "payload_too_large");
    // Also through the idempotency layer, which buffers the body itself.
    app.raw(
        Method::POST,
        &format!("/rooms/{room}/messages"),
        Some(&token),
        big.to_string().into_bytes(),
        &[("idempotency-key", "big")],
    )
    .await
    .expect_error(413, "payload_too_large");
}

#[tokio::test]
async fn unknown_rooms_and_routes_are_404() {
    let app = TestApp::spawn().await;
    let User { token, .. } = app.register("alice").await;
    let t = Some(token.as_str());
    let nowhere = Uuid::new_v4();
    app.post(&format!("/rooms/{nowhere}/join"), t, json!({}))
        .await
        .expect_error(404, "not_found");
    app.post(&format!("/rooms/{nowhere}/leave"), t, json!({}))
        .await
        .expect_error(404, "not_found");
    app.post(
        &format!("/rooms/{nowhere}/messages"),
        t,
        json!({ "content": "hi" }),
    )
    .await
    .expect_error(404, "not_found");
    app.post(&format!("/rooms/{nowhere}/invites"), t, json!({}))
        .await
        .expect_error(404, "not_found");
    app.post("/invites/not-a-token/accept", t, json!({}))
        .await
        .expect_error(404, "not_found");
    app.post("/no/such/thing", t, json!({}))
        .await
        .expect_error(404, "not_found");
    app.raw(Method::PUT, "/rooms", t, Vec::new(), &[])
        .await
        .expect_error(405, "method_not_allowed");
}

#[tokio::test]
async fn text_with_nul_or_control_characters_is_refused_in_every_field_and_nothing_is_appended() {
    let app = TestApp::spawn().await;
    let User { token, .. } = app.register("alice").await;
    let t = Some(token.as_str());
    let room = app.create_room(&token, json!({ "name": "r" })).await;
    let before = app.stream_messages().await.len();
    let messages = format!("/rooms/{room}/messages");
    for content in [
        "a\u{0}b",
        "bell\u{7}",
        "escape\u{1b}[31m",
        "lone\rreturn",
        "\u{0}",
    ] {
        app.post(&messages, t, json!({ "content": content }))
            .await
            .expect_error(422, "validation_failed");
    }
    let attachment = |name: &str, mime: &str| {
        json!({ "content": "", "kind": "file",
                "attachment": { "url": "https://x.test/f", "name": name, "mime": mime, "size": 1 } })
    };
    app.post(&messages, t, attachment("f\u{0}.txt", "text/plain"))
        .await
        .expect_error(422, "validation_failed");
    app.post(&messages, t, attachment("f.txt", "text/pl\u{0}ain"))
        .await
        .expect_error(422, "validation_failed");
    app.post("/rooms", t, json!({ "name": "ro\u{0}om" }))
        .await
        .expect_error(422, "validation_failed");
    app.post(
        "/auth/register",
        None,
        json!({ "username": "bob", "password": "password123", "display_name": "B\u{0}b" }),
    )
    .await
    .expect_error(422, "validation_failed");
    app.post(
        "/auth/register",
        None,
        json!({ "username": "b\u{0}b", "password": "password123" }),
    )
    .await
    .expect_error(422, "validation_failed");
    assert_eq!(
        app.stream_messages().await.len(),
        before,
        "a refused command appends nothing"
    );

    // Newlines and tabs are text; a Windows line end is stored as a newline.
    let sent = app
        .post(
            &messages,
            t,
            json!({ "content": "line one\r\n\tline two\n" }),
        )
        .await;
    assert_eq!(
        sent.expect(201)["message"]["content"],
        "line one\n\tline two\n"
    );
}
