//! Given → when → then for the room: a history of events folded into a room, a command decided
//! on it, and the events the scenarios start from.

use chrono::{DateTime, Duration, Utc};
use natter_events::Envelope;
use natter_events::catalogue::*;
use natter_events::room::{Command, DomainError, Room, RoomCommand, decide, evolve};
use uuid::Uuid;

pub const OWNER: Uuid = Uuid::from_u128(1);
pub const ALICE: Uuid = Uuid::from_u128(2);
pub const BOB: Uuid = Uuid::from_u128(3);
pub const CAROL: Uuid = Uuid::from_u128(4);
pub const ROOM: Uuid = Uuid::from_u128(100);
pub const INVITE: Uuid = Uuid::from_u128(200);

pub fn now() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// Folds `history` (each event with the actor that caused it) into a room.
pub fn given(history: &[(Uuid, Event)]) -> Option<Room> {
    history.iter().fold(None, |room, (actor, event)| {
        evolve(
            room,
            &Envelope::new(
                Uuid::now_v7(),
                now() - Duration::hours(1),
                Some(*actor),
                Some(ROOM),
                event.clone(),
            ),
        )
    })
}

pub fn when(
    room: &Option<Room>,
    actor: Uuid,
    action: RoomCommand,
) -> Result<Option<Event>, DomainError> {
    decide(
        room.as_ref(),
        &Command {
            actor,
            now: now(),
            action,
        },
    )
}

pub fn created(visibility: Visibility, max_members: u32) -> (Uuid, Event) {
    (
        OWNER,
        Event::RoomCreated(RoomCreated {
            name: "general".into(),
            visibility,
            kind: RoomKind::Group,
            max_members,
            owner_id: OWNER,
            with_user_id: None,
        }),
    )
}

pub fn joined(user: Uuid, invite: Option<Uuid>) -> (Uuid, Event) {
    (
        user,
        Event::MemberJoined(MemberJoined {
            user_id: user,
            role: Role::Member,
            invite,
            matched_with: None,
        }),
    )
}

pub fn invited(
    invitee: Option<Uuid>,
    expires_in: Duration,
    max_uses: Option<u32>,
) -> (Uuid, Event) {
    (
        OWNER,
        Event::InviteCreated(InviteCreated {
            invite_id: INVITE,
            invitee_id: invitee,
            expires_at: now() + expires_in,
            max_uses,
            token_hash: "hash".into(),
        }),
    )
}

pub fn send(content: &str) -> RoomCommand {
    RoomCommand::SendMessage(MessageSent {
        message_id: Uuid::from_u128(9),
        kind: MessageKind::Text,
        content: content.into(),
        attachment: None,
        ..Default::default()
    })
}

pub fn accept() -> RoomCommand {
    RoomCommand::AcceptInvite {
        token_hash: "hash".into(),
    }
}
