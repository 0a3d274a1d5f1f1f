//! Replies, threads, reactions and mentions: what a message may refer to, decided on the
//! room's folded messages.

use natter_events::catalogue::*;
use natter_events::room::{DomainError, RoomCommand};
use uuid::Uuid;

use crate::support::*;

const ROOT: Uuid = Uuid::from_u128(10);
const REPLY: Uuid = Uuid::from_u128(11);
const NEW: Uuid = Uuid::from_u128(12);

fn message(id: Uuid, thread_id: Option<Uuid>) -> MessageSent {
    MessageSent {
        message_id: id,
        content: "hi".into(),
        thread_id,
        ..MessageSent::default()
    }
}

fn sent(user: Uuid, id: Uuid, thread_id: Option<Uuid>) -> (Uuid, Event) {
    (user, Event::MessageSent(message(id, thread_id)))
}

fn send_linked(reply_to: Option<Uuid>, thread_id: Option<Uuid>, mentions: &[Uuid]) -> RoomCommand {
    RoomCommand::SendMessage(MessageSent {
        reply_to,
        mentions: mentions.to_vec(),
        ..message(NEW, thread_id)
    })
}

fn deleted(id: Uuid) -> (Uuid, Event) {
    (
        OWNER,
        Event::MessageDeleted(MessageDeleted { message_id: id }),
    )
}

fn react(emoji: &str) -> RoomCommand {
    RoomCommand::React {
        message_id: ROOT,
        emoji: emoji.into(),
    }
}

fn unreact(emoji: &str) -> RoomCommand {
    RoomCommand::Unreact {
        message_id: ROOT,
        emoji: emoji.into(),
    }
}

fn reaction(user: Uuid, emoji: &str) -> Reaction {
    Reaction {
        message_id: ROOT,
        emoji: emoji.into(),
        user_id: user,
    }
}

/// A public room with Alice and Bob, a root message of Alice's and Bob's reply in its thread.
fn conversation() -> Vec<(Uuid, Event)> {
    vec![
        created(Visibility::Public, 10),
        joined(ALICE, None),
        joined(BOB, None),
        sent(ALICE, ROOT, None),
        sent(BOB, REPLY, Some(ROOT)),
    ]
}

#[test]
fn a_reply_quotes_any_live_message_of_the_room() {
    let room = given(&conversation());
    for target in [ROOT, REPLY] {
        let command = send_linked(Some(target), None, &[]);
        assert!(
            matches!(when(&room, BOB, command), Ok(Some(Event::MessageSent(m))) if m.reply_to == Some(target))
        );
    }
    let unknown = send_linked(Some(Uuid::from_u128(99)), None, &[]);
    assert_eq!(when(&room, BOB, unknown), Err(DomainError::BadReplyTo));
    let mut history = conversation();
    history.push(deleted(ROOT));
    let gone = given(&history);
    assert_eq!(
        when(&gone, BOB, send_linked(Some(ROOT), None, &[])),
        Err(DomainError::BadReplyTo),
        "a deleted message cannot be quoted"
    );
}

#[test]
fn threads_are_one_level_deep_under_a_live_root() {
    let room = given(&conversation());
    assert!(matches!(
        when(&room, CAROL, send_linked(None, Some(ROOT), &[])),
        Err(DomainError::NotAMember)
    ));
    assert!(matches!(
        when(&room, ALICE, send_linked(Some(REPLY), Some(ROOT), &[])),
        Ok(Some(Event::MessageSent(_)))
    ));
    assert_eq!(
        when(&room, ALICE, send_linked(None, Some(REPLY), &[])),
        Err(DomainError::BadThreadRoot),
        "a reply is no root"
    );
    assert_eq!(
        when(
            &room,
            ALICE,
            send_linked(None, Some(Uuid::from_u128(99)), &[])
        ),
        Err(DomainError::BadThreadRoot)
    );
    let mut history = conversation();
    history.push(deleted(ROOT));
    assert_eq!(
        when(&given(&history), ALICE, send_linked(None, Some(ROOT), &[])),
        Err(DomainError::BadThreadRoot),
        "a deleted root takes no more replies"
    );
    // The fold knows the root's replies, in order.
    let root = &room.as_ref().unwrap().messages[&ROOT];
    assert_eq!(root.replies, vec![REPLY]);
}

