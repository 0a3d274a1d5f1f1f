//! Folding a run of events into the net changes they make to the read models, so a batch of
//! any size is written with a fixed number of set-based statements (see `apply.rs`, whose
//! sections follow the same order: users, rooms, invites, members, messages).
//!
//! Pure: no IO. The fold follows event order, so that a join, a leave and a second join of
//! one member in one batch come out as that member present, with the second join.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use natter_events::catalogue::{
    Event, InviteCreated, MemberJoined, MemberLeft, MessageEdited, MessageSent, Role, RoomCreated,
    RoomRead, RoomUpdated, UserRegistered, UserUpdated,
};
use natter_events::{Envelope, Recorded};
use uuid::Uuid;

pub use crate::rows::*;

/// The net effect of a run of events.
#[derive(Debug, Default)]
pub struct Batch {
    /// Position of the last event folded in (applied or skipped).
    pub last: u64,
    pub events: usize,
    pub users: BTreeMap<Uuid, UserRow>,
    pub user_names: BTreeMap<Uuid, (String, i64)>,
    pub rooms: BTreeMap<Uuid, RoomRow>,
    pub room_patches: BTreeMap<Uuid, RoomPatch>,
    pub members: BTreeMap<(Uuid, Uuid), MemberChange>,
    pub invites: BTreeMap<Uuid, InviteRow>,
    pub invite_patches: BTreeMap<Uuid, InvitePatch>,
    pub messages: BTreeMap<Uuid, MessageRow>,
    pub message_patches: BTreeMap<Uuid, MessagePatch>,
    /// Reactions taken back in the batch (their rows go first)...
    pub reactions_cleared: BTreeSet<ReactionKey>,
    /// ...then the reactions the batch leaves in place, with their room and position.
    pub reactions_added: BTreeMap<ReactionKey, (Uuid, i64)>,
    /// Rooms whose membership changed: their `member_count` is recounted.
    pub membership_rooms: BTreeSet<Uuid>,
    /// Last message position per room created in this batch's `rooms` (kept on the row).
    last_message: HashMap<Uuid, i64>,
}

