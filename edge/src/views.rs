//! The JSON shapes of the API's `user`, `room`, `invite` and `message`, shared by the command
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
    /// The message this one quotes (a reply in the main timeline, or inside a thread).
    #[serde(default)]
    pub reply_to: Option<Uuid>,
    /// The root of the thread this message replies in; null in the main timeline.
    #[serde(default)]
    pub thread_id: Option<Uuid>,
    /// Members the message mentions, as sent.
    #[serde(default)]
    pub mentions: Vec<Uuid>,
    /// On a thread's root with replies: the thread's summary; otherwise null.
    #[serde(default)]
    pub thread: Option<ThreadSummary>,
    /// Reactions, each emoji once, in the order first used; none on a deleted message.
    #[serde(default)]
    pub reactions: Vec<ReactionView>,
}

/// A thread's root carries its replies' summary (deleted replies left out).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ThreadSummary {
    pub reply_count: u64,
    pub last_reply_at: DateTime<Utc>,
    /// Who replied, in the order of their first reply, up to 10.
    pub participant_ids: Vec<Uuid>,
}

/// One emoji's reactions to a message.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ReactionView {
    pub emoji: String,
    pub count: u64,
    /// Who reacted with it, earliest first, up to 10.
    pub user_ids: Vec<Uuid>,
}

/// The most users a thread summary or a reaction names.
pub const MAX_NAMED_USERS: usize = 10;

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
            reply_to: sent.reply_to,
            thread_id: sent.thread_id,
            mentions: sent.mentions,
            thread: None,
            reactions: Vec::new(),
        }
    }
}

impl MessageView {
    /// Message `message_id` as the write side has folded `room` (with its `msg` subject),
    /// with `content` (the fold keeps none): its thread's summary and its reactions as the
    /// query side shows them.
    pub fn folded(room: &Room, message_id: Uuid, content: String) -> Option<Self> {
        let m = room.messages.get(&message_id)?;
        let sent = MessageSent {
            message_id,
            kind: m.kind,
            content,
            attachment: m.attachment.clone(),
            reply_to: m.reply_to,
            thread_id: m.thread_id,
            mentions: m.mentions.clone(),
        };
        let replies: Vec<_> = m
            .replies
            .iter()
            .filter_map(|id| room.messages.get(id))
            .filter(|r| !r.deleted)
            .collect();
        let thread = replies.iter().map(|r| r.created_at).max().map(|last| {
            let mut participant_ids = Vec::new();
            for sender in replies.iter().filter_map(|r| r.sender_id) {
                if participant_ids.len() < MAX_NAMED_USERS && !participant_ids.contains(&sender) {
                    participant_ids.push(sender);
                }
            }
            ThreadSummary {
                reply_count: replies.len() as u64,
                last_reply_at: last,
                participant_ids,
            }
        });
        let mut reactions: Vec<ReactionView> = Vec::new();
        for (emoji, user) in m.reactions.iter().filter(|_| !m.deleted) {
            match reactions.iter_mut().find(|r| r.emoji == *emoji) {
                Some(r) => {
                    r.count += 1;
                    if r.user_ids.len() < MAX_NAMED_USERS {
                        r.user_ids.push(*user);
                    }
                }
                None => reactions.push(ReactionView {
                    emoji: emoji.clone(),
                    count: 1,
                    user_ids: vec![*user],
                }),
            }
        }
        Some(MessageView {
            deleted: m.deleted,
            thread,
            reactions,
            ..MessageView::new(room.id, m.sender_id, sent, m.position, m.created_at)
        })
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
