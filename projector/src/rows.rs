//! The rows and patches a [`Batch`](crate::batch::Batch) folds events into: a row is written
//! whole (an entity created in the batch), a patch changes an entity written before it. One
//! type per read-model table (`migrations/`), in the order `apply.rs` writes them.

use chrono::{DateTime, Utc};
use natter_events::catalogue::Attachment;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub position: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoomRow {
    pub id: Uuid,
    pub name: String,
    pub visibility: &'static str,
    pub kind: &'static str,
    pub owner_id: Uuid,
    pub max_members: i32,
    pub created_at: DateTime<Utc>,
    pub created_position: i64,
    pub position: i64,
}

/// Changes to a room that existed before the batch (or was created in it: then they are
/// folded into its [`RoomRow`] instead).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomPatch {
    pub name: Option<String>,
    pub visibility: Option<&'static str>,
    pub max_members: Option<i32>,
    pub owner_id: Option<Uuid>,
    pub deleted: bool,
    pub last_message_position: Option<i64>,
    pub position: i64,
}

/// Where a member ends up after the batch.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Left or removed (the row goes).
    Gone,
    /// Joined in this batch (a fresh row), possibly with a role change and a marker since.
    Joined {
        role: &'static str,
        joined_at: DateTime<Utc>,
        joined_position: i64,
        marker: i64,
    },
    /// Already a member before the batch: a new role and/or a read marker.
    Existing {
        role: Option<&'static str>,
        marker: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct InviteRow {
    pub id: Uuid,
    pub room_id: Uuid,
    pub token_hash: String,
    pub invitee_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub revoked: bool,
    pub created_at: DateTime<Utc>,
    pub position: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvitePatch {
    pub uses: i32,
    pub revoked: bool,
    pub position: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub position: i64,
    pub id: Uuid,
    pub room_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub kind: &'static str,
    pub content: String,
    pub attachment: Option<Attachment>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub reply_to: Option<Uuid>,
    pub thread_id: Option<Uuid>,
    pub mentions: Vec<Uuid>,
}

/// A reaction's key: message, emoji, user.
pub type ReactionKey = (Uuid, String, Uuid);

/// An edit or deletion of a message written before the batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessagePatch {
    pub content: Option<String>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}
