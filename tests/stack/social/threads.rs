//! Replies and threads: the main timeline, a thread's pages, the root's summary.

use serde_json::{Value, json};
use uuid::Uuid;

use super::*;
use crate::helpers::User;
use crate::helpers::{Stack, Ws};

#[tokio::test]
async fn a_thread_lives_beside_the_main_timeline_with_its_summary_on_the_root() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("threads").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let (root, root_at) = stack
        .api
        .send_with(owner, room, json!({ "content": "lunch?" }))
        .await;
    let mut ws = Ws::connect(addr, owner).await;
    ws.subscribe(room, Some(root_at)).await;
    ws.until(|f| f["type"] == "subscribed").await;

    let (first, first_at) = stack
        .api
        .send_with(member, room, json!({ "content": "yes", "thread_id": root }))
        .await;
    let (quote, quote_at) = stack
        .api
        .send_with(
            owner,
            room,
            json!({ "content": "where?", "thread_id": root, "reply_to": first }),
        )
        .await;
    let (_, last_at) = stack
        .api
        .send_with(
            member,
            room,
            json!({ "content": "the usual", "thread_id": root }),
        )
        .await;
    let (main, main_at) = stack
        .api
        .send_with(
            member,
            room,
            json!({ "content": "about lunch", "reply_to": root }),
        )
        .await;

    // Each reply reaches the subscriber in the room's chain.
    let frames = ws
        .until(|f| f["type"] == "event" && f["position"].as_u64() == Some(main_at))
        .await;
    let chain: Vec<(u64, u64)> = frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| {
            (
                f["position"].as_u64().unwrap(),
                f["prev_position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        chain,
        vec![
            (first_at, root_at),
            (quote_at, first_at),
            (last_at, quote_at),
            (main_at, last_at)
        ]
    );
    assert_eq!(frames[1]["event"]["data"]["thread_id"], root.to_string());
    assert_eq!(frames[1]["event"]["data"]["reply_to"], first.to_string());

    // The main timeline leaves the thread out; the thread pages on its own.
    let timeline = stack
        .get_at(&format!("/rooms/{room}/messages"), owner, main_at)
        .await;
    let timeline = timeline.expect(200);
    assert_eq!(ids(timeline), vec![root, main]);
    let shown_root = &timeline["messages"][0];
    assert_eq!(shown_root["thread"]["reply_count"], 3);
    assert_eq!(
        shown_root["thread"]["participant_ids"],
        json!([party.member.id, party.owner.id]),
        "who replied, in the order of their first reply"
    );
    assert!(shown_root["thread"]["last_reply_at"].is_string());
    assert_eq!(timeline["messages"][1]["reply_to"], root.to_string());
    assert_eq!(timeline["messages"][1]["thread"], Value::Null);
    let thread = stack
        .get_at(
            &format!("/rooms/{room}/messages?thread_id={root}"),
            owner,
            main_at,
        )
        .await;
    let thread = thread.expect(200);
    assert_eq!(ids(thread)[..2], [first, quote]);
    assert_eq!(thread["messages"][1]["reply_to"], first.to_string());
    assert_eq!(thread["messages"][1]["thread_id"], root.to_string());

    // Thread replies count in nobody's unread count; the room's last message stays the main
    // timeline's.
    let rooms = stack.get_at("/me/rooms", owner, main_at).await;
    let rooms = rooms.expect(200);
    assert_eq!(rooms["rooms"][0]["unread_count"], 1, "only `about lunch`");
    assert_eq!(rooms["rooms"][0]["last_message"]["id"], main.to_string());

    // What a reply may not name.
    let other = stack
        .api
        .create_room(owner, json!({ "name": "elsewhere" }))
        .await;
    let (foreign, _) = stack
        .api
        .send_with(owner, other, json!({ "content": "x" }))
        .await;
    for (body, why) in [
        (
            json!({ "content": "x", "thread_id": foreign }),
            "a root of another room",
        ),
        (
            json!({ "content": "x", "reply_to": foreign }),
            "a message of another room",
        ),
        (
            json!({ "content": "x", "thread_id": first }),
            "a reply as a root",
        ),
        (
            json!({ "content": "x", "reply_to": Uuid::new_v4() }),
            "no message",
        ),
    ] {
        let refused = stack
            .post(&format!("/rooms/{room}/messages"), member, body)
            .await;
        assert_eq!(refused.status, 422, "{why}: {:?}", refused.body);
        assert_eq!(refused.body["error"]["code"], "validation_failed", "{why}");
    }
    let malformed = stack
        .post(
            &format!("/rooms/{room}/messages"),
            member,
            json!({ "content": "x", "thread_id": "not-a-uuid" }),
        )
        .await;
    assert_eq!(
        malformed.status, 400,
        "a body that does not parse, as for any field"
    );
    let path = format!("/rooms/{room}/messages/{first}");
    let deleted_at = stack.api.delete(&path, Some(member)).await.expect(200)["position"]
        .as_u64()
        .unwrap();
    let quoting_deleted = stack
        .post(
            &format!("/rooms/{room}/messages"),
            owner,
            json!({ "content": "x", "reply_to": first }),
        )
        .await;
    assert_eq!(quoting_deleted.status, 422);
    let after_delete = stack
        .get_at(&format!("/rooms/{room}/messages/{root}"), owner, deleted_at)
        .await;
    assert_eq!(
        after_delete.expect(200)["thread"]["reply_count"],
        2,
        "a deleted reply leaves the count"
    );
    // An edit answers the message as the write side folds it: the same thread summary and
    // reactions as the read models show.
    react(&stack, member, room, root, "👀").await.expect(200);
    react(&stack, owner, room, root, "👀").await.expect(200);
    let edited = stack
        .api
        .patch(
            &format!("/rooms/{room}/messages/{root}"),
            Some(owner),
            json!({ "content": "lunch at one?" }),
        )
        .await;
    let edited = edited.expect(200).clone();
    let shown = stack
        .get_at(
            &format!("/rooms/{room}/messages/{root}"),
            owner,
            edited["position"].as_u64().unwrap(),
        )
        .await;
    let shown = shown.expect(200);
    assert_eq!(edited["message"]["content"], "lunch at one?");
    for field in ["thread", "reactions", "mentions", "reply_to", "thread_id"] {
        assert_eq!(edited["message"][field], shown[field], "{field}");
    }
    assert_eq!(edited["message"]["reactions"][0]["count"], 2);
    assert_eq!(edited["message"]["thread"]["reply_count"], 2);
    let garbled = stack
        .get_at(
            &format!("/rooms/{room}/messages?thread_id=nope"),
            owner,
            deleted_at,
        )
        .await;
    assert_eq!(garbled.status, 400, "{:?}", garbled.body);
    let not_a_thread = stack
        .get_at(
            &format!("/rooms/{room}/messages?thread_id={quote}"),
            owner,
            deleted_at,
        )
        .await;
    assert_eq!(not_a_thread.status, 404);

    // The websocket `send` op takes the same links.
    let mut member_ws = Ws::connect(addr, member).await;
    member_ws
        .send(json!({ "op": "send", "room_id": room, "client_id": "t-1", "content": "over the socket", "thread_id": root }))
        .await;
    let ack = member_ws
        .until(|f| f["client_id"] == "t-1")
        .await
        .pop()
        .unwrap();
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["message"]["thread_id"], root.to_string());
    member_ws
        .send(json!({ "op": "send", "room_id": room, "client_id": "t-2", "content": "x", "thread_id": quote }))
        .await;
    let refused = member_ws
        .until(|f| f["client_id"] == "t-2")
        .await
        .pop()
        .unwrap();
    assert_eq!(
        (&refused["type"], &refused["code"]),
        (&json!("error"), &json!("validation_failed"))
    );

    stack.assert_rebuild_gives_the_same().await;
}

