//! Chatting over the socket: the `send` and `read` ops, answered with `ack` or an `error` frame
//! that names the op's `client_id`, with REST's rules and codes; a resend after a reconnect
//! appends nothing new; a gateway without a write side of its own reaches one over NATS; and
//! subscribing to a room twice at once gives two whole streams, one after the other.

use std::net::SocketAddr;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Stack, Ws, room_positions};

/// The frame answering `client_id` (other frames skipped).
async fn answer(ws: &mut Ws, client_id: &str) -> Value {
    ws.until(|f| (f["type"] == "ack" || f["type"] == "error") && f["client_id"] == client_id)
        .await
        .pop()
        .unwrap()
}

async fn send_over(ws: &mut Ws, room: Uuid, client_id: &str, content: &str) -> Value {
    ws.send(json!({ "op": "send", "room_id": room, "client_id": client_id, "content": content }))
        .await;
    answer(ws, client_id).await
}

/// A message sent over a socket of `addr`: acknowledged with its position and the message,
/// streamed to a subscriber with that position, stored once even when resent after a
/// reconnect.
async fn send_and_resend(stack: &Stack, addr: SocketAddr, label: &str) {
    let party = stack.api.party(label).await;
    let (room, owner, member) = (party.room, &party.owner.token, &party.member.token);
    let mut watcher = Ws::connect(addr, owner).await;
    watcher.subscribe(room, None).await;
    watcher.until(|f| f["type"] == "subscribed").await;

    let mut ws = Ws::connect(addr, member).await;
    let ack = send_over(&mut ws, room, "c-1", "over the socket").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let position = ack["position"].as_u64().unwrap();
    assert_eq!(ack["message"]["content"], "over the socket");
    assert_eq!(ack["message"]["position"].as_u64(), Some(position));
    assert_eq!(ack["message"]["sender_id"], party.member.id.to_string());
    let frame = watcher.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(frame["position"].as_u64(), Some(position));
    assert_eq!(frame["event"]["data"]["content"], "over the socket");

    // The connection drops; the client resends on a new one with the same client_id.
    drop(ws);
    let mut again = Ws::connect(addr, member).await;
    let ack = send_over(&mut again, room, "c-1", "over the socket").await;
    assert_eq!(
        (ack["type"].as_str(), ack["position"].as_u64()),
        (Some("ack"), Some(position)),
        "the resend is acknowledged as the original"
    );
    let messages = room_positions(&stack.store, room).await;
    assert_eq!(
        messages.iter().filter(|p| **p >= position).count(),
        1,
        "stored once"
    );

    // A read marker over the socket, with read-your-writes on the read side.
    again
        .send(json!({ "op": "read", "room_id": room, "up_to_position": position, "client_id": "r-1" }))
        .await;
    let ack = answer(&mut again, "r-1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let at = ack["position"].as_u64().unwrap();
    let mine = stack.get_at("/me/rooms", member, at).await;
    assert_eq!(
        mine.expect(200)["rooms"][0]["last_read_position"].as_u64(),
        Some(position)
    );
}

#[tokio::test]
async fn send_and_read_over_the_socket_in_one_process() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    send_and_resend(&stack, addr, "local").await;
}

#[tokio::test]
async fn a_gateway_without_a_write_side_sends_through_the_command_instances_over_nats() {
    let mut stack = Stack::spawn().await;
    let addr = stack.second_gateway().await;
    send_and_resend(&stack, addr, "remote").await;
}

