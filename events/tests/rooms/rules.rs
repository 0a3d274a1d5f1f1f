//! Membership, invites, messages and read markers.
//!
//! One file, over 400 lines: every rule of the room is a short scenario, and they read best
//! together.

use chrono::Duration;
use natter_events::catalogue::*;
use natter_events::room::{DomainError, RoomCommand};

use crate::support::*;

#[test]
fn creating_a_room_makes_the_creator_its_owner() {
    let event = when(
        &None,
        OWNER,
        RoomCommand::Create {
            name: "general".into(),
            visibility: Visibility::Public,
            kind: RoomKind::Group,
            max_members: 10,
        },
    )
    .unwrap()
    .unwrap();
    let room = given(&[(OWNER, event)]).unwrap();
    assert_eq!(room.owner_id, OWNER);
    assert_eq!(room.members[&OWNER].role, Role::Owner);
    assert_eq!(room.member_count(), 1);
}

#[test]
fn creating_an_existing_room_fails() {
    let room = given(&[created(Visibility::Public, 10)]);
    let create = RoomCommand::Create {
        name: "x".into(),
        visibility: Visibility::Public,
        kind: RoomKind::Group,
        max_members: 10,
    };
    assert_eq!(when(&room, ALICE, create), Err(DomainError::RoomExists));
}

#[test]
fn anyone_can_join_a_public_room() {
    let room = given(&[created(Visibility::Public, 10)]);
    assert_eq!(
        when(&room, ALICE, RoomCommand::Join),
        Ok(Some(joined(ALICE, None).1))
    );
}

#[test]
fn joining_twice_changes_nothing() {
    let room = given(&[created(Visibility::Public, 10), joined(ALICE, None)]);
    assert_eq!(when(&room, ALICE, RoomCommand::Join), Ok(None));
}

#[test]
fn joining_a_full_room_fails() {
    let room = given(&[created(Visibility::Public, 2), joined(ALICE, None)]);
    assert_eq!(
        when(&room, BOB, RoomCommand::Join),
        Err(DomainError::RoomFull)
    );
}

#[test]
fn a_private_room_looks_nonexistent_to_the_uninvited() {
    let room = given(&[created(Visibility::Private, 10)]);
    assert_eq!(
        when(&room, ALICE, RoomCommand::Join),
        Err(DomainError::RoomNotFound)
    );
    assert_eq!(
        when(&room, ALICE, send("hi")),
        Err(DomainError::RoomNotFound)
    );
    assert_eq!(
        when(&room, ALICE, RoomCommand::Leave),
        Err(DomainError::RoomNotFound)
    );
}

#[test]
fn a_personal_invite_lets_its_invitee_join_a_private_room_and_is_used() {
    let room = given(&[
        created(Visibility::Private, 10),
        invited(Some(ALICE), Duration::hours(1), Some(1)),
    ]);
    assert_eq!(
        when(&room, ALICE, RoomCommand::Join),
        Ok(Some(joined(ALICE, Some(INVITE)).1))
    );
    assert_eq!(
        when(&room, BOB, RoomCommand::Join),
        Err(DomainError::RoomNotFound)
    );
    let room = given(&[
        created(Visibility::Private, 10),
        invited(Some(ALICE), Duration::hours(1), Some(1)),
        joined(ALICE, Some(INVITE)),
    ]);
    assert_eq!(room.as_ref().unwrap().invites[&INVITE].uses, 1);
}

#[test]
fn an_expired_personal_invite_no_longer_opens_a_private_room() {
    let room = given(&[
        created(Visibility::Private, 10),
        invited(Some(ALICE), Duration::seconds(-1), None),
    ]);
    assert_eq!(
        when(&room, ALICE, RoomCommand::Join),
        Err(DomainError::RoomNotFound)
    );
}

#[test]
fn only_the_owner_creates_and_revokes_invites() {
    let room = given(&[created(Visibility::Public, 10), joined(ALICE, None)]);
    let create = RoomCommand::CreateInvite {
        invite_id: INVITE,
        token_hash: "hash".into(),
        invitee_id: None,
        expires_at: now() + Duration::hours(1),
        max_uses: None,
    };
    assert_eq!(
        when(&room, ALICE, create.clone()),
        Err(DomainError::NotOwner)
    );
    assert!(matches!(
        when(&room, OWNER, create),
        Ok(Some(Event::InviteCreated(_)))
    ));
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        invited(None, Duration::hours(1), None),
    ]);
    let revoke = RoomCommand::RevokeInvite {
        token_hash: "hash".into(),
    };
    assert_eq!(
        when(&room, ALICE, revoke.clone()),
        Err(DomainError::NotOwner)
    );
    assert_eq!(
        when(&room, OWNER, revoke),
        Ok(Some(Event::InviteRevoked(InviteRevoked {
            invite_id: INVITE
        })))
    );
}

