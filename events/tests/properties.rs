//! Properties of the domain and of decoding, over generated inputs: any run of commands that
//! `decide` accepts folds with `evolve` into a room that keeps every invariant, and no byte
//! string makes decoding panic.

use chrono::{DateTime, Duration, Utc};
use natter_events::catalogue::{Event, MessageKind, RoomKind, Visibility};
use natter_events::room::{Command, Room, RoomCommand, decide, evolve};
use natter_events::{Decoded, Envelope};
use proptest::prelude::*;
use uuid::Uuid;

const ROOM: Uuid = Uuid::from_u128(100);

fn user(i: u8) -> Uuid {
    Uuid::from_u128(1 + u128::from(i))
}

fn token(i: u8) -> String {
    format!("token-{i}")
}

fn start() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// One step of a generated history: who acts, what they try, and how much time passes.
#[derive(Debug, Clone)]
enum Step {
    Join,
    Leave,
    Invite {
        token: u8,
        for_user: Option<u8>,
        max_uses: Option<u32>,
        expires_in_mins: i64,
    },
    Revoke {
        token: u8,
    },
    Accept {
        token: u8,
    },
    Send,
    Read {
        up_to: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Join),
        2 => Just(Step::Leave),
        2 => (0..4u8, proptest::option::of(0..6u8), proptest::option::of(1..4u32), 1..120i64)
            .prop_map(|(token, for_user, max_uses, expires_in_mins)| Step::Invite { token, for_user, max_uses, expires_in_mins }),
        1 => (0..4u8).prop_map(|token| Step::Revoke { token }),
        3 => (0..4u8).prop_map(|token| Step::Accept { token }),
        2 => Just(Step::Send),
        2 => (0..500u64).prop_map(|up_to| Step::Read { up_to }),
    ]
}

fn action(step: &Step) -> RoomCommand {
    match step {
        Step::Join => RoomCommand::Join,
        Step::Leave => RoomCommand::Leave,
        Step::Invite {
            token: t,
            for_user,
            max_uses,
            expires_in_mins,
        } => RoomCommand::CreateInvite {
            invite_id: Uuid::from_u128(1000 + u128::from(*t)),
            token_hash: token(*t),
            invitee_id: for_user.map(user),
            expires_at: start() + Duration::minutes(*expires_in_mins),
            max_uses: *max_uses,
        },
        Step::Revoke { token: t } => RoomCommand::RevokeInvite {
            token_hash: token(*t),
        },
        Step::Accept { token: t } => RoomCommand::AcceptInvite {
            token_hash: token(*t),
        },
        Step::Send => RoomCommand::SendMessage {
            message_id: Uuid::now_v7(),
            kind: MessageKind::Text,
            content: "hi".into(),
            attachment: None,
        },
        Step::Read { up_to } => RoomCommand::MarkRead {
            up_to_position: *up_to,
        },
    }
}

/// The invariants every folded room keeps.
fn check(room: &Room, before: Option<&Room>) -> Result<(), TestCaseError> {
    prop_assert!(
        room.member_count() <= room.max_members,
        "members {} > max {}",
        room.member_count(),
        room.max_members
    );
    let owners: Vec<_> = room
        .members
        .iter()
        .filter(|(_, m)| m.role == natter_events::catalogue::Role::Owner)
        .map(|(id, _)| *id)
        .collect();
    if room.members.is_empty() {
        prop_assert!(owners.is_empty());
    } else {
        prop_assert_eq!(
            owners.len(),
            1,
            "exactly one owner among {:?}",
            room.members.keys()
        );
        prop_assert_eq!(owners[0], room.owner_id, "the owner is the room's owner_id");
    }
    for invite in room.invites.values() {
        if let Some(max) = invite.max_uses {
            prop_assert!(invite.uses <= max, "invite used {} of {}", invite.uses, max);
        }
    }
    if let Some(before) = before {
        for (member, marker) in &before.read_markers {
            if let Some(now) = room.read_markers.get(member) {
                prop_assert!(
                    now >= marker,
                    "a read marker moved back from {} to {}",
                    marker,
                    now
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_accepted_run_of_commands_keeps_the_rooms_invariants(
        max_members in 2..6u32,
        steps in proptest::collection::vec((0..6u8, step(), 0..20i64), 1..80),
    ) {
        let create = Command {
            actor: user(0),
            now: start(),
            action: RoomCommand::Create {
                name: "r".into(),
                visibility: Visibility::Private,
                kind: RoomKind::Group,
                max_members,
            },
        };
        let envelope = |actor: Uuid, now: DateTime<Utc>, event: Event| {
            Envelope::new(Uuid::now_v7(), now, Some(actor), Some(ROOM), event)
        };
        let event = decide(None, &create).unwrap().unwrap();
        let mut room = evolve(None, &envelope(user(0), start(), event));
        let mut now = start();
        for (actor, step, minutes) in steps {
            now += Duration::minutes(minutes);
            let command = Command { actor: user(actor), now, action: action(&step) };
            let Ok(Some(event)) = decide(room.as_ref(), &command) else { continue };
            let next = evolve(room.clone(), &envelope(user(actor), now, event));
            let folded = next.as_ref().expect("an accepted command leaves a room");
            check(folded, room.as_ref())?;
            room = next;
        }
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::decode(&bytes);
    }

    #[test]
    fn decoding_envelope_shaped_json_never_panics(
        type_name in prop_oneof![Just("message.sent".to_string()), Just("room.created".to_string()),
                                 Just("room.member_joined".to_string()), Just("user.registered".to_string()), "[a-z._]{1,20}"],
        version in 0..4u32,
        data in prop_oneof![Just(serde_json::json!({})), Just(serde_json::json!({"content": 42})),
                            Just(serde_json::json!({"message_id": "x", "kind": "text", "content": "a\u{0}b"})),
                            Just(serde_json::json!(null)), Just(serde_json::json!([1, 2]))],
    ) {
        let payload = serde_json::json!({
            "id": Uuid::now_v7(), "type": type_name, "version": version,
            "occurred_at": start(), "actor_id": null, "data": data,
        });
        match Envelope::decode(payload.to_string().as_bytes()) {
            Ok(Decoded::Known(e)) => {
                // What decodes re-encodes and decodes to the same event.
                let again = Envelope::decode(&e.encode()).expect("a decoded envelope re-decodes");
                prop_assert!(matches!(again, Decoded::Known(a) if a.event == e.event));
            }
            Ok(Decoded::Unknown(_)) | Err(_) => {}
        }
    }
}