#[tokio::test]
async fn refused_ops_get_the_rest_codes_and_name_their_client_id() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("refused").await;
    let stranger = stack.api.register("refused_stranger").await;
    let private = stack
        .create_room(
            &party.owner.token,
            json!({ "name": "closed", "visibility": "private" }),
        )
        .await;
    let mut ws = Ws::connect(addr, &stranger.token).await;
    let cases = [
        (
            json!({ "room_id": party.room, "content": "hi" }),
            "forbidden",
        ),
        (json!({ "room_id": private, "content": "hi" }), "not_found"),
        (
            json!({ "room_id": Uuid::new_v4(), "content": "hi" }),
            "not_found",
        ),
    ];
    for (i, (fields, code)) in cases.into_iter().enumerate() {
        let client_id = format!("s-{i}");
        let mut op = fields;
        op["op"] = json!("send");
        op["client_id"] = json!(client_id);
        ws.send(op).await;
        let frame = answer(&mut ws, &client_id).await;
        assert_eq!(
            (frame["type"].as_str(), frame["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}"
        );
    }
    let mut member = Ws::connect(addr, &party.member.token).await;
    for (i, (fields, code)) in [
        (json!({ "content": "" }), "validation_failed"),
        (json!({ "content": "x".repeat(4001) }), "validation_failed"),
        (json!({ "content": "nul\u{0}" }), "validation_failed"),
        (
            json!({ "content": "hi", "kind": "system" }),
            "validation_failed",
        ),
        (json!({ "content": 7 }), "bad_request"),
    ]
    .into_iter()
    .enumerate()
    {
        let client_id = format!("m-{i}");
        let mut op = fields;
        op["op"] = json!("send");
        op["room_id"] = json!(party.room);
        op["client_id"] = json!(client_id);
        member.send(op).await;
        let frame = answer(&mut member, &client_id).await;
        assert_eq!(frame["code"], code, "{frame}");
    }
    // A malformed op is an error frame too, and the connection stays usable.
    member
        .send(json!({ "op": "send", "room_id": party.room, "content": "no client id" }))
        .await;
    assert_eq!(member.next().await["code"], "bad_request");
    member
        .send(json!({ "op": "send", "room_id": party.room, "client_id": "x".repeat(129), "content": "hi" }))
        .await;
    assert_eq!(member.next().await["code"], "validation_failed");
    member
        .send(json!({ "op": "read", "room_id": party.room, "up_to_position": 0, "client_id": "r" }))
        .await;
    assert_eq!(answer(&mut member, "r").await["code"], "validation_failed");
    let ok = send_over(&mut member, party.room, "fine", "still here").await;
    assert_eq!(ok["type"], "ack");
    // Nothing refused reached the log: the party's two events and the one message.
    assert_eq!(room_positions(&stack.store, party.room).await.len(), 3);
}

/// Gives the party's room more history (6 MB) than a connection's queue (1 MiB) and socket
/// buffers hold, so a replay of it waits on its client (and two would overlap if they ran at
/// once); the room's positions.
async fn long_history(stack: &Stack, party: &natter_testkit::api::Party) -> Vec<u64> {
    let content = "z".repeat(4_000);
    for _ in 0..1_500 {
        stack
            .api
            .send(&party.owner.token, party.room, &content)
            .await;
    }
    room_positions(&stack.store, party.room).await
}

/// A second `subscribe` to a room restarts its stream; sent before the first one is live, it
/// waits its turn: the client gets the whole first stream and `subscribed`, then the whole
/// second one, never two replays interleaved.
#[tokio::test]
async fn subscribing_again_before_the_first_is_live_gives_two_whole_streams_in_turn() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("twice").await;
    let logged = long_history(&stack, &party).await;
    let mut ws = Ws::connect_with_a_small_window(addr, &party.member.token).await;
    // This gateway has not seen the room: both replays come from JetStream.
    ws.subscribe(party.room, Some(0)).await;
    ws.subscribe(party.room, Some(0)).await;
    for stream in ["first", "second"] {
        let frames = ws.until(|f| f["type"] == "subscribed").await;
        let positions: Vec<u64> = frames
            .iter()
            .filter(|f| f["type"] == "event")
            .map(|f| f["position"].as_u64().unwrap())
            .collect();
        assert_eq!(positions, logged, "the {stream} stream");
    }
}

/// An `unsubscribe` sent while the room's replay is still under way ends that subscription:
/// the client gets `unsubscribed` (not a `not_subscribed` error), and after it nothing more of
/// the room; what came before it is a gap-free start of the room's stream.
#[tokio::test]
async fn unsubscribing_during_the_replay_ends_the_subscription() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("fickle").await;
    let logged = long_history(&stack, &party).await;
    let mut ws = Ws::connect_with_a_small_window(addr, &party.member.token).await;
    ws.subscribe(party.room, Some(0)).await;
    ws.send(json!({ "op": "unsubscribe", "room_id": party.room }))
        .await;
    let frames = ws.until(|f| f["type"] == "unsubscribed").await;
    assert!(
        frames.iter().all(|f| f["type"] != "error"),
        "{:?}",
        frames.last()
    );
    assert_eq!(frames.last().unwrap()["reason"], "requested");
    let streamed: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["position"].as_u64().unwrap())
        .collect();
    assert_eq!(streamed, logged[..streamed.len()]);

    // The room goes on; this socket hears no more of it.
    let mut watcher = Ws::connect(addr, &party.owner.token).await;
    watcher.subscribe(party.room, None).await;
    watcher.until(|f| f["type"] == "subscribed").await;
    let at = stack
        .api
        .send(&party.owner.token, party.room, "after")
        .await;
    watcher
        .until(|f| f["type"] == "event" && f["position"].as_u64() == Some(at))
        .await;
    while let Some(f) = ws.try_next(std::time::Duration::from_millis(300)).await {
        assert_ne!(f["type"], "event", "{f:?}");
    }
}

