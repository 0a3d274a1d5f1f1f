//! The log itself, read back with a plain consumer: subjects, headers and envelopes as
//! the design says, one event per accepted command, no secret in clear.

use serde_json::json;

use crate::helpers::TestApp;
use crate::helpers::User;

#[tokio::test]
async fn every_accepted_command_is_one_well_formed_event_and_no_secret_is_stored() {
    let app = TestApp::spawn().await;
    let p = &app.isolation.prefix;
    let password = "correct horse battery staple";
    let reg = app
        .post(
            "/auth/register",
            None,
            json!({ "username": "Alice", "password": password }),
        )
        .await;
    let alice = reg.expect(201)["token"].as_str().unwrap().to_string();
    let alice_id = reg.body["user"]["id"].as_str().unwrap().to_string();
    let User {
        token: bob,
        id: bob_id,
        ..
    } = app.register("bob").await;
    let a = Some(alice.as_str());
    let room = app
        .create_room(
            &alice,
            json!({ "name": "general", "visibility": "private" }),
        )
        .await;
    let invite = app
        .post(
            &format!("/rooms/{room}/invites"),
            a,
            json!({ "user_id": bob_id }),
        )
        .await;
    let invite_token = invite.expect(201)["invite"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        &format!("/invites/{invite_token}/accept"),
        Some(&bob),
        json!({}),
    )
    .await
    .expect(200);
    let link = app
        .post(&format!("/rooms/{room}/invites"), a, json!({}))
        .await;
    let link_token = link.expect(201)["invite"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.delete(&format!("/rooms/{room}/invites/{link_token}"), a)
        .await
        .expect(200);
    let sent = app
        .post(
            &format!("/rooms/{room}/messages"),
            a,
            json!({ "content": "hello" }),
        )
        .await;
    let sent_position = sent.expect(201)["position"].as_u64().unwrap();
    app.post(
        &format!("/rooms/{room}/read"),
        Some(&bob),
        json!({ "up_to_position": sent_position }),
    )
    .await
    .expect(200);
    app.post(&format!("/rooms/{room}/leave"), Some(&bob), json!({}))
        .await
        .expect(200);
    // Refused and no-op commands append nothing.
    app.post(&format!("/rooms/{room}/leave"), Some(&bob), json!({}))
        .await
        .expect(404);
    app.post(&format!("/rooms/{room}/join"), a, json!({}))
        .await
        .expect(200);
    app.post(
        "/auth/login",
        None,
        json!({ "username": "alice", "password": password }),
    )
    .await
    .expect(200);

    let log = app.stream_messages().await;
    let expected = [
        ("user.registered", format!("{p}.events.username.alice")),
        ("user.registered", format!("{p}.events.username.bob")),
        ("room.created", format!("{p}.events.room.{room}.meta")),
        (
            "room.invite_created",
            format!("{p}.events.room.{room}.meta"),
        ),
        ("room.member_joined", format!("{p}.events.room.{room}.meta")),
        (
            "room.invite_created",
            format!("{p}.events.room.{room}.meta"),
        ),
        (
            "room.invite_revoked",
            format!("{p}.events.room.{room}.meta"),
        ),
        ("message.sent", format!("{p}.events.room.{room}.msg")),
        ("room.read", format!("{p}.events.room.{room}.read")),
        ("room.member_left", format!("{p}.events.room.{room}.meta")),
    ];
    let got: Vec<(String, String)> = log
        .iter()
        .map(|(_, s, _, e)| (e["type"].as_str().unwrap().to_string(), s.clone()))
        .collect();
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(t, s)| (t.to_string(), s.clone()))
        .collect();
    assert_eq!(got, want);

    for (position, _, headers, envelope) in &log {
        let keys: Vec<_> = envelope.as_object().unwrap().keys().cloned().collect();
        for key in ["id", "type", "version", "occurred_at", "actor_id", "data"] {
            assert!(
                keys.contains(&key.to_string()),
                "{key} missing at {position}: {envelope}"
            );
        }
        assert!(
            !keys.contains(&"position".to_string()),
            "position is not stored in the payload"
        );
        assert_eq!(
            headers.get("Nats-Msg-Id").unwrap().as_str(),
            envelope["id"].as_str().unwrap()
        );
        assert_eq!(
            headers.get("Natter-Event-Type").unwrap().as_str(),
            envelope["type"].as_str().unwrap()
        );
        assert_eq!(envelope["version"], 1);
        chrono::DateTime::parse_from_rfc3339(envelope["occurred_at"].as_str().unwrap()).unwrap();
        if envelope["type"].as_str().unwrap().starts_with("room.")
            || envelope["type"] == "message.sent"
        {
            assert_eq!(envelope["room_id"], room.to_string());
        }
    }
    assert_eq!(log[0].3["actor_id"], alice_id);
    assert_eq!(log[0].3["data"]["username"], "alice");
    assert!(
        log[0].3["data"]["password_hash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert_eq!(
        log[4].3["data"],
        json!({ "user_id": bob_id, "role": "member", "invite": log[3].3["data"]["invite_id"] })
    );
    assert_eq!(log[7].3["data"]["content"], "hello");
    assert_eq!(
        log[8].3["data"],
        json!({ "user_id": bob_id, "up_to_position": sent_position })
    );

    let everything = log
        .iter()
        .map(|(_, _, _, e)| e.to_string())
        .collect::<String>();
    for secret in [password, &invite_token, &link_token, "password123"] {
        assert!(!everything.contains(secret), "a secret is stored in clear");
    }
}
