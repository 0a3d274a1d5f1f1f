//! Matching as the two users see it: the one waiting learns of the match on their socket, and
//! a leave ends the pair's stream for both.

use serde_json::json;

use crate::helpers::{Stack, Ws};

#[tokio::test]
async fn the_waiting_user_hears_of_the_match_and_a_leave_ends_it_for_both() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let alice = stack.api.register("pair_alice").await;
    let bob = stack.api.register("pair_bob").await;
    let waiting = stack.post("/match", &alice.token, json!({})).await;
    assert_eq!(waiting.expect(200)["matched"], false);
    let room = waiting.body["room"]["id"].clone();
    let mut alice_ws = Ws::connect(addr, &alice.token).await;
    alice_ws
        .subscribe(room.as_str().unwrap().parse().unwrap(), None)
        .await;
    alice_ws.until(|f| f["type"] == "subscribed").await;
    let mut bob_feed = Ws::connect(addr, &bob.token).await;
    // Alice on another device, not subscribed to the room: her own feed tells her.
    let mut alice_feed = Ws::connect(addr, &alice.token).await;

    let matched = stack.post("/match", &bob.token, json!({})).await;
    let at = matched.expect(200)["position"].as_u64().unwrap();
    assert_eq!(
        (&matched.body["matched"], &matched.body["room"]["id"]),
        (&json!(true), &room)
    );
    let frame = alice_feed
        .until(|f| f["type"] == "event")
        .await
        .pop()
        .unwrap();
    assert_eq!(frame["feed"], "me");
    assert_eq!(frame["position"].as_u64(), Some(at));
    assert_eq!(frame["event"]["data"]["matched_with"], alice.id.to_string());
    assert_eq!(frame["event"]["data"]["user_id"], bob.id.to_string());
    let frame = alice_ws
        .until(|f| f["type"] == "event")
        .await
        .pop()
        .unwrap();
    assert_eq!(frame["event"]["type"], "room.member_joined");
    assert_eq!(
        bob_feed
            .until(|f| f["type"] == "event")
            .await
            .pop()
            .unwrap()["position"]
            .as_u64(),
        Some(at),
        "the joiner's own feed has their join"
    );

    let room_id = room.as_str().unwrap();
    let ended = stack
        .post(&format!("/rooms/{room_id}/leave"), &bob.token, json!({}))
        .await;
    let ended_at = ended.expect(200)["position"].as_u64().unwrap();
    let last = alice_ws
        .until(|f| f["type"] == "event")
        .await
        .pop()
        .unwrap();
    assert_eq!(
        (last["position"].as_u64(), last["event"]["type"].as_str()),
        (Some(ended_at), Some("room.deleted"))
    );
    assert_eq!(
        alice_ws.next().await,
        json!({ "type": "unsubscribed", "room_id": room, "reason": "deleted" })
    );
    assert_eq!(
        stack
            .get_at("/me/rooms", &alice.token, ended_at)
            .await
            .expect(200)["rooms"],
        json!([])
    );
}
