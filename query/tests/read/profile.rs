//! `PATCH /me` as the read side sees it: the new display name in the read models (also when it
//! came with a password change), and the queries refusing tokens the change revoked.

use natter_testkit::http::Resp;
use serde_json::{Value, json};

use crate::helpers::Stack;

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
