//! Who may hold a socket and follow a room: tokens at the upgrade or in the first frame,
//! refusals as close codes a browser can hear, outsiders and leavers.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Stack, User, Ws};

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
