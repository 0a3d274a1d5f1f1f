//! Folding a run of events into the net changes they make to the read models, so a batch of
//! any size is written with a fixed number of set-based statements (see `apply.rs`).
//!
//! Pure: no IO. The fold follows event order, so that a join, a leave and a second join of
//! one member in one batch come out as that member present, with the second join.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use natter_events::catalogue::{Attachment, Event, Role};
use natter_events::{Envelope, Recorded};
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
}

/// An edit or deletion of a message written before the batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessagePatch {
    pub content: Option<String>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

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
        let at = *at;
        let room = room_id.unwrap_or_default();
        match event {
            Event::UserRegistered(r) => {
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
            Event::UserUpdated(u) => {
                if let Some(name) = &u.display_name {
                    if let Some(row) = self.users.get_mut(&u.user_id) {
                        row.display_name = name.clone();
                        row.position = position;
                    } else {
                        self.user_names.insert(u.user_id, (name.clone(), position));
                    }
                }
            }
            Event::CredentialsSet(_) | Event::TokenIssued(_) | Event::TokenRevoked(_) => {}
            Event::RoomCreated(c) => {
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
            }
            Event::RoomUpdated(u) => {
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
            // (A room created in this batch gets the flag through a patch applied after its
            // insert; the patch's position, the latest, wins there too.)
            Event::RoomDeleted(_) => self.patch(room, position).deleted = true,
            Event::MemberJoined(j) => {
                self.join(room, j.user_id, j.role.as_str(), at, position);
                // The first to join a room everyone had left owns it.
                if j.role == Role::Owner {
                    self.owner(room, j.user_id, position);
                }
                if let Some(invite) = j.invite {
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
            }
            Event::MemberLeft(l) => {
                self.gone(room, l.user_id);
                if let Some(owner) = l.new_owner_id {
                    self.role(room, owner, Role::Owner.as_str());
                    self.owner(room, owner, position);
                }
            }
            Event::MemberRemoved(r) => self.gone(room, r.user_id),
            Event::InviteCreated(i) => {
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
            Event::InviteRevoked(r) => match self.invites.get_mut(&r.invite_id) {
                Some(row) => {
                    row.revoked = true;
                    row.position = position;
                }
                None => {
                    let patch = self.invite_patches.entry(r.invite_id).or_default();
                    patch.revoked = true;
                    patch.position = position;
                }
            },
            Event::MessageSent(m) => {
                self.messages.insert(
                    m.message_id,
                    MessageRow {
                        position,
                        id: m.message_id,
                        room_id: room,
                        sender_id: *actor_id,
                        kind: m.kind.as_str(),
                        content: m.content.clone(),
                        attachment: m.attachment.clone(),
                        created_at: at,
                        edited_at: None,
                        deleted: false,
                    },
                );
                self.last_message.insert(room, position);
                match self.rooms.get_mut(&room) {
                    Some(row) => row.position = position,
                    None => self.patch(room, position).last_message_position = Some(position),
                }
            }
            Event::MessageEdited(e) => match self.messages.get_mut(&e.message_id) {
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
            },
            Event::MessageDeleted(d) => match self.messages.get_mut(&d.message_id) {
                Some(row) => {
                    row.deleted = true;
                    row.content.clear();
                    row.attachment = None;
                }
                None => {
                    let patch = self.message_patches.entry(d.message_id).or_default();
                    patch.deleted = true;
                    patch.content = None;
                }
            },
            Event::RoomRead(r) => {
                let marker = r.up_to_position as i64;
                match self.members.get_mut(&(room, r.user_id)) {
                    Some(MemberChange::Joined { marker: m, .. }) => *m = (*m).max(marker),
                    Some(MemberChange::Existing { marker: m, .. }) => {
                        *m = Some(m.unwrap_or(0).max(marker))
                    }
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
        }
    }

    /// The last message position of a room created in this batch.
    pub fn room_last_message(&self, room: Uuid) -> Option<i64> {
        self.last_message.get(&room).copied()
    }

    fn patch(&mut self, room: Uuid, position: i64) -> &mut RoomPatch {
        let patch = self.room_patches.entry(room).or_default();
        patch.position = position;
        patch
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_events::catalogue::{
        MemberJoined, MemberLeft, MessageKind, MessageSent, RoomCreated, RoomKind, Visibility,
    };

    fn at(position: u64, room: Uuid, actor: Uuid, event: Event) -> Recorded {
        Recorded {
            position,
            subject: String::new(),
            recorded_at: Utc::now(),
            envelope: Envelope::new(Uuid::now_v7(), Utc::now(), Some(actor), Some(room), event),
        }
    }

    /// The room's row after folding `events` split into batches at `cut`, as (owner, position,
    /// last message) of the inserted row or the patch.
    fn history() -> Vec<Recorded> {
        let (room, owner, bob) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        vec![
            at(
                1,
                room,
                owner,
                Event::RoomCreated(RoomCreated {
                    name: "r".into(),
                    visibility: Visibility::Public,
                    kind: RoomKind::Group,
                    max_members: 10,
                    owner_id: owner,
                }),
            ),
            at(
                2,
                room,
                bob,
                Event::MemberJoined(MemberJoined {
                    user_id: bob,
                    role: Role::Member,
                    invite: None,
                }),
            ),
            at(
                3,
                room,
                bob,
                Event::MessageSent(MessageSent {
                    message_id: Uuid::from_u128(9),
                    kind: MessageKind::Text,
                    content: "hi".into(),
                    attachment: None,
                }),
            ),
            at(
                4,
                room,
                owner,
                Event::MemberLeft(MemberLeft {
                    user_id: owner,
                    new_owner_id: Some(bob),
                }),
            ),
        ]
    }

    #[test]
    fn a_rooms_row_does_not_depend_on_where_batches_are_cut() {
        let room = Uuid::from_u128(1);
        let whole = {
            let mut b = Batch::after(0);
            history().iter().for_each(|r| b.add(r));
            let row = &b.rooms[&room];
            (row.owner_id, row.position, b.room_last_message(room))
        };
        for cut in 1..4 {
            let events = history();
            let mut first = Batch::after(0);
            events[..cut].iter().for_each(|r| first.add(r));
            let mut second = Batch::after(cut as u64);
            events[cut..].iter().for_each(|r| second.add(r));
            let row = &first.rooms[&room];
            let patch = second.room_patches.get(&room).cloned().unwrap_or_default();
            let owner = patch.owner_id.unwrap_or(row.owner_id);
            let position = row.position.max(patch.position);
            let last = patch
                .last_message_position
                .or(first.room_last_message(room));
            assert_eq!((owner, position, last), whole, "cut after event {cut}");
        }
    }
}
