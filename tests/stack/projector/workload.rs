//! The scenarios' shared workload: users and rooms, mixed traffic, a rebuild, and independent
//! recounts of what the projector keeps incrementally.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::Stack;
use crate::helpers::User;

/// Commands from several users into a few rooms: joins, messages, read markers, leaves, and
/// the owner's (`users[0]`) renames, removals and, three quarters through, a deletion.
pub(super) async fn traffic(stack: &Stack, users: &[User], rooms: &[Uuid], rounds: usize) {
    let owner = &users[0].token;
    // The latest message of each room that answered, for replies, reactions and deletions.
    let mut latest: std::collections::HashMap<Uuid, String> = Default::default();
    for i in 0..rounds {
        let User {
            token, id: user, ..
        } = &users[i % users.len()];
        let room = rooms[i % rooms.len()];
        if i == rounds - rounds / 4 {
            let last = rooms[rooms.len() - 1];
            stack
                .api
                .delete(&format!("/rooms/{last}"), Some(owner))
                .await;
        }
        match i % 11 {
            3 => {
                stack
                    .api
                    .delete(&format!("/rooms/{room}/members/{user}"), Some(owner))
                    .await;
            }
            5 => {
                stack
                    .api
                    .request(
                        axum::http::Method::PATCH,
                        &format!("/rooms/{room}"),
                        Some(owner),
                        json!({ "name": format!("room {i}") })
                            .to_string()
                            .into_bytes(),
                        &[("content-type", "application/json")],
                    )
                    .await;
            }
            0 => {
                stack
                    .post(&format!("/rooms/{room}/join"), token, json!({}))
                    .await;
            }
            7 => {
                let head = stack.head().await;
                stack
                    .post(
                        &format!("/rooms/{room}/read"),
                        token,
                        json!({ "up_to_position": head }),
                    )
                    .await;
            }
            10 => {
                stack
                    .post(&format!("/rooms/{room}/leave"), token, json!({}))
                    .await;
            }
            4 | 8 if latest.contains_key(&room) => {
                let path = format!(
                    "/rooms/{room}/messages/{}/reactions/%F0%9F%91%8D",
                    latest[&room]
                );
                let method = if i % 11 == 4 {
                    axum::http::Method::PUT
                } else {
                    axum::http::Method::DELETE
                };
                stack
                    .api
                    .request(method, &path, Some(token), Vec::new(), &[])
                    .await;
            }
            9 if latest.contains_key(&room) => {
                let path = format!("/rooms/{room}/messages/{}", latest[&room]);
                stack.api.delete(&path, Some(owner)).await;
            }
            _ => {
                // Every third message replies in the thread of the room's latest, and every
                // other mentions the owner: thread replies count for no one's unread count.
                let mut body = json!({ "content": format!("t{i}") });
                if i % 3 == 1
                    && let Some(root) = latest.get(&room)
                {
                    body["thread_id"] = json!(root);
                }
                if i % 2 == 0 {
                    body["mentions"] = json!([users[0].id]);
                }
                let sent = stack
                    .post(&format!("/rooms/{room}/messages"), token, body)
                    .await;
                if sent.status == 201 && sent.body["message"]["thread_id"].is_null() {
                    let id = sent.body["message"]["id"].as_str().unwrap().to_string();
                    latest.insert(room, id);
                }
            }
        }
    }
}

pub(super) async fn setup(stack: &Stack) -> (Vec<User>, Vec<Uuid>) {
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(stack.register(&format!("user{i}")).await);
    }
    let mut rooms = Vec::new();
    for i in 0..3 {
        let room = stack
            .create_room(&users[0].token, json!({ "name": format!("room{i}") }))
            .await;
        for User { token: t, .. } in &users[1..] {
            stack
                .post(&format!("/rooms/{room}/join"), t, json!({}))
                .await
                .expect(200);
        }
        rooms.push(room);
    }
    (users, rooms)
}

/// Unread counts, and the mentions table, recomputed from the messages themselves, for an
/// independent check: the rows that differ.
pub(super) async fn recounted_unread_mismatches(stack: &Stack) -> i64 {
    let (mentions,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM ( \
            (SELECT u, x.id FROM messages x, unnest(x.mentions) u \
             WHERE NOT x.deleted AND u IS DISTINCT FROM x.sender_id \
             EXCEPT SELECT user_id, message_id FROM mentions) \
            UNION ALL \
            (SELECT user_id, message_id FROM mentions \
             EXCEPT SELECT u, x.id FROM messages x, unnest(x.mentions) u \
             WHERE NOT x.deleted AND u IS DISTINCT FROM x.sender_id)) d",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    unread_mismatches(stack).await + mentions
}

pub(super) async fn unread_mismatches(stack: &Stack) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM members m WHERE m.unread_count <> ( \
            SELECT count(*) FROM messages x WHERE x.room_id = m.room_id AND x.thread_id IS NULL \
              AND x.position > GREATEST(m.last_read_position, m.joined_position) AND NOT x.deleted \
              AND x.sender_id IS DISTINCT FROM m.user_id)",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    n
}
