//! Pair rooms (random 1:1 matching): open and wait, or join the one waiting.

use natter_events::catalogue::*;
use natter_events::room::{DomainError, RoomCommand};

use crate::support::*;

fn opened_by(user: uuid::Uuid) -> (uuid::Uuid, Event) {
    (
        user,
        when(&None, user, RoomCommand::Match).unwrap().unwrap(),
    )
}

#[test]
fn the_first_caller_opens_a_pair_room_and_waits_in_it() {
    let (_, event) = opened_by(ALICE);
    assert!(matches!(
        &event,
        Event::RoomCreated(c) if c.kind == RoomKind::Pair && c.max_members == 2
            && c.visibility == Visibility::Private && c.owner_id == ALICE
    ));
    let room = given(&[(ALICE, event)]);
    assert_eq!(
        when(&room, ALICE, RoomCommand::Match),
        Ok(None),
        "still waiting, same room"
    );
}

#[test]
fn the_next_caller_joins_the_waiting_one_and_then_the_room_is_taken() {
    let room = given(&[opened_by(ALICE)]);
    let joined = when(&room, BOB, RoomCommand::Match).unwrap().unwrap();
    assert_eq!(
        joined,
        Event::MemberJoined(MemberJoined {
            user_id: BOB,
            role: Role::Member,
            invite: None,
            matched_with: Some(ALICE),
        })
    );
    let room = given(&[opened_by(ALICE), (BOB, joined)]);
    for user in [CAROL, ALICE, BOB] {
        assert_eq!(
            when(&room, user, RoomCommand::Match),
            Err(DomainError::PairTaken),
            "never three in a room"
        );
    }
}

#[test]
fn leaving_a_pair_ends_it_for_both() {
    let matched = [
        opened_by(ALICE),
        (
            BOB,
            Event::MemberJoined(MemberJoined {
                user_id: BOB,
                role: Role::Member,
                invite: None,
                matched_with: Some(ALICE),
            }),
        ),
    ];
    let room = given(&matched);
    assert_eq!(
        when(&room, BOB, RoomCommand::Leave),
        Ok(Some(Event::RoomDeleted(RoomDeleted {})))
    );
    let ended = given(
        &[
            matched.as_slice(),
            &[(BOB, Event::RoomDeleted(RoomDeleted {}))],
        ]
        .concat(),
    );
    assert_eq!(
        when(&ended, CAROL, RoomCommand::Match),
        Err(DomainError::PairTaken)
    );
    assert_eq!(
        when(&ended, ALICE, send("still there?")),
        Err(DomainError::RoomNotFound)
    );
    // A waiting user who leaves ends an unmatched pair too.
    let alone = given(&[opened_by(CAROL)]);
    assert_eq!(
        when(&alone, CAROL, RoomCommand::Leave),
        Ok(Some(Event::RoomDeleted(RoomDeleted {})))
    );
}

#[test]
fn a_pair_room_is_joined_only_by_matching() {
    let room = given(&[opened_by(ALICE)]);
    assert_eq!(
        when(&room, BOB, RoomCommand::Join),
        Err(DomainError::RoomNotFound)
    );
}
