//! Tokens that must be refused: missing, expired, tampered, `alg: none`, wrong secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use natter_edge::{Claims, UserRole};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::User;
use crate::helpers::{SECRET, TestApp};

fn claims(exp_offset: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: Uuid::new_v4(),
        username: "mallory".into(),
        role: UserRole::Admin,
        iat: now,
        exp: now + exp_offset,
        iat_ms: now * 1000,
    }
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = TestApp::spawn().await;
    let User { token: good, .. } = app.register("alice").await;
    let body = json!({ "name": "r" });
    app.post("/rooms", Some(&good), body.clone())
        .await
        .expect(201);

    let expired = encode(
        &Header::new(Algorithm::HS256),
        &claims(-3600),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let wrong_secret = encode(
        &Header::new(Algorithm::HS256),
        &claims(3600),
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .unwrap();
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["role"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let tampered = parts.join(".");
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims(3600)).unwrap());
    let alg_none = format!("{none_header}.{none_payload}.");
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &claims(3600),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();

    app.post("/rooms", None, body.clone())
        .await
        .expect_error(401, "unauthorized");
    for bad in [
        expired,
        wrong_secret,
        tampered,
        alg_none,
        hs512,
        "garbage".into(),
        String::new(),
    ] {
        app.post("/rooms", Some(&bad), body.clone())
            .await
            .expect_error(401, "unauthorized");
    }
    let wrong_scheme = app
        .raw(
            axum::http::Method::POST,
            "/rooms",
            None,
            body.to_string().into_bytes(),
            &[("authorization", &format!("Basic {good}"))],
        )
        .await;
    wrong_scheme.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn admins_named_in_the_config_get_the_admin_role() {
    let app = TestApp::spawn().await;
    let User { token: root, .. } = app.register("root").await;
    let User { token: user, .. } = app.register("user").await;
    let role = |t: &str| {
        let payload = URL_SAFE_NO_PAD
            .decode(t.split('.').nth(1).unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["role"].clone()
    };
    assert_eq!(role(&root), "admin");
    assert_eq!(role(&user), "user");
}
