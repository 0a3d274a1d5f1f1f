//! `PATCH /me` as the read side sees it: the new display name in the read models (also when it
//! came with a password change), and the queries refusing tokens the change revoked; and a
//! socket closing when its token expires.

use natter_testkit::http::Resp;
use serde_json::{Value, json};

use crate::helpers::{SECRET, Stack, Ws};

async fn patch_me(stack: &Stack, token: &str, body: Value) -> Resp {
    stack.api.patch("/me", Some(token), body).await
}

#[tokio::test]
async fn a_profile_change_reaches_the_read_models_and_revokes_old_tokens_for_queries() {
    let stack = Stack::spawn().await;
    let party = stack.api.party("profile").await;
    let (owner, member) = (&party.owner.token, &party.member.token);
    let renamed = patch_me(&stack, member, json!({ "display_name": "Just Renamed" })).await;
    let at = renamed.expect(200)["position"].as_u64().unwrap();
    let me = stack.get_at("/me", member, at).await;
    assert_eq!(me.expect(200)["display_name"], "Just Renamed");

    let addr = stack.serve_query().await;
    let mut open = crate::helpers::Ws::connect(addr, member).await;
    let changed = patch_me(
        &stack,
        member,
        json!({ "display_name": "Renamed Twice", "password": "another secret",
                "current_password": "password123" }),
    )
    .await;
    let body = changed.expect(200).clone();
    let at = body["position"].as_u64().unwrap();
    let new = body["token"].as_str().unwrap();
    let members = stack
        .get_at(&format!("/rooms/{}/members", party.room), owner, at)
        .await;
    let names: Vec<Value> = members.expect(200)["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["display_name"].clone())
        .collect();
    assert!(names.contains(&json!("Renamed Twice")), "{names:?}");
    assert_eq!(
        stack.get_at("/me", new, at).await.expect(200)["display_name"],
        "Renamed Twice"
    );
    // The query routes refuse the revoked token too.
    let mut refused = false;
    for _ in 0..100 {
        let r = stack.get("/me", Some(member)).await;
        if r.status == 401 {
            r.expect_error(401, "unauthorized");
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the query side kept taking the revoked token");
    assert_eq!(
        open.close_code().await,
        Some(4001),
        "a socket opened with the revoked token is closed"
    );
}

/// A socket lives as long as the token it was opened with: open and streaming until then,
/// closed with 4001 within a moment after.
#[tokio::test]
async fn a_socket_closes_with_4001_when_its_token_expires() {
    use std::time::{Duration, Instant};

    let stack = Stack::spawn().await;
    let addr = stack.serve_query().await;
    let party = stack.api.party("expiring").await;
    let keys = natter_edge::JwtKeys::new(SECRET, Duration::from_secs(3600));
    let (short, expires_at) = keys
        .issue_for(
            party.member.id,
            &party.member.username,
            natter_edge::UserRole::User,
            Duration::from_secs(3),
        )
        .unwrap();
    let mut ws = Ws::connect(addr, &short).await;
    ws.subscribe(party.room, None).await;
    ws.until(|f| f["type"] == "subscribed").await;
    let at = stack
        .api
        .send(&party.owner.token, party.room, "still here?")
        .await;
    let got = ws
        .until(|f| f["type"] == "event" && f["position"].as_u64() == Some(at))
        .await;
    assert!(!got.is_empty());
    let started = Instant::now();
    assert_eq!(ws.close_code().await, Some(4001));
    let closed_at = chrono::Utc::now().timestamp_millis();
    assert!(
        closed_at >= expires_at * 1000,
        "closed {} ms before the token expired",
        expires_at * 1000 - closed_at
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed {:?} after it was last used",
        started.elapsed()
    );
}
