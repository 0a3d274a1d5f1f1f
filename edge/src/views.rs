//! The JSON shapes of API.md's `user`, `room`, `invite` and `message`, shared by the command
//! side (built from folded state) and the query side (built from read-model rows), and the
//! answers of the commands. Their schemas in the OpenAPI description are derived from these
//! types, so the description is what the handlers return.

use chrono::{DateTime, Utc};
use natter_events::catalogue::{Attachment, MessageKind, MessageSent, RoomKind, Visibility};
use natter_events::room::Room;
use natter_events::user::User;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoomView {
    pub id: Uuid,
    pub name: String,
    pub visibility: Visibility,
    pub kind: RoomKind,
    pub owner_id: Uuid,
    pub max_members: u32,
    pub member_count: u32,
    pub created_at: DateTime<Utc>,
}

impl From<&Room> for RoomView {
    fn from(r: &Room) -> Self {
        RoomView {
            id: r.id,
            name: r.name.clone(),
            visibility: r.visibility,
            kind: r.kind,
            owner_id: r.owner_id,
            max_members: r.max_members,
            member_count: r.member_count(),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InviteView {
    /// The secret token; shown only in the response that created the invite.
    pub token: String,
    pub room_id: Uuid,
    pub invitee_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub max_uses: Option<u32>,
    pub uses: u32,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub room_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub kind: MessageKind,
    pub content: String,
    pub attachment: Option<Attachment>,
    pub position: u64,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

impl MessageView {
    /// A message as sent by `sender_id` at `created_at`, stored at `position`: neither edited
    /// nor deleted. Both sides build it here, the command side from what it appended and the
    /// query side from a read-model row (which then sets `edited_at` and `deleted`).
    pub fn new(
        room_id: Uuid,
        sender_id: Option<Uuid>,
        sent: MessageSent,
        position: u64,
        created_at: DateTime<Utc>,
    ) -> Self {
        MessageView {
            id: sent.message_id,
            room_id,
            sender_id,
            kind: sent.kind,
            content: sent.content,
            attachment: sent.attachment,
            position,
            created_at,
            edited_at: None,
            deleted: false,
        }
    }
}

/// What a command that changes one thing answers: where it left the log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Positioned {
    /// The position of the event appended, or of the state found already satisfied.
    pub position: u64,
}

/// `{room, position}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoomAnswer {
    pub room: RoomView,
    pub position: u64,
}

/// `{message, position}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageAnswer {
    pub message: MessageView,
    pub position: u64,
}

/// `{invite, position}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InviteAnswer {
    pub invite: InviteView,
    pub position: u64,
}

/// A user with a login token: registration, login, `POST /users`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionAnswer {
    pub user: UserView,
    /// A login token (JWT) for `user`.
    pub token: String,
    /// Absent for a login, which appends nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
}
