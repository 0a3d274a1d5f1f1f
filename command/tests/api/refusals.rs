//! The write endpoints' refusals of well-formed requests by the rules: private rooms,
//! membership, invites, full rooms, accounts, rate limits and read markers, each with
//! the contract's status and error body. Malformed requests are in `errors.rs`.

use serde_json::json;

use crate::helpers::User;
use crate::helpers::{TestApp, test_config};

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
