//! The owner's controls over HTTP: `PATCH /rooms/{id}`, `DELETE /rooms/{id}` and
//! `DELETE /rooms/{id}/members/{user_id}`, their statuses, and the race of a removal with the
//! removed member's sends across two instances.

use futures::future::join_all;
use natter_testkit::http::Resp;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;

async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> Resp {
    app.api.patch(path, Some(token), body).await
}

#[tokio::test]
async fn the_owner_updates_the_room_and_an_empty_update_changes_nothing() {
    let app = TestApp::spawn().await;
    let party = app.api.party("upd").await;
    let path = format!("/rooms/{}", party.room);
    let r = patch(
        &app,
        &path,
        &party.owner.token,
        json!({ "name": "  renamed ", "visibility": "private", "max_members": 5 }),
    )
    .await;
    let body = r.expect(200);
    assert_eq!(body["room"]["name"], "renamed");
    assert_eq!(body["room"]["visibility"], "private");
    assert_eq!(body["room"]["max_members"], 5);
    assert_eq!(body["room"]["member_count"], 2);
    let position = body["position"].as_u64().unwrap();
    // The same values again, or nothing at all: nothing appended, the same position.
    for again in [
        json!({ "name": "renamed", "visibility": "private" }),
        json!({}),
    ] {
        let r = patch(&app, &path, &party.owner.token, again).await;
        assert_eq!(r.expect(200)["position"].as_u64(), Some(position));
    }
    let updates = app
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, p)| p["type"] == "room.updated")
        .collect::<Vec<_>>();
    assert_eq!(updates.len(), 1, "one event for the one real change");
}

#[tokio::test]
async fn owners_controls_refuse_what_the_contract_refuses() {
    let app = TestApp::spawn().await;
    let party = app.api.party("ctl").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let stranger = app.api.register("ctl_stranger").await;
    let path = format!("/rooms/{room}");

    // Not the owner: 403, for a member and for a stranger to a public room.
    for token in [member, &stranger.token] {
        patch(&app, &path, token, json!({ "name": "mine" }))
            .await
            .expect_error(403, "forbidden");
        app.delete(&path, Some(token))
            .await
            .expect_error(403, "forbidden");
        app.delete(&format!("{path}/members/{}", party.owner.id), Some(token))
            .await
            .expect_error(403, "forbidden");
    }
    // Bad input: 422 (or 400 for a body of the wrong shape or a malformed id).
    for bad in [
        json!({ "name": "" }),
        json!({ "name": "a".repeat(101) }),
        json!({ "name": "new\nline" }),
        json!({ "max_members": 1 }),
        json!({ "max_members": 100_001 }),
    ] {
        patch(&app, &path, owner, bad.clone())
            .await
            .expect_error(422, "validation_failed");
    }
    patch(&app, &path, owner, json!({ "visibility": "secret" }))
        .await
        .expect_error(400, "bad_request");
    patch(&app, &path, owner, json!({ "max_members": "ten" }))
        .await
        .expect_error(400, "bad_request");
    app.delete("/rooms/not-a-uuid", Some(owner))
        .await
        .expect_error(400, "bad_request");
    app.delete(&format!("{path}/members/not-a-uuid"), Some(owner))
        .await
        .expect_error(400, "bad_request");
    // Below the member count: 409; removing yourself: 422; removing a non-member: 404.
    patch(&app, &path, owner, json!({ "max_members": 2 }))
        .await
        .expect(200);
    let third = app.api.register("ctl_third").await;
    app.post(&format!("{path}/join"), Some(&third.token), json!({}))
        .await
        .expect_error(409, "room_full");
    app.delete(&format!("{path}/members/{}", party.member.id), Some(owner))
        .await
        .expect(200);
    app.post(&format!("{path}/join"), Some(&third.token), json!({}))
        .await
        .expect(200);
    patch(&app, &path, owner, json!({ "max_members": 2 }))
        .await
        .expect(200);
    patch(&app, &path, owner, json!({ "max_members": 3 }))
        .await
        .expect(200);
    app.post(&format!("{path}/join"), Some(member), json!({}))
        .await
        .expect(200);
    patch(&app, &path, owner, json!({ "max_members": 2 }))
        .await
        .expect_error(409, "conflict");
    app.delete(&format!("{path}/members/{}", party.owner.id), Some(owner))
        .await
        .expect_error(422, "validation_failed");
    app.delete(&format!("{path}/members/{}", stranger.id), Some(owner))
        .await
        .expect_error(404, "not_found");
    // Unknown room: 404. Unauthenticated: 401.
    app.delete(&format!("/rooms/{}", Uuid::new_v4()), Some(owner))
        .await
        .expect_error(404, "not_found");
    app.delete(&path, None)
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn a_deleted_room_is_not_found_for_every_later_command() {
    let app = TestApp::spawn().await;
    let party = app.api.party("del").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let path = format!("/rooms/{room}");
    let deleted = app.delete(&path, Some(owner)).await;
    assert!(deleted.expect(200)["position"].as_u64().unwrap() > 0);
    app.delete(&path, Some(owner))
        .await
        .expect_error(404, "not_found");
    patch(&app, &path, owner, json!({ "name": "back" }))
        .await
        .expect_error(404, "not_found");
    app.post(
        &format!("{path}/messages"),
        Some(member),
        json!({ "content": "anyone?" }),
    )
    .await
    .expect_error(404, "not_found");
    for action in ["join", "leave"] {
        app.post(&format!("{path}/{action}"), Some(member), json!({}))
            .await
            .expect_error(404, "not_found");
    }
    app.post(&format!("{path}/invites"), Some(owner), json!({}))
        .await
        .expect_error(404, "not_found");
    // The log keeps the room's history, the deletion last.
    let types: Vec<Value> = app
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, s, _, _)| s.contains(&room.to_string()))
        .map(|(_, _, _, p)| p["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            json!("room.created"),
            json!("room.member_joined"),
            json!("room.deleted")
        ]
    );
}

