//! `PATCH` and `DELETE /rooms/{id}/messages/{message_id}`: who may, what they answer, and an
//! edit racing a deletion across two instances.

use axum::http::Method;
use natter_testkit::http::Resp;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::User;
use crate::helpers::{TestApp, race, test_config};

async fn edit(app: &TestApp, path: &str, token: &str, content: Value) -> Resp {
    app.api
        .patch(path, Some(token), json!({ "content": content }))
        .await
}

#[tokio::test]
async fn the_sender_edits_and_the_owner_or_sender_deletes() {
    let app = TestApp::spawn().await;
    let party = app.api.party("msgs").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let (id, sent_at) = app
        .api
        .send_with(member, room, json!({ "content": "first draft" }))
        .await;
    let path = format!("/rooms/{room}/messages/{id}");

    let r = edit(&app, &path, member, json!("second\r\ndraft")).await;
    let body = r.expect(200);
    let message = &body["message"];
    assert_eq!(message["id"], id.to_string());
    assert_eq!(message["content"], "second\ndraft");
    assert_eq!(
        message["position"].as_u64(),
        Some(sent_at),
        "the message keeps its place"
    );
    assert_eq!(message["sender_id"], party.member.id.to_string());
    assert!(message["edited_at"].is_string());
    assert_eq!(message["deleted"], false);
    assert!(body["position"].as_u64().unwrap() > sent_at);

    // Not the sender: 403 for an edit, even by the owner; not a member: 403.
    edit(&app, &path, owner, json!("owner's words"))
        .await
        .expect_error(403, "forbidden");
    let stranger = app.api.register("msgs_stranger").await;
    app.delete(&path, Some(&stranger.token))
        .await
        .expect_error(403, "forbidden");
    // Bad input.
    for bad in [json!(""), json!("x".repeat(4001)), json!("nul\u{0}")] {
        edit(&app, &path, member, bad)
            .await
            .expect_error(422, "validation_failed");
    }
    edit(&app, &path, member, json!(5))
        .await
        .expect_error(400, "bad_request");
    app.delete(&format!("/rooms/{room}/messages/nope"), Some(member))
        .await
        .expect_error(400, "bad_request");
    // Unknown message or room: 404.
    app.delete(
        &format!("/rooms/{room}/messages/{}", Uuid::new_v4()),
        Some(owner),
    )
    .await
    .expect_error(404, "not_found");
    app.delete(
        &format!("/rooms/{}/messages/{id}", Uuid::new_v4()),
        Some(owner),
    )
    .await
    .expect_error(404, "not_found");

    // The owner deletes it; again changes nothing; an edit afterwards is refused.
    let deleted_at = app.delete(&path, Some(owner)).await.expect(200)["position"]
        .as_u64()
        .unwrap();
    assert_eq!(
        app.delete(&path, Some(member)).await.expect(200)["position"].as_u64(),
        Some(deleted_at)
    );
    edit(&app, &path, member, json!("too late"))
        .await
        .expect_error(409, "conflict");
    // The log keeps the original, the edit and the deletion.
    let types: Vec<Value> = app
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, s, _, _)| s.ends_with(".msg"))
        .map(|(_, _, _, e)| e["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            json!("message.sent"),
            json!("message.edited"),
            json!("message.deleted")
        ]
    );
}

#[tokio::test]
async fn edits_racing_a_deletion_on_two_instances_all_come_before_it_or_are_refused() {
    let (a, b) = TestApp::two().await;
    let party = a.api.party("race").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let (id, _) = a
        .api
        .send_with(member, room, json!({ "content": "contested" }))
        .await;
    let path = format!("/rooms/{room}/messages/{id}");
    // Both instances fold the room's messages first.
    for app in [&a, &b] {
        edit(app, &path, member, json!("warm-up")).await.expect(200);
    }
    let apps = [&a, &b];
    let edits = race(&apps, 20, |app, i| {
        edit(app, &path, member, json!(format!("edit {i}")))
    });
    let deletion = b.delete(&path, Some(owner));
    let (edits, deletion) = tokio::join!(edits, deletion);
    let deleted_at = deletion.expect(200)["position"].as_u64().unwrap();
    let mut accepted = Vec::new();
    for r in &edits {
        match r.status.as_u16() {
            200 => accepted.push(r.body["position"].as_u64().unwrap()),
            409 => r.expect_error(409, "conflict"),
            other => panic!("an edit answered {other}: {}", r.body),
        }
    }
    assert!(
        accepted.iter().all(|p| *p < deleted_at),
        "an accepted edit lies after the deletion: {accepted:?} vs {deleted_at}"
    );
    let log = a.stream_messages().await;
    let edited_after = log
        .iter()
        .filter(|(p, _, _, e)| *p > deleted_at && e["type"] == "message.edited")
        .count();
    assert_eq!(edited_after, 0, "no edit is stored after the deletion");
    let stored = log
        .iter()
        .filter(|(_, _, _, e)| e["type"] == "message.edited")
        .count();
    assert_eq!(
        stored,
        accepted.len() + 2,
        "each accepted edit once, with the warm-ups"
    );
}

/// Reactions have their own bucket, three times the message limit: toggling an emoji cannot
/// flood a room, nor use up its user's messages.
#[tokio::test]
async fn reacting_too_fast_is_429_and_leaves_messages_alone() {
    let mut config = test_config();
    config.send_rate = Some("2/30s".parse().unwrap());
    let app = TestApp::spawn_with(config).await;
    let User { token, .. } = app.register("toggler").await;
    let room = app.create_room(&token, json!({ "name": "r" })).await;
    let sent = app
        .post(
            &format!("/rooms/{room}/messages"),
            Some(&token),
            json!({ "content": "react to me" }),
        )
        .await;
    let message = sent.expect(201)["message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/rooms/{room}/messages/{message}/reactions/:tada:");
    for i in 0..6 {
        let answer = if i % 2 == 0 {
            app.raw(Method::PUT, &path, Some(&token), Vec::new(), &[])
                .await
        } else {
            app.delete(&path, Some(&token)).await
        };
        answer.expect(200);
    }
    let limited = app
        .raw(Method::PUT, &path, Some(&token), Vec::new(), &[])
        .await;
    limited.expect_error(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    app.delete(&path, Some(&token))
        .await
        .expect_error(429, "rate_limited");
    // The message allowance is untouched: one of two is left.
    app.post(
        &format!("/rooms/{room}/messages"),
        Some(&token),
        json!({ "content": "still here" }),
    )
    .await
    .expect(201);
}
