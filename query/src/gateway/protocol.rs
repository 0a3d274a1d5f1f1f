//! The websocket protocol of API.md: client ops in, server frames out (text frames, one JSON
//! object each).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Close code: the token is missing, invalid or expired.
pub const CLOSE_UNAUTHORIZED: u16 = 4001;
/// Close code: an admin disconnected the user (`DELETE /admin/connections/{user_id}`); the
/// client should not reconnect on its own.
pub const CLOSE_BY_ADMIN: u16 = 4003;
/// Close code: the client did not keep up; reconnect and resubscribe with `since`.
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// The reason given with [`CLOSE_TOO_SLOW`].
pub const TOO_SLOW: &str = "too slow: reconnect and resubscribe with since";

/// A media signal a member can announce to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Camera,
    Mic,
    StreamStarted,
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientOp {
    Subscribe {
        room_id: Uuid,
        since: Option<u64>,
        epoch: Option<String>,
    },
    Unsubscribe {
        room_id: Uuid,
    },
    Typing {
        room_id: Uuid,
        typing: bool,
    },
    Signal {
        room_id: Uuid,
        signal: SignalKind,
        on: bool,
    },
    /// A message, as `POST /rooms/{room_id}/messages` takes it; the body's fields are passed
    /// on as they came, so the write side checks them with its own rules and codes.
    Send {
        room_id: Uuid,
        client_id: String,
        content: Option<Value>,
        kind: Option<Value>,
        attachment: Option<Value>,
    },
    /// A read marker, as `POST /rooms/{room_id}/read` takes it.
    Read {
        room_id: Uuid,
        up_to_position: Value,
        client_id: Option<String>,
    },
    Ping,
}

/// The longest `client_id`, as the longest `Idempotency-Key`.
pub const MAX_CLIENT_ID: usize = 128;

/// A refused frame: the error frame's code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
}

impl FrameError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        FrameError {
            code,
            message: message.into(),
        }
    }
}

/// Parses a client text frame.
pub fn parse(text: &str) -> Result<ClientOp, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new("bad_request", format!("not JSON: {e}")))?;
    let op = value
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !matches!(
        op.as_str(),
        "subscribe" | "unsubscribe" | "typing" | "signal" | "send" | "read" | "ping"
    ) {
        return Err(FrameError::new("unknown_op", format!("unknown op {op:?}")));
    }
    serde_json::from_value(value)
        .map_err(|e| FrameError::new("bad_request", format!("malformed {op}: {e}")))
}

pub fn error(e: &FrameError) -> String {
    json!({ "type": "error", "code": e.code, "message": e.message }).to_string()
}

/// A `send` or `read` op done: its position, and the message for a send.
pub fn ack(client_id: Option<&str>, position: &Value, message: Option<&Value>) -> String {
    let mut frame = json!({ "type": "ack", "client_id": client_id, "position": position });
    if let Some(m) = message {
        frame["message"] = m.clone();
    }
    frame.to_string()
}

/// A `send` or `read` op refused, with the REST code (and `retry_after` when rate limited).
pub fn op_error(
    code: &str,
    message: &str,
    client_id: Option<&str>,
    retry_after: Option<u64>,
) -> String {
    let mut frame =
        json!({ "type": "error", "code": code, "message": message, "client_id": client_id });
    if let Some(secs) = retry_after {
        frame["retry_after"] = json!(secs);
    }
    frame.to_string()
}

pub fn pong() -> String {
    json!({ "type": "pong" }).to_string()
}

pub fn subscribed(room_id: Uuid, position: u64, epoch: &str) -> String {
    json!({ "type": "subscribed", "room_id": room_id, "position": position, "epoch": epoch })
        .to_string()
}

pub fn reset(room_id: Uuid) -> String {
    json!({ "type": "reset", "room_id": room_id }).to_string()
}

pub fn unsubscribed(room_id: Uuid, reason: &str) -> String {
    json!({ "type": "unsubscribed", "room_id": room_id, "reason": reason }).to_string()
}

pub fn typing(room_id: Uuid, user_id: Uuid, typing: bool) -> String {
    json!({ "type": "typing", "room_id": room_id, "user_id": user_id, "typing": typing })
        .to_string()
}

pub fn signal(room_id: Uuid, user_id: Uuid, signal: SignalKind, on: bool) -> String {
    json!({ "type": "signal", "room_id": room_id, "user_id": user_id, "signal": signal, "on": on })
        .to_string()
}

pub fn presence(user_id: Uuid, online: bool) -> String {
    json!({ "type": "presence", "user_id": user_id, "status": if online { "online" } else { "offline" } }).to_string()
}

/// An `event` frame around `envelope`: the event as auditors see it (one JSON object with
/// its position, credentials redacted; see `natter_events::envelope::public_json`), spliced in as is.
/// `feed_me` marks a frame sent to a user's own feed.
pub fn event(
    room_id: Uuid,
    position: u64,
    prev_position: Option<u64>,
    envelope: &[u8],
    feed_me: bool,
) -> String {
    let prev = prev_position.map_or_else(|| "null".to_string(), |p| p.to_string());
    let feed = if feed_me { r#","feed":"me""# } else { "" };
    let mut frame = String::with_capacity(envelope.len() + 128);
    frame.push_str(&format!(
        r#"{{"type":"event","room_id":"{room_id}","position":{position},"prev_position":{prev}{feed},"event":"#
    ));
    frame.push_str(&String::from_utf8_lossy(envelope));
    frame.push('}');
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frames_are_json_with_the_envelope_inside() {
        let room = Uuid::new_v4();
        let frame: Value = serde_json::from_str(&event(
            room,
            7,
            Some(5),
            br#"{"position":7,"type":"x"}"#,
            true,
        ))
        .unwrap();
        assert_eq!(
            frame,
            json!({ "type": "event", "room_id": room, "position": 7, "prev_position": 5, "feed": "me",
                                   "event": { "position": 7, "type": "x" } })
        );
        let frame: Value = serde_json::from_str(&event(room, 7, None, b"{}", false)).unwrap();
        assert_eq!(frame["prev_position"], Value::Null);
        assert!(frame.get("feed").is_none());
    }

    #[test]
    fn ops_parse_and_bad_frames_say_why() {
        let room = Uuid::new_v4();
        assert_eq!(
            parse(&format!(
                r#"{{"op":"subscribe","room_id":"{room}","since":5}}"#
            )),
            Ok(ClientOp::Subscribe {
                room_id: room,
                since: Some(5),
                epoch: None
            })
        );
        assert_eq!(parse(r#"{"op":"ping"}"#), Ok(ClientOp::Ping));
        assert_eq!(parse("garbage").unwrap_err().code, "bad_request");
        assert_eq!(parse(r#"{"op":"dance"}"#).unwrap_err().code, "unknown_op");
        assert_eq!(parse(r#"{"nope":1}"#).unwrap_err().code, "unknown_op");
        assert_eq!(
            parse(r#"{"op":"subscribe","room_id":"x"}"#)
                .unwrap_err()
                .code,
            "bad_request"
        );
        assert_eq!(
            parse(&format!(
                r#"{{"op":"signal","room_id":"{room}","signal":"laser","on":true}}"#
            ))
            .unwrap_err()
            .code,
            "bad_request"
        );
    }
}
