//! The websocket protocol (AsyncAPI at `/api/v1/asyncapi.json`): client ops in, server frames out (text frames, one JSON
//! object each).
//!
//! The protocol's one vocabulary (ops, frames, close codes and the parser), which AsyncAPI and
//! the TypeScript types are derived from; its tests are in `protocol/tests.rs`.

use natter_edge::views::MessageView;
use natter_events::catalogue::{Attachment, MessageKind};
use natter_events::envelope::PublicEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
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

/// The close codes a server may end a connection with: a name for clients' constants, what
/// they mean, and what a client should do (the AsyncAPI document and the clients take them
/// from here).
pub const CLOSE_CODES: &[(u16, &str, &str, &str)] = &[
    (
        1001,
        "going_away",
        "the server is going away",
        "reconnect with backoff and resume",
    ),
    (
        1012,
        "restarting",
        "the server is restarting",
        "reconnect with backoff and resume",
    ),
    (
        CLOSE_UNAUTHORIZED,
        "unauthorized",
        "unauthorized: the token is missing, invalid, expired or revoked",
        "get a new token before reconnecting",
    ),
    (
        CLOSE_BY_ADMIN,
        "by_admin",
        "disconnected by an admin",
        "do not reconnect on your own",
    ),
    (
        CLOSE_TOO_SLOW,
        "too_slow",
        "too slow: the client did not keep up",
        "reconnect and resubscribe with since = your last position",
    ),
];

/// A media signal a member can announce to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Camera,
    Mic,
    StreamStarted,
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientOp {
    /// Follow a room: without `since`, live from now; with it, every room event after that
    /// position, then live. Answered with `subscribed` (or `reset`, then the whole history,
    /// when `epoch` names another incarnation of the log).
    Subscribe {
        room_id: Uuid,
        since: Option<u64>,
        /// The `epoch` of the `subscribed` frame the client had.
        epoch: Option<String>,
    },
    /// Stop following a room (or end a subscribe still replaying); answered with
    /// `unsubscribed` (reason `requested`).
    Unsubscribe { room_id: Uuid },
    /// Tell the room's other subscribers whether one is typing.
    Typing { room_id: Uuid, typing: bool },
    /// Tell the room's other subscribers of a media signal.
    Signal {
        room_id: Uuid,
        signal: SignalKind,
        on: bool,
    },
    /// A message, as `POST /rooms/{room_id}/messages` takes it; the body's fields are passed
    /// on as they came, so the write side checks them with its own rules and codes.
    /// Answered with `ack` (with the `message`) or an `error` naming `client_id`.
    Send {
        room_id: Uuid,
        /// Up to 128 characters: the idempotency key, so a resend appends nothing new.
        client_id: String,
        #[schema(value_type = Option<String>)]
        content: Option<Value>,
        #[schema(value_type = Option<MessageKind>)]
        kind: Option<Value>,
        #[schema(value_type = Option<Attachment>)]
        attachment: Option<Value>,
        /// Quote this message of the room, as on `POST /rooms/{room_id}/messages`.
        #[schema(value_type = Option<Uuid>)]
        reply_to: Option<Value>,
        /// Reply inside the thread of this root message.
        #[schema(value_type = Option<Uuid>)]
        thread_id: Option<Value>,
        /// Members of the room to mention.
        #[schema(value_type = Option<Vec<Uuid>>)]
        mentions: Option<Value>,
    },
    /// A read marker, as `POST /rooms/{room_id}/read` takes it. Answered with `ack` or
    /// `error`.
    Read {
        room_id: Uuid,
        #[schema(value_type = u64)]
        up_to_position: Value,
        client_id: Option<String>,
    },
    /// Answered with `pong`.
    Ping,
    /// The login token, as the first frame of a connection opened without one (so that it
    /// shows in no URL). Not answered: the connection goes on, or closes with 4001 and why.
    /// Sent later, it is refused with `bad_request`.
    Auth { token: String },
}

/// Whether a user is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Online,
    Offline,
}

