//! What one connection may cost: bad frames get error frames and the socket stays, a client
//! that never reads is closed with 4008, a connection follows at most a hundred rooms.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Stack, User, Ws};

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
