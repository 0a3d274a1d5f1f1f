//! Edits and deletions as members see them: streamed as events in the room's chain, the read
//! models showing the new content or `deleted: true` with empty content, unread counts
//! dropping for those who had not read a deleted message, and a rebuild giving the same.

use natter_testkit::http::Resp;
use serde_json::{Value, json};

use crate::helpers::{Stack, Ws};

async fn edit(stack: &Stack, path: &str, token: &str, content: &str) -> Resp {
    stack
        .api
        .patch(path, Some(token), json!({ "content": content }))
        .await
}

fn unread(rooms: &Value) -> u64 {
    rooms["rooms"][0]["unread_count"].as_u64().unwrap()
}

#[tokio::test]
async fn edits_and_deletions_stream_and_reach_the_read_models() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("edits").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let sent = stack
        .post(
            &format!("/rooms/{room}/messages"),
            member,
            json!({ "content": "typo" }),
        )
        .await;
    let id = sent.expect(201)["message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sent_at = sent.body["position"].as_u64().unwrap();
    let other = stack.send(member, room, "stays").await;
    assert_eq!(
        unread(stack.get_at("/me/rooms", owner, other).await.expect(200)),
        2
    );

    let mut ws = Ws::connect(addr, owner).await;
    ws.subscribe(room, Some(other)).await;
    ws.until(|f| f["type"] == "subscribed").await;

    let path = format!("/rooms/{room}/messages/{id}");
    let edited_at = edit(&stack, &path, member, "fixed").await.expect(200)["position"]
        .as_u64()
        .unwrap();
    let frame = ws.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(
        (frame["position"].as_u64(), frame["prev_position"].as_u64()),
        (Some(edited_at), Some(other))
    );
    assert_eq!(frame["event"]["type"], "message.edited");
    let shown = stack.get_at(&path, owner, edited_at).await;
    let shown = shown.expect(200);
    assert_eq!(shown["content"], "fixed");
    assert_eq!(shown["position"].as_u64(), Some(sent_at));
    assert!(shown["edited_at"].is_string());

    let deleted_at = stack.api.delete(&path, Some(member)).await.expect(200)["position"]
        .as_u64()
        .unwrap();
    let frame = ws.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(
        (frame["position"].as_u64(), frame["prev_position"].as_u64()),
        (Some(deleted_at), Some(edited_at))
    );
    assert_eq!(frame["event"]["type"], "message.deleted");
    let page = stack
        .get_at(&format!("/rooms/{room}/messages"), owner, deleted_at)
        .await;
    let messages = page.expect(200)["messages"].as_array().unwrap().clone();
    let gone = messages.iter().find(|m| m["id"] == id).unwrap();
    assert_eq!(
        (&gone["deleted"], &gone["content"]),
        (&json!(true), &json!(""))
    );
    assert_eq!(
        unread(
            stack
                .get_at("/me/rooms", owner, deleted_at)
                .await
                .expect(200)
        ),
        1,
        "the deleted message no longer counts as unread"
    );
    // The history keeps the original for auditors.
    let (status, lines) = stack
        .get_lines(&format!("/rooms/{room}/events"), owner)
        .await;
    assert_eq!(status, 200);
    assert!(lines.iter().any(|l| l["data"]["content"] == "typo"));

    // A rebuild from the log gives the same read models.
    stack.assert_rebuild_gives_the_same().await;
}
