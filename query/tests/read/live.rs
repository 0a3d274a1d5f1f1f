//! The websocket gateway: order, no gaps, no duplicates, resumption, authorization, limits.
//!
//! One file, over 400 lines: the gateway's guarantees are tested together, on one harness.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::User;
use crate::helpers::{Stack, Ws, room_positions};

/// `user`'s row in the room's members list, as `token` reads it once `position` is projected.
async fn member_row(stack: &Stack, room: Uuid, token: &str, position: u64, user: Uuid) -> Value {
    let members = stack
        .get_at(&format!("/rooms/{room}/members"), token, position)
        .await;
    members.expect(200)["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("{user} is not in the members list"))
}

fn positions(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["position"].as_u64().unwrap())
        .collect()
}

/// Every event frame's `prev_position` is the previous frame's position (the first one's is
/// `first_prev`).
fn assert_chained(frames: &[Value], first_prev: u64) {
    let mut prev = first_prev;
    for f in frames.iter().filter(|f| f["type"] == "event") {
        assert_eq!(f["prev_position"], prev, "{f}");
        assert_eq!(f["event"]["position"], f["position"]);
        prev = f["position"].as_u64().unwrap();
    }
}

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
async fn outsiders_are_refused_and_leavers_stop_at_their_leave() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let User {
        token: carol,
        id: carol_id,
        ..
    } = stack.register("carol").await;
    let open = stack.create_room(&owner, json!({ "name": "open" })).await;
    let closed = stack
        .create_room(&owner, json!({ "name": "closed", "visibility": "private" }))
        .await;

    let mut eve = Ws::connect(addr, &carol).await;
    eve.subscribe(open, None).await;
    let refused = eve.next().await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    eve.subscribe(closed, None).await;
    assert_eq!(eve.next().await["code"], "not_found");
    eve.subscribe(Uuid::new_v4(), None).await;
    assert_eq!(eve.next().await["code"], "not_found");

    stack
        .post(&format!("/rooms/{open}/join"), &bob, json!({}))
        .await
        .expect(200);
    stack
        .post(&format!("/rooms/{open}/join"), &carol, json!({}))
        .await
        .expect(200);
    let mut b = Ws::connect(addr, &bob).await;
    b.subscribe(open, None).await;
    b.until(|f| f["type"] == "subscribed").await;
    let mut c = Ws::connect(addr, &carol).await;
    c.subscribe(open, None).await;
    c.until(|f| f["type"] == "subscribed").await;

    let left = stack
        .post(&format!("/rooms/{open}/leave"), &bob, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let last_event = b.next().await;
    assert_eq!(
        (
            last_event["position"].as_u64(),
            last_event["event"]["type"].as_str()
        ),
        (Some(left), Some("room.member_left"))
    );
    let gone = b.next().await;
    assert_eq!(
        gone,
        json!({ "type": "unsubscribed", "room_id": open, "reason": "left" })
    );
    let removed_at = stack
        .api
        .delete(&format!("/rooms/{open}/members/{carol_id}"), Some(&owner))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    assert_eq!(
        c.until(|f| f["type"] == "unsubscribed")
            .await
            .last()
            .unwrap()["reason"],
        "removed"
    );
    let _ = (bob_id, removed_at);
    stack.send(&owner, open, "after they left").await;
    assert_eq!(
        b.try_next(Duration::from_millis(500)).await,
        None,
        "nothing after leaving"
    );
    assert_eq!(
        c.try_next(Duration::from_millis(200)).await,
        None,
        "nothing after removal"
    );
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

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_stays() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token, .. } = stack.register("fuzzer").await;
    let mut ws = Ws::connect(addr, &token).await;
    for (frame, code) in [
        ("not json".to_string(), "bad_request"),
        (r#"{"op":"fly"}"#.to_string(), "unknown_op"),
        (
            r#"{"op":"subscribe","room_id":"nope"}"#.to_string(),
            "bad_request",
        ),
        (r#"[1,2,3]"#.to_string(), "unknown_op"),
        (
            format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(20_000)),
            "frame_too_large",
        ),
        (
            format!(
                r#"{{"op":"typing","room_id":"{}","typing":true}}"#,
                Uuid::new_v4()
            ),
            "not_subscribed",
        ),
        (
            format!(r#"{{"op":"unsubscribe","room_id":"{}"}}"#, Uuid::new_v4()),
            "not_subscribed",
        ),
    ] {
        ws.send_text(frame).await;
        let reply = ws.next().await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{reply}"
        );
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send(json!({ "op": "ping" })).await;
    assert_eq!(ws.next().await, json!({ "type": "pong" }));
}

/// A refused token opens the socket and closes it at once with 4001 and why: a browser hears
/// a refused upgrade only as 1006, and could not know to get a new token. A request that is
/// not an upgrade gets the REST answer.
#[tokio::test]
async fn a_refused_token_is_closed_with_4001_and_its_reason_not_refused_at_the_upgrade() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token: root, .. } = stack.register("root").await;
    let (_, service) = crate::admin::admin_token(&stack, &root, "service").await;
    let base = format!("ws://{addr}/api/v1/ws");
    for (url, why) in [
        (format!("{base}?token=forged"), "invalid token"),
        (format!("{base}?token={service}"), "API token"),
    ] {
        let mut ws = Ws::open(&url).await;
        let (code, reason) = ws.close_frame().await.expect("a close frame");
        assert_eq!(code, 4001, "{url}");
        assert!(reason.contains(why), "{reason:?} says {why:?}");
    }
    // Opened without a token, a first frame that is not `auth`, or a forged one, closes too.
    let mut ws = Ws::open(&base).await;
    ws.send(json!({ "op": "ping" })).await;
    let (code, reason) = ws.close_frame().await.expect("a close frame");
    assert_eq!((code, reason.contains("auth")), (4001, true), "{reason}");
    let mut ws = Ws::connect_by_first_frame(addr, "forged").await;
    assert_eq!(ws.close_code().await, Some(4001));

    stack
        .get("/ws", None)
        .await
        .expect_error(401, "unauthorized");
    stack
        .get("/ws", Some("forged"))
        .await
        .expect_error(401, "unauthorized");
    stack
        .get("/ws", Some(&root))
        .await
        .expect_error(400, "bad_request");
}