#[test]
fn inviting_a_member_fails() {
    let room = given(&[created(Visibility::Public, 10), joined(ALICE, None)]);
    let create = RoomCommand::CreateInvite {
        invite_id: INVITE,
        token_hash: "hash".into(),
        invitee_id: Some(ALICE),
        expires_at: now() + Duration::hours(1),
        max_uses: None,
    };
    assert_eq!(when(&room, OWNER, create), Err(DomainError::AlreadyMember));
}

#[test]
fn revoking_an_unknown_token_is_not_found_and_revoking_twice_changes_nothing() {
    let room = given(&[created(Visibility::Public, 10)]);
    let revoke = RoomCommand::RevokeInvite {
        token_hash: "hash".into(),
    };
    assert_eq!(
        when(&room, OWNER, revoke.clone()),
        Err(DomainError::InviteNotFound)
    );
    let room = given(&[
        created(Visibility::Public, 10),
        invited(None, Duration::hours(1), None),
        (
            OWNER,
            Event::InviteRevoked(InviteRevoked { invite_id: INVITE }),
        ),
    ]);
    assert_eq!(when(&room, OWNER, revoke), Ok(None));
}

#[test]
fn accepting_a_link_joins_even_a_private_room() {
    let room = given(&[
        created(Visibility::Private, 10),
        invited(None, Duration::hours(1), Some(2)),
    ]);
    assert_eq!(
        when(&room, BOB, accept()),
        Ok(Some(joined(BOB, Some(INVITE)).1))
    );
}

#[test]
fn accepting_an_expired_revoked_or_used_up_invite_is_gone() {
    let expired = given(&[
        created(Visibility::Private, 10),
        invited(None, Duration::seconds(-5), None),
    ]);
    assert_eq!(
        when(&expired, BOB, accept()),
        Err(DomainError::InviteExpired)
    );
    let revoked = given(&[
        created(Visibility::Private, 10),
        invited(None, Duration::hours(1), None),
        (
            OWNER,
            Event::InviteRevoked(InviteRevoked { invite_id: INVITE }),
        ),
    ]);
    assert_eq!(
        when(&revoked, BOB, accept()),
        Err(DomainError::InviteRevoked)
    );
    let used_up = given(&[
        created(Visibility::Private, 10),
        invited(None, Duration::hours(1), Some(1)),
        joined(ALICE, Some(INVITE)),
    ]);
    assert_eq!(
        when(&used_up, BOB, accept()),
        Err(DomainError::InviteUsedUp)
    );
}

#[test]
fn accepting_someone_elses_personal_invite_is_forbidden() {
    let room = given(&[
        created(Visibility::Private, 10),
        invited(Some(ALICE), Duration::hours(1), None),
    ]);
    assert_eq!(
        when(&room, BOB, accept()),
        Err(DomainError::InviteForAnotherUser)
    );
}

#[test]
fn accepting_an_unknown_token_or_a_token_of_no_room_is_not_found() {
    let room = given(&[created(Visibility::Public, 10)]);
    assert_eq!(when(&room, BOB, accept()), Err(DomainError::InviteNotFound));
    assert_eq!(when(&None, BOB, accept()), Err(DomainError::InviteNotFound));
}

#[test]
fn accepting_into_a_full_room_fails_and_a_member_accepting_changes_nothing() {
    let full = given(&[
        created(Visibility::Public, 2),
        joined(ALICE, None),
        invited(None, Duration::hours(1), None),
    ]);
    assert_eq!(when(&full, BOB, accept()), Err(DomainError::RoomFull));
    assert_eq!(when(&full, ALICE, accept()), Ok(None));
}

#[test]
fn sending_fails_for_non_members_of_a_public_room() {
    let room = given(&[created(Visibility::Public, 10)]);
    assert_eq!(when(&room, ALICE, send("hi")), Err(DomainError::NotAMember));
    assert!(matches!(
        when(&room, OWNER, send("hi")),
        Ok(Some(Event::MessageSent(_)))
    ));
}

