//! A scripted history; every query must answer what the log implies.

use std::collections::HashMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::Stack;
use crate::helpers::User;

#[tokio::test]
async fn every_query_returns_what_the_scripted_history_implies() {
    let stack = Stack::spawn().await;
    let User {
        token: owner,
        id: owner_id,
        ..
    } = stack.register("owner").await;
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
    let User {
        token: carol,
        id: carol_id,
        ..
    } = stack.register("carol").await;
    let User {
        token: dave,
        id: dave_id,
        ..
    } = stack.register("dave").await;

    let lobby = stack.create_room(&owner, json!({ "name": "Lobby" })).await;
    let club = stack
        .create_room(
            &owner,
            json!({ "name": "Club 100%", "visibility": "private" }),
        )
        .await;
    for t in [&alice, &bob, &carol] {
        stack
            .post(&format!("/rooms/{lobby}/join"), t, json!({}))
            .await
            .expect(200);
    }
    stack
        .post(
            &format!("/rooms/{club}/invites"),
            &owner,
            json!({ "user_id": dave_id }),
        )
        .await
        .expect(201);
    stack
        .post(&format!("/rooms/{club}/join"), &dave, json!({}))
        .await
        .expect(200);
    let link = stack
        .post(
            &format!("/rooms/{club}/invites"),
            &owner,
            json!({ "max_uses": 5 }),
        )
        .await;
    let link = link.expect(201)["invite"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    stack
        .post(&format!("/invites/{link}/accept"), &carol, json!({}))
        .await
        .expect(200);
    stack
        .post(&format!("/rooms/{lobby}/leave"), &carol, json!({}))
        .await
        .expect(200);

    // Hundreds of messages from three senders, with read markers on the way.
    let senders = [(&owner, owner_id), (&alice, alice_id), (&bob, bob_id)];
    let mut lobby_messages: Vec<(u64, Uuid)> = Vec::new();
    let mut alice_marker = 0;
    for i in 0..300 {
        let (token, id) = senders[i % 3];
        let p = stack.send(token, lobby, &format!("lobby {i}")).await;
        lobby_messages.push((p, id));
        if i == 120 {
            stack
                .post(
                    &format!("/rooms/{lobby}/read"),
                    &alice,
                    json!({ "up_to_position": p }),
                )
                .await
                .expect(200);
            alice_marker = p;
        }
    }
    let bob_marker = lobby_messages[250].0;
    stack
        .post(
            &format!("/rooms/{lobby}/read"),
            &bob,
            json!({ "up_to_position": bob_marker }),
        )
        .await
        .expect(200);
    let mut club_last = 0;
    for i in 0..30 {
        club_last = stack
            .send(
                if i % 2 == 0 { &owner } else { &dave },
                club,
                &format!("club {i}"),
            )
            .await;
    }
    let head = stack.head().await;

    // Unread: others' messages after the marker (and after joining).
    let unread = |me: Uuid, marker: u64| {
        lobby_messages
            .iter()
            .filter(|(p, s)| *p > marker && *s != me)
            .count() as u64
    };
    let mine = stack.get_at("/me/rooms", &alice, head).await;
    assert!(mine.position_header().unwrap() >= head);
    let rooms = mine.expect(200)["rooms"].as_array().unwrap().clone();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["id"], lobby.to_string());
    assert_eq!(rooms[0]["unread_count"], unread(alice_id, alice_marker));
    assert_eq!(rooms[0]["last_read_position"], alice_marker);
    assert_eq!(rooms[0]["last_message"]["content"], "lobby 299");
    assert_eq!(rooms[0]["member_count"], 3);
    let bob_rooms = stack.get_at("/me/rooms", &bob, head).await;
    assert_eq!(
        bob_rooms.expect(200)["rooms"][0]["unread_count"],
        unread(bob_id, bob_marker)
    );
    let owner_rooms = stack.get_at("/me/rooms", &owner, head).await;
    let owner_rooms = owner_rooms.expect(200)["rooms"].as_array().unwrap().clone();
    // Most recent activity first: the club's messages came last.
    assert_eq!(
        owner_rooms
            .iter()
            .map(|r| r["id"].clone())
            .collect::<Vec<_>>(),
        vec![json!(club), json!(lobby)]
    );
    assert_eq!(
        owner_rooms[0]["unread_count"], 15,
        "dave's 15 club messages"
    );
    assert_eq!(owner_rooms[0]["last_message"]["position"], club_last);
    let carol_rooms = stack.get_at("/me/rooms", &carol, head).await;
    let carol_rooms = carol_rooms.expect(200)["rooms"].as_array().unwrap().clone();
    assert_eq!(carol_rooms.len(), 1, "carol left the lobby");
    assert_eq!(
        carol_rooms[0]["unread_count"], 30,
        "all club messages came after she joined"
    );

    // Listings and search.
    let public = stack.get_at("/rooms?scope=public", &dave, head).await;
    let names: Vec<Value> = public.expect(200)["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Lobby")]);
    let joined = stack.get_at("/rooms?scope=joined", &carol, head).await;
    let names: Vec<Value> = joined.expect(200)["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Club 100%")]);
    let search = stack
        .get_at("/rooms?scope=joined&q=100%25", &owner, head)
        .await;
    assert_eq!(
        search.expect(200)["rooms"].as_array().unwrap().len(),
        1,
        "% is matched literally"
    );
    let search = stack
        .get_at("/rooms?scope=joined&q=10_", &owner, head)
        .await;
    assert_eq!(
        search.expect(200)["rooms"].as_array().unwrap().len(),
        0,
        "_ is matched literally"
    );
    let search = stack.get_at("/rooms?q=lob", &dave, head).await;
    assert_eq!(search.expect(200)["rooms"][0]["id"], lobby.to_string());

    // One room, and its members.
    let club_view = stack.get_at(&format!("/rooms/{club}"), &dave, head).await;
    let club_view = club_view.expect(200);
    assert_eq!(club_view["member_count"], 3);
    assert_eq!(club_view["visibility"], "private");
    assert_eq!(club_view["owner_id"], owner_id.to_string());
    stack
        .get_at(&format!("/rooms/{club}"), &alice, head)
        .await
        .expect_error(404, "not_found");
    let members = stack
        .get_at(&format!("/rooms/{lobby}/members"), &alice, head)
        .await;
    let members: HashMap<String, Value> = members.expect(200)["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].as_str().unwrap().to_string(), m.clone()))
        .collect();
    assert_eq!(members.len(), 3);
    assert_eq!(members["owner"]["role"], "owner");
    assert_eq!(members["alice"]["role"], "member");
    assert_eq!(members["alice"]["last_read_position"], alice_marker);
    assert_eq!(members["bob"]["last_read_position"], bob_marker);
    assert_eq!(members["bob"]["display_name"], "bob");
    assert!(!members.contains_key("carol"));

    // Messages: the latest page, and one message.
    let page = stack
        .get_at(&format!("/rooms/{lobby}/messages?limit=10"), &bob, head)
        .await;
    let page = page.expect(200);
    let positions: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        lobby_messages[290..]
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
    );
    assert_eq!(page["has_more"], true);
    let first = &page["messages"][0];
    assert_eq!(first["content"], "lobby 290");
    assert_eq!(first["sender_id"], lobby_messages[290].1.to_string());
    let one = stack
        .get_at(
            &format!("/rooms/{lobby}/messages/{}", first["id"].as_str().unwrap()),
            &alice,
            head,
        )
        .await;
    assert_eq!(one.expect(200)["position"], first["position"]);

    // Users.
    let me = stack.get_at("/me", &carol, head).await;
    assert_eq!(me.expect(200)["id"], carol_id.to_string());
    let other = stack
        .get_at(&format!("/users/{alice_id}"), &carol, head)
        .await;
    assert_eq!(other.expect(200)["username"], "alice");
    assert!(other.body.get("password_hash").is_none());
}

#[tokio::test]
async fn an_owner_leaving_hands_the_room_over_in_the_read_model() {
    let stack = Stack::spawn().await;
    let party = stack.api.party("handover").await;
    let (room, owner, bob) = (party.room, party.owner.token, party.member.token);
    let left = stack
        .post(&format!("/rooms/{room}/leave"), &owner, json!({}))
        .await;
    let at = left.expect(200)["position"].as_u64().unwrap();
    let view = stack.get_at(&format!("/rooms/{room}"), &bob, at).await;
    assert_eq!(view.expect(200)["owner_id"], party.member.id.to_string());
    assert_eq!(view.body["member_count"], 1);
    let members = stack
        .get_at(&format!("/rooms/{room}/members"), &bob, at)
        .await;
    assert_eq!(members.expect(200)["members"][0]["role"], "owner");
}
