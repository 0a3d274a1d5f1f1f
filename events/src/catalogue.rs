//! The event catalogue: every fact natter records, with the wire names of the API.
//!
//! Wire names never change. A change to a payload's shape bumps that type's version in
//! [`Event::version`] and adds an upcaster in `envelope.rs`; the log itself is never rewritten.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Whether non-members can find and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Private,
}

/// What a room is for: an ordinary group, a one-to-one direct room, or a matched pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    Group,
    Direct,
    Pair,
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Member,
}

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    #[default]
    Text,
    Image,
    Video,
    File,
    /// Sent by an operator through the admin API, not by a member.
    System,
}

/// A file attached to a message; natter stores the reference, not the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    pub url: String,
    pub name: String,
    pub mime: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRegistered {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    /// Argon2 PHC string. Registration is a single event (it is also the username claim),
    /// so the initial credentials travel here; history and audit outputs redact it. Empty
    /// for a user an app created with a service token: they have no password.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_hash: String,
    /// The service token that created this user (`POST /users`), who signs in through that
    /// app rather than with a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_token_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserUpdated {
    pub user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CredentialsSet {
    pub user_id: Uuid,
    /// Argon2 PHC string; redacted in every output.
    pub password_hash: String,
    /// A new display name changed in the same request (one event per command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoomCreated {
    pub name: String,
    pub visibility: Visibility,
    pub kind: RoomKind,
    pub max_members: u32,
    pub owner_id: Uuid,
    /// The other member of a `direct` room, a member from its creation on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_user_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct RoomUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct RoomDeleted {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberJoined {
    pub user_id: Uuid,
    pub role: Role,
    /// The invite this join used, if any (it counts towards the invite's `max_uses`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<Uuid>,
    /// In a `pair` room, the user who waited there and is now matched with this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_with: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberLeft {
    pub user_id: Uuid,
    /// When the owner leaves a room that still has members, ownership passes to the
    /// longest-standing member, named here so projections need no arithmetic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_owner_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberRemoved {
    pub user_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InviteCreated {
    pub invite_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitee_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    /// `None`: unlimited uses until expiry or revocation.
    pub max_uses: Option<u32>,
    /// SHA-256 (hex) of the invite token; the token itself is never stored.
    pub token_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InviteRevoked {
    pub invite_id: Uuid,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageSent {
    pub message_id: Uuid,
    pub kind: MessageKind,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// A quoted reply: the message it answers (of the same room; it may be in a thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Uuid>,
    /// A reply inside the thread of this root message (of the same room's main timeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Uuid>,
    /// Members of the room the message mentions, each once, fixed when it is sent (an edit
    /// changes only the content).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<Uuid>,
}

impl MessageSent {
    /// Who sent it, given the envelope's actor: nobody for a `system` message (the actor is
    /// the operator who broadcast it, kept for auditors).
    pub fn sender(&self, actor_id: Option<Uuid>) -> Option<Uuid> {
        if self.kind == MessageKind::System {
            None
        } else {
            actor_id
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageEdited {
    pub message_id: Uuid,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageDeleted {
    pub message_id: Uuid,
}

/// A member's reaction to a message, added or taken back (`message.reaction_added`,
/// `message.reaction_removed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reaction {
    pub message_id: Uuid,
    /// One emoji (a grapheme cluster) or a `:short_name:`.
    pub emoji: String,
    pub user_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoomRead {
    pub user_id: Uuid,
    pub up_to_position: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenIssued {
    pub token_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the token may do.
    #[serde(default)]
    pub role: TokenRole,
    /// SHA-256 (hex) of the token; the token itself is shown once and never stored.
    /// Redacted in every output all the same.
    #[serde(default)]
    pub token_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API token's rights: a `service` creates users and mints their tokens; an `admin` may
/// also do all an operator may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    #[default]
    Service,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRevoked {
    pub token_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

macro_rules! wire_str {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The wire name, as stored in read models.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
        }
    };
}
wire_str!(Visibility { Public => "public", Private => "private" });
wire_str!(RoomKind { Group => "group", Direct => "direct", Pair => "pair" });
wire_str!(Role { Owner => "owner", Member => "member" });
wire_str!(TokenRole { Service => "service", Admin => "admin" });
wire_str!(MessageKind { Text => "text", Image => "image", Video => "video", File => "file", System => "system" });

/// Every event type natter writes. The serde tag is the wire `type`, the content its `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    #[serde(rename = "user.registered")]
    UserRegistered(UserRegistered),
    #[serde(rename = "user.updated")]
    UserUpdated(UserUpdated),
    #[serde(rename = "user.credentials_set")]
    CredentialsSet(CredentialsSet),
    #[serde(rename = "room.created")]
    RoomCreated(RoomCreated),
    #[serde(rename = "room.updated")]
    RoomUpdated(RoomUpdated),
    #[serde(rename = "room.deleted")]
    RoomDeleted(RoomDeleted),
    #[serde(rename = "room.member_joined")]
    MemberJoined(MemberJoined),
    #[serde(rename = "room.member_left")]
    MemberLeft(MemberLeft),
    #[serde(rename = "room.member_removed")]
    MemberRemoved(MemberRemoved),
    #[serde(rename = "room.invite_created")]
    InviteCreated(InviteCreated),
    #[serde(rename = "room.invite_revoked")]
    InviteRevoked(InviteRevoked),
    #[serde(rename = "message.sent")]
    MessageSent(MessageSent),
    #[serde(rename = "message.edited")]
    MessageEdited(MessageEdited),
    #[serde(rename = "message.deleted")]
    MessageDeleted(MessageDeleted),
    #[serde(rename = "message.reaction_added")]
    ReactionAdded(Reaction),
    #[serde(rename = "message.reaction_removed")]
    ReactionRemoved(Reaction),
    #[serde(rename = "room.read")]
    RoomRead(RoomRead),
    #[serde(rename = "token.issued")]
    TokenIssued(TokenIssued),
    #[serde(rename = "token.revoked")]
    TokenRevoked(TokenRevoked),
}

/// The wire type names this build understands, each with its current payload version.
pub const CATALOGUE: &[(&str, u32)] = &[
    ("user.registered", 1),
    ("user.updated", 1),
    ("user.credentials_set", 1),
    ("room.created", 1),
    ("room.updated", 1),
    ("room.deleted", 1),
    ("room.member_joined", 1),
    ("room.member_left", 1),
    ("room.member_removed", 1),
    ("room.invite_created", 1),
    ("room.invite_revoked", 1),
    ("message.sent", 1),
    ("message.edited", 1),
    ("message.deleted", 1),
    ("message.reaction_added", 1),
    ("message.reaction_removed", 1),
    ("room.read", 1),
    ("token.issued", 1),
    ("token.revoked", 1),
];

impl Event {
    /// The wire `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::UserRegistered(_) => "user.registered",
            Event::UserUpdated(_) => "user.updated",
            Event::CredentialsSet(_) => "user.credentials_set",
            Event::RoomCreated(_) => "room.created",
            Event::RoomUpdated(_) => "room.updated",
            Event::RoomDeleted(_) => "room.deleted",
            Event::MemberJoined(_) => "room.member_joined",
            Event::MemberLeft(_) => "room.member_left",
            Event::MemberRemoved(_) => "room.member_removed",
            Event::InviteCreated(_) => "room.invite_created",
            Event::InviteRevoked(_) => "room.invite_revoked",
            Event::MessageSent(_) => "message.sent",
            Event::MessageEdited(_) => "message.edited",
            Event::MessageDeleted(_) => "message.deleted",
            Event::ReactionAdded(_) => "message.reaction_added",
            Event::ReactionRemoved(_) => "message.reaction_removed",
            Event::RoomRead(_) => "room.read",
            Event::TokenIssued(_) => "token.issued",
            Event::TokenRevoked(_) => "token.revoked",
        }
    }

    /// The payload version this build writes for this type.
    pub fn version(&self) -> u32 {
        current_version(self.type_name()).unwrap_or(1)
    }

    /// Whether the payload holds a secret (a password hash) that outputs must redact and the
    /// websocket must never carry.
    pub fn carries_credentials(type_name: &str) -> bool {
        matches!(
            type_name,
            "user.registered" | "user.credentials_set" | "token.issued"
        )
    }
}

/// The current payload version of a known type, `None` for a type this build does not know.
pub fn current_version(type_name: &str) -> Option<u32> {
    CATALOGUE
        .iter()
        .find(|(name, _)| *name == type_name)
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_match_the_wire_names() {
        for v in [Visibility::Public, Visibility::Private] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for k in [RoomKind::Group, RoomKind::Direct, RoomKind::Pair] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for r in [Role::Owner, Role::Member] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for m in [
            MessageKind::Text,
            MessageKind::Image,
            MessageKind::Video,
            MessageKind::File,
            MessageKind::System,
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }

    #[test]
    fn every_event_type_is_in_the_catalogue() {
        let event = Event::RoomDeleted(RoomDeleted {});
        assert_eq!(current_version(event.type_name()), Some(1));
        assert_eq!(CATALOGUE.len(), 19);
    }
}
