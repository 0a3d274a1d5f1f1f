//! `me-rooms`: `GET /me/rooms` latency for a user in many rooms full of messages (100 rooms of
//! 10,000 messages each), with read markers halfway, so every unread count is large.

use std::time::Instant;

use chrono::Utc;
use natter_events::catalogue::{Event, MessageKind, MessageSent, RoomRead};
use natter_events::{Envelope, RoomPart};
use natter_testkit::api::User;
use uuid::Uuid;

use crate::{Env, Figure, Scale, quantile};

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let rooms_n = scale.pick(20, 100);
    let per_room = scale.pick(500, 10_000);
    let User {
        token, id: reader, ..
    } = env.register("bench_reader").await?;
    let writer = Uuid::now_v7();
    let subjects = env.store.subjects().clone();
    let rooms: Vec<Uuid> = (0..rooms_n).map(|_| Uuid::now_v7()).collect();
    let ev = |room: Uuid, actor: Uuid, event: Event| {
        Envelope::new(Uuid::now_v7(), Utc::now(), Some(actor), Some(room), event)
    };
    let setup: Vec<_> = rooms
        .iter()
        .flat_map(|room| env.group_room(*room, "busy", writer, &[reader]))
        .collect();
    env.append_all(setup).await?;
    // Messages interleaved over the rooms, as a busy system would write them.
    let message = |(i, room): (usize, Uuid)| {
        let sent = Event::MessageSent(MessageSent {
            message_id: Uuid::now_v7(),
            kind: MessageKind::Text,
            content: format!("message {i}"),
            attachment: None,
            ..Default::default()
        });
        (subjects.room(room, RoomPart::Msg), ev(room, writer, sent))
    };
    // Collected: lazy iterators borrowing `rooms` across awaits make this future's type
    // too particular for the scenario table.
    let messages: Vec<(usize, Uuid)> = (0..per_room)
        .flat_map(|i| rooms.iter().map(move |room| (i, *room)))
        .collect();
    let half = rooms_n * per_room / 2;
    let halfway = env
        .append_all(messages[..half].iter().copied().map(message))
        .await?;
    let reads: Vec<_> = rooms
        .iter()
        .map(|room| {
            let read = Event::RoomRead(RoomRead {
                user_id: reader,
                up_to_position: halfway,
            });
            (
                subjects.room(*room, RoomPart::Read),
                ev(*room, reader, read),
            )
        })
        .collect();
    env.append_all(reads).await?;
    let head = env
        .append_all(messages[half..].iter().copied().map(message))
        .await?;
    env.projected(head).await?;

    let mut latencies = Vec::new();
    for _ in 0..scale.pick(100, 500) {
        let started = Instant::now();
        let body = env.get_ok("/me/rooms", &[], &token).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        let unread = body["rooms"][0]["unread_count"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            unread as usize == per_room - per_room / 2,
            "unexpected unread count {unread}"
        );
    }
    latencies.sort_by(f64::total_cmp);
    let label = format!("GET /me/rooms, {rooms_n} rooms x {per_room}");
    Ok(vec![
        Figure::new(
            "me-rooms",
            format!("{label} p50"),
            quantile(&latencies, 0.5),
            "ms",
        ),
        Figure::new(
            "me-rooms",
            format!("{label} p99"),
            quantile(&latencies, 0.99),
            "ms",
        ),
    ])
}
