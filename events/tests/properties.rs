//! Properties of the domain and of decoding, over generated inputs: any run of commands that
//! `decide` accepts folds with `evolve` into a room that keeps every invariant; however a
//! room's events are split between a catch-up read and live deliveries (overlapping, early,
//! late, repeated), [`LiveRoom`] folds them into the room a plain fold gives; and no byte
//! string makes decoding panic.

use chrono::{DateTime, Duration, Utc};
use natter_events::catalogue::{Event, MessageKind, MessageSent, RoomKind, Visibility};
use natter_events::room::{Command, LiveRoom, Room, RoomCommand, decide, evolve};
use natter_events::{Decoded, Envelope, Recorded, RoomPart};
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
        Step::Send => RoomCommand::SendMessage(MessageSent {
            message_id: Uuid::now_v7(),
            kind: MessageKind::Text,
            content: "hi".into(),
            attachment: None,
            ..Default::default()
        }),
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

/// The events a generated history appends, in order, with the subject each goes to.
fn history(max_members: u32, steps: &[(u8, Step, i64)]) -> Vec<(RoomPart, Recorded)> {
    let create = Command {
        actor: user(0),
        now: start(),
        action: RoomCommand::Create {
            name: "r".into(),
            visibility: Visibility::Public,
            kind: RoomKind::Group,
            max_members,
        },
    };
    let mut out = Vec::new();
    let mut room = None;
    let mut now = start();
    for (actor, command) in
        std::iter::once((user(0), create)).chain(steps.iter().map(|(actor, step, minutes)| {
            now += Duration::minutes(*minutes);
            let actor = user(*actor);
            let command = Command {
                actor,
                now,
                action: action(step),
            };
            (actor, command)
        }))
    {
        let Ok(Some(event)) = decide(room.as_ref(), &command) else {
            continue;
        };
        let part = command.action.part();
        let envelope = Envelope::new(Uuid::now_v7(), command.now, Some(actor), Some(ROOM), event);
        room = evolve(room, &envelope);
        let position = out.len() as u64 + 1;
        out.push((
            part,
            Recorded {
                position,
                subject: String::new(),
                recorded_at: command.now,
                envelope,
            },
        ));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_live_room_folds_a_catch_up_and_live_deliveries_into_the_plain_fold(
        steps in proptest::collection::vec((0..6u8, step(), 0..20i64), 1..60),
        cuts in (0.0..=1.0f64, 0.0..=1.0f64, 0.0..=1.0f64, 0.0..=1.0f64),
        repeats in proptest::collection::vec(0..200usize, 0..10),
    ) {
        let events = history(4, &steps);
        let n = events.len();
        // The catch-up reads 1..=read; the live tail delivers from `from` on (it started
        // before `read + 1` was stored): `from..=early` before the catch-up begins (stored
        // before the read, so `early <= read`), `..=parked` while it runs (at least up to the
        // last event read: the catch-up waits for that), the rest after.
        let at = |f: f64, lo: usize, hi: usize| lo + ((hi - lo) as f64 * f) as usize;
        let read = at(cuts.0, 0, n);
        let from = at(cuts.1, 1, read + 1);
        let early = at(cuts.2, from - 1, read);
        let parked = at(cuts.3, read.max(early), n);
        let live = |range: std::ops::RangeInclusive<usize>| {
            events[range.start() - 1..*range.end()].to_vec()
        };
        let mut fold: LiveRoom<(RoomPart, Recorded)> = LiveRoom::default();
        for e in live(from..=early) {
            fold.deliver(e);
        }
        let parts = [RoomPart::Meta, RoomPart::Msg, RoomPart::Read];
        let from = fold.begin_catch_up(&parts);
        prop_assert!(from.iter().all(|(_, p)| *p == 0), "nothing loaded yet: {from:?}");
        for e in live(early + 1..=parked) {
            fold.deliver(e);
        }
        let read_events = events[..read]
            .iter()
            .filter(|(p, _)| parts.contains(p))
            .cloned()
            .collect();
        fold.end_catch_up(read_events, &[]);
        for e in live(parked + 1..=n) {
            fold.deliver(e);
        }
        // Deliveries repeated (an own append seen again, a resumed consumer) change nothing.
        for i in repeats {
            let e = events[i % n].clone();
            fold.apply(&e);
            fold.deliver(e);
        }
        let mut plain = events.iter().fold(None, |room, (_, r)| evolve(room, &r.envelope));
        // `evolve` knows no positions: a message's is its `message.sent`'s.
        for (_, r) in &events {
            if let (Some(room), Event::MessageSent(m)) = (plain.as_mut(), &r.envelope.event)
                && let Some(message) = room.messages.get_mut(&m.message_id)
            {
                message.position = r.position;
            }
        }
        prop_assert_eq!(fold.room(), plain.as_ref());
        for part in parts {
            let last = events.iter().filter(|(p, _)| *p == part).map(|(_, r)| r.position).max();
            prop_assert_eq!(fold.version(part), last.unwrap_or(0));
        }

        // A room first folded from `meta` alone, and later asked for `read` too, is read
        // again whole: its read markers come out as the plain fold's.
        let mut late: LiveRoom<(RoomPart, Recorded)> = LiveRoom::default();
        late.begin_catch_up(&[RoomPart::Meta]);
        let meta = events.iter().filter(|(p, _)| *p == RoomPart::Meta).cloned().collect();
        late.end_catch_up(meta, &[]);
        let from = late.begin_catch_up(&parts);
        prop_assert!(from.iter().all(|(_, p)| *p == 0), "read again from the start: {from:?}");
        late.end_catch_up(events.iter().filter(|(p, _)| parts.contains(p)).cloned().collect(), &[]);
        prop_assert_eq!(late.room(), plain.as_ref());
    }

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
