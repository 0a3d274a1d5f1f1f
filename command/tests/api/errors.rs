//! Every status the API gives the write endpoints, each with the contract's error body.
//!
//! One file, over 400 lines: it is the contract's table of write errors, row by row.

use axum::http::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::User;
use crate::helpers::{TestApp, test_config};

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
async fn a_private_room_is_invisible_to_outsiders_until_they_are_invited() {
    let app = TestApp::spawn().await;
    let User { token: owner, .. } = app.register("owner").await;
    let User {
        token: eve,
        id: eve_id,
        ..
    } = app.register("eve").await;
    let room = app
        .create_room(&owner, json!({ "name": "secret", "visibility": "private" }))
        .await;
    let e = Some(eve.as_str());
    app.post(&format!("/rooms/{room}/join"), e, json!({}))
        .await
        .expect_error(404, "not_found");
    app.post(
        &format!("/rooms/{room}/messages"),
        e,
        json!({ "content": "hi" }),
    )
    .await
    .expect_error(404, "not_found");
    app.post(&format!("/rooms/{room}/leave"), e, json!({}))
        .await
        .expect_error(404, "not_found");
    app.post(&format!("/rooms/{room}/invites"), e, json!({}))
        .await
        .expect_error(404, "not_found");
    app.post(
        &format!("/rooms/{room}/read"),
        e,
        json!({ "up_to_position": 1 }),
    )
    .await
    .expect_error(404, "not_found");
    // A personal invite opens it to that user only, through join.
    app.post(
        &format!("/rooms/{room}/invites"),
        Some(&owner),
        json!({ "user_id": eve_id }),
    )
    .await
    .expect(201);
    let joined = app.post(&format!("/rooms/{room}/join"), e, json!({})).await;
    assert_eq!(joined.expect(200)["room"]["member_count"], 2);
    app.post(
        &format!("/rooms/{room}/messages"),
        e,
        json!({ "content": "hi" }),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn non_members_may_not_post_and_non_owners_may_not_manage_invites() {
    let app = TestApp::spawn().await;
    let User { token: owner, .. } = app.register("owner").await;
    let User { token: bob, .. } = app.register("bob").await;
    let b = Some(bob.as_str());
    let room = app.create_room(&owner, json!({ "name": "open" })).await;
    app.post(
        &format!("/rooms/{room}/messages"),
        b,
        json!({ "content": "hi" }),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/rooms/{room}/read"),
        b,
        json!({ "up_to_position": 1 }),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(&format!("/rooms/{room}/leave"), b, json!({}))
        .await
        .expect_error(409, "conflict");
    app.post(&format!("/rooms/{room}/join"), b, json!({}))
        .await
        .expect(200);
    app.post(&format!("/rooms/{room}/invites"), b, json!({}))
        .await
        .expect_error(403, "forbidden");
    let invite = app
        .post(&format!("/rooms/{room}/invites"), Some(&owner), json!({}))
        .await;
    let token = invite.expect(201)["invite"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.delete(&format!("/rooms/{room}/invites/{token}"), b)
        .await
        .expect_error(403, "forbidden");
    app.delete(&format!("/rooms/{room}/invites/{token}"), Some(&owner))
        .await
        .expect(200);
    // Leaving, then posting, is refused.
    app.post(&format!("/rooms/{room}/leave"), b, json!({}))
        .await
        .expect(200);
    app.post(
        &format!("/rooms/{room}/messages"),
        b,
        json!({ "content": "still here?" }),
    )
    .await
    .expect_error(403, "forbidden");
}

#[tokio::test]
async fn used_up_revoked_expired_and_foreign_invites() {
    let app = TestApp::spawn().await;
    let User { token: owner, .. } = app.register("owner").await;
    let User { token: a, .. } = app.register("anna").await;
    let User { token: b, .. } = app.register("bert").await;
    let User {
        token: c, id: c_id, ..
    } = app.register("carl").await;
    let room = app
        .create_room(&owner, json!({ "name": "club", "visibility": "private" }))
        .await;
    let invites = format!("/rooms/{room}/invites");
    let invite = |body| app.post(&invites, Some(&owner), body);
    let token = |r: crate::helpers::Resp| {
        r.expect(201)["invite"]["token"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let once = token(invite(json!({ "max_uses": 1 })).await);
    let accepted = app
        .post(&format!("/invites/{once}/accept"), Some(&a), json!({}))
        .await;
    assert_eq!(accepted.expect(200)["room"]["id"], room.to_string());
    app.post(&format!("/invites/{once}/accept"), Some(&b), json!({}))
        .await
        .expect_error(410, "gone");

    let revoked = token(invite(json!({})).await);
    app.delete(&format!("/rooms/{room}/invites/{revoked}"), Some(&owner))
        .await
        .expect(200);
    app.post(&format!("/invites/{revoked}/accept"), Some(&b), json!({}))
        .await
        .expect_error(410, "gone");

    let short = token(invite(json!({ "expires_in_secs": 1 })).await);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    app.post(&format!("/invites/{short}/accept"), Some(&b), json!({}))
        .await
        .expect_error(410, "gone");

    let for_carl = token(invite(json!({ "user_id": c_id })).await);
    app.post(&format!("/invites/{for_carl}/accept"), Some(&b), json!({}))
        .await
        .expect_error(403, "forbidden");
    app.post(&format!("/invites/{for_carl}/accept"), Some(&c), json!({}))
        .await
        .expect(200);

    // A token of another room, or a forged one, is not an invite of this room.
    let other = app.create_room(&owner, json!({ "name": "other" })).await;
    app.delete(&format!("/rooms/{other}/invites/{once}"), Some(&owner))
        .await
        .expect_error(404, "not_found");
    let forged = format!("{}AAAA", &once[..once.len() - 4]);
    app.post(&format!("/invites/{forged}/accept"), Some(&b), json!({}))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_full_room_is_409_room_full() {
    let app = TestApp::spawn().await;
    let User { token: owner, .. } = app.register("owner").await;
    let User { token: a, .. } = app.register("anna").await;
    let User { token: b, .. } = app.register("bert").await;
    let room = app
        .create_room(&owner, json!({ "name": "duo", "max_members": 2 }))
        .await;
    app.post(&format!("/rooms/{room}/join"), Some(&a), json!({}))
        .await
        .expect(200);
    app.post(&format!("/rooms/{room}/join"), Some(&b), json!({}))
        .await
        .expect_error(409, "room_full");
}

#[tokio::test]
async fn taken_usernames_and_bad_logins() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let again = app
        .post(
            "/auth/register",
            None,
            json!({ "username": "ALICE", "password": "password123" }),
        )
        .await;
    again.expect_error(409, "conflict");
    let wrong_password = app
        .post(
            "/auth/login",
            None,
            json!({ "username": "alice", "password": "password124" }),
        )
        .await;
    wrong_password.expect_error(401, "unauthorized");
    let no_such_user = app
        .post(
            "/auth/login",
            None,
            json!({ "username": "zed", "password": "password123" }),
        )
        .await;
    no_such_user.expect_error(401, "unauthorized");
    assert_eq!(
        wrong_password.body, no_such_user.body,
        "a wrong name and a wrong password look alike"
    );
    let ok = app
        .post(
            "/auth/login",
            None,
            json!({ "username": "Alice", "password": "password123" }),
        )
        .await;
    assert_eq!(ok.expect(200)["user"]["username"], "alice");
}

#[tokio::test]
async fn sending_too_fast_is_429_with_retry_after() {
    let mut config = test_config();
    config.send_rate = Some("3/30s".parse().unwrap());
    let app = TestApp::spawn_with(config).await;
    let User { token, .. } = app.register("alice").await;
    let room = app.create_room(&token, json!({ "name": "r" })).await;
    let other = app.create_room(&token, json!({ "name": "r2" })).await;
    for _ in 0..3 {
        app.post(
            &format!("/rooms/{room}/messages"),
            Some(&token),
            json!({ "content": "hi" }),
        )
        .await
        .expect(201);
    }
    let limited = app
        .post(
            &format!("/rooms/{room}/messages"),
            Some(&token),
            json!({ "content": "hi" }),
        )
        .await;
    limited.expect_error(429, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    // The limit is per room.
    app.post(
        &format!("/rooms/{other}/messages"),
        Some(&token),
        json!({ "content": "hi" }),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn a_read_marker_never_moves_backwards() {
    let app = TestApp::spawn().await;
    let User { token, .. } = app.register("alice").await;
    let room = app.create_room(&token, json!({ "name": "r" })).await;
    let mut last = 0;
    for _ in 0..3 {
        last = app
            .post(
                &format!("/rooms/{room}/messages"),
                Some(&token),
                json!({ "content": "m" }),
            )
            .await
            .expect(201)["position"]
            .as_u64()
            .unwrap();
    }
    let read = format!("/rooms/{room}/read");
    let forward = app
        .post(&read, Some(&token), json!({ "up_to_position": last }))
        .await;
    let marker_position = forward.expect(200)["position"].as_u64().unwrap();
    let backward = app
        .post(&read, Some(&token), json!({ "up_to_position": last - 1 }))
        .await;
    assert_eq!(
        backward.expect(200)["position"].as_u64().unwrap(),
        marker_position,
        "nothing appended"
    );
    let reads = app
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "room.read")
        .count();
    assert_eq!(reads, 1);
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
