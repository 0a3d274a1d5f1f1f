//! `POST /match` under races: callers pair up two by two across two instances, never three in
//! a room and never a user with themself; at most one is left waiting.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::helpers::{TestApp, race};

async fn match_at_once(n: usize, label: &str) {
    let (a, b) = TestApp::two().await;
    let mut users = Vec::new();
    for i in 0..n {
        users.push(a.api.register(&format!("{label}{i}")).await);
    }
    let answers = race(&[&a, &b], users.len(), |app, i| {
        app.post("/match", Some(&users[i].token), json!({}))
    })
    .await;
    let mut rooms: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in answers.iter().enumerate() {
        let body = r.expect(200);
        assert_eq!(body["room"]["kind"], "pair");
        rooms
            .entry(body["room"]["id"].as_str().unwrap().to_string())
            .or_default()
            .push(i);
    }
    // Each room's membership in the log: at most two, distinct.
    let log = a.stream_messages().await;
    let mut members: HashMap<String, Vec<Value>> = HashMap::new();
    for (_, subject, _, e) in &log {
        let Some(room) = subject.split('.').nth(3) else {
            continue;
        };
        match e["type"].as_str() {
            Some("room.created") if e["data"]["kind"] == "pair" => members
                .entry(room.into())
                .or_default()
                .push(e["data"]["owner_id"].clone()),
            Some("room.member_joined") => members
                .entry(room.into())
                .or_default()
                .push(e["data"]["user_id"].clone()),
            _ => {}
        }
    }
    let waiting = members.values().filter(|m| m.len() == 1).count();
    assert!(
        members.values().all(|m| m.len() <= 2),
        "three in a room: {members:?}"
    );
    assert!(
        members.values().all(|m| m.len() < 2 || m[0] != m[1]),
        "a user with themself"
    );
    assert_eq!(waiting, n % 2, "at most one left waiting: {members:?}");
    assert_eq!(
        members.values().map(Vec::len).sum::<usize>(),
        n,
        "everyone in exactly one room"
    );
    // Each caller's answer is their room in the log, `matched` telling whether it held two
    // when answered: the one who joined is always told so; the one who waited is told so only
    // if the partner came before their answer (else they learn of it on their socket).
    for (room, callers) in &rooms {
        let in_log = &members[room];
        let told: Vec<bool> = callers
            .iter()
            .map(|i| answers[*i].body["matched"].as_bool().unwrap())
            .collect();
        for i in callers {
            assert!(in_log.contains(&json!(users[*i].id)));
            let body = &answers[*i].body;
            assert_eq!(body["matched"] == true, body["room"]["member_count"] == 2);
        }
        let expected = if in_log.len() == 2 { 1 } else { 0 };
        assert_eq!(
            told.iter().filter(|m| **m).count(),
            expected,
            "{room}: {told:?}"
        );
    }
}

#[tokio::test]
async fn an_even_number_of_racing_callers_all_pair_up() {
    match_at_once(20, "even").await;
}

#[tokio::test]
async fn an_odd_number_of_racing_callers_leave_one_waiting() {
    match_at_once(21, "odd").await;
}

#[tokio::test]
async fn a_waiting_user_gets_the_same_room_and_a_leave_ends_the_pair() {
    let app = TestApp::spawn().await;
    let alice = app.api.register("wait_alice").await;
    let bob = app.api.register("wait_bob").await;
    let first = app.post("/match", Some(&alice.token), json!({})).await;
    let room = first.expect(200)["room"]["id"].clone();
    assert_eq!(first.body["matched"], false);
    let again = app.post("/match", Some(&alice.token), json!({})).await;
    assert_eq!(
        (&again.expect(200)["room"]["id"], &again.body["matched"]),
        (&room, &json!(false))
    );
    let matched = app.post("/match", Some(&bob.token), json!({})).await;
    assert_eq!(
        (&matched.expect(200)["room"]["id"], &matched.body["matched"]),
        (&room, &json!(true))
    );
    let room = room.as_str().unwrap();
    app.post(&format!("/rooms/{room}/leave"), Some(&bob.token), json!({}))
        .await
        .expect(200);
    app.post(
        &format!("/rooms/{room}/messages"),
        Some(&alice.token),
        json!({ "content": "hi?" }),
    )
    .await
    .expect_error(404, "not_found");
    // The next caller opens a new pair.
    let next = app.post("/match", Some(&alice.token), json!({})).await;
    assert_ne!(next.expect(200)["room"]["id"].as_str(), Some(room));
    assert_eq!(next.body["matched"], false);
}
