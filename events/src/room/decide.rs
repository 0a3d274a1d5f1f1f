//! What a caller may do to a room: [`decide`] turns a [`Command`] into at most one event, on
//! the room's folded state. Pure: the caller puts `now` and fresh ids into the command. One
//! event per command means no append ever needs multi-message atomicity.
//!
//! The command types are in `command.rs`. Over 300 lines on purpose: every command and its
//! rule sit together in one flat `match`, so the room's rules read in one place.

use uuid::Uuid;

use super::command::{Command, DomainError, RoomCommand};
use super::state::Room;
use crate::catalogue::*;

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
