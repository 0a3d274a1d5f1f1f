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
mod tests {
    use super::*;
    use crate::catalogue::*;
    use chrono::Utc;

    fn message(position: u64, subject: String, envelope: &Envelope) -> RawMessage {
        RawMessage {
            position,
            subject,
            payload: envelope.encode().into(),
            pending: 0,
            recorded_at: Utc::now(),
            event_type: Some(envelope.event.type_name().into()),
        }
    }

    #[test]
    fn a_sound_history_has_no_findings_and_bad_events_are_named_by_position() {
        let s = Subjects::new("t").unwrap();
        let (user, room) = (Uuid::new_v4(), Uuid::new_v4());
        let reg = Envelope::new(
            Uuid::new_v4(),
            Utc::now(),
            Some(user),
            None,
            Event::UserRegistered(UserRegistered {
                user_id: user,
                username: "ann".into(),
                display_name: "Ann".into(),
                password_hash: "h".into(),
                service_token_id: None,
            }),
        );
        let created = Envelope::new(
            Uuid::new_v4(),
            Utc::now(),
            Some(user),
            Some(room),
            Event::RoomCreated(RoomCreated {
                name: "r".into(),
                visibility: Visibility::Public,
                kind: RoomKind::Group,
                max_members: 5,
                owner_id: user,
                with_user_id: None,
            }),
        );
        let sent = |room| {
            Envelope::new(
                Uuid::new_v4(),
                Utc::now(),
                Some(user),
                Some(room),
                Event::MessageSent(MessageSent {
                    message_id: Uuid::new_v4(),
                    kind: MessageKind::Text,
                    content: "hi".into(),
                    attachment: None,
                    ..Default::default()
                }),
            )
        };
        let mut v = Verifier::new(s.clone());
        v.check(&message(1, s.username("ann"), &reg));
        v.check(&message(2, s.room(room, RoomPart::Meta), &created));
        v.check(&message(3, s.room(room, RoomPart::Msg), &sent(room)));
        assert_eq!(v.findings, vec![]);
        assert_eq!(v.counts["message.sent"], 1);

        let stray = Uuid::new_v4();
        v.check(&message(4, s.room(stray, RoomPart::Msg), &sent(stray)));
        v.check(&message(5, s.room(room, RoomPart::Meta), &sent(room)));
        let mut garbage = message(6, s.room(room, RoomPart::Msg), &sent(room));
        garbage.payload = "{not json".into();
        v.check(&garbage);
        v.check(&message(6, s.room(room, RoomPart::Msg), &sent(room)));
        let positions: Vec<u64> = v.findings.iter().map(|f| f.position).collect();
        assert_eq!(positions, vec![4, 5, 6, 6], "{:?}", v.findings);
    }

    #[test]
    fn the_verifier_knows_the_newer_events_and_where_they_belong() {
        let s = Subjects::new("t").unwrap();
        let (ann, bob, room) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let reg = |user: Uuid, name: &str| {
            Envelope::new(
                Uuid::new_v4(),
                Utc::now(),
                Some(user),
                None,
                Event::UserRegistered(UserRegistered {
                    user_id: user,
                    username: name.into(),
                    display_name: name.into(),
                    password_hash: "h".into(),
                    service_token_id: None,
                }),
            )
        };
        let at = |event| Envelope::new(Uuid::new_v4(), Utc::now(), Some(ann), Some(room), event);
        let mut v = Verifier::new(s.clone());
        v.check(&message(1, s.username("ann"), &reg(ann, "ann")));
        v.check(&message(2, s.username("bob"), &reg(bob, "bob")));
        let events = [
            (
                RoomPart::Meta,
                Event::RoomCreated(RoomCreated {
                    name: String::new(),
                    visibility: Visibility::Private,
                    kind: RoomKind::Pair,
                    max_members: 2,
                    owner_id: ann,
                    with_user_id: None,
                }),
            ),
            (
                RoomPart::Meta,
                Event::MemberJoined(MemberJoined {
                    user_id: bob,
                    role: Role::Member,
                    invite: None,
                    matched_with: Some(ann),
                }),
            ),
            (
                RoomPart::Meta,
                Event::RoomUpdated(RoomUpdated {
                    name: Some("x".into()),
                    ..RoomUpdated::default()
                }),
            ),
            (
                RoomPart::Msg,
                Event::MessageEdited(MessageEdited {
                    message_id: Uuid::new_v4(),
                    content: "e".into(),
                }),
            ),
            (
                RoomPart::Msg,
                Event::MessageDeleted(MessageDeleted {
                    message_id: Uuid::new_v4(),
                }),
            ),
            (
                RoomPart::Meta,
                Event::MemberRemoved(MemberRemoved { user_id: bob }),
            ),
            (RoomPart::Meta, Event::RoomDeleted(RoomDeleted {})),
        ];
        for (i, (part, event)) in events.into_iter().enumerate() {
            v.check(&message(3 + i as u64, s.room(room, part), &at(event)));
        }
        v.check(&message(
            10,
            s.user(ann),
            &Envelope::new(
                Uuid::new_v4(),
                Utc::now(),
                Some(ann),
                None,
                Event::CredentialsSet(CredentialsSet {
                    user_id: ann,
                    password_hash: "h2".into(),
                    display_name: Some("Ann".into()),
                }),
            ),
        ));
        assert_eq!(v.findings, vec![]);
        // An edit on the room's meta subject is out of place; a join naming an unknown
        // partner is a dangling reference.
        v.check(&message(
            11,
            s.room(room, RoomPart::Meta),
            &at(Event::MessageEdited(MessageEdited {
                message_id: Uuid::new_v4(),
                content: "e".into(),
            })),
        ));
        v.check(&message(
            12,
            s.room(room, RoomPart::Meta),
            &at(Event::MemberJoined(MemberJoined {
                user_id: bob,
                role: Role::Member,
                invite: None,
                matched_with: Some(Uuid::new_v4()),
            })),
        ));
        let positions: Vec<u64> = v.findings.iter().map(|f| f.position).collect();
        assert_eq!(positions, vec![11, 12], "{:?}", v.findings);
    }

