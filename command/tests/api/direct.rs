//! `POST /direct/{user_id}`: the one direct room of two users, however many first calls race.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, race, test_config};

#[tokio::test]
async fn twenty_concurrent_first_calls_from_both_sides_make_one_room() {
    let (a, b) = TestApp::two().await;
    let alice = a.api.register("dm_alice").await;
    let bob = a.api.register("dm_bob").await;
    let to_bob = format!("/direct/{}", bob.id);
    let to_alice = format!("/direct/{}", alice.id);
    let calls = race(&[&a, &b], 20, |app, i| {
        let (me, path) = match i % 4 {
            0 | 1 => (&alice, &to_bob),
            _ => (&bob, &to_alice),
        };
        app.post(path, Some(&me.token), json!({}))
    })
    .await;
    let mut rooms = Vec::new();
    for r in &calls {
        let body = r.expect(200);
        assert_eq!(body["room"]["kind"], "direct");
        assert_eq!(body["room"]["visibility"], "private");
        assert_eq!(body["room"]["member_count"], 2);
        rooms.push(body["room"]["id"].as_str().unwrap().to_string());
    }
    rooms.dedup();
    assert_eq!(rooms.len(), 1, "one room for the pair: {rooms:?}");
    let created = a
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "room.created")
        .count();
    assert_eq!(created, 1);
    // Either may post; no one else may join or be invited; it cannot be left.
    let room = &rooms[0];
    for user in [&alice, &bob] {
        a.post(
            &format!("/rooms/{room}/messages"),
            Some(&user.token),
            json!({ "content": "hi" }),
        )
        .await
        .expect(201);
    }
    let carol = a.api.register("dm_carol").await;
    a.post(
        &format!("/rooms/{room}/join"),
        Some(&carol.token),
        json!({}),
    )
    .await
    .expect_error(404, "not_found");
    a.post(
        &format!("/rooms/{room}/invites"),
        Some(&alice.token),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");
    a.post(&format!("/rooms/{room}/leave"), Some(&bob.token), json!({}))
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_direct_room_needs_another_user_who_exists() {
    let a = TestApp::spawn().await;
    let alice = a.api.register("solo_alice").await;
    a.post(
        &format!("/direct/{}", alice.id),
        Some(&alice.token),
        json!({}),
    )
    .await
    .expect_error(422, "validation_failed");
    a.post(
        &format!("/direct/{}", Uuid::new_v4()),
        Some(&alice.token),
        json!({}),
    )
    .await
    .expect_error(404, "not_found");
    a.post("/direct/not-a-uuid", Some(&alice.token), json!({}))
        .await
        .expect_error(400, "bad_request");
    // A user registered through another instance a moment ago is found.
    let b = TestApp::on(&a.isolation, test_config()).await;
    let bob = b.api.register("solo_bob").await;
    a.post(
        &format!("/direct/{}", bob.id),
        Some(&alice.token),
        json!({}),
    )
    .await
    .expect(200);
    // And one registered before an instance started is known to it.
    let c = TestApp::on(&a.isolation, test_config()).await;
    c.post(
        &format!("/direct/{}", alice.id),
        Some(&bob.token),
        json!({}),
    )
    .await
    .expect(200);
}
