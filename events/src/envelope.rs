//! The envelope every event travels in, its decoding (with upcasting) and redaction, and the
//! public JSON of a stored event ([`public_json`]).

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::catalogue::{Event, current_version};
use crate::store::RawMessage;

/// An event with its metadata, as written to JetStream. `position` is not part of the stored
/// payload: it is the stream sequence, added on the way out (see [`Recorded`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// Who caused it; `None` for the system itself.
    pub actor_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    pub event: Event,
}

/// The envelope as it is on the wire, with `data` still untyped. Unknown types stay in this
/// form so that readers can pass them through or skip them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RawEnvelope {
    pub id: Uuid,
    /// The event type (`message.sent`, ...); a client ignores types it does not know.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The payload version of `data`.
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    /// Who did it: a user, or an API token (for what a service did).
    pub actor_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<Uuid>,
    /// The type's data (see the event catalogue); credentials redacted.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// An event as clients and auditors see it: its envelope with its `position` in the log. Its
/// JSON Schema (a union on `type`) is in `schema.rs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicEvent {
    /// The stream sequence.
    pub position: u64,
    #[serde(flatten)]
    pub envelope: RawEnvelope,
}

/// Why stored bytes are not a usable event.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("not an event envelope: {0}")]
    Malformed(String),
    #[error("{type_name} version {version} is newer than this build understands")]
    FutureVersion { type_name: String, version: u32 },
    #[error("{type_name} data does not match its schema: {reason}")]
    BadData { type_name: String, reason: String },
}

/// A decoded payload: a known event, or one of a type this build does not know.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Known(Envelope),
    Unknown(RawEnvelope),
}

impl Envelope {
    pub fn new(
        id: Uuid,
        occurred_at: DateTime<Utc>,
        actor_id: Option<Uuid>,
        room_id: Option<Uuid>,
        event: Event,
    ) -> Self {
        Envelope {
            id,
            occurred_at,
            actor_id,
            room_id,
            event,
        }
    }

    /// The untyped wire form.
    pub fn to_raw(&self) -> RawEnvelope {
        let tagged = serde_json::to_value(&self.event).expect("events serialize");
        let data = tagged
            .get("data")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        RawEnvelope {
            id: self.id,
            type_name: self.event.type_name().to_string(),
            version: self.event.version(),
            occurred_at: self.occurred_at,
            actor_id: self.actor_id,
            room_id: self.room_id,
            data,
        }
    }

    /// The bytes stored in JetStream.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_raw()).expect("envelopes serialize")
    }

    /// Decodes stored bytes, upcasting old payload versions to the current one.
    pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
        let raw: RawEnvelope =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        raw.into_decoded()
    }
}

impl RawEnvelope {
    /// Types this build knows become [`Envelope`]s; others stay raw.
    pub fn into_decoded(self) -> Result<Decoded, DecodeError> {
        let Some(current) = current_version(&self.type_name) else {
            return Ok(Decoded::Unknown(self));
        };
        if self.version > current || self.version == 0 {
            return Err(DecodeError::FutureVersion {
                type_name: self.type_name,
                version: self.version,
            });
        }
        let data = upcast(&self.type_name, self.version, self.data);
        let tagged = serde_json::json!({ "type": self.type_name, "data": data });
        let event: Event = serde_json::from_value(tagged).map_err(|e| DecodeError::BadData {
            type_name: self.type_name.clone(),
            reason: e.to_string(),
        })?;
        Ok(Decoded::Known(Envelope {
            id: self.id,
            occurred_at: self.occurred_at,
            actor_id: self.actor_id,
            room_id: self.room_id,
            event,
        }))
    }

    /// A copy safe to show to people: password and API token hashes replaced by
    /// `"[redacted]"`.
    pub fn redacted(mut self) -> Self {
        if Event::carries_credentials(&self.type_name)
            && let Some(obj) = self.data.as_object_mut()
        {
            for key in ["password_hash", "token_hash"] {
                if obj.contains_key(key) {
                    obj.insert(key.into(), Value::String("[redacted]".into()));
                }
            }
        }
        self
    }
}

/// Brings `data` written at `version` up to the current version of `type_name`.
///
/// Every type is still at version 1, so this is the identity; a future `room.created` v2
/// adds an arm here that rewrites v1 data on read, leaving the log untouched.
fn upcast(_type_name: &str, _version: u32, data: Value) -> Value {
    data
}

/// An event as read back from the log, with its position (the stream sequence).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub position: u64,
    pub subject: String,
    /// When the log stored it (the server's clock; for an event this process just appended,
    /// its `occurred_at`).
    pub recorded_at: DateTime<Utc>,
    pub envelope: Envelope,
}

