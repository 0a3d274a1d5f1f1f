//! Replies, threads, reactions and mentions end to end: over REST and the websocket, each new
//! event streamed in the room's chain (`prev_position`), the read models showing threads,
//! reactions and mentions, raced reactions counted exactly, and a rebuild giving the same.

use axum::http::Method;
use natter_testkit::http::Resp;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Stack, Ws, assert_same_models, room_positions};

/// `emoji` as one path segment.
fn segment(emoji: &str) -> String {
    emoji
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn reaction_path(room: Uuid, message: &str, emoji: &str) -> String {
    format!(
        "/rooms/{room}/messages/{message}/reactions/{}",
        segment(emoji)
    )
}

async fn react(stack: &Stack, token: &str, room: Uuid, message: &str, emoji: &str) -> Resp {
    let path = reaction_path(room, message, emoji);
    stack
        .api
        .request(Method::PUT, &path, Some(token), Vec::new(), &[])
        .await
}

async fn unreact(stack: &Stack, token: &str, room: Uuid, message: &str, emoji: &str) -> Resp {
    let path = reaction_path(room, message, emoji);
    stack.api.delete(&path, Some(token)).await
}

/// Sends `body` to `room`; the message and its position.
async fn send(stack: &Stack, token: &str, room: Uuid, body: Value) -> (String, u64) {
    let sent = stack
        .post(&format!("/rooms/{room}/messages"), token, body)
        .await;
    let body = sent.expect(201);
    (
        body["message"]["id"].as_str().unwrap().to_string(),
        body["position"].as_u64().unwrap(),
    )
}

fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

async fn rebuild_gives_the_same(stack: &Stack) {
    stack.caught_up().await;
    let before = stack.dump().await;
    natter_projector::rebuild::rebuild(
        &stack.pool,
        &stack.store,
        &stack.projector_config,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_same_models(&before, &stack.dump().await, "after a rebuild");
}

#[tokio::test]
async fn a_thread_lives_beside_the_main_timeline_with_its_summary_on_the_root() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("threads").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let (root, root_at) = send(&stack, owner, room, json!({ "content": "lunch?" })).await;
    let mut ws = Ws::connect(addr, owner).await;
    ws.subscribe(room, Some(root_at)).await;
    ws.until(|f| f["type"] == "subscribed").await;

    let (first, first_at) = send(
        &stack,
        member,
        room,
        json!({ "content": "yes", "thread_id": root }),
    )
    .await;
    let (quote, quote_at) = send(
        &stack,
        owner,
        room,
        json!({ "content": "where?", "thread_id": root, "reply_to": first }),
    )
    .await;
    let (_, last_at) = send(
        &stack,
        member,
        room,
        json!({ "content": "the usual", "thread_id": root }),
    )
    .await;
    let (main, main_at) = send(
        &stack,
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
    assert_eq!(frames[1]["event"]["data"]["thread_id"], root.as_str());
    assert_eq!(frames[1]["event"]["data"]["reply_to"], first.as_str());

    // The main timeline leaves the thread out; the thread pages on its own.
    let timeline = stack
        .get_at(&format!("/rooms/{room}/messages"), owner, main_at)
        .await;
    let timeline = timeline.expect(200);
    assert_eq!(ids(timeline), vec![root.clone(), main.clone()]);
    let shown_root = &timeline["messages"][0];
    assert_eq!(shown_root["thread"]["reply_count"], 3);
    assert_eq!(
        shown_root["thread"]["participant_ids"],
        json!([party.member.id, party.owner.id]),
        "who replied, in the order of their first reply"
    );
    assert!(shown_root["thread"]["last_reply_at"].is_string());
    assert_eq!(timeline["messages"][1]["reply_to"], root.as_str());
    assert_eq!(timeline["messages"][1]["thread"], Value::Null);
    let thread = stack
        .get_at(
            &format!("/rooms/{room}/messages?thread_id={root}"),
            owner,
            main_at,
        )
        .await;
    let thread = thread.expect(200);
    assert_eq!(ids(thread)[..2], [first.clone(), quote.clone()]);
    assert_eq!(thread["messages"][1]["reply_to"], first.as_str());
    assert_eq!(thread["messages"][1]["thread_id"], root.as_str());

    // Thread replies count in nobody's unread count; the room's last message stays the main
    // timeline's.
    let rooms = stack.get_at("/me/rooms", owner, main_at).await;
    let rooms = rooms.expect(200);
    assert_eq!(rooms["rooms"][0]["unread_count"], 1, "only `about lunch`");
    assert_eq!(rooms["rooms"][0]["last_message"]["id"], main.as_str());

    // What a reply may not name.
    let other = stack
        .api
        .create_room(owner, json!({ "name": "elsewhere" }))
        .await;
    let (foreign, _) = send(&stack, owner, other, json!({ "content": "x" })).await;
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
    assert_eq!(ack["message"]["thread_id"], root.as_str());
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

    rebuild_gives_the_same(&stack).await;
}

#[tokio::test]
async fn a_thread_of_a_thousand_replies_pages_both_ways() {
    let stack = Stack::spawn().await;
    let (token, _) = stack.register("threader").await;
    let room = stack
        .create_room(&token, json!({ "name": "long thread" }))
        .await;
    let (root, _) = send(&stack, &token, room, json!({ "content": "root" })).await;
    let mut sent = Vec::new();
    for i in 0..1000 {
        let body = json!({ "content": format!("r{i}"), "thread_id": root });
        sent.push(send(&stack, &token, room, body).await.1);
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

#[tokio::test]
async fn reactions_count_once_per_user_and_emoji_even_raced() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("reacts").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let (message, sent_at) = send(&stack, owner, room, json!({ "content": "ship it" })).await;
    let mut ws = Ws::connect(addr, owner).await;
    ws.subscribe(room, Some(sent_at)).await;
    ws.until(|f| f["type"] == "subscribed").await;

    // One user, twenty times at once: one reaction, one event.
    let raced =
        futures::future::join_all((0..20).map(|_| react(&stack, member, room, &message, "👍")))
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
            .map(|u| react(&stack, &u.token, room, &message, ":tada:")),
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
    let removed = unreact(&stack, member, room, &message, "👍").await;
    let removed_at = removed.expect(200)["position"].as_u64().unwrap();
    let again = unreact(&stack, member, room, &message, "👍").await;
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
        let refused = react(&stack, member, room, &message, bad).await;
        assert_eq!(refused.status, 422, "{bad:?}: {:?}", refused.body);
    }
    let long = "👍".repeat(40);
    let refused = react(&stack, member, room, &message, &long).await;
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
    let refused = react(&stack, &outsider.token, room, &message, "👍").await;
    assert!(matches!(refused.status.as_u16(), 403 | 404), "{refused:?}");
    let missing = react(&stack, member, room, &Uuid::new_v4().to_string(), "👍").await;
    assert_eq!(missing.status, 404);

    // A deleted message shows no reactions and takes no new ones.
    let path = format!("/rooms/{room}/messages/{message}");
    let deleted_at = stack.api.delete(&path, Some(owner)).await.expect(200)["position"]
        .as_u64()
        .unwrap();
    assert_eq!(
        react(&stack, member, room, &message, "👍").await.status,
        409
    );
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

    rebuild_gives_the_same(&stack).await;
}

#[tokio::test]
async fn mentions_reach_the_mentioned_and_count_until_read() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("mentions").await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let member_id = party.member.id;
    // The member is connected but subscribed to nothing: a mention reaches them anyway.
    let mut feed = Ws::connect(addr, member).await;

    let (plain, _) = send(&stack, owner, room, json!({ "content": "hello all" })).await;
    let (named, named_at) = send(
        &stack,
        owner,
        room,
        json!({ "content": "over to you", "mentions": [member_id, member_id] }),
    )
    .await;
    let frame = feed.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(frame["feed"], "me");
    assert_eq!(frame["position"].as_u64(), Some(named_at));
    assert_eq!(frame["event"]["data"]["mentions"], json!([member_id]));

    let (root, _) = send(&stack, member, room, json!({ "content": "a thread" })).await;
    let (in_thread, in_thread_at) = send(
        &stack,
        owner,
        room,
        json!({ "content": "see here", "thread_id": root, "mentions": [member_id] }),
    )
    .await;

    let mine = stack.get_at("/me/mentions", member, in_thread_at).await;
    assert_eq!(
        ids(mine.expect(200)),
        vec![in_thread.clone(), named.clone()],
        "newest first, thread replies included"
    );
    let rooms = stack.get_at("/me/rooms", member, in_thread_at).await;
    assert_eq!(rooms.expect(200)["rooms"][0]["unread_mentions"], 2);
    let theirs = stack.get_at("/me/mentions", owner, in_thread_at).await;
    assert_eq!(ids(theirs.expect(200)), Vec::<String>::new());
    let paged = stack
        .get_at("/me/mentions?limit=1", member, in_thread_at)
        .await;
    let paged = paged.expect(200);
    assert_eq!(
        (ids(paged), &paged["has_more"]),
        (vec![in_thread.clone()], &json!(true))
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
    assert_eq!(ids(mine.expect(200)), vec![named.clone()]);
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
    assert_eq!(ids(mine.expect(200)), Vec::<String>::new());
    assert!(!plain.is_empty());

    rebuild_gives_the_same(&stack).await;
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
    let (message, _) = send(&stack, owner, room, json!({ "content": "going away" })).await;
    let path = format!("/rooms/{room}/messages/{message}");
    let reactions = futures::future::join_all(
        fans.iter()
            .map(|u| react(&stack, &u.token, room, &message, "🔥")),
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