#[test]
fn sending_fails_once_the_sender_has_left_the_room() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        (
            ALICE,
            Event::MemberLeft(MemberLeft {
                user_id: ALICE,
                new_owner_id: None,
            }),
        ),
    ]);
    assert_eq!(when(&room, ALICE, send("hi")), Err(DomainError::NotAMember));
}

#[test]
fn leaving_a_room_one_is_not_in_is_a_conflict() {
    let room = given(&[created(Visibility::Public, 10)]);
    assert_eq!(
        when(&room, ALICE, RoomCommand::Leave),
        Err(DomainError::NotJoined)
    );
}

#[test]
fn when_the_owner_leaves_the_longest_standing_member_becomes_owner() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(BOB, None),
        joined(ALICE, None),
    ]);
    let event = when(&room, OWNER, RoomCommand::Leave).unwrap().unwrap();
    assert_eq!(
        event,
        Event::MemberLeft(MemberLeft {
            user_id: OWNER,
            new_owner_id: Some(BOB)
        })
    );
    let room = given(&[
        created(Visibility::Public, 10),
        joined(BOB, None),
        joined(ALICE, None),
        (OWNER, event),
    ])
    .unwrap();
    assert_eq!(room.owner_id, BOB);
    assert_eq!(room.members[&BOB].role, Role::Owner);
    assert_eq!(
        when(&Some(room), CAROL, RoomCommand::Join),
        Ok(Some(joined(CAROL, None).1))
    );
}

#[test]
fn a_read_marker_never_moves_backwards() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        (
            ALICE,
            Event::RoomRead(RoomRead {
                user_id: ALICE,
                up_to_position: 50,
            }),
        ),
    ]);
    assert_eq!(
        when(&room, ALICE, RoomCommand::MarkRead { up_to_position: 40 }),
        Ok(None)
    );
    assert_eq!(
        when(&room, ALICE, RoomCommand::MarkRead { up_to_position: 50 }),
        Ok(None)
    );
    assert_eq!(
        when(&room, ALICE, RoomCommand::MarkRead { up_to_position: 60 }),
        Ok(Some(Event::RoomRead(RoomRead {
            user_id: ALICE,
            up_to_position: 60
        })))
    );
    assert_eq!(
        when(&room, BOB, RoomCommand::MarkRead { up_to_position: 60 }),
        Err(DomainError::NotAMember)
    );
}

#[test]
fn a_deleted_room_refuses_everything() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        (OWNER, Event::RoomDeleted(RoomDeleted {})),
    ]);
    assert_eq!(
        when(&room, ALICE, send("hi")),
        Err(DomainError::RoomNotFound)
    );
    assert_eq!(
        when(&room, BOB, RoomCommand::Join),
        Err(DomainError::RoomNotFound)
    );
    assert_eq!(
        when(&room, OWNER, RoomCommand::Leave),
        Err(DomainError::RoomNotFound)
    );
}

#[test]
fn leaving_forgets_the_read_marker_so_a_rejoin_starts_fresh() {
    let room = given(&[
        created(Visibility::Public, 10),
        joined(ALICE, None),
        (
            ALICE,
            Event::RoomRead(RoomRead {
                user_id: ALICE,
                up_to_position: 50,
            }),
        ),
        (
            ALICE,
            Event::MemberLeft(MemberLeft {
                user_id: ALICE,
                new_owner_id: None,
            }),
        ),
        joined(ALICE, None),
    ]);
    assert!(matches!(
        when(&room, ALICE, RoomCommand::MarkRead { up_to_position: 10 }),
        Ok(Some(Event::RoomRead(_)))
    ));
}

#[test]
fn the_first_to_join_a_room_everyone_left_becomes_its_owner() {
    let everyone_left = [
        created(Visibility::Public, 10),
        (
            OWNER,
            Event::MemberLeft(MemberLeft {
                user_id: OWNER,
                new_owner_id: None,
            }),
        ),
    ];
    let rejoined = MemberJoined {
        user_id: ALICE,
        role: Role::Owner,
        invite: None,
        matched_with: None,
    };
    assert_eq!(
        when(&given(&everyone_left), ALICE, RoomCommand::Join),
        Ok(Some(Event::MemberJoined(rejoined.clone())))
    );
    let mut history = everyone_left.to_vec();
    history.push((ALICE, Event::MemberJoined(rejoined)));
    let room = given(&history);
    assert_eq!(room.as_ref().unwrap().owner_id, ALICE);
    assert_eq!(
        when(&room, BOB, RoomCommand::Join),
        Ok(Some(joined(BOB, None).1)),
        "later joiners are members"
    );
}
