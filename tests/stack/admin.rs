//! Operators on the read side: stats, connections over every gateway (and cutting a user
//! off), broadcasts as members see them, API tokens in the audit trail.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::User;
use crate::helpers::{Stack, Ws};

pub(crate) async fn admin_token(stack: &Stack, root: &str, role: &str) -> (String, String) {
    let issued = stack
        .post(
            "/admin/tokens",
            root,
            json!({ "name": format!("{role} client"), "role": role }),
        )
        .await
        .expect(201)
        .clone();
    (
        issued["id"].as_str().unwrap().to_string(),
        issued["token"].as_str().unwrap().to_string(),
    )
}

/// Polls `GET path` until `done` holds for its body (at most 5 s).
async fn eventually(
    stack: &Stack,
    path: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let body = stack.get(path, Some(token)).await.expect(200).clone();
        if done(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < until, "{path}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_connections_count_every_gateway_and_a_disconnect_closes_on_all() {
    let mut stack = Stack::spawn().await;
    let first = stack.serve_query().await;
    let second = stack.second_gateway().await;
    let User { token: root, .. } = stack.register("root").await;
    let User {
        token: alice,
        id: alice_id,
        ..
    } = stack.register("alice").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let room = stack.create_room(&alice, json!({ "name": "lobby" })).await;
    stack.api.join(&bob, room).await;
    for i in 0..3 {
        stack.send(&alice, room, &format!("m{i}")).await;
    }
    stack.send(&bob, room, "hi").await;
    let deleted_room = stack
        .create_room(&bob, json!({ "name": "short-lived" }))
        .await;
    stack
        .api
        .delete(&format!("/rooms/{deleted_room}"), Some(&bob))
        .await
        .expect(200);

    let mut alice_ws = Ws::connect(first, &alice).await;
    let mut bob_here = Ws::connect(first, &bob).await;
    let mut bob_there = Ws::connect(second, &bob).await;
    for ws in [&mut alice_ws, &mut bob_here, &mut bob_there] {
        ws.send(json!({ "op": "ping" })).await;
        assert_eq!(ws.next().await["type"], "pong");
    }

    let head = stack.head().await;
    let stats = stack
        .get(&format!("/admin/stats?min_position={head}"), Some(&root))
        .await
        .expect(200)
        .clone();
    assert_eq!(stats["users"], 3, "{stats}");
    assert_eq!(
        stats["rooms"], 1,
        "the deleted room is not counted: {stats}"
    );
    assert_eq!(stats["messages"], 4, "{stats}");
    assert_eq!(stats["connections"], 3, "both gateways: {stats}");
    assert_eq!(stats["gateways"], 2, "{stats}");
    assert_eq!(stats["stream"]["last_position"], head, "{stats}");
    assert_eq!(
        stats["stream"]["messages"], head,
        "nothing was removed from the log"
    );
    assert!(stats["stream"]["bytes"].as_u64().unwrap() > 0);
    let projected = stats["projection"]["position"].as_u64().unwrap();
    assert!(projected >= head, "{stats}");
    assert_eq!(stats["projection"]["lag"], 0, "{stats}");

    let listed = stack
        .get("/admin/connections", Some(&root))
        .await
        .expect(200)
        .clone();
    assert_eq!(listed["gateways"], 2, "{listed}");
    assert_eq!(
        listed["connections"],
        json!([
            { "user_id": bob_id, "username": "bob", "connections": 2 },
            { "user_id": alice_id, "username": "alice", "connections": 1 },
        ]),
        "summed per user over gateways, most first"
    );

    // Members and services may not look; an admin API token may.
    for token in [alice.clone(), admin_token(&stack, &root, "service").await.1] {
        for path in ["/admin/stats", "/admin/connections", "/admin/tokens"] {
            stack
                .get(path, Some(&token))
                .await
                .expect_error(403, "forbidden");
        }
    }
    stack
        .get("/admin/stats", None)
        .await
        .expect_error(401, "unauthorized");
    let (_, ops) = admin_token(&stack, &root, "admin").await;
    stack.get("/admin/stats", Some(&ops)).await.expect(200);

    // Cutting bob off closes his sockets on both gateways with 4003, and no one else's.
    let cut = stack
        .api
        .delete(&format!("/admin/connections/{bob_id}"), Some(&ops))
        .await
        .expect(200)
        .clone();
    assert_eq!(cut["closed"], 2, "{cut}");
    assert_eq!(cut["gateways"], 2, "{cut}");
    assert_eq!(bob_here.close_code().await, Some(4003));
    assert_eq!(bob_there.close_code().await, Some(4003));
    alice_ws.send(json!({ "op": "ping" })).await;
    assert_eq!(alice_ws.next().await["type"], "pong");
    eventually(&stack, "/admin/stats", &root, |s| s["connections"] == 1).await;
    let again = stack
        .api
        .delete(&format!("/admin/connections/{bob_id}"), Some(&root))
        .await
        .expect(200)
        .clone();
    assert_eq!(again["closed"], 0, "{again}");
    stack
        .api
        .delete(&format!("/admin/connections/{bob_id}"), Some(&alice))
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_subscribers_history_and_read_models_like_any_message() {
    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let User {
        token: root,
        id: root_id,
        ..
    } = stack.register("root").await;
    let User { token: alice, .. } = stack.register("alice").await;
    let User {
        token: bob,
        id: bob_id,
        ..
    } = stack.register("bob").await;
    let room = stack
        .create_room(&alice, json!({ "name": "news", "visibility": "private" }))
        .await;
    let invite = stack
        .post(
            &format!("/rooms/{room}/invites"),
            &alice,
            json!({ "user_id": bob_id }),
        )
        .await
        .expect(201)
        .clone();
    let token = invite["invite"]["token"].as_str().unwrap();
    stack
        .post(&format!("/invites/{token}/accept"), &bob, json!({}))
        .await
        .expect(200);
    let mut ws = Ws::connect(addr, &bob).await;
    ws.subscribe(room, None).await;
    assert_eq!(ws.next().await["type"], "subscribed");

    let sent = stack
        .post(
            &format!("/admin/rooms/{room}/broadcast"),
            &root,
            json!({ "content": "we restart at 22:00" }),
        )
        .await
        .expect(201)
        .clone();
    let position = sent["position"].as_u64().unwrap();
    let frame = ws.until(|f| f["type"] == "event").await.pop().unwrap();
    assert_eq!(frame["position"], position);
    assert_eq!(frame["event"]["type"], "message.sent");
    assert_eq!(frame["event"]["data"]["kind"], "system");
    assert_eq!(frame["event"]["actor_id"], root_id.to_string(), "auditable");

    let page = stack
        .get_at(&format!("/rooms/{room}/messages"), &alice, position)
        .await
        .expect(200)
        .clone();
    let last = page["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last, sent["message"],
        "the read model shows what the command answered"
    );
    assert!(last["sender_id"].is_null());
    let mine = stack
        .get_at("/me/rooms", &bob, position)
        .await
        .expect(200)
        .clone();
    let row = &mine["rooms"][0];
    assert_eq!(row["unread_count"], 1, "unread for every member: {mine}");
    assert_eq!(row["last_message"]["kind"], "system");
    let (_, lines) = stack
        .get_lines(&format!("/rooms/{room}/events"), &alice)
        .await;
    assert!(
        lines
            .iter()
            .any(|l| l["position"] == position && l["data"]["kind"] == "system"),
        "in the room's history"
    );
}

#[tokio::test]
async fn api_tokens_are_audited_without_their_secret_and_listed_for_admins() {
    let stack = Stack::spawn().await;
    let User { token: root, .. } = stack.register("root").await;
    let (id, service) = admin_token(&stack, &root, "service").await;
    let (_, ops) = admin_token(&stack, &root, "admin").await;
    let revoked = stack
        .api
        .delete(&format!("/admin/tokens/{id}"), Some(&root))
        .await
        .expect(200)["position"]
        .as_u64()
        .unwrap();

    let (status, lines) = stack.get_lines("/admin/events", &ops).await;
    assert_eq!(status, 200, "an admin API token reads the audit trail");
    let text = serde_json::to_string(&lines).unwrap();
    assert!(
        !text.contains(&service) && !text.contains(&ops),
        "no token in clear"
    );
    let issued: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "token.issued")
        .collect();
    assert_eq!(issued.len(), 2);
    for line in issued {
        assert_eq!(line["data"]["token_hash"], "[redacted]", "{line}");
        assert!(line["data"]["name"].is_string());
    }
    let revocation = lines
        .iter()
        .find(|l| l["type"] == "token.revoked")
        .expect("the revocation is in the log");
    assert_eq!(revocation["position"], revoked);
    assert_eq!(revocation["data"]["token_id"], id);

    let listed = stack
        .get("/admin/tokens", Some(&root))
        .await
        .expect(200)
        .clone();
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{listed}");
    let service_row = tokens.iter().find(|t| t["id"] == id).unwrap();
    assert_eq!(service_row["revoked"], true);
    assert_eq!(service_row["role"], "service");
    assert!(
        !listed.to_string().contains("natter_"),
        "never the token itself"
    );

    // A websocket is a user's: a valid API token is refused, a revoked one unauthorized.
    stack
        .get("/ws", Some(&ops))
        .await
        .expect_error(403, "forbidden");
    stack
        .get("/ws", Some(&service))
        .await
        .expect_error(401, "unauthorized");
}
