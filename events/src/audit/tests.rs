//! The verifier's findings on sound and broken histories.

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

/// `user` registering as `name`.
fn registered(user: Uuid, name: &str) -> Envelope {
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
}

#[test]
fn a_sound_history_has_no_findings_and_bad_events_are_named_by_position() {
    let s = Subjects::new("t").unwrap();
    let (user, room) = (Uuid::new_v4(), Uuid::new_v4());
    let reg = registered(user, "ann");
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
    let at = |event| Envelope::new(Uuid::new_v4(), Utc::now(), Some(ann), Some(room), event);
    let mut v = Verifier::new(s.clone());
    v.check(&message(1, s.username("ann"), &registered(ann, "ann")));
    v.check(&message(2, s.username("bob"), &registered(bob, "bob")));
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
    let at = |room, event| Envelope::new(Uuid::new_v4(), Utc::now(), Some(ann), Some(room), event);
    let reg = registered(ann, "ann");
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
