//! What a caller may ask of a room ([`RoomCommand`], carried with its actor and time in a
//! [`Command`]), which subjects each reads and what concurrency it needs ([`Concurrency`]),
//! and the rules it can break ([`DomainError`]). [`decide`](super::decide) applies them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::state::InviteGone;
use crate::catalogue::*;
use crate::subjects::RoomPart;

/// What a caller asks of a room.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomCommand {
    Create {
        name: String,
        visibility: Visibility,
        kind: RoomKind,
        max_members: u32,
    },
    /// The one `direct` room of the actor and `with`, created on first use.
    OpenDirect {
        with: Uuid,
    },
    /// Random 1:1 matching at one `pair` room (a slot of the matching queue): open it and
    /// wait, or join the user waiting there.
    Match,
    /// The owner changes the room's settings; a field left out stays as it is.
    Update {
        name: Option<String>,
        visibility: Option<Visibility>,
        max_members: Option<u32>,
    },
    /// The owner deletes the room: later commands find no room; the log keeps its history.
    Delete,
    Join,
    Leave,
    /// The owner removes another member.
    RemoveMember {
        user_id: Uuid,
    },
    CreateInvite {
        invite_id: Uuid,
        token_hash: String,
        invitee_id: Option<Uuid>,
        expires_at: DateTime<Utc>,
        max_uses: Option<u32>,
    },
    RevokeInvite {
        token_hash: String,
    },
    AcceptInvite {
        token_hash: String,
    },
    /// The message as it is to be sent (its content already checked by the edge).
    SendMessage(MessageSent),
    /// An operator's `system` message: for any room that exists, from no member.
    Broadcast(MessageSent),
    MarkRead {
        up_to_position: u64,
    },
    /// The sender changes a message's content.
    EditMessage {
        message_id: Uuid,
        content: String,
    },
    /// The sender or the owner deletes a message; the log keeps it.
    DeleteMessage {
        message_id: Uuid,
    },
    /// A member reacts to a message with `emoji` (already checked by the edge); reacting
    /// again with it changes nothing.
    React {
        message_id: Uuid,
        emoji: String,
    },
    /// A member takes a reaction back; one never made changes nothing.
    Unreact {
        message_id: Uuid,
        emoji: String,
    },
}

/// How an append of a command's event is kept consistent with the state it was decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// The append expects its subject's last event to be the one the decision saw (optimistic
    /// concurrency): a concurrent change makes it conflict, and the command is decided again.
    ExpectVersion,
    /// The append goes after whatever its subject holds (messages: their order is the
    /// log's). The decision reads another subject (membership), so it is made on state at
    /// least as current as the log when the command arrived.
    Barrier,
}

impl RoomCommand {
    /// The room subject its event goes to.
    pub fn part(&self) -> RoomPart {
        match self {
            RoomCommand::SendMessage(_)
            | RoomCommand::Broadcast(_)
            | RoomCommand::EditMessage { .. }
            | RoomCommand::DeleteMessage { .. }
            | RoomCommand::React { .. }
            | RoomCommand::Unreact { .. } => RoomPart::Msg,
            RoomCommand::MarkRead { .. } => RoomPart::Read,
            _ => RoomPart::Meta,
        }
    }

    /// The subjects whose events the decision needs folded into the room.
    pub fn reads(&self) -> &'static [RoomPart] {
        match self {
            RoomCommand::EditMessage { .. }
            | RoomCommand::DeleteMessage { .. }
            | RoomCommand::React { .. }
            | RoomCommand::Unreact { .. } => &[RoomPart::Meta, RoomPart::Msg],
            // A reply names a message, which the decision must see.
            RoomCommand::SendMessage(m) if m.reply_to.is_some() || m.thread_id.is_some() => {
                &[RoomPart::Meta, RoomPart::Msg]
            }
            _ => match self.part() {
                RoomPart::Read => &[RoomPart::Meta, RoomPart::Read],
                RoomPart::Meta | RoomPart::Msg => &[RoomPart::Meta],
            },
        }
    }

    /// How its append is guarded.
    pub fn concurrency(&self) -> Concurrency {
        match self {
            RoomCommand::SendMessage(_) | RoomCommand::Broadcast(_) => Concurrency::Barrier,
            // An edit and a deletion of one message must not both pass, nor two identical
            // reactions: they expect the `msg` subject as they saw it (a concurrent send
            // makes them decide again).
            _ => Concurrency::ExpectVersion,
        }
    }
}

/// A command with who asks and when. `now` is also the `occurred_at` of the event it
/// appends: one clock reading per command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub actor: Uuid,
    pub now: DateTime<Utc>,
    pub action: RoomCommand,
}

/// Why a room refuses a command. Messages are lower-case; the HTTP edge maps each variant to
/// its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("room not found")]
    RoomNotFound,
    #[error("room already exists")]
    RoomExists,
    #[error("you are not a member of this room")]
    NotAMember,
    #[error("you are not a member of this room")]
    NotJoined,
    #[error("only the room owner may do this")]
    NotOwner,
    #[error("this room cannot be joined directly")]
    NotJoinable,
    #[error("the room is full")]
    RoomFull,
    #[error("the user is already a member of this room")]
    AlreadyMember,
    #[error("invite not found")]
    InviteNotFound,
    #[error("the user is not a member of this room")]
    MemberNotFound,
    #[error("max_members cannot be below the room's current member count")]
    BelowMemberCount,
    #[error("message not found")]
    MessageNotFound,
    #[error("a direct room has no invites, settings or removals, and cannot be left")]
    NotAGroup,
    /// The pair room is matched or ended: the caller moves on to the next one.
    #[error("this pair room is taken")]
    PairTaken,
    #[error("only the sender may edit a message")]
    NotTheSender,
    #[error("only the sender or the room owner may delete a message")]
    NotSenderOrOwner,
    #[error("the message was deleted")]
    MessageDeleted,
    #[error("this invite is for another user")]
    InviteForAnotherUser,
    #[error("the invite has expired")]
    InviteExpired,
    #[error("the invite was revoked")]
    InviteRevoked,
    #[error("the invite has been used up")]
    InviteUsedUp,
    #[error("reply_to must name a message of this room that is not deleted")]
    BadReplyTo,
    #[error("thread_id must name a message of this room's main timeline that is not deleted")]
    BadThreadRoot,
    #[error("mentions may name only members of the room")]
    MentionsNonMember,
}

impl From<InviteGone> for DomainError {
    fn from(g: InviteGone) -> Self {
        match g {
            InviteGone::Expired => DomainError::InviteExpired,
            InviteGone::Revoked => DomainError::InviteRevoked,
            InviteGone::UsedUp => DomainError::InviteUsedUp,
        }
    }
}
