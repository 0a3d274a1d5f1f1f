//! App-managed users: created and given login tokens by a service's API token.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::User;
use crate::helpers::{TestApp, api_token, root, test_config};

#[tokio::test]
async fn an_app_managed_user_has_no_password_and_shares_the_username_space() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let (_, service) = api_token(&app, &root, json!({ "name": "svc" })).await;
    app.register("taken").await;
    app.post("/users", Some(&service), json!({ "username": "TAKEN" }))
        .await
        .expect_error(409, "conflict");
    app.post("/users", Some(&service), json!({ "username": "x" }))
        .await
        .expect_error(422, "validation_failed");
    let created = app
        .post("/users", Some(&service), json!({ "username": "dana" }))
        .await
        .expect(201)
        .clone();
    let dana = created["token"].as_str().unwrap().to_string();
    let dana_id = created["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["user"]["display_name"], "dana");
    app.post(
        "/auth/register",
        None,
        json!({ "username": "dana", "password": "correct horse" }),
    )
    .await
    .expect_error(409, "conflict");
    // No password to log in with, none to change.
    for password in ["", "correct horse", "anything at all"] {
        app.post(
            "/auth/login",
            None,
            json!({ "username": "dana", "password": password }),
        )
        .await
        .expect_error(401, "unauthorized");
    }
    app.api
        .patch(
            "/me",
            Some(&dana),
            json!({ "password": "a new password", "current_password": "" }),
        )
        .await
        .expect_error(403, "forbidden");
    app.api
        .patch("/me", Some(&dana), json!({ "display_name": "Dana" }))
        .await
        .expect(200);

    // Minting: a lifetime in range, for app-managed users the instance knows.
    let minted = app
        .post(
            &format!("/users/{dana_id}/tokens"),
            Some(&service),
            json!({ "expires_in_secs": 60 }),
        )
        .await
        .expect(201)
        .clone();
    let expires: chrono::DateTime<chrono::Utc> =
        minted["expires_at"].as_str().unwrap().parse().unwrap();
    let left = (expires - chrono::Utc::now()).num_seconds();
    assert!((55..=61).contains(&left), "{left}");
    app.create_room(minted["token"].as_str().unwrap(), json!({ "name": "ok" }))
        .await;
    for secs in [0, -5, 3601] {
        app.post(
            &format!("/users/{dana_id}/tokens"),
            Some(&service),
            json!({ "expires_in_secs": secs }),
        )
        .await
        .expect_error(422, "validation_failed");
    }
    let User { id: registered, .. } = app.register("erin").await;
    app.post(
        &format!("/users/{registered}/tokens"),
        Some(&service),
        json!({}),
    )
    .await
    .expect_error(403, "forbidden");
    app.post(
        &format!("/users/{}/tokens", Uuid::new_v4()),
        Some(&service),
        json!({}),
    )
    .await
    .expect_error(404, "not_found");
    app.post("/users/not-a-uuid/tokens", Some(&service), json!({}))
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn an_app_managed_user_named_like_an_admin_is_no_admin() {
    let app = TestApp::spawn().await;
    let config = natter_command::CommandConfig {
        admins: vec!["ops".into(), "boss".into()],
        ..test_config()
    };
    let other = TestApp::on(&app.isolation, config).await;
    let ops = other.register("ops").await.token;
    let (_, service) = api_token(&other, &ops, json!({ "name": "svc" })).await;
    let boss = other
        .post("/users", Some(&service), json!({ "username": "boss" }))
        .await
        .expect(201)
        .clone();
    let token = boss["token"].as_str().unwrap();
    other
        .post("/admin/tokens", Some(token), json!({ "name": "escalate" }))
        .await
        .expect_error(403, "forbidden");
    let id = boss["user"]["id"].as_str().unwrap();
    let minted = other
        .post(&format!("/users/{id}/tokens"), Some(&service), json!({}))
        .await
        .expect(201)
        .clone();
    other
        .post(
            "/admin/tokens",
            minted["token"].as_str(),
            json!({ "name": "escalate" }),
        )
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_retried_user_creation_or_mint_answers_with_a_working_token_for_the_same_user() {
    let app = TestApp::spawn().await;
    let root = root(&app).await;
    let (_, service) = api_token(&app, &root, json!({ "name": "svc" })).await;
    let retry = |path: String, key: &'static str, body: Value| {
        let (app, service) = (&app, service.clone());
        async move {
            let headers = [
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ];
            let body = serde_json::to_vec(&body).unwrap();
            let mut answers = Vec::new();
            for _ in 0..2 {
                let resp = app
                    .raw(
                        axum::http::Method::POST,
                        &path,
                        Some(&service),
                        body.clone(),
                        &headers,
                    )
                    .await;
                answers.push(resp.expect(201).clone());
            }
            answers
        }
    };
    let created = retry("/users".into(), "create-fay", json!({ "username": "fay" })).await;
    assert_eq!(created[0]["user"], created[1]["user"], "one user");
    assert_eq!(created[0]["position"], created[1]["position"]);
    let user_id = created[0]["user"]["id"].as_str().unwrap().to_string();
    let path = format!("/users/{user_id}/tokens");
    let minted = retry(path, "mint-fay", json!({ "expires_in_secs": 600 })).await;
    assert_eq!(minted[0]["expires_at"], minted[1]["expires_at"]);
    for answer in created.iter().chain(&minted) {
        let token = answer["token"].as_str().expect("a token in every answer");
        app.create_room(token, json!({ "name": "works" })).await;
    }
}

#[tokio::test]
async fn a_user_created_through_one_instance_gets_tokens_through_another_at_once() {
    let app = TestApp::spawn().await;
    let other = TestApp::on(&app.isolation, test_config()).await;
    let root = root(&app).await;
    let (_, service) = api_token(&app, &root, json!({ "name": "svc" })).await;
    for i in 0..10 {
        let created = app
            .post(
                "/users",
                Some(&service),
                json!({ "username": format!("roamer{i}") }),
            )
            .await
            .expect(201)
            .clone();
        let id = created["user"]["id"].as_str().unwrap();
        // The other instance has not necessarily folded the registration yet: it confirms a
        // miss after its read barrier rather than answering 404.
        let minted = other
            .post(&format!("/users/{id}/tokens"), Some(&service), json!({}))
            .await
            .expect(201)
            .clone();
        other
            .create_room(minted["token"].as_str().unwrap(), json!({ "name": "ok" }))
            .await;
    }
}