/// Everything a server sends: one JSON object per text frame, told apart by `type`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The subscription is live from `position` (the head at the switch to live).
    Subscribed {
        room_id: Uuid,
        position: u64,
        /// Identifies the log's incarnation; send it back when resubscribing with `since`.
        epoch: String,
    },
    /// The log was recreated since the client's `epoch`: the room's full history follows,
    /// positions start over.
    Reset {
        room_id: Uuid,
    },
    /// A room event: per room, strictly increasing positions, no gaps relative to the log,
    /// no duplicates.
    Event {
        room_id: Uuid,
        position: u64,
        /// The position of the room's previous event (0 for its first; null on a user's own
        /// feed when this gateway does not follow the room).
        prev_position: Option<u64>,
        /// `"me"`: an event that names the connection's user, from a room it does not follow.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feed: Option<String>,
        event: PublicEvent,
    },
    /// The subscription ended (`left`, `removed`, `deleted`, `requested`).
    Unsubscribed {
        room_id: Uuid,
        reason: String,
    },
    Typing {
        room_id: Uuid,
        user_id: Uuid,
        typing: bool,
    },
    Signal {
        room_id: Uuid,
        user_id: Uuid,
        signal: SignalKind,
        on: bool,
    },
    /// A user of a room the connection follows came or went.
    Presence {
        user_id: Uuid,
        status: PresenceStatus,
    },
    /// A `send` or `read` op succeeded.
    Ack {
        client_id: Option<String>,
        position: u64,
        /// The message, for a `send`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<MessageView>,
    },
    /// A refused frame or op: `bad_request`, `unknown_op`, `frame_too_large`, `not_found`,
    /// `forbidden`, `not_subscribed`, `too_many_subscriptions`, `validation_failed`,
    /// `rate_limited` (with `retry_after`), `unavailable`.
    Error {
        code: String,
        message: String,
        /// The op's `client_id`, for a refused `send` or `read`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    Pong,
}

impl ServerFrame {
    fn text(&self) -> String {
        serde_json::to_string(self).expect("frames serialize")
    }
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
        "subscribe" | "unsubscribe" | "typing" | "signal" | "send" | "read" | "ping" | "auth"
    ) {
        return Err(FrameError::new("unknown_op", format!("unknown op {op:?}")));
    }
    serde_json::from_value(value)
        .map_err(|e| FrameError::new("bad_request", format!("malformed {op}: {e}")))
}

pub fn error(e: &FrameError) -> String {
    op_error(e.code, &e.message, None, None)
}

/// A `send` or `read` op done: its position, and the message for a send (both as the REST
/// answer gave them, which is the same type).
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
    ServerFrame::Error {
        code: code.to_string(),
        message: message.to_string(),
        client_id: client_id.map(str::to_string),
        retry_after,
    }
    .text()
}

pub fn pong() -> String {
    ServerFrame::Pong.text()
}

pub fn subscribed(room_id: Uuid, position: u64, epoch: &str) -> String {
    ServerFrame::Subscribed {
        room_id,
        position,
        epoch: epoch.to_string(),
    }
    .text()
}

pub fn reset(room_id: Uuid) -> String {
    ServerFrame::Reset { room_id }.text()
}

pub fn unsubscribed(room_id: Uuid, reason: &str) -> String {
    ServerFrame::Unsubscribed {
        room_id,
        reason: reason.to_string(),
    }
    .text()
}

pub fn typing(room_id: Uuid, user_id: Uuid, typing: bool) -> String {
    ServerFrame::Typing {
        room_id,
        user_id,
        typing,
    }
    .text()
}

pub fn signal(room_id: Uuid, user_id: Uuid, signal: SignalKind, on: bool) -> String {
    ServerFrame::Signal {
        room_id,
        user_id,
        signal,
        on,
    }
    .text()
}

pub fn presence(user_id: Uuid, online: bool) -> String {
    let status = if online {
        PresenceStatus::Online
    } else {
        PresenceStatus::Offline
    };
    ServerFrame::Presence { user_id, status }.text()
}

/// An `event` frame ([`ServerFrame::Event`]) around `envelope`: the event as auditors see it
/// (one JSON object with its position, credentials redacted; see
/// `natter_events::envelope::public_json`), spliced in as is rather than re-encoded.
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
mod tests;
