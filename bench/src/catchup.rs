//! `catchup`: a subscribe with `since: 0` to a room holding 100k events, against a raw
//! ordered-consumer replay of the same room.

use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;
use natter_events::catalogue::{
    Event, MessageKind, MessageSent, RoomCreated, RoomKind, Visibility,
};
use natter_events::{Envelope, RoomPart, Start};
use natter_testkit::api::User;
use uuid::Uuid;

use crate::{Env, Figure, Scale, ws};

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let count = scale.pick(10_000, 100_000);
    let User {
        token, id: owner, ..
    } = env.register("catchup_reader").await?;
    let room = Uuid::now_v7();
    let subjects = env.store.subjects().clone();
    let ev =
        |event: Event| Envelope::new(Uuid::now_v7(), Utc::now(), Some(owner), Some(room), event);
    let created = std::iter::once((
        subjects.room(room, RoomPart::Meta),
        ev(Event::RoomCreated(RoomCreated {
            name: "history".into(),
            visibility: Visibility::Public,
            kind: RoomKind::Group,
            max_members: 1000,
            owner_id: owner,
            with_user_id: None,
        })),
    ));
    let messages = (0..count).map(|i| {
        (
            subjects.room(room, RoomPart::Msg),
            ev(Event::MessageSent(MessageSent {
                message_id: Uuid::now_v7(),
                kind: MessageKind::Text,
                content: format!("history {i} {}", "x".repeat(80)),
                attachment: None,
                ..Default::default()
            })),
        )
    });
    let head = env.append_all(created.chain(messages)).await?;
    // Let natter's own projector take these in first, so it does not compete with the replay.
    env.projected(head).await?;

    let mut client = ws::Client::connect(env.addr, &token).await?;
    let started = Instant::now();
    client.subscribe(room, Some(0)).await?;
    let received = client.until_subscribed().await?;
    let natter = received as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        received == count as u64 + 1,
        "replayed {received} of {} events",
        count + 1
    );

    let started = Instant::now();
    let filter = subjects.room_events(room);
    // Like natter, start at the room's first event rather than scan from the log's start.
    let first = env.store.next_position(&filter, 1).await?.unwrap_or(1);
    let mut replay = Box::pin(env.store.follow(&filter, Start::After(first - 1)).await?);
    let mut read = 0;
    while read < count + 1 {
        replay.next().await.transpose()?;
        read += 1;
    }
    let raw = read as f64 / started.elapsed().as_secs_f64();
    Ok(vec![
        Figure::new(
            "catchup",
            format!("since 0 over {} events", count + 1),
            natter,
            "ev/s",
        )
        .against(raw, "catchup_vs_raw"),
    ])
}
