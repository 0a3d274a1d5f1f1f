//! Edits and deletions of messages.

use natter_events::catalogue::*;
use natter_events::room::{DomainError, RoomCommand};
use uuid::Uuid;

use crate::support::*;

const MESSAGE: Uuid = Uuid::from_u128(9);

fn sent_by(user: Uuid) -> (Uuid, Event) {
    let RoomCommand::SendMessage(m) = send("hello") else {
        unreachable!("send builds a SendMessage")
    };
    (user, Event::MessageSent(m))
}

fn edit(content: &str) -> RoomCommand {
    RoomCommand::EditMessage {
        message_id: MESSAGE,
        content: content.into(),
    }
}

fn delete() -> RoomCommand {
    RoomCommand::DeleteMessage {
        message_id: MESSAGE,
    }
}

fn deleted() -> (Uuid, Event) {
    (
        OWNER,
        Event::MessageDeleted(MessageDeleted {
            message_id: MESSAGE,
        }),
    )
}

#[test]
fn the_sender_edits_their_message_and_no_one_else_may() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        sent_by(ALICE),
    ]);
    assert_eq!(
        when(&room, ALICE, edit("hello, world")),
        Ok(Some(Event::MessageEdited(MessageEdited {
            message_id: MESSAGE,
            content: "hello, world".into(),
        })))
    );
    assert_eq!(
        when(&room, OWNER, edit("mine now")),
        Err(DomainError::NotTheSender),
        "not even the owner"
    );
    assert_eq!(when(&room, BOB, edit("x")), Err(DomainError::NotAMember));
}

#[test]
fn the_sender_or_the_owner_deletes_a_message_once() {
    let history = [
        created(Visibility::Public, 10),
        joined(ALICE, None),
        joined(BOB, None),
        sent_by(ALICE),
    ];
    let room = given(&history);
    assert_eq!(when(&room, ALICE, delete()), Ok(Some(deleted().1)));
    assert_eq!(when(&room, OWNER, delete()), Ok(Some(deleted().1)));
    assert_eq!(
        when(&room, BOB, delete()),
        Err(DomainError::NotSenderOrOwner)
    );
    let gone = given(&[history.as_slice(), &[deleted()]].concat());
    assert_eq!(
        when(&gone, ALICE, delete()),
        Ok(None),
        "deleting twice changes nothing"
    );
    assert_eq!(
        when(&gone, ALICE, edit("too late")),
        Err(DomainError::MessageDeleted),
        "a deleted message is not edited"
    );
}

#[test]
fn an_unknown_message_is_not_found_and_a_removed_sender_edits_nothing() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        sent_by(ALICE),
        (
            OWNER,
            Event::MemberRemoved(MemberRemoved { user_id: ALICE }),
        ),
    ]);
    let unknown = RoomCommand::EditMessage {
        message_id: Uuid::from_u128(99),
        content: "x".into(),
    };
    assert_eq!(
        when(&room, OWNER, unknown),
        Err(DomainError::MessageNotFound)
    );
    assert_eq!(when(&room, ALICE, edit("x")), Err(DomainError::NotAMember));
    assert_eq!(
        when(&room, OWNER, delete()),
        Ok(Some(deleted().1)),
        "the owner still cleans up after them"
    );
}

fn broadcast() -> RoomCommand {
    let RoomCommand::SendMessage(m) = send("maintenance tonight") else {
        unreachable!("send builds a SendMessage")
    };
    RoomCommand::Broadcast(m)
}

#[test]
fn a_broadcast_is_a_system_message_from_no_member_in_any_room_that_exists() {
    let private = given(&[created(Visibility::Private, 10)]);
    let Ok(Some(Event::MessageSent(m))) = when(&private, BOB, broadcast()) else {
        panic!("an operator who is no member broadcasts into a private room");
    };
    assert_eq!(
        m.kind,
        MessageKind::System,
        "whatever kind it was built with"
    );
    assert_eq!(m.sender(Some(BOB)), None, "no human sender");

    // Nobody edits it (it has no sender); the owner may delete it.
    let room = given(&[
        created(Visibility::Public, 10),
        (
            BOB,
            Event::MessageSent(MessageSent {
                message_id: MESSAGE,
                ..m
            }),
        ),
    ]);
    assert_eq!(
        when(&room, BOB, edit("x")),
        Err(DomainError::NotAMember),
        "the operator is no member"
    );
    assert_eq!(
        when(&room, OWNER, edit("x")),
        Err(DomainError::NotTheSender)
    );
    assert!(matches!(
        when(&room, OWNER, delete()),
        Ok(Some(Event::MessageDeleted(_)))
    ));

    let gone = given(&[
        created(Visibility::Public, 10),
        (OWNER, Event::RoomDeleted(RoomDeleted {})),
    ]);
    assert_eq!(
        when(&gone, BOB, broadcast()),
        Err(DomainError::RoomNotFound)
    );
    assert_eq!(
        when(&None, BOB, broadcast()),
        Err(DomainError::RoomNotFound)
    );
}
