//! A room's state, folded from its `meta` and `read` events by [`evolve`]. Pure: no IO, no
//! clock.

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

/// A message as the room's rules need it (folded only where the `msg` subject is: a room
/// cached for an edit or a deletion).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub sender_id: Option<Uuid>,
    pub kind: MessageKind,
    pub attachment: Option<Attachment>,
    pub created_at: DateTime<Utc>,
    /// The position of its `message.sent` (set by the fold that knows positions).
    pub position: u64,
    pub deleted: bool,
    pub reply_to: Option<Uuid>,
    /// The root of the thread it replies in, if it is a thread reply.
    pub thread_id: Option<Uuid>,
    pub mentions: Vec<Uuid>,
    /// On a thread's root: its replies, in log order.
    pub replies: Vec<Uuid>,
    /// Who reacted with what, in the order reacted.
    pub reactions: Vec<(String, Uuid)>,
}

impl Message {
    pub fn has_reaction(&self, emoji: &str, user: Uuid) -> bool {
        self.reactions.iter().any(|(e, u)| e == emoji && *u == user)
    }
}

/// A room folded from its `meta` and `read` subjects (and `msg`, where loaded).
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
    /// Messages, when the room's `msg` subject is folded too.
    pub messages: HashMap<Uuid, Message>,
    next_order: u64,
}

impl Room {
    pub fn is_member(&self, user: Uuid) -> bool {
        self.members.contains_key(&user)
    }

    pub fn member_count(&self) -> u32 {
        self.members.len() as u32
    }

    pub(crate) fn invite_for(&self, user: Uuid, now: DateTime<Utc>) -> Option<&Invite> {
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
        // A direct room holds its two users from the start.
        if let Some(with) = c.with_user_id {
            members.insert(
                with,
                Member {
                    role: Role::Member,
                    joined_at: at,
                    order: 1,
                },
            );
        }
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
            messages: HashMap::new(),
            next_order: 1 + u64::from(c.with_user_id.is_some()),
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
        Event::MessageSent(m) => {
            room.messages.insert(
                m.message_id,
                Message {
                    sender_id: m.sender(envelope.actor_id),
                    kind: m.kind,
                    attachment: m.attachment.clone(),
                    created_at: at,
                    position: 0,
                    deleted: false,
                    reply_to: m.reply_to,
                    thread_id: m.thread_id,
                    mentions: m.mentions.clone(),
                    replies: Vec::new(),
                    reactions: Vec::new(),
                },
            );
            if let Some(root) = m.thread_id.and_then(|id| room.messages.get_mut(&id)) {
                root.replies.push(m.message_id);
            }
        }
        Event::ReactionAdded(r) => {
            if let Some(m) = room.messages.get_mut(&r.message_id)
                && !m.has_reaction(&r.emoji, r.user_id)
            {
                m.reactions.push((r.emoji.clone(), r.user_id));
            }
        }
        Event::ReactionRemoved(r) => {
            if let Some(m) = room.messages.get_mut(&r.message_id) {
                m.reactions
                    .retain(|(emoji, user)| !(*emoji == r.emoji && *user == r.user_id));
            }
        }
        Event::MessageDeleted(d) => {
            if let Some(m) = room.messages.get_mut(&d.message_id) {
                m.deleted = true;
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
