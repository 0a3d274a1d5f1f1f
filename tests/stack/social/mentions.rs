//! Mentions: on the user feed, in `/me/mentions` and `unread_mentions`, members only.

use serde_json::json;

use super::*;
use crate::helpers::{Stack, Ws};

#[tokio::test]
async fn mentions_reach_the_mentioned_and_count_until_read() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("mentions").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let member_id = party.member.id;
    // The member is connected but subscribed to nothing: a mention reaches them anyway. A
    // second connection of theirs follows the room and gets it once, as a room event; the
    // sender, who mentions themself too, gets nothing on their own feed.
    let mut feed = Ws::connect(addr, member).await;
    let mut following = Ws::connect(addr, member).await;
    following.subscribe(room, None).await;
    following.until(|f| f["type"] == "subscribed").await;
    let mut sender = Ws::connect(addr, owner).await;

    stack.api.send(owner, room, "hello all").await;
    let (named, named_at) = stack
        .api
        .send_with(
            owner,
            room,
            json!({ "content": "over to you", "mentions": [member_id, member_id, party.owner.id] }),
        )
        .await;
    let frame = feed.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(frame["feed"], "me");
    assert_eq!(frame["position"].as_u64(), Some(named_at));
    assert_eq!(
        frame["event"]["data"]["mentions"],
        json!([member_id, party.owner.id])
    );
    let (_, after_at) = stack
        .api
        .send_with(owner, room, json!({ "content": "next" }))
        .await;
    let frames = following
        .until(|f| f["type"] == "event" && f["position"].as_u64() == Some(after_at))
        .await;
    let copies: Vec<_> = frames
        .iter()
        .filter(|f| f["position"].as_u64() == Some(named_at))
        .collect();
    assert_eq!(copies.len(), 1, "{frames:?}");
    assert!(
        copies[0].get("feed").is_none_or(|f| f != "me"),
        "{:?}",
        copies[0]
    );
    let mut to_sender = Vec::new();
    while let Some(f) = sender.try_next(std::time::Duration::from_millis(300)).await {
        to_sender.push(f);
    }
    assert!(
        to_sender.iter().all(|f| f["type"] != "event"),
        "no feed frame for mentioning oneself: {to_sender:?}"
    );

    let (root, _) = stack
        .api
        .send_with(member, room, json!({ "content": "a thread" }))
        .await;
    let (in_thread, in_thread_at) = stack
        .api
        .send_with(
            owner,
            room,
            json!({ "content": "see here", "thread_id": root, "mentions": [member_id] }),
        )
        .await;

    let mine = stack.get_at("/me/mentions", member, in_thread_at).await;
    assert_eq!(
        ids(mine.expect(200)),
        vec![in_thread, named],
        "newest first, thread replies included"
    );
    let rooms = stack.get_at("/me/rooms", member, in_thread_at).await;
    assert_eq!(rooms.expect(200)["rooms"][0]["unread_mentions"], 2);
    let theirs = stack.get_at("/me/mentions", owner, in_thread_at).await;
    assert_eq!(ids(theirs.expect(200)), Vec::<Uuid>::new());
    let paged = stack
        .get_at("/me/mentions?limit=1", member, in_thread_at)
        .await;
    let paged = paged.expect(200);
    assert_eq!(
        (ids(paged), &paged["has_more"]),
        (vec![in_thread], &json!(true))
    );

    // Reading past a mention clears it from the unread count (not from the list).
    let read_at = stack
        .post(
            &format!("/rooms/{room}/read"),
            member,
            json!({ "up_to_position": named_at }),
        )
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let rooms = stack.get_at("/me/rooms", member, read_at).await;
    assert_eq!(rooms.expect(200)["rooms"][0]["unread_mentions"], 1);

    // A deleted message is no mention.
    let path = format!("/rooms/{room}/messages/{in_thread}");
    let deleted_at = stack.api.delete(&path, Some(owner)).await.expect(200)["position"]
        .as_u64()
        .unwrap();
    let mine = stack.get_at("/me/mentions", member, deleted_at).await;
    assert_eq!(ids(mine.expect(200)), vec![named]);
    let rooms = stack.get_at("/me/rooms", member, deleted_at).await;
    assert_eq!(rooms.expect(200)["rooms"][0]["unread_mentions"], 0);

    // Only members may be mentioned; a room left takes its mentions along.
    let outsider = stack.api.register("not_here").await;
    let refused = stack
        .post(
            &format!("/rooms/{room}/messages"),
            owner,
            json!({ "content": "hey", "mentions": [outsider.id] }),
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    let left_at = stack
        .post(&format!("/rooms/{room}/leave"), member, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let mine = stack.get_at("/me/mentions", member, left_at).await;
    assert_eq!(ids(mine.expect(200)), Vec::<Uuid>::new());

    stack.assert_rebuild_gives_the_same().await;
}

/// A mention that arrives while the mentioned user's connection is still joining the room
/// (replaying its history, slowly) reaches that connection once, as a room event in its
/// place in the stream: not also on its own feed, which once doubled it (and, with the
/// connection's queue full of the replay, cut it as too slow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_while_the_mentioned_connection_replays_arrives_once_in_the_stream() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("joining").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    // More history (6 MB) than the connection's queue (1 MiB) and socket buffers (up to 4 MiB
    // on Linux) hold, so
    // its replay waits on a client that does not read.
    let content = "y".repeat(4_000);
    for _ in 0..1_500 {
        stack
            .api
            .send_with(owner, room, json!({ "content": content }))
            .await;
    }
    let mut slow = Ws::connect_with_a_small_window(addr, member).await;
    slow.subscribe(room, Some(0)).await;
    let mut watcher = Ws::connect(addr, owner).await;
    watcher.subscribe(room, None).await;
    watcher.until(|f| f["type"] == "subscribed").await;
    // Let the replay fill the slow connection's queue.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (_, named_at) = stack
        .api
        .send_with(
            owner,
            room,
            json!({ "content": "you there?", "mentions": [party.member.id] }),
        )
        .await;
    // The gateway has handed the event to everyone once the watcher has it.
    watcher
        .until(|f| f["type"] == "event" && f["position"].as_u64() == Some(named_at))
        .await;

    let frames = slow
        .until(|f| f["type"] == "event" && f["position"].as_u64() == Some(named_at))
        .await;
    let copies: Vec<_> = frames
        .iter()
        .filter(|f| f["position"].as_u64() == Some(named_at))
        .collect();
    assert_eq!(copies.len(), 1, "{:?}", copies);
    assert!(copies[0].get("feed").is_none(), "{:?}", copies[0]);
    let streamed: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["position"].as_u64().unwrap())
        .collect();
    let logged = crate::helpers::room_positions(&stack.store, room).await;
    assert_eq!(streamed, logged, "the room's history, then the mention");
    // Whether it came before or after `subscribed` depends on where the replay was; it came
    // in the chain either way, and once.
    let mut rest = Vec::new();
    if !frames.iter().any(|f| f["type"] == "subscribed") {
        rest = slow.until(|f| f["type"] == "subscribed").await;
    }
    while let Some(f) = slow.try_next(std::time::Duration::from_millis(300)).await {
        rest.push(f);
    }
    assert!(
        rest.iter()
            .all(|f| f["type"] != "event" || f["position"].as_u64() != Some(named_at)),
        "again: {rest:?}"
    );
}
