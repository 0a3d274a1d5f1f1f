//! Read-model rows and their JSON shapes (the contract's `room`, `message`, `user`).

use chrono::{DateTime, Utc};
use natter_edge::ApiError;
use natter_edge::views::{MessageView, RoomView, UserView};
use natter_events::catalogue::MessageSent;
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use uuid::Uuid;

/// Parses a wire name stored as text (`"public"`, `"text"`, ...).
fn wire<T: DeserializeOwned>(s: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|e| ApiError::internal(anyhow::anyhow!("unknown stored value {s:?}: {e}")))
}

pub const ROOM_COLUMNS: &str = "r.id, r.name, r.visibility, r.kind, r.owner_id, r.max_members, r.member_count, r.created_at, r.created_position";

#[derive(sqlx::FromRow)]
pub struct RoomRow {
    pub id: Uuid,
    pub name: String,
    pub visibility: String,
    pub kind: String,
    pub owner_id: Uuid,
    pub max_members: i32,
    pub member_count: i32,
    pub created_at: DateTime<Utc>,
    pub created_position: i64,
}

impl RoomRow {
    pub fn view(&self) -> Result<RoomView, ApiError> {
        Ok(RoomView {
            id: self.id,
            name: self.name.clone(),
            visibility: wire(&self.visibility)?,
            kind: wire(&self.kind)?,
            owner_id: self.owner_id,
            max_members: self.max_members as u32,
            member_count: self.member_count as u32,
            created_at: self.created_at,
        })
    }
}

pub const MESSAGE_COLUMNS: &str = "x.position, x.id, x.room_id, x.sender_id, x.kind, x.content, x.attachment, x.created_at, x.edited_at, x.deleted";

#[derive(sqlx::FromRow)]
pub struct MessageRow {
    pub position: i64,
    pub id: Uuid,
    pub room_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub kind: String,
    pub content: String,
    pub attachment: Option<Json<natter_events::catalogue::Attachment>>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

impl MessageRow {
    pub fn view(&self) -> Result<MessageView, ApiError> {
        let sent = MessageSent {
            message_id: self.id,
            kind: wire(&self.kind)?,
            content: self.content.clone(),
            attachment: self.attachment.as_ref().map(|a| a.0.clone()),
        };
        Ok(MessageView {
            edited_at: self.edited_at,
            deleted: self.deleted,
            ..MessageView::new(
                self.room_id,
                self.sender_id,
                sent,
                self.position as u64,
                self.created_at,
            )
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    pub fn view(&self) -> UserView {
        UserView {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            created_at: self.created_at,
        }
    }
}

/// A database failure while serving a query: Postgres is unreachable or refused.
pub fn db_error(e: sqlx::Error) -> ApiError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            ApiError::unavailable(anyhow::Error::new(e).context("querying the read models"))
        }
        // Class 22 is "data exception": a parameter Postgres cannot take as given (the edge
        // refuses such input first; this keeps a missed case a 400 rather than a 500).
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
            ApiError::bad_request(format!("a parameter cannot be used: {}", db.message()))
        }
        e => ApiError::internal(anyhow::Error::new(e).context("querying the read models")),
    }
}