/// The token can come in the first frame, where no URL, proxy log or browser console shows
/// it; a later `auth` is refused, and a connection that never authenticates is closed.
#[tokio::test]
async fn the_token_can_come_in_the_first_frame() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("firstframe").await;
    let mut ws = Ws::connect_by_first_frame(addr, &party.member.token).await;
    ws.subscribe(party.room, None).await;
    ws.until(|f| f["type"] == "subscribed").await;
    let at = stack.api.send(&party.owner.token, party.room, "hi").await;
    ws.until(|f| f["type"] == "event" && f["position"].as_u64() == Some(at))
        .await;
    ws.send(json!({ "op": "auth", "token": party.member.token }))
        .await;
    let refused = ws.until(|f| f["type"] == "error").await;
    assert_eq!(refused.last().unwrap()["code"], "bad_request");

    let started = std::time::Instant::now();
    let mut silent = Ws::open(&format!("ws://{addr}/api/v1/ws")).await;
    assert_eq!(silent.close_code().await, Some(4001));
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "it waits 10 s for the auth frame"
    );
}

#[tokio::test]
async fn typing_reaches_the_other_members_and_presence_follows_connections() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User {
        token: owner,
        id: owner_id,
        ..
    } = stack.register("owner").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    let joined = stack
        .post(&format!("/rooms/{room}/join"), &bob, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let mut a = Ws::connect(addr, &owner).await;
    a.subscribe(room, None).await;
    a.until(|f| f["type"] == "subscribed").await;

    let mut b = Ws::connect(addr, &bob).await;
    let online = a.until(|f| f["type"] == "presence").await;
    assert_eq!(
        online.last().unwrap(),
        &json!({ "type": "presence", "user_id": bob_id, "status": "online" })
    );
    assert_eq!(
        member_row(&stack, room, &owner, joined, bob_id).await["online"],
        true
    );

    b.subscribe(room, None).await;
    b.until(|f| f["type"] == "subscribed").await;
    b.send(json!({ "op": "typing", "room_id": room, "typing": true }))
        .await;
    let typing = a.until(|f| f["type"] == "typing").await;
    assert_eq!(
        typing.last().unwrap(),
        &json!({ "type": "typing", "room_id": room, "user_id": bob_id, "typing": true })
    );
    a.send(json!({ "op": "signal", "room_id": room, "signal": "camera", "on": true }))
        .await;
    let signal = b.until(|f| f["type"] == "signal").await;
    assert_eq!(
        signal.last().unwrap(),
        &json!({ "type": "signal", "room_id": room, "user_id": owner_id, "signal": "camera", "on": true })
    );
    assert_eq!(
        b.try_next(Duration::from_millis(300)).await,
        None,
        "nobody hears their own typing or signals"
    );

    drop(b);
    let offline = a.until(|f| f["type"] == "presence").await;
    assert_eq!(offline.last().unwrap()["status"], "offline");
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
async fn a_client_that_never_reads_is_closed_with_4008() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let room = stack.create_room(&owner, json!({ "name": "flood" })).await;
    let mut ws = Ws::connect(addr, &owner).await;
    ws.subscribe(room, None).await;
    ws.until(|f| f["type"] == "subscribed").await;
    // Big events, never read: the socket buffers fill, then the send queue, then 4008.
    let body = json!({ "content": "x".repeat(3900) });
    for _ in 0..4000 {
        natter_testkit::http::call(
            &stack.command,
            axum::http::Method::POST,
            &format!("/rooms/{room}/messages"),
            Some(&owner),
            body.to_string().into_bytes(),
            &[],
        )
        .await;
    }
    assert_eq!(ws.close_code().await, Some(4008));
}