#[test]
fn mentions_name_members_only() {
    let room = given(&conversation());
    assert!(matches!(
        when(&room, ALICE, send_linked(None, None, &[BOB, ALICE])),
        Ok(Some(Event::MessageSent(m))) if m.mentions == vec![BOB, ALICE]
    ));
    assert_eq!(
        when(&room, ALICE, send_linked(None, None, &[BOB, CAROL])),
        Err(DomainError::MentionsNonMember)
    );
    let mut history = conversation();
    history.push((
        BOB,
        Event::MemberLeft(MemberLeft {
            user_id: BOB,
            new_owner_id: None,
        }),
    ));
    assert_eq!(
        when(&given(&history), ALICE, send_linked(None, None, &[BOB])),
        Err(DomainError::MentionsNonMember),
        "a member who left is no longer mentionable"
    );
}

#[test]
fn a_reaction_is_once_per_user_and_emoji_and_can_be_taken_back() {
    let mut history = conversation();
    let room = given(&history);
    assert_eq!(
        when(&room, BOB, react("👍")),
        Ok(Some(Event::ReactionAdded(reaction(BOB, "👍"))))
    );
    assert_eq!(when(&room, BOB, unreact("👍")), Ok(None), "never made");
    assert_eq!(
        when(&room, CAROL, react("👍")),
        Err(DomainError::NotAMember)
    );
    let missing = RoomCommand::React {
        message_id: Uuid::from_u128(99),
        emoji: "👍".into(),
    };
    assert_eq!(when(&room, BOB, missing), Err(DomainError::MessageNotFound));

    history.push((BOB, Event::ReactionAdded(reaction(BOB, "👍"))));
    let room = given(&history);
    assert_eq!(
        when(&room, BOB, react("👍")),
        Ok(None),
        "again: nothing new"
    );
    assert_eq!(
        when(&room, ALICE, react("👍")),
        Ok(Some(Event::ReactionAdded(reaction(ALICE, "👍")))),
        "another user's counts on its own"
    );
    assert_eq!(
        when(&room, BOB, react(":tada:")),
        Ok(Some(Event::ReactionAdded(reaction(BOB, ":tada:"))))
    );
    assert_eq!(
        when(&room, BOB, unreact("👍")),
        Ok(Some(Event::ReactionRemoved(reaction(BOB, "👍"))))
    );

    history.push(deleted(ROOT));
    let room = given(&history);
    assert_eq!(
        when(&room, ALICE, react("👍")),
        Err(DomainError::MessageDeleted)
    );
    assert_eq!(
        when(&room, BOB, unreact("👍")),
        Ok(Some(Event::ReactionRemoved(reaction(BOB, "👍")))),
        "a reaction can still be taken back"
    );
    history.push((BOB, Event::ReactionRemoved(reaction(BOB, "👍"))));
    let root = &given(&history).unwrap().messages[&ROOT];
    assert!(root.reactions.is_empty());
}

#[test]
fn replies_and_reactions_are_decided_on_the_messages_and_reactions_expect_their_version() {
    use natter_events::RoomPart;
    use natter_events::room::Concurrency;
    let plain = send_linked(None, None, &[BOB]);
    assert_eq!(plain.reads(), &[RoomPart::Meta]);
    assert_eq!(plain.concurrency(), Concurrency::Barrier);
    for linked in [
        send_linked(Some(ROOT), None, &[]),
        send_linked(None, Some(ROOT), &[]),
    ] {
        assert_eq!(linked.reads(), &[RoomPart::Meta, RoomPart::Msg]);
        assert_eq!(linked.concurrency(), Concurrency::Barrier);
    }
    for reaction in [react("👍"), unreact("👍")] {
        assert_eq!(reaction.part(), RoomPart::Msg);
        assert_eq!(reaction.reads(), &[RoomPart::Meta, RoomPart::Msg]);
        assert_eq!(reaction.concurrency(), Concurrency::ExpectVersion);
    }
}
