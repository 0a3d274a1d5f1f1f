//! What a caller may do to a room: [`decide`] turns a [`Command`] into at most one event, on
//! the room's folded state. Pure: the caller puts `now` and fresh ids into the command. One
//! event per command means no append ever needs multi-message atomicity.
//!
//! Over 400 lines on purpose: every command and its rule sit together in one flat `match`,
//! so the room's rules read in one place.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::state::{InviteGone, Room};
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

/// Decides what `command` does to `room` (`None`: it does not exist yet). `Ok(None)` means the
/// command is already satisfied and nothing needs to be appended.
pub fn decide(room: Option<&Room>, command: &Command) -> Result<Option<Event>, DomainError> {
    let Command { actor, now, action } = command;
    let (actor, now) = (*actor, *now);
    // Every command but these two needs a room the actor may see.
    let visible = || {
        room.filter(|r| r.visible_to(actor, now))
            .ok_or(DomainError::RoomNotFound)
    };
    // The owner's controls, and leaving, are for group rooms.
    let group = |room: &'_ Room| {
        if room.kind == RoomKind::Group {
            Ok(())
        } else {
            Err(DomainError::NotAGroup)
        }
    };
    let owned = || {
        let room = visible()?;
        group(room)?;
        if room.owner_id == actor && room.is_member(actor) {
            Ok(room)
        } else {
            Err(DomainError::NotOwner)
        }
    };
    let membered = || {
        let room = visible()?;
        if room.is_member(actor) {
            Ok(room)
        } else {
            Err(DomainError::NotAMember)
        }
    };
    match action {
        RoomCommand::Create {
            name,
            visibility,
            kind,
            max_members,
        } => {
            if room.is_some() {
                return Err(DomainError::RoomExists);
            }
            Ok(Some(Event::RoomCreated(RoomCreated {
                name: name.clone(),
                visibility: *visibility,
                kind: *kind,
                max_members: *max_members,
                owner_id: actor,
                with_user_id: None,
            })))
        }
        // An invite link names its room through its token, so its holder need not see the
        // room.
        RoomCommand::AcceptInvite { token_hash } => {
            let room = room
                .filter(|r| !r.deleted)
                .ok_or(DomainError::InviteNotFound)?;
            let invite = room
                .invite_by_token_hash(token_hash)
                .ok_or(DomainError::InviteNotFound)?;
            invite.usable(now)?;
            if invite.invitee_id.is_some_and(|id| id != actor) {
                return Err(DomainError::InviteForAnotherUser);
            }
            if room.is_member(actor) {
                return Ok(None);
            }
            if room.member_count() >= room.max_members {
                return Err(DomainError::RoomFull);
            }
            Ok(Some(joined(room, actor, Some(invite.id))))
        }
        RoomCommand::OpenDirect { with } => match room {
            Some(room) if room.kind == RoomKind::Direct && room.is_member(actor) => Ok(None),
            Some(_) => Err(DomainError::RoomNotFound),
            None => Ok(Some(Event::RoomCreated(RoomCreated {
                name: String::new(),
                visibility: Visibility::Private,
                kind: RoomKind::Direct,
                max_members: 2,
                owner_id: actor,
                with_user_id: Some(*with),
            }))),
        },
        RoomCommand::Match => match room {
            None => Ok(Some(Event::RoomCreated(RoomCreated {
                name: String::new(),
                visibility: Visibility::Private,
                kind: RoomKind::Pair,
                max_members: 2,
                owner_id: actor,
                with_user_id: None,
            }))),
            Some(room) if room.kind != RoomKind::Pair => Err(DomainError::RoomNotFound),
            // Still waiting here: the same room.
            Some(room) if !room.deleted && room.is_member(actor) && room.member_count() == 1 => {
                Ok(None)
            }
            Some(room) if room.deleted || room.member_count() != 1 => Err(DomainError::PairTaken),
            Some(room) => Ok(Some(Event::MemberJoined(MemberJoined {
                user_id: actor,
                role: Role::Member,
                invite: None,
                matched_with: room.members.keys().next().copied(),
            }))),
        },
        RoomCommand::Update {
            name,
            visibility,
            max_members,
        } => {
            let room = owned()?;
            if max_members.is_some_and(|m| m < room.member_count()) {
                return Err(DomainError::BelowMemberCount);
            }
            // Only what changes goes into the event; a change to nothing appends nothing.
            let update = RoomUpdated {
                name: name.clone().filter(|n| *n != room.name),
                visibility: visibility.filter(|v| *v != room.visibility),
                max_members: max_members.filter(|m| *m != room.max_members),
            };
            if update == RoomUpdated::default() {
                return Ok(None);
            }
            Ok(Some(Event::RoomUpdated(update)))
        }
        RoomCommand::Delete => {
            owned()?;
            Ok(Some(Event::RoomDeleted(RoomDeleted {})))
        }
        RoomCommand::RemoveMember { user_id } => {
            let room = owned()?;
            if !room.is_member(*user_id) {
                return Err(DomainError::MemberNotFound);
            }
            Ok(Some(Event::MemberRemoved(MemberRemoved {
                user_id: *user_id,
            })))
        }
        RoomCommand::Join => {
            let room = visible()?;
            if room.is_member(actor) {
                return Ok(None);
            }
            if room.kind != RoomKind::Group {
                return Err(DomainError::NotJoinable);
            }
            if room.member_count() >= room.max_members {
                return Err(DomainError::RoomFull);
            }
            // A personal invite is used when there is one, public room or not.
            let invite = room.invite_for(actor, now).map(|i| i.id);
            Ok(Some(joined(room, actor, invite)))
        }
        RoomCommand::Leave => {
            let room = visible()?;
            // Leaving a pair ends it for both.
            if room.kind == RoomKind::Pair && room.is_member(actor) {
                return Ok(Some(Event::RoomDeleted(RoomDeleted {})));
            }
            if room.is_member(actor) {
                group(room)?;
            }
            let member = room.members.get(&actor).ok_or(DomainError::NotJoined)?;
            let new_owner_id = if member.role == Role::Owner {
                room.members
                    .iter()
                    .filter(|(id, _)| **id != actor)
                    .min_by_key(|(_, m)| m.order)
                    .map(|(id, _)| *id)
            } else {
                None
            };
            Ok(Some(Event::MemberLeft(MemberLeft {
                user_id: actor,
                new_owner_id,
            })))
        }
        RoomCommand::CreateInvite {
            invite_id,
            token_hash,
            invitee_id,
            expires_at,
            max_uses,
        } => {
            let room = owned()?;
            if invitee_id.is_some_and(|id| room.is_member(id)) {
                return Err(DomainError::AlreadyMember);
            }
            Ok(Some(Event::InviteCreated(InviteCreated {
                invite_id: *invite_id,
                invitee_id: *invitee_id,
                expires_at: *expires_at,
                max_uses: *max_uses,
                token_hash: token_hash.clone(),
            })))
        }
        RoomCommand::RevokeInvite { token_hash } => {
            let room = owned()?;
            let invite = room
                .invite_by_token_hash(token_hash)
                .ok_or(DomainError::InviteNotFound)?;
            if invite.revoked {
                return Ok(None);
            }
            Ok(Some(Event::InviteRevoked(InviteRevoked {
                invite_id: invite.id,
            })))
        }
        RoomCommand::SendMessage(message) => {
            let room = membered()?;
            let live = |id: &Uuid| room.messages.get(id).filter(|m| !m.deleted);
            if message.reply_to.is_some_and(|id| live(&id).is_none()) {
                return Err(DomainError::BadReplyTo);
            }
            // Threads are one level deep: a root is a message of the main timeline.
            if message
                .thread_id
                .is_some_and(|id| live(&id).is_none_or(|m| m.thread_id.is_some()))
            {
                return Err(DomainError::BadThreadRoot);
            }
            if !message.mentions.iter().all(|u| room.is_member(*u)) {
                return Err(DomainError::MentionsNonMember);
            }
            Ok(Some(Event::MessageSent(message.clone())))
        }
        RoomCommand::Broadcast(message) => {
            room.filter(|r| !r.deleted)
                .ok_or(DomainError::RoomNotFound)?;
            Ok(Some(Event::MessageSent(MessageSent {
                kind: MessageKind::System,
                ..message.clone()
            })))
        }
        RoomCommand::EditMessage {
            message_id,
            content,
        } => {
            let room = membered()?;
            let message = room
                .messages
                .get(message_id)
                .ok_or(DomainError::MessageNotFound)?;
            if message.sender_id != Some(actor) {
                return Err(DomainError::NotTheSender);
            }
            if message.deleted {
                return Err(DomainError::MessageDeleted);
            }
            Ok(Some(Event::MessageEdited(MessageEdited {
                message_id: *message_id,
                content: content.clone(),
            })))
        }
        RoomCommand::DeleteMessage { message_id } => {
            let room = membered()?;
            let message = room
                .messages
                .get(message_id)
                .ok_or(DomainError::MessageNotFound)?;
            if message.sender_id != Some(actor) && room.owner_id != actor {
                return Err(DomainError::NotSenderOrOwner);
            }
            if message.deleted {
                return Ok(None);
            }
            Ok(Some(Event::MessageDeleted(MessageDeleted {
                message_id: *message_id,
            })))
        }
        RoomCommand::React { message_id, emoji } | RoomCommand::Unreact { message_id, emoji } => {
            let room = membered()?;
            let message = room
                .messages
                .get(message_id)
                .ok_or(DomainError::MessageNotFound)?;
            let adding = matches!(action, RoomCommand::React { .. });
            let has = message.has_reaction(emoji, actor);
            if adding == has {
                return Ok(None);
            }
            // Taking a reaction back stays possible after a deletion; adding one does not.
            if adding && message.deleted {
                return Err(DomainError::MessageDeleted);
            }
            let reaction = Reaction {
                message_id: *message_id,
                emoji: emoji.clone(),
                user_id: actor,
            };
            Ok(Some(if adding {
                Event::ReactionAdded(reaction)
            } else {
                Event::ReactionRemoved(reaction)
            }))
        }
        RoomCommand::MarkRead { up_to_position } => {
            let room = membered()?;
            let current = room.read_markers.get(&actor).copied().unwrap_or(0);
            if *up_to_position <= current {
                return Ok(None);
            }
            Ok(Some(Event::RoomRead(RoomRead {
                user_id: actor,
                up_to_position: *up_to_position,
            })))
        }
    }
}

/// `user_id` joins `room`. The first to join a room everyone has left becomes its owner, so
/// that a room with members always has one.
fn joined(room: &Room, user_id: Uuid, invite: Option<Uuid>) -> Event {
    let role = if room.members.is_empty() {
        Role::Owner
    } else {
        Role::Member
    };
    Event::MemberJoined(MemberJoined {
        user_id,
        role,
        invite,
        matched_with: None,
    })
}
