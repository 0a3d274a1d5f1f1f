//! The projector under crashes, with a standby, through a rebuild, and on bad events; how it
//! reads and writes its batches is in `batches.rs`. The scenarios share their setup, here.

mod batches;
mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use natter_events::catalogue::{Event, MessageKind, MessageSent};
use natter_events::{Envelope, Expect, RoomPart};
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::User;
use crate::helpers::{Stack, assert_same_models};
use workload::{recounted_unread_mismatches, setup, traffic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_projector_at_random_points_neither_loses_nor_doubles_anything() {
    let mut stack = Stack::without_projector(Duration::from_secs(5)).await;
    stack.projector_config.batch_size = 7;
    let (users, rooms) = setup(&stack).await;
    let mut s = stack;

    // Write and crash the projector in turns: each round some traffic while a projector runs,
    // then a kill at a random moment, mid-batch or between batches.
    let mut rng = rand::rng();
    for round in 0..15 {
        let (i, _) = s.start_projector();
        let traffic_done = traffic(&s, &users, &rooms, 20 + round);
        let kill_after = Duration::from_millis(rng.random_range(0..60));
        tokio::join!(traffic_done, tokio::time::sleep(kill_after));
        s.kill_projector(i);
    }
    s.start_projector();
    let head = s.caught_up().await;
    let incremental = s.dump().await;
    assert_eq!(
        recounted_unread_mismatches(&s).await,
        0,
        "unread counts are exact"
    );
    let (messages,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let sent = s
        .store
        .read_subject(&s.store.subjects().all_rooms(), 0)
        .await
        .map(|events| {
            events
                .iter()
                .filter(|e| matches!(e.envelope.event, Event::MessageSent(_)))
                .count()
        })
        .unwrap_or_default();
    assert_eq!(messages as usize, sent, "every message once");

    s.rebuild().await.unwrap();
    let rebuilt = s.dump().await;
    assert_same_models(
        &incremental,
        &rebuilt,
        "the crashed-and-resumed model equals a fresh rebuild",
    );
    assert_eq!(s.caught_up().await, head);
}

#[tokio::test]
async fn only_one_of_two_projectors_applies_and_the_standby_takes_over() {
    let mut stack = Stack::without_projector(Duration::from_secs(5)).await;
    let (a, status_a) = stack.start_projector();
    let (b, status_b) = stack.start_projector();
    let User { token, .. } = stack.register("owner").await;
    let room = stack.create_room(&token, json!({ "name": "r" })).await;
    for i in 0..20 {
        stack.send(&token, room, &format!("m{i}")).await;
    }
    let head = stack.caught_up().await;
    let active = [
        status_a.active.load(Ordering::SeqCst),
        status_b.active.load(Ordering::SeqCst),
    ];
    assert_eq!(
        active.iter().filter(|a| **a).count(),
        1,
        "exactly one is active: {active:?}"
    );
    let (leader, standby, standby_status) = if active[0] {
        (a, b, status_b.clone())
    } else {
        (b, a, status_a.clone())
    };
    assert_eq!(
        standby_status.position.load(Ordering::SeqCst),
        0,
        "the standby applied nothing"
    );
    let _ = standby;

    stack.kill_projector(leader);
    for i in 0..20 {
        stack.send(&token, room, &format!("after {i}")).await;
    }
    let later = stack.caught_up().await;
    assert!(later > head);
    assert!(
        standby_status.active.load(Ordering::SeqCst),
        "the standby took over"
    );
    let page = stack
        .get_at(&format!("/rooms/{room}/messages?limit=100"), &token, later)
        .await;
    assert_eq!(
        page.expect(200)["messages"].as_array().unwrap().len(),
        40,
        "nothing lost, nothing doubled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_swaps_in_an_equal_model_while_queries_keep_answering() {
    let stack = Stack::spawn().await;
    let (users, rooms) = setup(&stack).await;
    traffic(&stack, &users, &rooms, 150).await;
    stack.caught_up().await;
    let before = stack.dump().await;

    let querying = Arc::new(AtomicBool::new(true));
    let reader = {
        let query = stack.query.clone();
        let token = users[1].token.clone();
        let querying = querying.clone();
        tokio::spawn(async move {
            let mut answered = 0;
            while querying.load(Ordering::SeqCst) {
                let r = natter_testkit::http::call(
                    &query,
                    axum::http::Method::GET,
                    "/me/rooms",
                    Some(&token),
                    Vec::new(),
                    &[],
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.body);
                answered += 1;
            }
            answered
        })
    };
    // New events keep arriving during the rebuild; the live projector keeps applying them.
    let (rebuilt, _) = tokio::join!(stack.rebuild(), traffic(&stack, &users, &rooms, 40));
    rebuilt.unwrap();
    querying.store(false, Ordering::SeqCst);
    assert!(reader.await.unwrap() > 0);
    stack.caught_up().await;
    let after = stack.dump().await;
    assert_ne!(before, after, "the traffic during the rebuild is in");
    assert_eq!(recounted_unread_mismatches(&stack).await, 0);
    // And a second rebuild (nothing new) changes nothing.
    stack.rebuild().await.unwrap();
    assert_same_models(
        &after,
        &stack.dump().await,
        "a second rebuild changes nothing",
    );
}

#[tokio::test]
async fn an_undecodable_event_halts_the_projection_there_and_unknown_types_are_skipped() {
    let mut stack = Stack::without_projector(Duration::from_secs(5)).await;
    let User {
        token, id: owner, ..
    } = stack.register("owner").await;
    let room = stack.create_room(&token, json!({ "name": "r" })).await;
    let good = stack.send(&token, room, "before").await;
    let subject = stack.store.subjects().room(room, RoomPart::Msg);
    let js = stack.store.jetstream().clone();
    // A type this build does not know: skipped with a log line.
    let unknown = json!({ "id": Uuid::now_v7(), "type": "room.pinned", "version": 1, "occurred_at": Utc::now(),
                          "actor_id": owner, "room_id": room, "data": { "message_id": Uuid::new_v4() } });
    js.publish(subject.clone(), unknown.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    let after_unknown = stack.send(&token, room, "after unknown").await;
    // A known type whose data does not match: the projection must stop, not skip it.
    let corrupt = json!({ "id": Uuid::now_v7(), "type": "message.sent", "version": 1, "occurred_at": Utc::now(),
                          "actor_id": owner, "room_id": room, "data": { "content": 42 } });
    let bad = js
        .publish(subject.clone(), corrupt.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let envelope = Envelope::new(
        Uuid::now_v7(),
        Utc::now(),
        Some(owner),
        Some(room),
        Event::MessageSent(MessageSent {
            message_id: Uuid::new_v4(),
            kind: MessageKind::Text,
            content: "after the bad one".into(),
            attachment: None,
            ..Default::default()
        }),
    );
    stack
        .store
        .append(&subject, &envelope, &envelope.id.to_string(), Expect::Any)
        .await
        .unwrap();

    let (_, status) = stack.start_projector();
    let mut halted = None;
    for _ in 0..100 {
        halted = status.halted.lock().unwrap().clone();
        if halted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let halted = halted.expect("the projection halts");
    assert_eq!(halted.position, bad);
    assert!(halted.error.contains("message.sent"), "{}", halted.error);
    assert_eq!(
        status.position.load(Ordering::SeqCst),
        bad - 1,
        "everything before it is applied"
    );
    let page = stack
        .get_at(&format!("/rooms/{room}/messages"), &token, bad - 1)
        .await;
    let contents: Vec<_> = page.expect(200)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(contents, vec![json!("before"), json!("after unknown")]);
    assert!(after_unknown > good);
}

/// Appends a `message.sent` by `sender` straight to the room's stream, as an older build or
/// another writer could have, bypassing the edge's rules.
async fn append_raw_message(
    stack: &Stack,
    room: Uuid,
    sender: Uuid,
    id: Uuid,
    content: &str,
) -> u64 {
    let envelope = Envelope::new(
        Uuid::now_v7(),
        Utc::now(),
        Some(sender),
        Some(room),
        Event::MessageSent(MessageSent {
            message_id: id,
            kind: MessageKind::Text,
            content: content.into(),
            attachment: None,
            ..Default::default()
        }),
    );
    let subject = stack.store.subjects().room(room, RoomPart::Msg);
    stack
        .store
        .append(&subject, &envelope, &envelope.id.to_string(), Expect::Any)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_nul_already_in_the_log_is_projected_as_a_replacement_character_and_history_keeps_it() {
    let stack = Stack::spawn().await;
    let User {
        token, id: owner, ..
    } = stack.register("owner").await;
    let room = stack.create_room(&token, json!({ "name": "r" })).await;
    let nul = append_raw_message(&stack, room, owner, Uuid::new_v4(), "a\u{0}b").await;
    let after = stack.send(&token, room, "after").await;

    // Reads are not stopped: the projector went past the event, and later writes are read.
    let page = stack
        .get_at(&format!("/rooms/{room}/messages"), &token, after)
        .await;
    let contents: Vec<_> = page.expect(200)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["position"].as_u64().unwrap(), m["content"].clone()))
        .collect();
    assert_eq!(
        contents,
        vec![(nul, json!("a\u{fffd}b")), (after, json!("after"))]
    );
    // The log, which the history endpoint reads, keeps the original.
    let (status, lines) = stack
        .get_lines(&format!("/rooms/{room}/events"), &token)
        .await;
    assert_eq!(status, 200);
    let stored = lines
        .iter()
        .find(|l| l["position"] == nul)
        .expect("the event is in the history");
    assert_eq!(stored["data"]["content"], "a\u{0}b");
}

#[tokio::test]
async fn an_event_postgres_keeps_refusing_halts_the_projection_visibly_at_that_position() {
    let mut stack = Stack::without_projector(Duration::from_secs(5)).await;
    let (_, status) = stack.start_projector();
    let User {
        token, id: owner, ..
    } = stack.register("owner").await;
    let room = stack.create_room(&token, json!({ "name": "r" })).await;
    let first_id = Uuid::new_v4();
    let first = append_raw_message(&stack, room, owner, first_id, "first").await;
    stack
        .get_at(&format!("/rooms/{room}/messages"), &token, first)
        .await
        .expect(200);
    // A second message with the same id: the read model's unique id refuses it, every time.
    let ok_before = stack.send(&token, room, "fine").await;
    let dup = append_raw_message(&stack, room, owner, first_id, "duplicate id").await;
    stack.send(&token, room, "after").await;

    let mut halted = None;
    for _ in 0..200 {
        halted = status.halted.lock().unwrap().clone();
        if halted.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let halted = halted.expect("the projection shows itself halted");
    assert_eq!(
        halted.position, dup,
        "the halt names the refused event, not its batch"
    );
    assert!(halted.error.contains("duplicate key"), "{}", halted.error);
    assert_eq!(
        status.position.load(Ordering::SeqCst),
        dup - 1,
        "everything before the refused event is applied"
    );
    stack
        .get_at(&format!("/rooms/{room}/messages"), &token, ok_before)
        .await
        .expect(200);
}
