//! Read-model rows and their JSON shapes (the contract's `room`, `message`, `user`).

use chrono::{DateTime, Utc};
use natter_edge::ApiError;
use natter_edge::views::{MessageView, ReactionView, RoomView, ThreadSummary, UserView};
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

/// A message row `x` with its thread summary (when it is a root with replies not deleted)
/// and its reactions (none once it is deleted), each from its own index.
pub const MESSAGE_COLUMNS: &str = "x.position, x.id, x.room_id, x.sender_id, x.kind, x.content, x.attachment, \
    x.created_at, x.edited_at, x.deleted, x.reply_to, x.thread_id, x.mentions, \
    (SELECT json_build_object('reply_count', count(*), 'last_reply_at', max(t.created_at), \
            'participant_ids', (SELECT COALESCE(array_agg(p.sender_id ORDER BY p.first), '{}') \
                FROM (SELECT t2.sender_id, min(t2.position) AS first FROM messages t2 \
                      WHERE t2.thread_id = x.id AND NOT t2.deleted AND t2.sender_id IS NOT NULL \
                      GROUP BY 1 ORDER BY 2 LIMIT 10) p)) \
     FROM messages t WHERE t.thread_id = x.id AND NOT t.deleted HAVING count(*) > 0) AS thread, \
    COALESCE((SELECT json_agg(json_build_object('emoji', g.emoji, 'count', g.n, 'user_ids', g.users) ORDER BY g.first) \
              FROM (SELECT emoji, count(*) AS n, min(position) AS first, \
                           (array_agg(user_id ORDER BY position))[1:10] AS users \
                    FROM reactions WHERE message_id = x.id GROUP BY emoji) g \
              WHERE NOT x.deleted), '[]') AS reactions";

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
    pub reply_to: Option<Uuid>,
    pub thread_id: Option<Uuid>,
    pub mentions: Vec<Uuid>,
    pub thread: Option<Json<ThreadSummary>>,
    pub reactions: Json<Vec<ReactionView>>,
}

impl MessageRow {
    pub fn view(&self) -> Result<MessageView, ApiError> {
        let sent = MessageSent {
            message_id: self.id,
            kind: wire(&self.kind)?,
            content: self.content.clone(),
            attachment: self.attachment.as_ref().map(|a| a.0.clone()),
            reply_to: self.reply_to,
            thread_id: self.thread_id,
            mentions: self.mentions.clone(),
        };
        Ok(MessageView {
            edited_at: self.edited_at,
            deleted: self.deleted,
            thread: self.thread.as_ref().map(|t| t.0.clone()),
            reactions: self.reactions.0.clone(),
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
