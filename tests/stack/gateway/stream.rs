//! What a subscriber sees: every room event once, in position order and chained by
//! `prev_position`, from its `since` through the replay into live, on any gateway, resumed
//! after a disconnect; and a user's own feed of what names them.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::helpers::{Stack, User, Ws, room_positions};

#[tokio::test]
async fn since_zero_gives_every_room_event_in_order_then_subscribed_then_live() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User { token: bob, .. } = stack.register("bob").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    stack
        .post(&format!("/rooms/{room}/join"), &bob, json!({}))
        .await
        .expect(200);
    let mut last = 0;
    for i in 0..5 {
        last = stack.send(&owner, room, &format!("m{i}")).await;
    }
    stack
        .post(
            &format!("/rooms/{room}/read"),
            &bob,
            json!({ "up_to_position": last }),
        )
        .await
        .expect(200);
    let _other = stack
        .create_room(&owner, json!({ "name": "elsewhere" }))
        .await;

    let mut ws = Ws::connect(addr, &bob).await;
    ws.subscribe(room, Some(0)).await;
    let frames = ws.until(|f| f["type"] == "subscribed").await;
    let expected = room_positions(&stack.store, room).await;
    assert_eq!(positions(&frames), expected);
    assert_chained(&frames, 0);
    assert_eq!(frames[0]["event"]["type"], "room.created");
    assert_eq!(
        frames.last().unwrap()["position"],
        *expected.last().unwrap()
    );
    assert!(
        frames.last().unwrap()["epoch"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );

    let live = stack.send(&owner, room, "live!").await;
    let frame = ws.next().await;
    assert_eq!(frame["type"], "event");
    assert_eq!(frame["position"], live);
    assert_eq!(frame["prev_position"], *expected.last().unwrap());
    assert_eq!(frame["event"]["data"]["content"], "live!");
    assert_eq!(frame["event"]["type"], "message.sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_in_the_middle_of_a_busy_room_splices_replay_and_live_exactly() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let room = stack.create_room(&owner, json!({ "name": "busy" })).await;
    let mut middle = 0;
    for i in 0..50 {
        let p = stack.send(&owner, room, &format!("before {i}")).await;
        if i == 25 {
            middle = p;
        }
    }
    let sender = {
        let command = stack.command.clone();
        let owner = owner.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..300 {
                let r = natter_testkit::http::call(
                    &command,
                    axum::http::Method::POST,
                    &format!("/rooms/{room}/messages"),
                    Some(&owner),
                    json!({ "content": format!("during {i}") })
                        .to_string()
                        .into_bytes(),
                    &[],
                )
                .await;
                last = r.expect(201)["position"].as_u64().unwrap();
            }
            last
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ws = Ws::connect(addr, &owner).await;
    ws.subscribe(room, Some(middle)).await;
    let last = sender.await.unwrap();
    let frames = ws
        .until(|f| f["position"] == last && f["type"] == "event")
        .await;
    let expected: Vec<u64> = room_positions(&stack.store, room)
        .await
        .into_iter()
        .filter(|p| *p > middle)
        .collect();
    assert_eq!(positions(&frames), expected, "none missing, none twice");
    assert_chained(&frames, middle);
    assert_eq!(
        frames.iter().filter(|f| f["type"] == "subscribed").count(),
        1
    );
}

#[tokio::test]
async fn a_client_resumes_with_exactly_what_it_missed_even_from_another_gateway() {
    let mut stack = Stack::spawn().await;
    let first = stack.serve_query().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    let mut ws = Ws::connect(first, &owner).await;
    ws.subscribe(room, None).await;
    ws.until(|f| f["type"] == "subscribed").await;
    let seen = stack.send(&owner, room, "seen").await;
    assert_eq!(ws.next().await["position"], seen);
    drop(ws);

    let mut missed = Vec::new();
    for i in 0..7 {
        missed.push(stack.send(&owner, room, &format!("missed {i}")).await);
    }
    // The same gateway: served from its window.
    let mut again = Ws::connect(first, &owner).await;
    again.subscribe(room, Some(seen)).await;
    let frames = again.until(|f| f["type"] == "subscribed").await;
    assert_eq!(positions(&frames), missed);
    assert_chained(&frames, seen);
    // A gateway that never saw the room (as after a restart): served from JetStream.
    let second = stack.second_gateway().await;
    let mut elsewhere = Ws::connect(second, &owner).await;
    elsewhere.subscribe(room, Some(seen)).await;
    let frames = elsewhere.until(|f| f["type"] == "subscribed").await;
    assert_eq!(positions(&frames), missed);
    assert_chained(&frames, seen);
    // A `since` that is not one of the room's positions still chains from the room's event before it.
    let foreign = stack.create_room(&owner, json!({ "name": "other" })).await;
    let between = stack.send(&owner, foreign, "elsewhere").await;
    let after = stack.send(&owner, room, "after").await;
    let mut odd = Ws::connect(second, &owner).await;
    odd.subscribe(room, Some(between)).await;
    let frames = odd.until(|f| f["type"] == "subscribed").await;
    assert_eq!(positions(&frames), vec![after]);
    assert_chained(&frames, *missed.last().unwrap());
}

#[tokio::test]
async fn two_gateways_on_one_nats_both_deliver() {
    let mut stack = Stack::spawn().await;
    let a = stack.serve_query().await;
    let b = stack.second_gateway().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User { token: bob, .. } = stack.register("bob").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    stack
        .post(&format!("/rooms/{room}/join"), &bob, json!({}))
        .await
        .expect(200);
    let mut on_a = Ws::connect(a, &owner).await;
    let mut on_b = Ws::connect(b, &bob).await;
    for ws in [&mut on_a, &mut on_b] {
        ws.subscribe(room, None).await;
        ws.until(|f| f["type"] == "subscribed").await;
    }
    let p = stack.send(&bob, room, "to both").await;
    assert_eq!(on_a.next().await["position"], p);
    assert_eq!(on_b.next().await["position"], p);
}

#[tokio::test]
async fn an_epoch_from_another_log_gets_a_reset_and_the_full_history() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    stack.send(&owner, room, "one").await;
    let mut ws = Ws::connect(addr, &owner).await;
    ws.send(json!({ "op": "subscribe", "room_id": room, "since": 999, "epoch": "some-other-log" }))
        .await;
    let frames = ws.until(|f| f["type"] == "subscribed").await;
    assert_eq!(frames[0], json!({ "type": "reset", "room_id": room }));
    assert_eq!(positions(&frames), room_positions(&stack.store, room).await);
}

#[tokio::test]
async fn a_users_own_feed_brings_their_invites_and_joins_unasked() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User {
        token: dave,
        id: dave_id,
        ..
    } = stack.register("dave").await;
    let room = stack
        .create_room(&owner, json!({ "name": "vip", "visibility": "private" }))
        .await;
    let mut ws = Ws::connect(addr, &dave).await;
    let mut other_tab = Ws::connect(addr, &dave).await;
    let invited = stack
        .post(
            &format!("/rooms/{room}/invites"),
            &owner,
            json!({ "user_id": dave_id }),
        )
        .await;
    let invited_at = invited.expect(201)["position"].as_u64().unwrap();
    for tab in [&mut ws, &mut other_tab] {
        let frame = tab.next().await;
        assert_eq!(
            (frame["feed"].as_str(), frame["position"].as_u64()),
            (Some("me"), Some(invited_at))
        );
        assert_eq!(frame["event"]["type"], "room.invite_created");
        assert!(
            frame["event"]["data"].get("token").is_none(),
            "the invite token is never streamed"
        );
    }
    stack
        .post(&format!("/rooms/{room}/join"), &dave, json!({}))
        .await
        .expect(200);
    assert_eq!(ws.next().await["event"]["type"], "room.member_joined");
}
