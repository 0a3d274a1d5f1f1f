//! Who may read what, and how long a query waits for its position.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::helpers::Stack;
use crate::helpers::User;

#[tokio::test]
async fn every_query_endpoint_enforces_membership_and_privacy() {
    let stack = Stack::spawn().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User { token: eve, .. } = stack.register("eve").await;
    let open = stack.create_room(&owner, json!({ "name": "open" })).await;
    let closed = stack
        .create_room(&owner, json!({ "name": "closed", "visibility": "private" }))
        .await;
    let m_open = stack
        .post(
            &format!("/rooms/{open}/messages"),
            &owner,
            json!({ "content": "hi" }),
        )
        .await;
    let m_open = m_open.expect(201)["message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m_closed = stack
        .post(
            &format!("/rooms/{closed}/messages"),
            &owner,
            json!({ "content": "secret" }),
        )
        .await;
    let m_closed = m_closed.expect(201)["message"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let head = stack.caught_up().await;

    // A public room: visible, but its members and messages are for members.
    stack
        .get_at(&format!("/rooms/{open}"), &eve, head)
        .await
        .expect(200);
    for path in [
        format!("/rooms/{open}/members"),
        format!("/rooms/{open}/messages"),
        format!("/rooms/{open}/messages/{m_open}"),
    ] {
        stack
            .get_at(&path, &eve, head)
            .await
            .expect_error(403, "forbidden");
    }
    // A private room: as if it did not exist.
    for path in [
        format!("/rooms/{closed}"),
        format!("/rooms/{closed}/members"),
        format!("/rooms/{closed}/messages"),
        format!("/rooms/{closed}/messages/{m_closed}"),
    ] {
        stack
            .get_at(&path, &eve, head)
            .await
            .expect_error(404, "not_found");
    }
    let listed = stack.get_at("/rooms?q=closed", &eve, head).await;
    assert_eq!(listed.expect(200)["rooms"].as_array().unwrap().len(), 0);
    // A message of another room is not found through this one.
    stack
        .get_at(&format!("/rooms/{open}/messages/{m_closed}"), &owner, head)
        .await
        .expect_error(404, "not_found");
    // Unknown things, malformed ids, no token.
    stack
        .get_at(&format!("/rooms/{}", Uuid::new_v4()), &owner, head)
        .await
        .expect_error(404, "not_found");
    stack
        .get_at(&format!("/users/{}", Uuid::new_v4()), &owner, head)
        .await
        .expect_error(404, "not_found");
    stack
        .get_at("/rooms/not-a-uuid", &owner, head)
        .await
        .expect_error(400, "bad_request");
    for path in [
        "/rooms",
        "/me",
        "/me/rooms",
        &format!("/rooms/{open}"),
        &format!("/rooms/{open}/messages"),
        &format!("/users/{}", Uuid::new_v4()),
    ] {
        let r = stack.get(path, None).await;
        r.expect_error(401, "unauthorized");
        assert!(
            r.position_header().is_some(),
            "every response carries X-Natter-Position"
        );
    }
}

#[tokio::test]
async fn a_position_not_applied_in_time_is_504_stale_and_one_beyond_the_log_422_at_once() {
    let stack = Stack::without_projector(Duration::from_millis(800)).await;
    let User { token, .. } = stack.register("eager").await;
    let head = stack.head().await;
    let started = Instant::now();
    let r = stack
        .get(
            &format!("/me?min_position={}", head + 1_000_000),
            Some(&token),
        )
        .await;
    r.expect_error(422, "validation_failed");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no wait: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let r = stack
        .get(&format!("/me?min_position={head}"), Some(&token))
        .await;
    r.expect_error(504, "stale");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(r.position_header(), Some(0));
}

#[tokio::test]
async fn a_query_waiting_for_its_write_answers_as_soon_as_it_is_applied() {
    let mut stack = Stack::without_projector(Duration::from_secs(5)).await;
    let User { token, .. } = stack.register("patient").await;
    let room = stack.create_room(&token, json!({ "name": "later" })).await;
    let p = stack.send(&token, room, "hello").await;
    let waiting = {
        let query = stack.query.clone();
        let token = token.clone();
        tokio::spawn(async move {
            natter_testkit::http::call(
                &query,
                axum::http::Method::GET,
                &format!("/rooms/{room}/messages?min_position={p}"),
                Some(&token),
                Vec::new(),
                &[],
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "nothing applied yet");
    stack.start_projector();
    let r = waiting.await.unwrap();
    assert_eq!(r.expect(200)["messages"][0]["content"], "hello");
    assert!(r.position_header().unwrap() >= p);
}
