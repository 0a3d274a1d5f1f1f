//! The websocket gateway's guarantees, one file each: what a subscriber sees ([`stream`]),
//! who may connect and follow ([`access`]), what one connection may cost ([`limits`]), the
//! ephemeral traffic ([`ephemeral`]) and chatting over the socket ([`ops`]).

mod access;
mod ephemeral;
mod limits;
mod ops;
mod stream;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::Stack;

/// `user`'s row in the room's members list, as `token` reads it once `position` is projected.
pub async fn member_row(
    stack: &Stack,
    room: Uuid,
    token: &str,
    position: u64,
    user: Uuid,
) -> Value {
    let members = stack
        .get_at(&format!("/rooms/{room}/members"), token, position)
        .await;
    members.expect(200)["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("{user} is not in the members list"))
}

/// A frame of a room's stream (not one of the user's own feed, `"feed": "me"`).
pub fn is_room_event(frame: &Value) -> bool {
    frame["type"] == "event" && frame["feed"] != "me"
}

pub fn positions(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| is_room_event(f))
        .map(|f| f["position"].as_u64().unwrap())
        .collect()
}

/// Every event frame's `prev_position` is the previous frame's position (the first one's is
/// `first_prev`).
pub fn assert_chained(frames: &[Value], first_prev: u64) {
    let mut prev = first_prev;
    for f in frames.iter().filter(|f| is_room_event(f)) {
        assert_eq!(f["prev_position"], prev, "{f}");
        assert_eq!(f["event"]["position"], f["position"]);
        prev = f["position"].as_u64().unwrap();
    }
}
