//! The JSON Schema of a public event: one variant per type of the catalogue, discriminated on
//! `type`, each with its payload's own schema as `data`, so that a generated client narrows
//! `data` by checking `type`. The OpenAPI and AsyncAPI documents both take it from here.

use std::borrow::Cow;

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;
use utoipa::{PartialSchema, ToSchema};

use crate::catalogue::*;
use crate::envelope::PublicEvent;

type Schemas = Vec<(String, RefOr<Schema>)>;

/// A payload type's schema name, and what adds its schema (and those it refers to).
struct Payload {
    wire: &'static str,
    name: fn() -> Cow<'static, str>,
    collect: fn(&mut Schemas),
}

macro_rules! payloads {
    ($(($wire:literal, $ty:ty)),* $(,)?) => {
        &[$(Payload {
            wire: $wire,
            name: <$ty as ToSchema>::name,
            collect: |out| {
                out.push((<$ty as ToSchema>::name().into_owned(), <$ty as PartialSchema>::schema()));
                <$ty as ToSchema>::schemas(out);
            },
        }),*]
    };
}

/// Every type of the catalogue with its payload (a test checks it against [`CATALOGUE`]).
const PAYLOADS: &[Payload] = payloads![
    ("user.registered", UserRegistered),
    ("user.updated", UserUpdated),
    ("user.credentials_set", CredentialsSet),
    ("room.created", RoomCreated),
    ("room.updated", RoomUpdated),
    ("room.deleted", RoomDeleted),
    ("room.member_joined", MemberJoined),
    ("room.member_left", MemberLeft),
    ("room.member_removed", MemberRemoved),
    ("room.invite_created", InviteCreated),
    ("room.invite_revoked", InviteRevoked),
    ("message.sent", MessageSent),
    ("message.edited", MessageEdited),
    ("message.deleted", MessageDeleted),
    ("message.reaction_added", Reaction),
    ("message.reaction_removed", Reaction),
    ("room.read", RoomRead),
    ("token.issued", TokenIssued),
    ("token.revoked", TokenRevoked),
];

/// The schema name of the event variant of `wire` (`message.sent` → `Event.message.sent`).
fn variant_name(wire: &str) -> String {
    format!("Event.{wire}")
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// One type's event: the envelope with `type` fixed and `data` of its payload.
fn variant(wire: &str, payload: &str) -> Value {
    json!({
        "type": "object",
        "description": format!("A `{wire}` event, with its position in the log."),
        "required": ["position", "id", "type", "version", "occurred_at", "actor_id", "data"],
        "properties": {
            "position": { "type": "integer", "format": "int64", "minimum": 1, "description": "The stream sequence." },
            "id": { "type": "string", "format": "uuid" },
            "type": { "type": "string", "enum": [wire] },
            "version": { "type": "integer", "format": "int32", "minimum": 1, "description": "The payload version of `data`." },
            "occurred_at": { "type": "string", "format": "date-time" },
            "actor_id": { "type": ["string", "null"], "format": "uuid", "description": "Who did it: a user, or an API token (for what a service did)." },
            "room_id": { "type": "string", "format": "uuid" },
            "data": reference(payload),
        }
    })
}

fn schema_of(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).expect("a well-formed schema")
}

impl PartialSchema for PublicEvent {
    fn schema() -> RefOr<Schema> {
        let variants: Vec<Value> = PAYLOADS
            .iter()
            .map(|p| reference(&variant_name(p.wire)))
            .collect();
        let mapping: serde_json::Map<String, Value> = PAYLOADS
            .iter()
            .map(|p| {
                let name = variant_name(p.wire);
                (
                    p.wire.to_string(),
                    json!(format!("#/components/schemas/{name}")),
                )
            })
            .collect();
        schema_of(json!({
            "description": "An event as clients and auditors see it: its envelope with its \
                `position` in the log, and `data` as its `type` says. Credentials are \
                redacted. More types may come: a client ignores a type it does not know.",
            "oneOf": variants,
            "discriminator": { "propertyName": "type", "mapping": mapping },
        }))
    }
}

impl ToSchema for PublicEvent {
    fn schemas(out: &mut Schemas) {
        for p in PAYLOADS {
            out.push((
                variant_name(p.wire),
                schema_of(variant(p.wire, &(p.name)())),
            ));
            (p.collect)(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_of_the_catalogue_has_a_schema_once() {
        let wires: Vec<&str> = PAYLOADS.iter().map(|p| p.wire).collect();
        let catalogue: Vec<&str> = CATALOGUE.iter().map(|(name, _)| *name).collect();
        assert_eq!(wires, catalogue);
    }

    #[test]
    fn the_schema_is_a_union_on_type_whose_data_is_the_payload() {
        let schema = serde_json::to_value(PublicEvent::schema()).unwrap();
        assert_eq!(schema["discriminator"]["propertyName"], "type");
        assert_eq!(
            schema["discriminator"]["mapping"]["message.sent"],
            "#/components/schemas/Event.message.sent"
        );
        let mut found = Vec::new();
        PublicEvent::schemas(&mut found);
        let sent = found
            .iter()
            .find(|(name, _)| name == "Event.message.sent")
            .map(|(_, s)| serde_json::to_value(s).unwrap())
            .expect("the message.sent variant");
        assert_eq!(sent["properties"]["type"]["enum"], json!(["message.sent"]));
        assert_eq!(
            sent["properties"]["data"]["$ref"],
            "#/components/schemas/MessageSent"
        );
        assert!(found.iter().any(|(name, _)| name == "MessageSent"));
        assert!(found.iter().any(|(name, _)| name == "Attachment"));
    }
}