/// The public JSON of a stored event, as auditors and websocket clients see it: its envelope
/// with `position`, credentials redacted. A payload that is not an envelope is shown as such.
pub fn public_json(message: &RawMessage) -> Bytes {
    let secret = message
        .event_type
        .as_deref()
        .is_none_or(Event::carries_credentials);
    if !secret && message.payload.first() == Some(&b'{') && message.payload.len() > 2 {
        // The common case: splice the position into the stored object, no re-encoding.
        let mut out = BytesMut::with_capacity(message.payload.len() + 24);
        out.put_slice(format!("{{\"position\":{},", message.position).as_bytes());
        out.put_slice(&message.payload[1..]);
        return out.freeze();
    }
    let value = match serde_json::from_slice::<RawEnvelope>(&message.payload) {
        Ok(raw) => serde_json::to_value(PublicEvent {
            position: message.position,
            envelope: raw.redacted(),
        })
        .unwrap_or_default(),
        Err(e) => serde_json::json!({
            "position": message.position,
            "undecodable": String::from_utf8_lossy(&message.payload),
            "error": e.to_string(),
        }),
    };
    Bytes::from(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{MessageKind, MessageSent, UserRegistered};

    fn sample(event: Event) -> Envelope {
        Envelope::new(
            Uuid::now_v7(),
            "2026-01-02T03:04:05Z".parse().unwrap(),
            Some(Uuid::new_v4()),
            Some(Uuid::new_v4()),
            event,
        )
    }

    #[test]
    fn an_envelope_has_the_wire_shape_of_the_contract() {
        let env = sample(Event::MessageSent(MessageSent {
            message_id: Uuid::new_v4(),
            kind: MessageKind::Text,
            content: "hi".into(),
            attachment: None,
            ..Default::default()
        }));
        let v: Value = serde_json::from_slice(&env.encode()).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "actor_id",
                "data",
                "id",
                "occurred_at",
                "room_id",
                "type",
                "version"
            ]
        );
        assert_eq!(v["type"], "message.sent");
        assert_eq!(v["version"], 1);
        assert_eq!(v["data"]["content"], "hi");
        assert_eq!(v["data"]["kind"], "text");
    }

    #[test]
    fn encoding_then_decoding_gives_the_same_envelope() {
        let env = sample(Event::MessageSent(MessageSent {
            message_id: Uuid::new_v4(),
            kind: MessageKind::File,
            content: String::new(),
            attachment: None,
            ..Default::default()
        }));
        assert_eq!(Envelope::decode(&env.encode()), Ok(Decoded::Known(env)));
    }

    #[test]
    fn unknown_types_decode_as_unknown_not_as_errors() {
        let bytes =
            br#"{"id":"0190a1b2-0000-7000-8000-000000000000","type":"room.pinned","version":1,
            "occurred_at":"2026-01-01T00:00:00Z","actor_id":null,"data":{"x":1}}"#;
        assert!(
            matches!(Envelope::decode(bytes), Ok(Decoded::Unknown(r)) if r.type_name == "room.pinned")
        );
    }

    #[test]
    fn a_future_version_of_a_known_type_is_an_error() {
        let bytes =
            br#"{"id":"0190a1b2-0000-7000-8000-000000000000","type":"room.deleted","version":9,
            "occurred_at":"2026-01-01T00:00:00Z","actor_id":null,"data":{}}"#;
        assert!(matches!(
            Envelope::decode(bytes),
            Err(DecodeError::FutureVersion { .. })
        ));
    }

    #[test]
    fn garbage_and_bad_data_are_errors() {
        assert!(matches!(
            Envelope::decode(b"not json"),
            Err(DecodeError::Malformed(_))
        ));
        let bytes =
            br#"{"id":"0190a1b2-0000-7000-8000-000000000000","type":"room.read","version":1,
            "occurred_at":"2026-01-01T00:00:00Z","actor_id":null,"data":{"user_id":"nope"}}"#;
        assert!(matches!(
            Envelope::decode(bytes),
            Err(DecodeError::BadData { .. })
        ));
    }

    #[test]
    fn redaction_hides_password_hashes() {
        let env = sample(Event::UserRegistered(UserRegistered {
            user_id: Uuid::new_v4(),
            username: "alice".into(),
            display_name: "Alice".into(),
            password_hash: "$argon2id$secret".into(),
            service_token_id: None,
        }));
        let shown = serde_json::to_string(&env.to_raw().redacted()).unwrap();
        assert!(!shown.contains("argon2"));
        assert!(shown.contains("[redacted]"));
    }
}
