//! The websocket protocol as an AsyncAPI 3.0 document, served at `/api/v1/asyncapi.json`.
//! Its schemas are derived from the types the gateway parses and writes
//! ([`ClientOp`], [`ServerFrame`], and what they hold), one message per op and per frame
//! type, so the document says what the code does. The close codes come from
//! [`CLOSE_CODES`].

use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use crate::protocol::{CLOSE_CODES, ClientOp, ServerFrame};

/// Every schema `T` needs, itself included, as JSON.
fn schemas_of<T: ToSchema>(out: &mut Map<String, Value>) {
    let mut found: Vec<(String, RefOr<Schema>)> = Vec::new();
    T::schemas(&mut found);
    found.push((T::name().into_owned(), T::schema()));
    for (name, schema) in found {
        out.insert(
            name,
            serde_json::to_value(schema).expect("schemas serialize"),
        );
    }
}

/// Splits a tagged enum's `oneOf` into one named schema per variant: `(tag value, schema)`.
fn variants(schema: &Value, tag: &str) -> Vec<(String, Value)> {
    schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|variant| {
            // A variant with fields is `allOf` [fields, tag] or an object with the tag.
            let find_tag = |v: &Value| v["properties"][tag]["enum"][0].as_str().map(str::to_string);
            let name = find_tag(variant)
                .or_else(|| variant["allOf"].as_array()?.iter().find_map(find_tag))?;
            Some((name, variant.clone()))
        })
        .collect()
}

/// The AsyncAPI document.
pub fn document() -> Value {
    let mut schemas = Map::new();
    schemas_of::<ClientOp>(&mut schemas);
    schemas_of::<ServerFrame>(&mut schemas);
    let mut messages = Map::new();
    let mut sent = Vec::new();
    let mut received = Vec::new();
    for (kind, tag, prefix, refs) in [
        ("ClientOp", "op", "op", &mut sent),
        ("ServerFrame", "type", "frame", &mut received),
    ] {
        for (name, schema) in variants(&schemas[kind], tag) {
            let schema_name = format!("{kind}_{name}");
            let message_name = format!("{prefix}_{name}");
            let summary = schema["description"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            schemas.insert(schema_name.clone(), schema);
            messages.insert(
                message_name.clone(),
                json!({
                    "name": name,
                    "title": format!("{tag}: {name}"),
                    "summary": summary,
                    "contentType": "application/json",
                    "payload": { "$ref": format!("#/components/schemas/{schema_name}") },
                }),
            );
            refs.push(json!({ "$ref": format!("#/channels/ws/messages/{message_name}") }));
        }
    }
    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|name| {
            (
                name.clone(),
                json!({ "$ref": format!("#/components/messages/{name}") }),
            )
        })
        .collect();
    let close_codes: Vec<Value> = CLOSE_CODES
        .iter()
        .map(|(code, name, meaning, then)| {
            json!({ "code": code, "name": name, "meaning": meaning, "client_should": then })
        })
        .collect();
    let close_text: String = CLOSE_CODES
        .iter()
        .map(|(code, _, meaning, then)| format!("- `{code}` {meaning}: {then}.\n"))
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "natter websocket",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Room events in order, without gaps, resumable, with typing, signals and \
                 presence alongside; `send` and `read` ops are the REST commands. Text frames, \
                 one JSON object each. Per room, event positions strictly increase and each \
                 frame's `prev_position` is the room's previous event, so a client can prove \
                 it missed nothing; on reconnect, resubscribe with `since` = the last position \
                 seen and the `epoch` of the `subscribed` frame.\n\nA connection's `send` \
                 ops to one room are stored in the order it sent them (pipelined; concurrent \
                 across rooms). After a send is refused for now (`rate_limited`, \
                 `unavailable`, `in_progress`), the sends behind it to that room are refused \
                 the same way for up to 2 s unless the refused one is sent again first: resend \
                 the pending ones in order after `retry_after`. No order is promised across \
                 connections or between REST and the socket.\n\nClose codes:\n{close_text}\
                 - any other 4000-4499: reconnect with backoff and resume."
            ),
        },
        "servers": {
            "natter": {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "pathname": "/api/v1/ws",
                "description": "Authenticate with the first frame, `{\"op\": \"auth\", \"token\": <login token>}` \
                    (sent within 10 s; no URL, proxy log or browser console shows the token), or with \
                    `Authorization: Bearer <login token>` or `?token=` at the upgrade. A missing, invalid, \
                    expired or revoked token, or an API token, is not refused at the upgrade (a browser \
                    would see only 1006): the connection opens and closes at once with 4001 and the reason, \
                    so get a new token before reconnecting. 1013: the token could not be checked for now; \
                    reconnect with backoff.",
            }
        },
        "channels": {
            "ws": {
                "address": "/api/v1/ws",
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": { "type": "string", "description": "the login token, for clients that cannot set headers; better sent in the `auth` first frame, which no URL shows" }
                            }
                        }
                    }
                }
            }
        },
        "operations": {
            "sendOp": {
                "action": "send",
                "channel": { "$ref": "#/channels/ws" },
                "summary": "What a client sends.",
                "messages": sent,
            },
            "receiveFrame": {
                "action": "receive",
                "channel": { "$ref": "#/channels/ws" },
                "summary": "What the server sends.",
                "messages": received,
            }
        },
        "components": {
            "schemas": schemas,
            "messages": messages,
        },
        "x-natter-close-codes": close_codes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_op_and_frame_is_a_message_and_every_reference_resolves() {
        let doc = document();
        let messages = doc["components"]["messages"].as_object().unwrap();
        for op in [
            "subscribe",
            "unsubscribe",
            "typing",
            "signal",
            "send",
            "read",
            "ping",
            "auth",
        ] {
            assert!(messages.contains_key(&format!("op_{op}")), "op {op}");
        }
        for frame in [
            "subscribed",
            "reset",
            "event",
            "unsubscribed",
            "typing",
            "signal",
            "presence",
            "ack",
            "error",
            "pong",
        ] {
            assert!(
                messages.contains_key(&format!("frame_{frame}")),
                "frame {frame}"
            );
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let pointer = r.strip_prefix('#').expect("local references");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
        assert_eq!(
            doc["x-natter-close-codes"].as_array().unwrap().len(),
            CLOSE_CODES.len()
        );
    }
}