#[tokio::test]
async fn once_a_removal_is_acknowledged_no_send_through_another_instance_gets_in() {
    let (a, b) = TestApp::two().await;
    let party = a.api.party("kick").await;
    let room = party.room;
    let messages = format!("/rooms/{room}/messages");
    let send = |i: usize| {
        b.post(
            &messages,
            Some(&party.member.token),
            json!({ "content": format!("m{i}") }),
        )
    };
    // Instance b has the room folded, with the member in it.
    send(0).await.expect(201);
    // Sends under way while the removal goes through instance a.
    let racing = join_all((1..=20).map(send));
    let member_path = format!("/rooms/{room}/members/{}", party.member.id);
    let removal = a.delete(&member_path, Some(&party.owner.token));
    let (racing, removal) = tokio::join!(racing, removal);
    let removed_at = removal.expect(200)["position"].as_u64().unwrap();
    for r in &racing {
        assert!(
            r.status == 201 || (r.status == 403 && r.body["error"]["code"] == "forbidden"),
            "a racing send either got in before the removal or was refused: {} {}",
            r.status,
            r.body
        );
    }
    // Every send begun after the removal was acknowledged is refused, at once, by b.
    let after = join_all((21..=40).map(send)).await;
    for r in &after {
        r.expect_error(403, "forbidden");
    }
    // In the log: the member's messages are those acknowledged, none after the removal was
    // decided on a room that no longer held them.
    let log = a.stream_messages().await;
    let sent_after: Vec<_> = log
        .iter()
        .filter(|(p, _, _, e)| {
            *p > removed_at
                && e["type"] == "message.sent"
                && e["actor_id"] == party.member.id.to_string()
                && e["data"]["content"]
                    .as_str()
                    .is_some_and(|c| c[1..].parse::<usize>().unwrap() > 20)
        })
        .collect();
    assert!(sent_after.is_empty(), "{sent_after:?}");
    let accepted = racing.iter().filter(|r| r.status == 201).count();
    let stored = log
        .iter()
        .filter(|(_, _, _, e)| {
            e["type"] == "message.sent" && e["actor_id"] == party.member.id.to_string()
        })
        .count();
    assert_eq!(
        stored,
        accepted + 1,
        "every acknowledged send is stored, once"
    );
}
