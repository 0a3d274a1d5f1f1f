//! The owner's controls as members see them: on their sockets (each event in the room's
//! stream, chained by `prev_position`; the stream of a removed member or a deleted room ends
//! at that event) and in the read models (with `min_position`), and through a rebuild.

use natter_testkit::http::Resp;
use serde_json::{Value, json};

use crate::helpers::{Stack, Ws};

async fn patch(stack: &Stack, path: &str, token: &str, body: Value) -> Resp {
    stack.api.patch(path, Some(token), body).await
}

fn position(r: &Resp, status: u16) -> u64 {
    r.expect(status)["position"].as_u64().unwrap()
}

/// The next room event frame, checked to follow `prev`.
async fn next_event(ws: &mut Ws, prev: u64) -> Value {
    let frames = ws.until(|f| f["type"] == "event").await;
    let frame = frames.last().unwrap().clone();
    assert_eq!(frame["prev_position"].as_u64(), Some(prev), "{frame}");
    frame
}

#[tokio::test]
async fn an_update_streams_to_members_and_shows_in_the_read_models() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("settings").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let mut ws = Ws::connect(addr, member).await;
    ws.subscribe(room, None).await;
    let subscribed = ws.until(|f| f["type"] == "subscribed").await;
    let head = subscribed.last().unwrap()["position"].as_u64().unwrap();

    let at = position(
        &patch(
            &stack,
            &format!("/rooms/{room}"),
            owner,
            json!({ "name": "renamed", "visibility": "private", "max_members": 7 }),
        )
        .await,
        200,
    );
    let frame = next_event(&mut ws, head).await;
    assert_eq!(frame["position"].as_u64(), Some(at));
    assert_eq!(frame["event"]["type"], "room.updated");
    assert_eq!(
        frame["event"]["data"],
        json!({ "name": "renamed", "visibility": "private", "max_members": 7 })
    );

    let view = stack.get_at(&format!("/rooms/{room}"), member, at).await;
    let view = view.expect(200);
    assert_eq!(
        (&view["name"], &view["visibility"], &view["max_members"]),
        (&json!("renamed"), &json!("private"), &json!(7))
    );
    // Now private: a stranger no longer finds it.
    let stranger = stack.api.register("settings_stranger").await;
    stack
        .get_at(&format!("/rooms/{room}"), &stranger.token, at)
        .await
        .expect_error(404, "not_found");
    let listed = stack
        .get_at("/rooms?scope=public", &stranger.token, at)
        .await;
    assert!(
        !listed.expect(200)["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == room.to_string()),
        "a private room is not listed"
    );
}

#[tokio::test]
async fn a_removed_member_stops_streaming_at_the_removal_and_may_come_back() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("removal").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let mut removed = Ws::connect(addr, member).await;
    removed.subscribe(room, None).await;
    let head = removed
        .until(|f| f["type"] == "subscribed")
        .await
        .last()
        .unwrap()["position"]
        .as_u64()
        .unwrap();
    let mut watcher = Ws::connect(addr, owner).await;
    watcher.subscribe(room, None).await;
    watcher.until(|f| f["type"] == "subscribed").await;

    let at = position(
        &stack
            .api
            .delete(
                &format!("/rooms/{room}/members/{}", party.member.id),
                Some(owner),
            )
            .await,
        200,
    );
    let last = next_event(&mut removed, head).await;
    assert_eq!(last["position"].as_u64(), Some(at));
    assert_eq!(last["event"]["type"], "room.member_removed");
    assert_eq!(
        removed.next().await,
        json!({ "type": "unsubscribed", "room_id": room, "reason": "removed" })
    );
    assert_eq!(
        next_event(&mut watcher, head).await["position"].as_u64(),
        Some(at),
        "the others see the removal and stay subscribed"
    );
    stack.send(owner, room, "after the removal").await;
    assert_eq!(
        watcher
            .until(|f| f["type"] == "event")
            .await
            .last()
            .unwrap()["event"]["type"],
        "message.sent"
    );
    assert_eq!(
        removed
            .try_next(std::time::Duration::from_millis(300))
            .await,
        None,
        "nothing reaches the removed member"
    );

    // The read models: gone from the members and from their rooms; the room is theirs to see
    // no more (its messages are members only).
    let members = stack
        .get_at(&format!("/rooms/{room}/members"), owner, at)
        .await;
    let ids: Vec<Value> = members.expect(200)["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].clone())
        .collect();
    assert_eq!(ids, [json!(party.owner.id)]);
    let mine = stack.get_at("/me/rooms", member, at).await;
    assert_eq!(mine.expect(200)["rooms"], json!([]));
    stack
        .get_at(&format!("/rooms/{room}/messages"), member, at)
        .await
        .expect_error(403, "forbidden");
    // Removal is not a ban: they may join the public room again.
    let back = position(
        &stack
            .post(&format!("/rooms/{room}/join"), member, json!({}))
            .await,
        200,
    );
    let mine = stack.get_at("/me/rooms", member, back).await;
    assert_eq!(mine.expect(200)["rooms"][0]["id"], room.to_string());
}

#[tokio::test]
async fn a_deleted_room_ends_every_stream_and_leaves_the_read_models_but_not_the_log() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("doomed").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    stack.send(member, room, "before").await;
    let mut sockets = Vec::new();
    for token in [owner, member] {
        let mut ws = Ws::connect(addr, token).await;
        ws.subscribe(room, None).await;
        let head = ws
            .until(|f| f["type"] == "subscribed")
            .await
            .last()
            .unwrap()["position"]
            .as_u64()
            .unwrap();
        sockets.push((ws, head));
    }
    let at = position(
        &stack
            .api
            .delete(&format!("/rooms/{room}"), Some(owner))
            .await,
        200,
    );
    for (ws, head) in &mut sockets {
        let last = next_event(ws, *head).await;
        assert_eq!(
            (last["position"].as_u64(), last["event"]["type"].as_str()),
            (Some(at), Some("room.deleted"))
        );
        assert_eq!(
            ws.next().await,
            json!({ "type": "unsubscribed", "room_id": room, "reason": "deleted" })
        );
    }
    for token in [owner, member] {
        stack
            .get_at(&format!("/rooms/{room}"), token, at)
            .await
            .expect_error(404, "not_found");
        assert_eq!(
            stack.get_at("/me/rooms", token, at).await.expect(200)["rooms"],
            json!([])
        );
    }
    // Subscribing again finds no room.
    let (ws, _) = &mut sockets[0];
    ws.subscribe(room, None).await;
    assert_eq!(ws.next().await["code"], "not_found");
    // The log keeps the whole history for auditors.
    let positions = crate::helpers::room_positions(&stack.store, room).await;
    assert_eq!(positions.len(), 4, "created, joined, sent, deleted");
    assert_eq!(positions.last(), Some(&at));
}
