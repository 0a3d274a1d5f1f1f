//! The room aggregate as a pure fold: [`decide`] turns a command into at most one event,
//! [`evolve`] applies an event. No IO, no clock: the caller puts `now` and fresh ids into the
//! command. One event per command means no append ever needs multi-message atomicity.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::catalogue::*;
use crate::envelope::Envelope;

/// A member of a room.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    /// Join order, to pick the longest-standing member as the next owner.
    pub order: u64,
}

/// An invite, as the room knows it (the token only as its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub id: Uuid,
    pub token_hash: String,
    pub invitee_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked: bool,
}

/// Why an invite can no longer be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteGone {
    Expired,
    Revoked,
    UsedUp,
}

impl Invite {
    /// `Ok` while the invite can still be used at `now`.
    pub fn usable(&self, now: DateTime<Utc>) -> Result<(), InviteGone> {
        if self.revoked {
            Err(InviteGone::Revoked)
        } else if now >= self.expires_at {
            Err(InviteGone::Expired)
        } else if self.max_uses.is_some_and(|max| self.uses >= max) {
            Err(InviteGone::UsedUp)
        } else {
            Ok(())
        }
    }
}

/// A room folded from its `meta` and `read` subjects.
#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    pub id: Uuid,
    pub name: String,
    pub visibility: Visibility,
    pub kind: RoomKind,
    pub owner_id: Uuid,
    pub max_members: u32,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
    pub members: HashMap<Uuid, Member>,
    pub invites: HashMap<Uuid, Invite>,
    pub read_markers: HashMap<Uuid, u64>,
    next_order: u64,
}

impl Room {
    pub fn is_member(&self, user: Uuid) -> bool {
        self.members.contains_key(&user)
    }

    pub fn member_count(&self) -> u32 {
        self.members.len() as u32
    }

    fn invite_for(&self, user: Uuid, now: DateTime<Utc>) -> Option<&Invite> {
        self.invites
            .values()
            .filter(|i| i.invitee_id == Some(user))
            .find(|i| i.usable(now).is_ok())
    }

    /// Whether `user` may know that the room exists: public rooms are visible to everyone,
    /// private ones to members and to users holding a usable personal invite.
    pub fn visible_to(&self, user: Uuid, now: DateTime<Utc>) -> bool {
        !self.deleted
            && (self.visibility == Visibility::Public
                || self.is_member(user)
                || self.invite_for(user, now).is_some())
    }

    pub fn invite_by_token_hash(&self, token_hash: &str) -> Option<&Invite> {
        self.invites.values().find(|i| i.token_hash == token_hash)
    }
}

/// What a caller asks of a room.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomCommand {
    Create {
        name: String,
        visibility: Visibility,
        kind: RoomKind,
        max_members: u32,
    },
    Join,
    Leave,
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
    SendMessage {
        message_id: Uuid,
        kind: MessageKind,
        content: String,
        attachment: Option<Attachment>,
    },
    MarkRead {
        up_to_position: u64,
    },
}

