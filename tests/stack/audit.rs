//! History and audit from the log: NDJSON equal to what a plain consumer reads, state at any
//! point, authorization, redaction.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use natter_events::catalogue::{Event, MemberRemoved};
use natter_events::{Envelope, Expect, RoomPart, Start};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::Stack;
use crate::helpers::User;

/// What a plain ordered consumer reads from the stream for `filter`: (position, id, type).
async fn plain_read(stack: &Stack, filter: &str) -> Vec<(u64, String, String)> {
    let (available, messages) = stack
        .store
        .follow_counted(filter, Start::After(0))
        .await
        .unwrap();
    let messages: Vec<_> = messages.take(available as usize).collect().await;
    messages
        .into_iter()
        .map(|m| {
            let m = m.unwrap();
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            (
                m.position,
                v["id"].as_str().unwrap().to_string(),
                v["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn summary(lines: &[Value]) -> Vec<(u64, String, String)> {
    lines
        .iter()
        .map(|l| {
            (
                l["position"].as_u64().unwrap(),
                l["id"].as_str().unwrap().to_string(),
                l["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn room_and_admin_ndjson_equal_what_a_plain_consumer_reads() {
    let stack = Stack::spawn().await;
    let User { token: root, .. } = stack.register("root").await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    let other = stack.create_room(&owner, json!({ "name": "other" })).await;
    stack
        .post(
            &format!("/rooms/{room}/invites"),
            &owner,
            json!({ "user_id": bob_id }),
        )
        .await
        .expect(201);
    stack
        .post(&format!("/rooms/{room}/join"), &bob, json!({}))
        .await
        .expect(200);
    for i in 0..30 {
        stack
            .send(
                &owner,
                if i % 3 == 0 { other } else { room },
                &format!("m{i}"),
            )
            .await;
    }
    stack
        .post(&format!("/rooms/{room}/leave"), &bob, json!({}))
        .await
        .expect(200);

    let room_filter = stack.store.subjects().room_events(room);
    let (status, lines) = stack
        .get_lines(&format!("/rooms/{room}/events"), &owner)
        .await;
    assert_eq!(status, 200);
    assert_eq!(summary(&lines), plain_read(&stack, &room_filter).await);
    assert!(lines.iter().all(|l| l["room_id"] == room.to_string()));

    let (_, from) = stack
        .get_lines(
            &format!("/rooms/{room}/events?from={}&limit=5", lines[3]["position"]),
            &owner,
        )
        .await;
    assert_eq!(summary(&from), summary(&lines[3..8]));

    let (status, all) = stack.get_lines("/admin/events", &root).await;
    assert_eq!(status, 200);
    assert_eq!(
        summary(&all),
        plain_read(&stack, &stack.store.subjects().all_events()).await
    );
    let text = all.iter().map(Value::to_string).collect::<String>();
    assert!(!text.contains("$argon2"), "password hashes never appear");
    assert_eq!(all[0]["data"]["password_hash"], "[redacted]");

    let (_, sent) = stack
        .get_lines(
            &format!("/admin/events?type=message.sent&room={room}"),
            &root,
        )
        .await;
    assert_eq!(sent.len(), 20);
    assert!(
        sent.iter()
            .all(|l| l["type"] == "message.sent" && l["room_id"] == room.to_string())
    );
    let (from, to) = (
        all[4]["position"].as_u64().unwrap(),
        all[9]["position"].as_u64().unwrap(),
    );
    let (_, window) = stack
        .get_lines(&format!("/admin/events?from={from}&to={to}"), &root)
        .await;
    assert_eq!(summary(&window), summary(&all[4..10]));
    let (_, none) = stack
        .get_lines(&format!("/admin/events?from={}", to + 10_000), &root)
        .await;
    assert!(none.is_empty(), "an empty range ends at once");
}

#[tokio::test]
async fn state_at_a_position_or_a_time_is_the_room_as_it_was() {
    let stack = Stack::spawn().await;
    let User {
        token: owner,
        id: owner_id,
        ..
    } = stack.register("owner").await;
    let User {
        token: ann,
        id: ann_id,
        ..
    } = stack.register("ann").await;
    let User {
        token: ben,
        id: ben_id,
        ..
    } = stack.register("ben").await;
    let room = stack
        .create_room(&owner, json!({ "name": "timeline" }))
        .await;
    let p_created = stack.head().await;
    let ann_joined = stack
        .post(&format!("/rooms/{room}/join"), &ann, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    stack
        .post(
            &format!("/rooms/{room}/invites"),
            &owner,
            json!({ "user_id": ben_id }),
        )
        .await
        .expect(201);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let time_two_members = Utc::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let ben_joined = stack
        .post(&format!("/rooms/{room}/join"), &ben, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let ann_left = stack
        .post(&format!("/rooms/{room}/leave"), &ann, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let removal = Envelope::new(
        Uuid::now_v7(),
        Utc::now(),
        Some(owner_id),
        Some(room),
        Event::MemberRemoved(MemberRemoved { user_id: ben_id }),
    );
    let subject = stack.store.subjects().room(room, RoomPart::Meta);
    let ben_removed = stack
        .store
        .append(&subject, &removal, &removal.id.to_string(), Expect::Any)
        .await
        .unwrap();

    let members_at = |at: String| {
        let path = format!("/rooms/{room}/state?at={at}");
        let token = owner.clone();
        let stack = &stack;
        async move {
            let r = stack.get(&path, Some(&token)).await;
            let body = r.expect(200).clone();
            let mut ids: Vec<String> = body["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["user_id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            (ids, body)
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v.into_iter().map(|u| u.to_string()).collect::<Vec<_>>()
    };
    let (m, body) = members_at(p_created.to_string()).await;
    assert_eq!(m, sorted(vec![owner_id]));
    assert_eq!(body["room"]["name"], "timeline");
    assert_eq!(body["position"], p_created);
    assert_eq!(
        members_at(ann_joined.to_string()).await.0,
        sorted(vec![owner_id, ann_id])
    );
    assert_eq!(
        members_at(ben_joined.to_string()).await.0,
        sorted(vec![owner_id, ann_id, ben_id])
    );
    assert_eq!(
        members_at(ann_left.to_string()).await.0,
        sorted(vec![owner_id, ben_id])
    );
    assert_eq!(
        members_at(ben_removed.to_string()).await.0,
        sorted(vec![owner_id])
    );
    assert_eq!(
        members_at(time_two_members.to_rfc3339()).await.0,
        sorted(vec![owner_id, ann_id])
    );
    assert_eq!(
        members_at(Utc::now().to_rfc3339()).await.0,
        sorted(vec![owner_id])
    );
    let before = stack
        .get(&format!("/rooms/{room}/state?at=1"), Some(&owner))
        .await;
    before.expect_error(404, "not_found");
    stack
        .get(&format!("/rooms/{room}/state?at=yesterday"), Some(&owner))
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn history_is_for_members_and_admins_only() {
    let stack = Stack::spawn().await;
    let User { token: root, .. } = stack.register("root").await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User { token: eve, .. } = stack.register("eve").await;
    let open = stack.create_room(&owner, json!({ "name": "open" })).await;
    let closed = stack
        .create_room(&owner, json!({ "name": "closed", "visibility": "private" }))
        .await;
    assert_eq!(
        stack
            .get_lines(&format!("/rooms/{open}/events"), &eve)
            .await
            .0,
        403
    );
    assert_eq!(
        stack
            .get_lines(&format!("/rooms/{closed}/events"), &eve)
            .await
            .0,
        404
    );
    stack
        .get(&format!("/rooms/{open}/state"), Some(&eve))
        .await
        .expect_error(403, "forbidden");
    stack
        .get(&format!("/rooms/{closed}/state"), Some(&eve))
        .await
        .expect_error(404, "not_found");
    let (status, body) = stack.get_lines("/admin/events", &owner).await;
    assert_eq!(
        (status, body[0]["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(
        stack
            .get_lines(&format!("/rooms/{closed}/events"), &root)
            .await
            .0,
        200,
        "admins read every room"
    );
    stack
        .get(&format!("/rooms/{closed}/state"), Some(&root))
        .await
        .expect(200);
    stack
        .get("/admin/events", None)
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(stack.get_lines("/admin/events?limit=0", &root).await.0, 422);
    assert_eq!(
        stack.get_lines("/admin/events?from=soon", &root).await.0,
        400
    );
}

#[tokio::test]
async fn history_answers_carry_the_logs_head_as_x_natter_position() {
    let stack = Stack::spawn().await;
    let User { token, .. } = stack.register("root").await;
    let room = stack.create_room(&token, json!({ "name": "r" })).await;
    stack.send(&token, room, "one").await;
    // Another room's event moves the head past this room's last event.
    let other = stack.create_room(&token, json!({ "name": "other" })).await;
    let head = stack.send(&token, other, "elsewhere").await;
    for path in [
        format!("/rooms/{room}/events"),
        format!("/rooms/{room}/state"),
        "/admin/events".to_string(),
    ] {
        let (status, headers, _) =
            natter_testkit::http::get_text(&stack.query, &path, Some(&token)).await;
        assert_eq!(status, 200, "{path}");
        let position: u64 = headers["x-natter-position"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(position, head, "{path}");
    }
}
