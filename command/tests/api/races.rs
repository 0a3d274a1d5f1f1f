//! Concurrent commands, spread over two command instances on one stream so that they really
//! race through JetStream's expected-sequence check and not only through one process's lock.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::User;
use crate::helpers::{TestApp, race, test_config};

async fn register_many(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    join_all((0..n).map(|i| app.register_owned(format!("{prefix}{i}"))))
        .await
        .into_iter()
        .map(|user| user.token)
        .collect()
}

impl TestApp {
    async fn register_owned(&self, name: String) -> User {
        self.register(&name).await
    }
}

#[tokio::test]
async fn twenty_concurrent_joins_fill_two_free_seats_exactly() {
    let (a, b) = TestApp::two().await;
    let User { token: owner, .. } = a.register("owner").await;
    let room = a
        .create_room(&owner, json!({ "name": "tiny", "max_members": 3 }))
        .await;
    let users = register_many(&a, "joiner", 20).await;
    // Both instances fold the room first, so both decide on the same (soon stale) state.
    for app in [&a, &b] {
        app.post(&format!("/rooms/{room}/join"), Some(&owner), json!({}))
            .await
            .expect(200);
    }
    let path = format!("/rooms/{room}/join");
    let results = race(&[&a, &b], users.len(), |app, i| {
        app.post(&path, Some(&users[i]), json!({}))
    })
    .await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    let full = results
        .iter()
        .filter(|r| r.status == 409 && r.body["error"]["code"] == "room_full")
        .count();
    assert_eq!(
        (ok, full),
        (2, 18),
        "{:?}",
        results.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let joins = a
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "room.member_joined")
        .count();
    assert_eq!(joins, 2, "exactly the successful joins are in the log");
}

#[tokio::test]
async fn twelve_concurrent_registrations_of_one_name_make_one_user() {
    let (a, b) = TestApp::two().await;
    let names = [
        "mallory", "Mallory", "MALLORY", "mAllory", "maLlory", "malLory", "mallOry", "malloRy",
        "mallorY", "MAllory", "MALlory", "MALLory",
    ];
    let results = race(&[&a, &b], names.len(), |app, i| {
        app.post(
            "/auth/register",
            None,
            json!({ "username": names[i], "password": format!("password{i}") }),
        )
    })
    .await;
    let created: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    let conflicts = results
        .iter()
        .filter(|r| r.status == 409 && r.body["error"]["code"] == "conflict")
        .count();
    assert_eq!((created.len(), conflicts), (1, 11));
    assert_eq!(created[0].body["user"]["username"], "mallory");
    let registrations = a
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["type"] == "user.registered")
        .count();
    assert_eq!(registrations, 1);
}