/// A command with who asks and when.
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
    #[error("this invite is for another user")]
    InviteForAnotherUser,
    #[error("the invite has expired")]
    InviteExpired,
    #[error("the invite was revoked")]
    InviteRevoked,
    #[error("the invite has been used up")]
    InviteUsedUp,
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

    if let RoomCommand::Create {
        name,
        visibility,
        kind,
        max_members,
    } = action
    {
        if room.is_some() {
            return Err(DomainError::RoomExists);
        }
        return Ok(Some(Event::RoomCreated(RoomCreated {
            name: name.clone(),
            visibility: *visibility,
            kind: *kind,
            max_members: *max_members,
            owner_id: actor,
        })));
    }

    // An invite link names its room through its token, so its holder need not see the room.
    if let RoomCommand::AcceptInvite { token_hash } = action {
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
        return Ok(Some(joined(room, actor, Some(invite.id))));
    }

    let room = room
        .filter(|r| r.visible_to(actor, now))
        .ok_or(DomainError::RoomNotFound)?;
    let is_owner = room.owner_id == actor && room.is_member(actor);

    match action {
        RoomCommand::Create { .. } | RoomCommand::AcceptInvite { .. } => {
            unreachable!("handled above")
        }
        RoomCommand::Join => {
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
            if !is_owner {
                return Err(DomainError::NotOwner);
            }
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
            if !is_owner {
                return Err(DomainError::NotOwner);
            }
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
        RoomCommand::SendMessage {
            message_id,
            kind,
            content,
            attachment,
        } => {
            if !room.is_member(actor) {
                return Err(DomainError::NotAMember);
            }
            Ok(Some(Event::MessageSent(MessageSent {
                message_id: *message_id,
                kind: *kind,
                content: content.clone(),
                attachment: attachment.clone(),
            })))
        }
        RoomCommand::MarkRead { up_to_position } => {
            if !room.is_member(actor) {
                return Err(DomainError::NotAMember);
            }
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
    })
}

/// Applies one event of this room to its state. Events of other aggregates, unknown kinds and
/// message events (which do not change the room) leave it as it is.
pub fn evolve(room: Option<Room>, envelope: &Envelope) -> Option<Room> {
    let at = envelope.occurred_at;
    if let Event::RoomCreated(c) = &envelope.event {
        let mut members = HashMap::new();
        members.insert(
            c.owner_id,
            Member {
                role: Role::Owner,
                joined_at: at,
                order: 0,
            },
        );
        return Some(Room {
            id: envelope.room_id.unwrap_or_default(),
            name: c.name.clone(),
            visibility: c.visibility,
            kind: c.kind,
            owner_id: c.owner_id,
            max_members: c.max_members,
            created_at: at,
            deleted: false,
            members,
            invites: HashMap::new(),
            read_markers: HashMap::new(),
            next_order: 1,
        });
    }
    let mut room = room?;
    match &envelope.event {
        Event::RoomUpdated(u) => {
            if let Some(name) = &u.name {
                room.name = name.clone();
            }
            if let Some(v) = u.visibility {
                room.visibility = v;
            }
            if let Some(m) = u.max_members {
                room.max_members = m;
            }
        }
        Event::RoomDeleted(_) => room.deleted = true,
        Event::MemberJoined(j) => {
            let order = room.next_order;
            room.next_order += 1;
            room.members.insert(
                j.user_id,
                Member {
                    role: j.role,
                    joined_at: at,
                    order,
                },
            );
            if j.role == Role::Owner {
                room.owner_id = j.user_id;
            }
            if let Some(invite) = j.invite.and_then(|id| room.invites.get_mut(&id)) {
                invite.uses += 1;
            }
        }
        Event::MemberLeft(MemberLeft {
            user_id,
            new_owner_id,
        }) => {
            room.members.remove(user_id);
            room.read_markers.remove(user_id);
            if let Some(owner) =
                new_owner_id.and_then(|id| room.members.get_mut(&id).map(|m| (id, m)))
            {
                owner.1.role = Role::Owner;
                room.owner_id = owner.0;
            }
        }
        Event::MemberRemoved(r) => {
            room.members.remove(&r.user_id);
            room.read_markers.remove(&r.user_id);
        }
        Event::InviteCreated(i) => {
            room.invites.insert(
                i.invite_id,
                Invite {
                    id: i.invite_id,
                    token_hash: i.token_hash.clone(),
                    invitee_id: i.invitee_id,
                    expires_at: i.expires_at,
                    max_uses: i.max_uses,
                    uses: 0,
                    revoked: false,
                },
            );
        }
        Event::InviteRevoked(r) => {
            if let Some(i) = room.invites.get_mut(&r.invite_id) {
                i.revoked = true;
            }
        }
        Event::RoomRead(r) => {
            let marker = room.read_markers.entry(r.user_id).or_default();
            *marker = (*marker).max(r.up_to_position);
        }
        _ => {}
    }
    Some(room)
}
