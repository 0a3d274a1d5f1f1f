//! Walking a room's history both ways visits every message once, in order.

use serde_json::json;

use crate::helpers::Stack;
use crate::helpers::User;

#[tokio::test]
async fn walking_backwards_and_forwards_visits_every_message_once_in_order() {
    let stack = Stack::spawn().await;
    let User { token, .. } = stack.register("walker").await;
    let room = stack.create_room(&token, json!({ "name": "long" })).await;
    let other = stack.create_room(&token, json!({ "name": "other" })).await;
    let mut sent = Vec::new();
    for i in 0..237 {
        sent.push(stack.send(&token, room, &format!("m{i}")).await);
        if i % 10 == 0 {
            stack.send(&token, other, "noise").await;
        }
    }
    let head = stack.caught_up().await;

    let mut backwards = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            None => format!("/rooms/{room}/messages?limit=50"),
            Some(b) => format!("/rooms/{room}/messages?limit=50&before={b}"),
        };
        let page = stack.get_at(&path, &token, head).await;
        let body = page.expect(200);
        let positions: Vec<u64> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["position"].as_u64().unwrap())
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "each page ascends"
        );
        backwards.splice(0..0, positions.iter().copied());
        before = positions.first().copied();
        if body["has_more"] == false {
            break;
        }
    }
    assert_eq!(backwards, sent);

    let mut forwards: Vec<u64> = Vec::new();
    let mut after = 0;
    loop {
        let page = stack
            .get_at(
                &format!("/rooms/{room}/messages?limit=50&after={after}"),
                &token,
                head,
            )
            .await;
        let body = page.expect(200);
        let positions: Vec<u64> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["position"].as_u64().unwrap())
            .collect();
        forwards.extend(&positions);
        if body["has_more"] == false {
            break;
        }
        after = *positions.last().unwrap();
    }
    assert_eq!(forwards, sent);

    // Both bounds: strictly between.
    let between = stack
        .get_at(
            &format!(
                "/rooms/{room}/messages?after={}&before={}",
                sent[10], sent[15]
            ),
            &token,
            head,
        )
        .await;
    let positions: Vec<u64> = between.expect(200)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, sent[11..15].to_vec());
    assert_eq!(between.body["has_more"], false);
}

#[tokio::test]
async fn out_of_range_and_malformed_page_parameters_are_refused() {
    let stack = Stack::spawn().await;
    let User { token, .. } = stack.register("walker").await;
    let room = stack.create_room(&token, json!({ "name": "r" })).await;
    let head = stack.caught_up().await;
    let t = Some(token.as_str());
    for bad in ["limit=0", "limit=101", "limit=-5", "before=-1", "after=-3"] {
        stack
            .get(
                &format!("/rooms/{room}/messages?{bad}&min_position={head}"),
                t,
            )
            .await
            .expect_error(422, "validation_failed");
    }
    for bad in ["limit=abc", "before=x", "after=1.5"] {
        stack
            .get(&format!("/rooms/{room}/messages?{bad}"), t)
            .await
            .expect_error(400, "bad_request");
    }
    stack
        .get("/rooms?limit=1000", t)
        .await
        .expect_error(422, "validation_failed");
    stack
        .get("/rooms?scope=everything", t)
        .await
        .expect_error(400, "bad_request");
    stack
        .get("/rooms?cursor=garbage", t)
        .await
        .expect_error(400, "bad_request");
    stack
        .get("/me?min_position=soon", t)
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn room_listings_page_with_a_cursor() {
    let stack = Stack::spawn().await;
    let User { token, .. } = stack.register("lister").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            stack
                .create_room(&token, json!({ "name": format!("room {i}") }))
                .await,
        );
    }
    let head = stack.caught_up().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/rooms?limit=3".to_string(),
            Some(c) => format!("/rooms?limit=3&cursor={c}"),
        };
        let page = stack.get_at(&path, &token, head).await;
        let body = page.expect(200).clone();
        seen.extend(
            body["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "newest first, each once");
}

#[tokio::test]
async fn a_room_search_with_a_control_character_is_refused_not_a_server_error() {
    let stack = Stack::spawn().await;
    let User { token, .. } = stack.register("alice").await;
    for q in ["%00", "a%00b", "%0A", "%1B"] {
        stack
            .get(&format!("/rooms?q={q}"), Some(&token))
            .await
            .expect_error(422, "validation_failed");
    }
    stack.get("/rooms?q=ok", Some(&token)).await.expect(200);
}
