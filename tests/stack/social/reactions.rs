//! Reactions: once per user and emoji, raced by one user and by many, and against a deletion.

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::helpers::{Stack, Ws, room_positions};
use axum::http::Method;

#[tokio::test]
async fn reactions_count_once_per_user_and_emoji_even_raced() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("reacts").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let (message, sent_at) = stack
        .api
        .send_with(owner, room, json!({ "content": "ship it" }))
        .await;
    let mut ws = Ws::connect(addr, owner).await;
    ws.subscribe(room, Some(sent_at)).await;
    ws.until(|f| f["type"] == "subscribed").await;

    // One user, twenty times at once: one reaction, one event.
    let raced =
        futures::future::join_all((0..20).map(|_| react(&stack, member, room, message, "👍")))
            .await;
    let positions: Vec<u64> = raced
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.body["position"].as_u64().unwrap()
        })
        .collect();
    let log = room_positions(&stack.store, room).await;
    let added: Vec<&u64> = log.iter().filter(|p| **p > sent_at).collect();
    assert_eq!(added.len(), 1, "one event for twenty identical reactions");
    assert!(positions.iter().all(|p| *p == *added[0]), "{positions:?}");
    let frame = ws.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(frame["event"]["type"], "message.reaction_added");
    assert_eq!(frame["prev_position"].as_u64(), Some(sent_at));
    assert_eq!(frame["event"]["data"]["emoji"], "👍");

    // Twenty users at once: twenty.
    let mut users = Vec::new();
    for i in 0..20 {
        let user = stack.api.register(&format!("fan{i}")).await;
        stack.api.join(&user.token, room).await;
        users.push(user);
    }
    let raced = futures::future::join_all(
        users
            .iter()
            .map(|u| react(&stack, &u.token, room, message, ":tada:")),
    )
    .await;
    assert!(raced.iter().all(|r| r.status == 200), "{raced:?}");
    let at = raced
        .iter()
        .map(|r| r.body["position"].as_u64().unwrap())
        .max()
        .unwrap();
    let shown = stack
        .get_at(&format!("/rooms/{room}/messages/{message}"), owner, at)
        .await;
    let reactions = shown.expect(200)["reactions"].clone();
    assert_eq!(reactions[0]["emoji"], "👍", "in the order first used");
    assert_eq!(reactions[0]["count"], 1);
    assert_eq!(reactions[0]["user_ids"], json!([party.member.id]));
    assert_eq!(reactions[1]["emoji"], ":tada:");
    assert_eq!(reactions[1]["count"], 20);
    assert_eq!(
        reactions[1]["user_ids"].as_array().unwrap().len(),
        10,
        "up to 10 named"
    );

    // Taking back: once, then nothing more to take.
    let removed = unreact(&stack, member, room, message, "👍").await;
    let removed_at = removed.expect(200)["position"].as_u64().unwrap();
    let again = unreact(&stack, member, room, message, "👍").await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["position"].as_u64(),
        Some(removed_at),
        "nothing new"
    );
    let shown = stack
        .get_at(
            &format!("/rooms/{room}/messages/{message}"),
            owner,
            removed_at,
        )
        .await;
    let reactions = shown.expect(200)["reactions"].clone();
    assert_eq!(reactions.as_array().unwrap().len(), 1);
    assert_eq!(reactions[0]["emoji"], ":tada:");

    // Refusals: a bad emoji, an outsider, an unknown message.
    for bad in ["a", "👍👍", ":Nope:", "::", "thumbs up"] {
        let refused = react(&stack, member, room, message, bad).await;
        assert_eq!(refused.status, 422, "{bad:?}: {:?}", refused.body);
    }
    let long = "👍".repeat(40);
    let refused = react(&stack, member, room, message, &long).await;
    assert_eq!(refused.status, 422);
    for raw in ["%FF", "%F0%9F", "%00"] {
        let path = format!("/rooms/{room}/messages/{message}/reactions/{raw}");
        let refused = stack
            .api
            .request(Method::PUT, &path, Some(member), Vec::new(), &[])
            .await;
        assert!(
            matches!(refused.status.as_u16(), 400 | 422),
            "{raw}: {:?}",
            refused
        );
        assert!(refused.body["error"]["code"].is_string(), "{raw}");
    }
    let outsider = stack.api.register("outsider").await;
    let refused = react(&stack, &outsider.token, room, message, "👍").await;
    assert!(matches!(refused.status.as_u16(), 403 | 404), "{refused:?}");
    let missing = react(&stack, member, room, Uuid::new_v4(), "👍").await;
    assert_eq!(missing.status, 404);

    // A deleted message shows no reactions and takes no new ones.
    let path = format!("/rooms/{room}/messages/{message}");
    let deleted_at = stack.api.delete(&path, Some(owner)).await.expect(200)["position"]
        .as_u64()
        .unwrap();
    assert_eq!(react(&stack, member, room, message, "👍").await.status, 409);
    let shown = stack.get_at(&path, owner, deleted_at).await;
    assert_eq!(shown.expect(200)["reactions"], json!([]));

    // The room's state at any point folds past reactions, and its history streams them.
    let state = stack
        .get(&format!("/rooms/{room}/state?at={removed_at}"), Some(owner))
        .await;
    assert_eq!(state.expect(200)["members"].as_array().unwrap().len(), 22);
    let (status, lines) = stack
        .get_lines(&format!("/rooms/{room}/events"), owner)
        .await;
    assert_eq!(status, 200);
    let types = |t: &str| lines.iter().filter(|l| l["type"] == t).count();
    assert_eq!(
        (
            types("message.reaction_added"),
            types("message.reaction_removed")
        ),
        (21, 1)
    );

    stack.assert_rebuild_gives_the_same().await;
}

/// Reactions decided on the messages as the log has them: raced against the message's
/// deletion, none lands after it, and the read models show none.
#[tokio::test]
async fn reactions_raced_against_a_deletion_never_land_after_it() {
    let stack = Stack::spawn().await;
    let party = stack.api.party("racedel").await;
    let (room, owner) = (party.room, &party.owner.token);
    let mut fans = Vec::new();
    for i in 0..12 {
        let user = stack.api.register(&format!("racer{i}")).await;
        stack.api.join(&user.token, room).await;
        fans.push(user);
    }
    let (message, _) = stack
        .api
        .send_with(owner, room, json!({ "content": "going away" }))
        .await;
    let path = format!("/rooms/{room}/messages/{message}");
    let reactions = futures::future::join_all(
        fans.iter()
            .map(|u| react(&stack, &u.token, room, message, "🔥")),
    );
    let (reactions, deleted) = tokio::join!(reactions, stack.api.delete(&path, Some(owner)));
    let deleted_at = deleted.expect(200)["position"].as_u64().unwrap();
    for r in &reactions {
        assert!(matches!(r.status.as_u16(), 200 | 409), "{r:?}");
    }
    let (status, lines) = stack
        .get_lines(&format!("/rooms/{room}/events"), owner)
        .await;
    assert_eq!(status, 200);
    let added: Vec<u64> = lines
        .iter()
        .filter(|l| l["type"] == "message.reaction_added")
        .map(|l| l["position"].as_u64().unwrap())
        .collect();
    assert!(
        added.iter().all(|p| *p < deleted_at),
        "a reaction after the deletion: {added:?} vs {deleted_at}"
    );
    let accepted = reactions.iter().filter(|r| r.status == 200).count();
    assert_eq!(accepted, added.len(), "each 200 made its own event");
    let shown = stack.get_at(&path, owner, deleted_at).await;
    assert_eq!(shown.expect(200)["reactions"], json!([]));
}
