//! Replies, threads, reactions and mentions end to end: over REST and the websocket, each new
//! event streamed in the room's chain (`prev_position`), the read models showing threads,
//! reactions and mentions, raced reactions counted exactly, and a rebuild giving the same.
//! The helpers the three files share are here.

mod mentions;
mod reactions;
mod threads;

use axum::http::Method;
use natter_testkit::http::Resp;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::Stack;

/// `emoji` as one path segment.
pub(super) fn segment(emoji: &str) -> String {
    emoji
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn reaction_path(room: Uuid, message: Uuid, emoji: &str) -> String {
    format!(
        "/rooms/{room}/messages/{message}/reactions/{}",
        segment(emoji)
    )
}

pub(super) async fn react(
    stack: &Stack,
    token: &str,
    room: Uuid,
    message: Uuid,
    emoji: &str,
) -> Resp {
    let path = reaction_path(room, message, emoji);
    stack
        .api
        .request(Method::PUT, &path, Some(token), Vec::new(), &[])
        .await
}

pub(super) async fn unreact(
    stack: &Stack,
    token: &str,
    room: Uuid,
    message: Uuid,
    emoji: &str,
) -> Resp {
    let path = reaction_path(room, message, emoji);
    stack.api.delete(&path, Some(token)).await
}

pub(super) fn ids(page: &Value) -> Vec<Uuid> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect()
}