impl Batch {
    /// An empty batch of the events after position `after`.
    pub fn after(after: u64) -> Self {
        Batch {
            last: after,
            ..Batch::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Records that the event at `position` was seen but changes nothing (an unknown type).
    pub fn skip(&mut self, position: u64) {
        self.last = self.last.max(position);
    }

    /// Folds one event in, in log order.
    pub fn add(&mut self, recorded: &Recorded) {
        self.events += 1;
        self.last = self.last.max(recorded.position);
        let position = recorded.position as i64;
        let Envelope {
            occurred_at: at,
            actor_id,
            room_id,
            event,
            ..
        } = &recorded.envelope;
        let (at, room) = (*at, room_id.unwrap_or_default());
        match event {
            Event::UserRegistered(r) => self.user_registered(r, at, position),
            Event::UserUpdated(u) => self.user_updated(u, position),
            // A credentials event changes no read model, but a display name changed with it.
            Event::CredentialsSet(c) => self.user_updated(
                &UserUpdated {
                    user_id: c.user_id,
                    display_name: c.display_name.clone(),
                },
                position,
            ),
            Event::TokenIssued(_) | Event::TokenRevoked(_) => {}
            Event::RoomCreated(c) => self.room_created(room, c, at, position),
            Event::RoomUpdated(u) => self.room_updated(room, u, position),
            // (A room created in this batch gets the flag through a patch applied after its
            // insert; the patch's position, the latest, wins there too.)
            Event::RoomDeleted(_) => self.patch(room, position).deleted = true,
            Event::InviteCreated(i) => self.invite_created(room, i, at, position),
            Event::InviteRevoked(r) => self.invite_revoked(r.invite_id, position),
            Event::MemberJoined(j) => self.member_joined(room, j, at, position),
            Event::MemberLeft(l) => self.member_left(room, l, position),
            Event::MemberRemoved(r) => self.gone(room, r.user_id),
            Event::RoomRead(r) => self.room_read(room, r),
            Event::MessageSent(m) => self.message_sent(room, m.sender(*actor_id), m, at, position),
            Event::MessageEdited(e) => self.message_edited(e, at),
            Event::MessageDeleted(d) => self.message_deleted(d.message_id),
            Event::ReactionAdded(r) => {
                let key = (r.message_id, r.emoji.clone(), r.user_id);
                self.reactions_added.insert(key, (room, position));
            }
            Event::ReactionRemoved(r) => {
                let key = (r.message_id, r.emoji.clone(), r.user_id);
                self.reactions_added.remove(&key);
                self.reactions_cleared.insert(key);
            }
        }
    }

    // Users.

    fn user_registered(&mut self, r: &UserRegistered, at: DateTime<Utc>, position: i64) {
        self.users.insert(
            r.user_id,
            UserRow {
                id: r.user_id,
                username: r.username.clone(),
                display_name: r.display_name.clone(),
                created_at: at,
                position,
            },
        );
    }

    fn user_updated(&mut self, u: &UserUpdated, position: i64) {
        let Some(name) = &u.display_name else { return };
        if let Some(row) = self.users.get_mut(&u.user_id) {
            row.display_name = name.clone();
            row.position = position;
        } else {
            self.user_names.insert(u.user_id, (name.clone(), position));
        }
    }

    // Rooms.

    fn room_created(&mut self, room: Uuid, c: &RoomCreated, at: DateTime<Utc>, position: i64) {
        self.rooms.insert(
            room,
            RoomRow {
                id: room,
                name: c.name.clone(),
                visibility: c.visibility.as_str(),
                kind: c.kind.as_str(),
                owner_id: c.owner_id,
                max_members: c.max_members as i32,
                created_at: at,
                created_position: position,
                position,
            },
        );
        self.join(room, c.owner_id, Role::Owner.as_str(), at, position);
        if let Some(with) = c.with_user_id {
            self.join(room, with, Role::Member.as_str(), at, position);
        }
    }

    fn room_updated(&mut self, room: Uuid, u: &RoomUpdated, position: i64) {
        if let Some(row) = self.rooms.get_mut(&room) {
            if let Some(n) = &u.name {
                row.name = n.clone();
            }
            if let Some(v) = u.visibility {
                row.visibility = v.as_str();
            }
            if let Some(m) = u.max_members {
                row.max_members = m as i32;
            }
            row.position = position;
        } else {
            let patch = self.patch(room, position);
            if let Some(n) = &u.name {
                patch.name = Some(n.clone());
            }
            if let Some(v) = u.visibility {
                patch.visibility = Some(v.as_str());
            }
            if let Some(m) = u.max_members {
                patch.max_members = Some(m as i32);
            }
        }
    }

    /// `owner` now owns `room`.
    fn owner(&mut self, room: Uuid, owner: Uuid, position: i64) {
        match self.rooms.get_mut(&room) {
            Some(row) => {
                row.owner_id = owner;
                row.position = position;
            }
            None => self.patch(room, position).owner_id = Some(owner),
        }
    }

    fn patch(&mut self, room: Uuid, position: i64) -> &mut RoomPatch {
        let patch = self.room_patches.entry(room).or_default();
        patch.position = position;
        patch
    }

    /// The last message position of a room created in this batch.
    pub fn room_last_message(&self, room: Uuid) -> Option<i64> {
        self.last_message.get(&room).copied()
    }

    // Invites.

    fn invite_created(&mut self, room: Uuid, i: &InviteCreated, at: DateTime<Utc>, position: i64) {
        self.invites.insert(
            i.invite_id,
            InviteRow {
                id: i.invite_id,
                room_id: room,
                token_hash: i.token_hash.clone(),
                invitee_id: i.invitee_id,
                expires_at: i.expires_at,
                max_uses: i.max_uses.map(|m| m as i32),
                uses: 0,
                revoked: false,
                created_at: at,
                position,
            },
        );
    }

    fn invite_revoked(&mut self, invite: Uuid, position: i64) {
        match self.invites.get_mut(&invite) {
            Some(row) => {
                row.revoked = true;
                row.position = position;
            }
            None => {
                let patch = self.invite_patches.entry(invite).or_default();
                patch.revoked = true;
                patch.position = position;
            }
        }
    }

    fn invite_used(&mut self, invite: Uuid, position: i64) {
        match self.invites.get_mut(&invite) {
            Some(row) => {
                row.uses += 1;
                row.position = position;
            }
            None => {
                let patch = self.invite_patches.entry(invite).or_default();
                patch.uses += 1;
                patch.position = position;
            }
        }
    }

    // Members.

    fn member_joined(&mut self, room: Uuid, j: &MemberJoined, at: DateTime<Utc>, position: i64) {
        self.join(room, j.user_id, j.role.as_str(), at, position);
        // The first to join a room everyone had left owns it.
        if j.role == Role::Owner {
            self.owner(room, j.user_id, position);
        }
        if let Some(invite) = j.invite {
            self.invite_used(invite, position);
        }
    }

    fn member_left(&mut self, room: Uuid, l: &MemberLeft, position: i64) {
        self.gone(room, l.user_id);
        if let Some(owner) = l.new_owner_id {
            self.role(room, owner, Role::Owner.as_str());
            self.owner(room, owner, position);
        }
    }

    fn room_read(&mut self, room: Uuid, r: &RoomRead) {
        let marker = r.up_to_position as i64;
        match self.members.get_mut(&(room, r.user_id)) {
            Some(MemberChange::Joined { marker: m, .. }) => *m = (*m).max(marker),
            Some(MemberChange::Existing { marker: m, .. }) => *m = Some(m.unwrap_or(0).max(marker)),
            Some(MemberChange::Gone) => {}
            None => {
                self.members.insert(
                    (room, r.user_id),
                    MemberChange::Existing {
                        role: None,
                        marker: Some(marker),
                    },
                );
            }
        }
    }

    fn join(
        &mut self,
        room: Uuid,
        user: Uuid,
        role: &'static str,
        at: DateTime<Utc>,
        position: i64,
    ) {
        self.membership_rooms.insert(room);
        self.members.insert(
            (room, user),
            MemberChange::Joined {
                role,
                joined_at: at,
                joined_position: position,
                marker: 0,
            },
        );
    }

    fn gone(&mut self, room: Uuid, user: Uuid) {
        self.membership_rooms.insert(room);
        self.members.insert((room, user), MemberChange::Gone);
    }

    fn role(&mut self, room: Uuid, user: Uuid, new_role: &'static str) {
        match self.members.get_mut(&(room, user)) {
            Some(MemberChange::Joined { role, .. }) => *role = new_role,
            Some(MemberChange::Existing { role, .. }) => *role = Some(new_role),
            Some(MemberChange::Gone) => {}
            None => {
                self.members.insert(
                    (room, user),
                    MemberChange::Existing {
                        role: Some(new_role),
                        marker: None,
                    },
                );
            }
        }
    }

    // Messages.

    fn message_sent(
        &mut self,
        room: Uuid,
        sender: Option<Uuid>,
        m: &MessageSent,
        at: DateTime<Utc>,
        position: i64,
    ) {
        self.messages.insert(
            m.message_id,
            MessageRow {
                position,
                id: m.message_id,
                room_id: room,
                sender_id: sender,
                kind: m.kind.as_str(),
                content: m.content.clone(),
                attachment: m.attachment.clone(),
                created_at: at,
                edited_at: None,
                deleted: false,
                reply_to: m.reply_to,
                thread_id: m.thread_id,
                mentions: m.mentions.clone(),
            },
        );
        // A thread reply is not in the main timeline: it is no room's last message.
        if m.thread_id.is_some() {
            return;
        }
        self.last_message.insert(room, position);
        match self.rooms.get_mut(&room) {
            Some(row) => row.position = position,
            None => self.patch(room, position).last_message_position = Some(position),
        }
    }

    fn message_edited(&mut self, e: &MessageEdited, at: DateTime<Utc>) {
        match self.messages.get_mut(&e.message_id) {
            Some(row) if !row.deleted => {
                row.content = e.content.clone();
                row.edited_at = Some(at);
            }
            Some(_) => {}
            None => {
                let patch = self.message_patches.entry(e.message_id).or_default();
                if !patch.deleted {
                    patch.content = Some(e.content.clone());
                    patch.edited_at = Some(at);
                }
            }
        }
    }

    fn message_deleted(&mut self, message: Uuid) {
        match self.messages.get_mut(&message) {
            Some(row) => {
                row.deleted = true;
                row.content.clear();
                row.attachment = None;
            }
            None => {
                let patch = self.message_patches.entry(message).or_default();
                patch.deleted = true;
                patch.content = None;
            }
        }
    }
}
