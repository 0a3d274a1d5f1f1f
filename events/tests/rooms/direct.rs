//! Direct rooms: the one private room of two users.

use natter_events::catalogue::*;
use natter_events::room::{DomainError, RoomCommand};

use crate::support::*;

fn open(with: uuid::Uuid) -> RoomCommand {
    RoomCommand::OpenDirect { with }
}

#[test]
fn a_direct_room_is_created_once_with_both_users_in_it() {
    let event = when(&None, ALICE, open(BOB)).unwrap().unwrap();
    assert_eq!(
        event,
        Event::RoomCreated(RoomCreated {
            name: String::new(),
            visibility: Visibility::Private,
            kind: RoomKind::Direct,
            max_members: 2,
            owner_id: ALICE,
            with_user_id: Some(BOB),
        })
    );
    let room = given(&[(ALICE, event)]);
    let folded = room.as_ref().unwrap();
    assert!(folded.is_member(ALICE) && folded.is_member(BOB));
    assert_eq!(folded.member_count(), 2);
    assert_eq!(when(&room, ALICE, open(BOB)), Ok(None), "already there");
    assert_eq!(
        when(&room, BOB, open(ALICE)),
        Ok(None),
        "the same room from the other side"
    );
    assert_eq!(when(&room, BOB, send("hi")).map(|e| e.is_some()), Ok(true));
}

#[test]
fn a_direct_room_takes_no_joins_invites_settings_removals_or_leaving() {
    let room = given(&[(ALICE, when(&None, ALICE, open(BOB)).unwrap().unwrap())]);
    assert_eq!(
        when(&room, CAROL, RoomCommand::Join),
        Err(DomainError::RoomNotFound)
    );
    assert_eq!(
        when(&room, CAROL, open(ALICE)),
        Err(DomainError::RoomNotFound)
    );
    for (actor, action) in [
        (ALICE, RoomCommand::Leave),
        (BOB, RoomCommand::Leave),
        (ALICE, RoomCommand::Delete),
        (ALICE, RoomCommand::RemoveMember { user_id: BOB }),
        (
            ALICE,
            RoomCommand::Update {
                name: Some("ours".into()),
                visibility: None,
                max_members: None,
            },
        ),
        (
            ALICE,
            RoomCommand::CreateInvite {
                invite_id: INVITE,
                token_hash: "hash".into(),
                invitee_id: Some(CAROL),
                expires_at: now() + chrono::Duration::hours(1),
                max_uses: None,
            },
        ),
    ] {
        assert_eq!(
            when(&room, actor, action.clone()),
            Err(DomainError::NotAGroup),
            "{action:?}"
        );
    }
}
