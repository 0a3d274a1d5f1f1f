//! Ephemeral traffic (core NATS, never stored): typing to the other members, presence
//! following connections, within one gateway, across two, and to queries without one.

use std::time::Duration;

use axum::Router;
use axum::http::Method;
use natter::Roles;
use natter_testkit::http::call;
use serde_json::json;

use super::*;
use crate::helpers::{Stack, User, Ws};

#[tokio::test]
async fn typing_reaches_the_other_members_and_presence_follows_connections() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User {
        token: owner,
        id: owner_id,
        ..
    } = stack.register("owner").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    let joined = stack
        .post(&format!("/rooms/{room}/join"), &bob, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let mut a = Ws::connect(addr, &owner).await;
    a.subscribe(room, None).await;
    a.until(|f| f["type"] == "subscribed").await;

    let mut b = Ws::connect(addr, &bob).await;
    let online = a.until(|f| f["type"] == "presence").await;
    assert_eq!(
        online.last().unwrap(),
        &json!({ "type": "presence", "user_id": bob_id, "status": "online" })
    );
    assert_eq!(
        member_row(&stack, room, &owner, joined, bob_id).await["online"],
        true
    );

    b.subscribe(room, None).await;
    b.until(|f| f["type"] == "subscribed").await;
    b.send(json!({ "op": "typing", "room_id": room, "typing": true }))
        .await;
    let typing = a.until(|f| f["type"] == "typing").await;
    assert_eq!(
        typing.last().unwrap(),
        &json!({ "type": "typing", "room_id": room, "user_id": bob_id, "typing": true })
    );
    a.send(json!({ "op": "signal", "room_id": room, "signal": "camera", "on": true }))
        .await;
    let signal = b.until(|f| f["type"] == "signal").await;
    assert_eq!(
        signal.last().unwrap(),
        &json!({ "type": "signal", "room_id": room, "user_id": owner_id, "signal": "camera", "on": true })
    );
    assert_eq!(
        b.try_next(Duration::from_millis(300)).await,
        None,
        "nobody hears their own typing or signals"
    );

    drop(b);
    let offline = a.until(|f| f["type"] == "presence").await;
    assert_eq!(offline.last().unwrap()["status"], "offline");
}

#[tokio::test]
async fn presence_crosses_gateway_instances() {
    let mut stack = Stack::spawn().await;
    let a = stack.serve_query().await;
    let b = stack.second_gateway().await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    let joined = stack
        .post(&format!("/rooms/{room}/join"), &bob, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let mut watcher = Ws::connect(a, &owner).await;
    watcher.subscribe(room, None).await;
    watcher.until(|f| f["type"] == "subscribed").await;

    let bobs_tab = Ws::connect(b, &bob).await;
    let online = watcher.until(|f| f["type"] == "presence").await;
    assert_eq!(
        online.last().unwrap(),
        &json!({ "type": "presence", "user_id": bob_id, "status": "online" })
    );
    // The members list served by gateway A's instance knows it too.
    assert_eq!(
        member_row(&stack, room, &owner, joined, bob_id).await["online"],
        true
    );

    drop(bobs_tab);
    let offline = watcher.until(|f| f["type"] == "presence").await;
    assert_eq!(offline.last().unwrap()["status"], "offline");
}

/// A node that runs the queries without a gateway follows the gateways' presence
/// announcements on its own: its members list says who is online on another gateway.
#[tokio::test]
async fn queries_without_a_gateway_of_their_own_know_who_is_online() {
    let mut stack = Stack::spawn().await;
    let gateway = stack.second_gateway().await;
    let reads = stack
        .another_node(Roles {
            query: true,
            ..Roles::default()
        })
        .await;
    let User { token: owner, .. } = stack.register("owner").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let room = stack.create_room(&owner, json!({ "name": "r" })).await;
    let joined = stack
        .post(&format!("/rooms/{room}/join"), &bob, json!({}))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();
    let online = |reads: Router, owner: String| async move {
        let path = format!("/rooms/{room}/members?min_position={joined}");
        let members = call(&reads, Method::GET, &path, Some(&owner), Vec::new(), &[]).await;
        members.expect(200)["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == bob_id.to_string())
            .unwrap()["online"]
            .clone()
    };
    assert_eq!(online(reads.clone(), owner.clone()).await, false);
    let bobs_tab = Ws::connect(gateway, &bob).await;
    let mut seen = json!(false);
    for _ in 0..100 {
        seen = online(reads.clone(), owner.clone()).await;
        if seen == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen, true,
        "bob's socket on another gateway makes him online"
    );
    drop(bobs_tab);
    for _ in 0..100 {
        seen = online(reads.clone(), owner.clone()).await;
        if seen == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, false, "his last socket closing takes him offline");
    // The node serves no websocket.
    let upgrade = call(&reads, Method::GET, "/ws", Some(&owner), Vec::new(), &[]).await;
    assert_eq!(upgrade.status.as_u16(), 404);
}
