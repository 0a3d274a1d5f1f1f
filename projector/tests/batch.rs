//! The batch fold's one law that spans batches: where a run of events is cut into batches
//! does not change the rows it comes to.

use chrono::Utc;
use natter_events::catalogue::{
    Event, MemberJoined, MemberLeft, MessageKind, MessageSent, Role, RoomCreated, RoomKind,
    Visibility,
};
use natter_events::{Envelope, Recorded};
use natter_projector::batch::Batch;
use uuid::Uuid;

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
                with_user_id: None,
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
                matched_with: None,
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
                ..Default::default()
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