#[tokio::test]
async fn concurrent_accepts_of_a_single_use_link_admit_one() {
    let (a, b) = TestApp::two().await;
    let User { token: owner, .. } = a.register("owner").await;
    let room = a
        .create_room(&owner, json!({ "name": "vip", "visibility": "private" }))
        .await;
    let invite = a
        .post(
            &format!("/rooms/{room}/invites"),
            Some(&owner),
            json!({ "max_uses": 1 }),
        )
        .await;
    let token = invite.expect(201)["invite"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let users = register_many(&a, "guest", 10).await;
    for app in [&a, &b] {
        app.post(&format!("/rooms/{room}/join"), Some(&owner), json!({}))
            .await
            .expect(200);
    }
    let path = format!("/invites/{token}/accept");
    let results = race(&[&a, &b], users.len(), |app, i| {
        app.post(&path, Some(&users[i]), json!({}))
    })
    .await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    let gone = results
        .iter()
        .filter(|r| r.status == 410 && r.body["error"]["code"] == "gone")
        .count();
    assert_eq!((ok, gone), (1, 9));
}

#[tokio::test]
async fn membership_changes_made_through_one_instance_hold_at_once_on_another() {
    let (a, b) = TestApp::two().await;
    let User { token: owner, .. } = a.register("owner").await;
    let User { token: bob, .. } = a.register("bob").await;
    let room = a.create_room(&owner, json!({ "name": "r" })).await;
    // B folds the room before bob joins, so its cache is behind once he does.
    b.post(
        &format!("/rooms/{room}/messages"),
        Some(&owner),
        json!({ "content": "first" }),
    )
    .await
    .expect(201);
    for _ in 0..5 {
        a.post(&format!("/rooms/{room}/join"), Some(&bob), json!({}))
            .await
            .expect(200);
        b.post(
            &format!("/rooms/{room}/messages"),
            Some(&bob),
            json!({ "content": "in" }),
        )
        .await
        .expect(201);
        a.post(&format!("/rooms/{room}/leave"), Some(&bob), json!({}))
            .await
            .expect(200);
        b.post(
            &format!("/rooms/{room}/messages"),
            Some(&bob),
            json!({ "content": "out" }),
        )
        .await
        .expect_error(403, "forbidden");
    }
}

#[tokio::test]
async fn an_instance_with_a_stale_view_refuses_rather_than_accepts_a_removed_members_send() {
    let a = TestApp::spawn().await;
    let mut config = test_config();
    config.freshness_wait = std::time::Duration::from_millis(300);
    let b = TestApp::on(&a.isolation, config).await;
    let User { token: owner, .. } = a.register("owner").await;
    let User { token: bob, .. } = a.register("bob").await;
    let room = a.create_room(&owner, json!({ "name": "r" })).await;
    a.post(&format!("/rooms/{room}/join"), Some(&bob), json!({}))
        .await
        .expect(200);
    b.post(
        &format!("/rooms/{room}/messages"),
        Some(&bob),
        json!({ "content": "in" }),
    )
    .await
    .expect(201);
    // B stops hearing the log; bob then leaves through A.
    b.stall_live_view();
    a.post(&format!("/rooms/{room}/leave"), Some(&bob), json!({}))
        .await
        .expect(200);
    let r = b
        .post(
            &format!("/rooms/{room}/messages"),
            Some(&bob),
            json!({ "content": "ghost" }),
        )
        .await;
    // B cannot bring its view up to date (a catch-up waits for the live view): it answers
    // unavailable, never a send. (Where the append expects the membership B had seen, the
    // server refused it first.)
    r.expect_error(503, "unavailable");
    let sent = a
        .stream_messages()
        .await
        .into_iter()
        .filter(|(_, _, _, e)| e["data"]["content"] == "ghost")
        .count();
    assert_eq!(sent, 0, "nothing from a member who had left");
}

#[tokio::test]
async fn sends_on_a_current_server_look_up_no_head_and_still_see_membership_at_once() {
    let (a, b) = TestApp::two().await;
    let User { token: owner, .. } = a.register("owner").await;
    let User { token: bob, .. } = a.register("bob").await;
    let room = a.create_room(&owner, json!({ "name": "r" })).await;
    a.post(&format!("/rooms/{room}/join"), Some(&bob), json!({}))
        .await
        .expect(200);
    b.post(
        &format!("/rooms/{room}/messages"),
        Some(&bob),
        json!({ "content": "warm" }),
    )
    .await
    .expect(201);
    let lookups = b.store.head_lookups();
    for i in 0..20 {
        b.post(
            &format!("/rooms/{room}/messages"),
            Some(&bob),
            json!({ "content": format!("m{i}") }),
        )
        .await
        .expect(201);
    }
    let looked_up = b.store.head_lookups() - lookups;
    if b.store.guards_on_other_subjects() {
        assert_eq!(looked_up, 0, "a send is one JetStream operation");
    } else {
        assert!(
            looked_up > 0,
            "on older servers a lone send looks the head up"
        );
    }
    // Removed through A, bob's next send through B is refused: the append expected the
    // membership B had seen.
    a.post(&format!("/rooms/{room}/leave"), Some(&bob), json!({}))
        .await
        .expect(200);
    b.post(
        &format!("/rooms/{room}/messages"),
        Some(&bob),
        json!({ "content": "after leaving" }),
    )
    .await
    .expect_error(403, "forbidden");
}