#[tokio::test]
async fn a_thread_of_a_thousand_replies_pages_both_ways() {
    let stack = Stack::spawn().await;
    let User { token, .. } = stack.register("threader").await;
    let room = stack
        .create_room(&token, json!({ "name": "long thread" }))
        .await;
    let (root, _) = stack
        .api
        .send_with(&token, room, json!({ "content": "root" }))
        .await;
    let mut sent = Vec::new();
    for i in 0..1000 {
        let body = json!({ "content": format!("r{i}"), "thread_id": root });
        sent.push(stack.api.send_with(&token, room, body).await.1);
        if i % 100 == 0 {
            stack.send(&token, room, "main timeline noise").await;
        }
    }
    let head = stack.caught_up().await;
    let page_of = |body: &Value| -> Vec<u64> {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["position"].as_u64().unwrap())
            .collect()
    };
    let mut backwards = Vec::new();
    let mut before = None;
    loop {
        let mut path = format!("/rooms/{room}/messages?thread_id={root}&limit=100");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let body = stack.get_at(&path, &token, head).await;
        let body = body.expect(200);
        let positions = page_of(body);
        backwards.splice(0..0, positions.iter().copied());
        before = positions.first().copied();
        if body["has_more"] == false {
            break;
        }
    }
    assert_eq!(backwards, sent);
    let mut forwards = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/rooms/{room}/messages?thread_id={root}&limit=100&after={after}");
        let body = stack.get_at(&path, &token, head).await;
        let body = body.expect(200);
        let positions = page_of(body);
        forwards.extend(positions.iter().copied());
        after = positions.last().copied().unwrap_or(after);
        if body["has_more"] == false {
            break;
        }
    }
    assert_eq!(forwards, sent);
    let shown = stack
        .get_at(&format!("/rooms/{room}/messages/{root}"), &token, head)
        .await;
    assert_eq!(shown.expect(200)["thread"]["reply_count"], 1000);
}
