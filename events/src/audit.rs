//! Checking a whole log: what `natter verify` runs over every stored event.
//!
//! Every event must be a well-formed envelope (and, for known types, match its schema), on a
//! subject that fits its type and room, at a position after the previous one, with an id seen
//! once; messages and memberships must refer to rooms and users the log created before them.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use crate::catalogue::Event;
use crate::envelope::{Decoded, Envelope, RawEnvelope};
use crate::store::RawMessage;
use crate::subjects::{RoomPart, SubjectKind, Subjects};

/// One problem, at one position.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub position: u64,
    pub problem: String,
}

/// Accumulates checks over the log in order.
pub struct Verifier {
    subjects: Subjects,
    last_position: u64,
    ids: HashSet<Uuid>,
    rooms: HashSet<Uuid>,
    users: HashSet<Uuid>,
    tokens: HashSet<Uuid>,
    /// Every message sent so far, with its room, for the references replies, threads and
    /// reactions make.
    messages: HashMap<Uuid, Uuid>,
    /// Events by type (unknown types included, under their own name).
    pub counts: BTreeMap<String, u64>,
    pub events: u64,
    pub findings: Vec<Finding>,
}

impl Verifier {
    pub fn new(subjects: Subjects) -> Self {
        Verifier {
            subjects,
            last_position: 0,
            ids: HashSet::new(),
            rooms: HashSet::new(),
            users: HashSet::new(),
            tokens: HashSet::new(),
            messages: HashMap::new(),
            counts: BTreeMap::new(),
            events: 0,
            findings: Vec::new(),
        }
    }

    fn find(&mut self, position: u64, problem: impl Into<String>) {
        self.findings.push(Finding {
            position,
            problem: problem.into(),
        });
    }

    pub fn check(&mut self, message: &RawMessage) {
        let position = message.position;
        self.events += 1;
        if position <= self.last_position {
            self.find(
                position,
                format!("position does not increase (after {})", self.last_position),
            );
        }
        self.last_position = self.last_position.max(position);
        let raw: RawEnvelope = match serde_json::from_slice(&message.payload) {
            Ok(raw) => raw,
            Err(e) => return self.find(position, format!("not an event envelope: {e}")),
        };
        *self.counts.entry(raw.type_name.clone()).or_default() += 1;
        if !self.ids.insert(raw.id) {
            self.find(position, format!("event id {} appears twice", raw.id));
        }
        if let Some(header) = &message.event_type
            && *header != raw.type_name
        {
            self.find(
                position,
                format!("header says {header}, payload says {}", raw.type_name),
            );
        }
        let subject = self.subjects.parse(&message.subject);
        let envelope = match raw.clone().into_decoded() {
            Ok(Decoded::Known(envelope)) => envelope,
            Ok(Decoded::Unknown(_)) => return,
            Err(e) => return self.find(position, e.to_string()),
        };
        match subject {
            None => self.find(
                position,
                format!("subject {} is not a natter subject", message.subject),
            ),
            Some(kind) => self.check_subject(position, &kind, &envelope),
        }
        self.check_references(position, &envelope);
    }

    fn check_subject(&mut self, position: u64, subject: &SubjectKind, envelope: &Envelope) {
        let fits = match (subject, &envelope.event) {
            (SubjectKind::Username(name), Event::UserRegistered(r)) => *name == r.username,
            (SubjectKind::User(id), Event::UserUpdated(u)) => *id == u.user_id,
            (SubjectKind::User(id), Event::CredentialsSet(c)) => *id == c.user_id,
            (SubjectKind::Token(id), Event::TokenIssued(t)) => *id == t.token_id,
            (SubjectKind::Token(id), Event::TokenRevoked(t)) => *id == t.token_id,
            (SubjectKind::Room(room, part), event) => {
                let part_fits = match event {
                    Event::MessageSent(_)
                    | Event::MessageEdited(_)
                    | Event::MessageDeleted(_)
                    | Event::ReactionAdded(_)
                    | Event::ReactionRemoved(_) => *part == RoomPart::Msg,
                    Event::RoomRead(_) => *part == RoomPart::Read,
                    Event::RoomCreated(_)
                    | Event::RoomUpdated(_)
                    | Event::RoomDeleted(_)
                    | Event::MemberJoined(_)
                    | Event::MemberLeft(_)
                    | Event::MemberRemoved(_)
                    | Event::InviteCreated(_)
                    | Event::InviteRevoked(_) => *part == RoomPart::Meta,
                    _ => false,
                };
                if envelope.room_id != Some(*room) {
                    self.find(
                        position,
                        format!(
                            "room_id {:?} on the subject of room {room}",
                            envelope.room_id
                        ),
                    );
                }
                part_fits
            }
            _ => false,
        };
        if !fits {
            self.find(
                position,
                format!(
                    "{} does not belong on this subject",
                    envelope.event.type_name()
                ),
            );
        }
    }

