//! The owner's controls: settings, deletion, removing a member.

use natter_events::catalogue::*;
use natter_events::room::{DomainError, RoomCommand};

use crate::support::*;

fn update(name: Option<&str>, visibility: Option<Visibility>, max: Option<u32>) -> RoomCommand {
    RoomCommand::Update {
        name: name.map(str::to_string),
        visibility,
        max_members: max,
    }
}

#[test]
fn the_owner_updates_only_what_changes() {
    let room = given(&[created(Visibility::Public, 10)]);
    assert_eq!(
        when(
            &room,
            OWNER,
            update(Some("general"), Some(Visibility::Private), Some(10))
        ),
        Ok(Some(Event::RoomUpdated(RoomUpdated {
            name: None,
            visibility: Some(Visibility::Private),
            max_members: None,
        }))),
        "the name and the limit stay as they are, so only the visibility is in the event"
    );
    assert_eq!(
        when(&room, OWNER, update(Some("general"), None, None)),
        Ok(None),
        "a change to nothing appends nothing"
    );
}

#[test]
fn an_updated_room_shows_its_new_settings() {
    let room = given(&[
        created(Visibility::Public, 10),
        (
            OWNER,
            Event::RoomUpdated(RoomUpdated {
                name: Some("renamed".into()),
                visibility: Some(Visibility::Private),
                max_members: Some(3),
            }),
        ),
    ])
    .unwrap();
    assert_eq!(
        (room.name.as_str(), room.visibility, room.max_members),
        ("renamed", Visibility::Private, 3)
    );
}

#[test]
fn max_members_cannot_go_below_the_member_count() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        joined(BOB, None),
    ]);
    assert_eq!(
        when(&room, OWNER, update(None, None, Some(2))),
        Err(DomainError::BelowMemberCount)
    );
    assert!(matches!(
        when(&room, OWNER, update(None, None, Some(3))),
        Ok(Some(Event::RoomUpdated(_)))
    ));
}

#[test]
fn only_the_owner_updates_deletes_or_removes() {
    let room = given(&[created(Visibility::Public, 10), joined(ALICE, None)]);
    for action in [
        update(Some("mine"), None, None),
        RoomCommand::Delete,
        RoomCommand::RemoveMember { user_id: OWNER },
    ] {
        assert_eq!(
            when(&room, ALICE, action.clone()),
            Err(DomainError::NotOwner),
            "{action:?} by a member"
        );
        assert_eq!(
            when(&room, BOB, action.clone()),
            Err(DomainError::NotOwner),
            "{action:?} by a stranger to a public room"
        );
    }
}

#[test]
fn a_private_room_stays_hidden_from_strangers_who_try_the_owners_controls() {
    let room = given(&[created(Visibility::Private, 10)]);
    assert_eq!(
        when(&room, BOB, RoomCommand::Delete),
        Err(DomainError::RoomNotFound)
    );
}

#[test]
fn a_deleted_room_refuses_every_later_command() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        (OWNER, Event::RoomDeleted(RoomDeleted {})),
    ]);
    for (actor, action) in [
        (OWNER, RoomCommand::Delete),
        (OWNER, update(Some("again"), None, None)),
        (ALICE, send("hello?")),
        (BOB, RoomCommand::Join),
        (ALICE, RoomCommand::Leave),
        (OWNER, RoomCommand::RemoveMember { user_id: ALICE }),
    ] {
        assert_eq!(
            when(&room, actor, action.clone()),
            Err(DomainError::RoomNotFound),
            "{action:?}"
        );
    }
}

#[test]
fn a_removed_member_is_gone_and_may_join_a_public_room_again() {
    let history = [
        created(Visibility::Public, 10),
        joined(ALICE, None),
        (
            OWNER,
            Event::MemberRemoved(MemberRemoved { user_id: ALICE }),
        ),
    ];
    assert_eq!(
        when(
            &given(&history[..2]),
            OWNER,
            RoomCommand::RemoveMember { user_id: ALICE }
        ),
        Ok(Some(history[2].1.clone()))
    );
    let room = given(&history);
    assert!(!room.as_ref().unwrap().is_member(ALICE));
    assert_eq!(when(&room, ALICE, send("hi")), Err(DomainError::NotAMember));
    assert_eq!(
        when(&room, ALICE, RoomCommand::Join),
        Ok(Some(joined(ALICE, None).1))
    );
}

#[test]
fn removing_someone_who_is_not_a_member_is_not_found() {
    let room = given(&[created(Visibility::Public, 10)]);
    assert_eq!(
        when(&room, OWNER, RoomCommand::RemoveMember { user_id: CAROL }),
        Err(DomainError::MemberNotFound)
    );
}
