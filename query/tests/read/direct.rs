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