    /// `what` of an event in `room` names `message`, which must be an earlier message of
    /// that room.
    fn check_message(&mut self, position: u64, room: Uuid, what: &str, message: Uuid) {
        match self.messages.get(&message) {
            Some(r) if *r == room => {}
            Some(r) => self.find(
                position,
                format!("{what} names message {message} of room {r}, not of room {room}"),
            ),
            None => self.find(
                position,
                format!("{what} names message {message}, which was never sent"),
            ),
        }
    }

    fn check_references(&mut self, position: u64, envelope: &Envelope) {
        let room = envelope.room_id.unwrap_or_default();
        let mut users = Vec::new();
        match &envelope.event {
            Event::UserRegistered(r) => {
                self.users.insert(r.user_id);
                if let Some(token) = r.service_token_id
                    && !self.tokens.contains(&token)
                {
                    self.find(
                        position,
                        format!("user.registered names API token {token}, which was never issued"),
                    );
                }
            }
            Event::TokenIssued(t) => {
                let first = self.tokens.insert(t.token_id);
                if !first {
                    self.find(
                        position,
                        format!("API token {} is issued twice", t.token_id),
                    );
                }
            }
            Event::TokenRevoked(t) if !self.tokens.contains(&t.token_id) => {
                self.find(
                    position,
                    format!(
                        "token.revoked names API token {}, which was never issued",
                        t.token_id
                    ),
                );
            }
            Event::RoomCreated(c) => {
                if !self.rooms.insert(room) {
                    self.find(position, format!("room {room} is created twice"));
                }
                users.push(c.owner_id);
                users.extend(c.with_user_id);
            }
            Event::MemberJoined(j) => {
                users.extend(std::iter::once(j.user_id).chain(j.matched_with))
            }
            Event::MemberLeft(l) => users.extend(std::iter::once(l.user_id).chain(l.new_owner_id)),
            Event::MemberRemoved(r) => users.push(r.user_id),
            Event::InviteCreated(i) => users.extend(i.invitee_id),
            Event::RoomRead(r) => users.push(r.user_id),
            Event::MessageSent(m) => {
                users.extend(m.mentions.iter().copied());
                for (what, id) in [("reply_to", m.reply_to), ("thread_id", m.thread_id)] {
                    if let Some(id) = id {
                        self.check_message(position, room, what, id);
                    }
                }
                self.messages.insert(m.message_id, room);
            }
            Event::ReactionAdded(r) | Event::ReactionRemoved(r) => {
                users.push(r.user_id);
                self.check_message(position, room, "a reaction", r.message_id);
            }
            Event::UserUpdated(u) => users.push(u.user_id),
            Event::CredentialsSet(c) => users.push(c.user_id),
            _ => {}
        }
        if envelope.room_id.is_some()
            && !matches!(envelope.event, Event::RoomCreated(_))
            && !self.rooms.contains(&room)
        {
            self.find(
                position,
                format!(
                    "{} refers to room {room}, which the log never created",
                    envelope.event.type_name()
                ),
            );
        }
        for user in users {
            if !self.users.contains(&user) {
                self.find(
                    position,
                    format!(
                        "{} refers to user {user}, who never registered",
                        envelope.event.type_name()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