    #[test]
    fn replies_threads_reactions_and_mentions_must_name_what_the_log_holds() {
        let s = Subjects::new("t").unwrap();
        let (ann, room, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let at =
            |room, event| Envelope::new(Uuid::new_v4(), Utc::now(), Some(ann), Some(room), event);
        let reg = Envelope::new(
            Uuid::new_v4(),
            Utc::now(),
            Some(ann),
            None,
            Event::UserRegistered(UserRegistered {
                user_id: ann,
                username: "ann".into(),
                display_name: "Ann".into(),
                password_hash: "h".into(),
                service_token_id: None,
            }),
        );
        let created = || {
            Event::RoomCreated(RoomCreated {
                name: "r".into(),
                visibility: Visibility::Public,
                kind: RoomKind::Group,
                max_members: 5,
                owner_id: ann,
                with_user_id: None,
            })
        };
        let (root, elsewhere) = (Uuid::new_v4(), Uuid::new_v4());
        let sent = |id, thread_id, reply_to, mentions| {
            Event::MessageSent(MessageSent {
                message_id: id,
                content: "hi".into(),
                thread_id,
                reply_to,
                mentions,
                ..MessageSent::default()
            })
        };
        let react = |message_id| {
            Event::ReactionAdded(Reaction {
                message_id,
                emoji: "👍".into(),
                user_id: ann,
            })
        };
        let mut v = Verifier::new(s.clone());
        let msg = RoomPart::Msg;
        v.check(&message(1, s.username("ann"), &reg));
        v.check(&message(
            2,
            s.room(room, RoomPart::Meta),
            &at(room, created()),
        ));
        v.check(&message(
            3,
            s.room(other, RoomPart::Meta),
            &at(other, created()),
        ));
        v.check(&message(
            4,
            s.room(room, msg),
            &at(room, sent(root, None, None, vec![ann])),
        ));
        v.check(&message(
            5,
            s.room(other, msg),
            &at(other, sent(elsewhere, None, None, vec![])),
        ));
        let reply = sent(Uuid::new_v4(), Some(root), Some(root), vec![]);
        v.check(&message(6, s.room(room, msg), &at(room, reply)));
        v.check(&message(7, s.room(room, msg), &at(room, react(root))));
        assert_eq!(v.findings, vec![]);
        // A thread in another room, a reply to a message never sent, a reaction to a
        // message of another room, a mention of nobody, a reaction on the meta subject.
        let cross = sent(Uuid::new_v4(), Some(elsewhere), None, vec![]);
        v.check(&message(8, s.room(room, msg), &at(room, cross)));
        let dangling = sent(Uuid::new_v4(), None, Some(Uuid::new_v4()), vec![]);
        v.check(&message(9, s.room(room, msg), &at(room, dangling)));
        v.check(&message(10, s.room(room, msg), &at(room, react(elsewhere))));
        let nobody = sent(Uuid::new_v4(), None, None, vec![Uuid::new_v4()]);
        v.check(&message(11, s.room(room, msg), &at(room, nobody)));
        v.check(&message(
            12,
            s.room(room, RoomPart::Meta),
            &at(room, react(root)),
        ));
        let positions: Vec<u64> = v.findings.iter().map(|f| f.position).collect();
        assert_eq!(positions, vec![8, 9, 10, 11, 12], "{:?}", v.findings);
    }

    #[test]
    fn api_tokens_and_the_users_they_create_are_checked() {
        let s = Subjects::new("t").unwrap();
        let (token, user) = (Uuid::new_v4(), Uuid::new_v4());
        let at = |event| Envelope::new(Uuid::new_v4(), Utc::now(), Some(token), None, event);
        let issued = || {
            at(Event::TokenIssued(TokenIssued {
                token_id: token,
                name: Some("svc".into()),
                role: TokenRole::Service,
                token_hash: "h".into(),
                expires_at: None,
            }))
        };
        let registered = at(Event::UserRegistered(UserRegistered {
            user_id: user,
            username: "app".into(),
            display_name: "app".into(),
            password_hash: String::new(),
            service_token_id: Some(token),
        }));
        let revoked = |token_id| {
            at(Event::TokenRevoked(TokenRevoked {
                token_id,
                name: None,
            }))
        };
        let mut v = Verifier::new(s.clone());
        v.check(&message(1, s.token(token), &issued()));
        v.check(&message(2, s.username("app"), &registered));
        v.check(&message(3, s.token(token), &revoked(token)));
        assert_eq!(v.findings, vec![]);

        let stranger = Uuid::new_v4();
        v.check(&message(4, s.token(stranger), &revoked(stranger)));
        v.check(&message(5, s.token(stranger), &revoked(token)));
        v.check(&message(6, s.token(token), &issued()));
        let positions: Vec<u64> = v.findings.iter().map(|f| f.position).collect();
        assert_eq!(positions, vec![4, 5, 6], "{:?}", v.findings);
    }
}
