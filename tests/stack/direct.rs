//! A direct room as its two users list it: `GET /me/rooms` names the other user.

use serde_json::json;

use crate::helpers::Stack;

#[tokio::test]
async fn my_rooms_name_the_other_user_of_a_direct_room() {
    let stack = Stack::spawn().await;
    let alice = stack.api.register("list_alice").await;
    let bob = stack.api.register("list_bob").await;
    let opened = stack
        .post(&format!("/direct/{}", bob.id), &alice.token, json!({}))
        .await;
    let at = opened.expect(200)["position"].as_u64().unwrap();
    let room = opened.body["room"]["id"].clone();
    for (me, other) in [(&alice, &bob), (&bob, &alice)] {
        let mine = stack.get_at("/me/rooms", &me.token, at).await;
        let row = mine.expect(200)["rooms"][0].clone();
        assert_eq!(row["id"], room);
        assert_eq!(row["kind"], "direct");
        assert_eq!(
            row["other_user"],
            json!({ "id": other.id, "username": other.username, "display_name": other.username })
        );
    }
    // Nobody else sees it.
    let carol = stack.api.register("list_carol").await;
    stack
        .get_at(
            &format!("/rooms/{}", room.as_str().unwrap()),
            &carol.token,
            at,
        )
        .await
        .expect_error(404, "not_found");
    // A group room has no `other_user`.
    let group = stack
        .create_room(&alice.token, json!({ "name": "group" }))
        .await;
    let pos = stack.send(&alice.token, group, "hi").await;
    let mine = stack.get_at("/me/rooms", &alice.token, pos).await;
    let rows = mine.expect(200)["rooms"].as_array().unwrap().clone();
    let row = rows.iter().find(|r| r["id"] == group.to_string()).unwrap();
    assert!(row.get("other_user").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_user_hears_of_a_new_direct_room_on_their_own_feed() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let alice = stack.api.register("feed_alice").await;
    let bob = stack.api.register("feed_bob").await;
    let mut ws = crate::helpers::Ws::connect(addr, &bob.token).await;
    ws.send(json!({ "op": "ping" })).await;
    assert_eq!(ws.next().await["type"], "pong");
    let opened = stack
        .post(&format!("/direct/{}", bob.id), &alice.token, json!({}))
        .await;
    let room = opened.expect(200)["room"]["id"].clone();
    let frame = ws.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(frame["feed"], "me", "{frame}");
    assert_eq!(frame["room_id"], room);
    assert_eq!(frame["event"]["type"], "room.created");
    assert_eq!(frame["event"]["data"]["with_user_id"], bob.id.to_string());
}