/// The contents of the room's `message.sent` events, in log order (read from the log itself).
async fn stored_contents(stack: &Stack, token: &str, room: Uuid) -> Vec<String> {
    let (status, lines) = stack
        .get_lines(&format!("/rooms/{room}/events?limit=1000"), token)
        .await;
    assert_eq!(status, 200);
    lines
        .iter()
        .filter(|e| e["type"] == "message.sent")
        .map(|e| e["data"]["content"].as_str().unwrap().to_string())
        .collect()
}

/// 50 sends written back to back on one socket, none waiting for its ack: each is acked, the
/// acks' positions rise in the order the sends were written, and the log holds them in that
/// order.
async fn a_burst_keeps_its_order(stack: &Stack, addr: SocketAddr, label: &str) {
    let party = stack.api.party(label).await;
    let mut ws = Ws::connect(addr, &party.member.token).await;
    let sent: Vec<String> = (0..50).map(|i| format!("{label} {i}")).collect();
    for (i, content) in sent.iter().enumerate() {
        ws.send(json!({ "op": "send", "room_id": party.room, "client_id": format!("b-{i}"), "content": content }))
            .await;
    }
    let mut positions = Vec::new();
    for i in 0..50 {
        let ack = answer(&mut ws, &format!("b-{i}")).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        positions.push(ack["position"].as_u64().unwrap());
    }
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions in send order: {positions:?}"
    );
    assert_eq!(
        stored_contents(stack, &party.member.token, party.room).await,
        sent
    );
}

// Several threads, as natter runs: on one, the ops happen to finish in the order they began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connections_sends_to_a_room_are_stored_in_the_order_it_sent_them() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    a_burst_keeps_its_order(&stack, addr, "burst").await;
}

// Several threads, as natter runs: on one, the ops happen to finish in the order they began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_without_a_write_side_keeps_a_connections_order_too() {
    let mut stack = Stack::spawn().await;
    let addr = stack.second_gateway().await;
    a_burst_keeps_its_order(&stack, addr, "remote-burst").await;
}

/// Sends to two rooms on one socket: each room's are stored in the order they were sent, and
/// one room's refusals do not hold up the other's.
// Several threads, as natter runs: on one, the ops happen to finish in the order they began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_send_holds_the_ones_behind_it_so_none_overtakes_it() {
    let stack = Stack::with_send_rate("5/10s").await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("held").await;
    let other = stack
        .create_room(&party.member.token, json!({ "name": "other" }))
        .await;
    let mut ws = Ws::connect(addr, &party.member.token).await;
    for i in 0..12 {
        ws.send(json!({ "op": "send", "room_id": party.room, "client_id": format!("h-{i}"), "content": format!("held {i}") }))
            .await;
    }
    ws.send(json!({ "op": "send", "room_id": other, "client_id": "o-0", "content": "other room" }))
        .await;
    // Every answer, whatever order they come in (the other room's may come first).
    let mut by_id = std::collections::HashMap::new();
    while by_id.len() < 13 {
        let f = ws.next().await;
        if f["type"] == "ack" || f["type"] == "error" {
            by_id.insert(f["client_id"].as_str().unwrap().to_string(), f);
        }
    }
    let answers: Vec<Value> = (0..12).map(|i| by_id[&format!("h-{i}")].clone()).collect();
    let kinds: Vec<(&str, &str)> = answers
        .iter()
        .map(|a| {
            (
                a["type"].as_str().unwrap(),
                a["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let mut expected = vec![("ack", ""); 5];
    expected.extend([("error", "rate_limited"); 7]);
    assert_eq!(kinds, expected, "{answers:?}");
    for refused in &answers[5..] {
        assert!(refused["retry_after"].as_u64().unwrap() >= 1, "{refused}");
    }
    assert_eq!(by_id["o-0"]["type"], "ack", "{:?}", by_id["o-0"]);
    let first: Vec<String> = (0..5).map(|i| format!("held {i}")).collect();
    assert_eq!(
        stored_contents(&stack, &party.member.token, party.room).await,
        first
    );
}