#[tokio::test]
async fn a_connection_follows_at_most_a_hundred_rooms() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let mut rooms = Vec::new();
    for i in 0..101 {
        rooms.push(
            stack
                .create_room(&owner, json!({ "name": format!("r{i}") }))
                .await,
        );
    }
    let mut ws = Ws::connect(addr, &owner).await;
    for room in &rooms[..100] {
        ws.subscribe(*room, None).await;
        ws.until(|f| f["type"] == "subscribed").await;
    }
    ws.subscribe(rooms[100], None).await;
    assert_eq!(ws.next().await["code"], "too_many_subscriptions");
    // Leaving one makes room for another.
    ws.send(json!({ "op": "unsubscribe", "room_id": rooms[0] }))
        .await;
    assert_eq!(
        ws.next().await,
        json!({ "type": "unsubscribed", "room_id": rooms[0], "reason": "requested" })
    );
    ws.subscribe(rooms[100], None).await;
    assert_eq!(
        ws.until(|f| f["type"] == "subscribed")
            .await
            .last()
            .unwrap()["room_id"],
        rooms[100].to_string()
    );
}

#[tokio::test]
async fn presence_crosses_gateway_instances() {
    let mut stack = Stack::spawn().await;
    let a = stack.serve_query().await;
    let b = stack.second_gateway().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    let joined = stack
        .post(&format!("/rooms/{room}/join"), &bob, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let mut watcher = Ws::connect(a, &owner).await;
    watcher.subscribe(room, None).await;
    watcher.until(|f| f["type"] == "subscribed").await;

    let bobs_tab = Ws::connect(b, &bob).await;
    let online = watcher.until(|f| f["type"] == "presence").await;
    assert_eq!(
        online.last().unwrap(),
        &json!({ "type": "presence", "user_id": bob_id, "status": "online" })
    );
    // The members list served by gateway A's instance knows it too.
    assert_eq!(
        member_row(&stack, room, &owner, joined, bob_id).await["online"],
        true
    );

    drop(bobs_tab);
    let offline = watcher.until(|f| f["type"] == "presence").await;
    assert_eq!(offline.last().unwrap()["status"], "offline");
}
