//! `big-room`: the costs that could grow with a room's history.
//!
//! - **Commands on old and new messages, cold.** One room of 1,000,000 messages (20,000 with
//!   `--quick`); a freshly started command instance takes 20 commands aimed at its oldest and
//!   newest messages (edits, reactions, replies, in turn): the first one (the instance has
//!   never seen the room) and the slowest, against one raw JetStream publish-and-ack.
//! - **Memory.** Another fresh command instance edits one message in each of 10 rooms of one
//!   message, then in each of 10 rooms of 100,000 (2,000 with `--quick`): how much its resident
//!   memory grew for the big rooms.
//! - **Search in the big room.** Every message holds the word `natter`, and one word of its own
//!   (`r{i}x`): the p50 of a search for the common word and for a rare one, against the same
//!   match and rank sent straight to Postgres.

use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::Utc;
use natter_events::catalogue::{Event, MessageKind, MessageSent};
use natter_events::{Envelope, RoomPart};
use natter_testkit::api::User;
use natter_testkit::process::NatterProcess;
use serde_json::json;
use uuid::Uuid;

use crate::env::rss_kib;
use crate::{Env, Figure, Scale, quantile};

/// Rooms (and messages in each) for the memory figure.
const MEMORY_ROOMS: usize = 10;
/// Commands aimed at the big room.
const COMMANDS: usize = 20;
/// Searches of each kind.
const SEARCHES: usize = 10;

/// The events of a room whose messages (by `owner`) have `ids`, made as they are appended
/// (a million envelopes held at once would be the bench's memory, not natter's).
fn room_events<'a>(
    env: &'a Env,
    room: Uuid,
    owner: Uuid,
    ids: &'a [Uuid],
    content: impl Fn(usize) -> String + 'a,
) -> impl Iterator<Item = (String, Envelope)> + 'a {
    let subject = env.store.subjects().room(room, RoomPart::Msg);
    let messages = ids.iter().enumerate().map(move |(i, message_id)| {
        let sent = Event::MessageSent(MessageSent {
            message_id: *message_id,
            kind: MessageKind::Text,
            content: content(i),
            ..Default::default()
        });
        let envelope = Envelope::new(Uuid::now_v7(), Utc::now(), Some(owner), Some(room), sent);
        (subject.clone(), envelope)
    });
    env.group_room(room, "big", owner, &[])
        .into_iter()
        .chain(messages)
}

fn ids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::now_v7()).collect()
}

/// One command to `natter`: its latency in milliseconds; anything but a success fails.
async fn command(
    env: &Env,
    natter: &NatterProcess,
    token: &str,
    room: Uuid,
    target: Uuid,
    kind: usize,
) -> anyhow::Result<f64> {
    let base = format!("{}/api/v1/rooms/{room}/messages", natter.base());
    let request = match kind % 3 {
        0 => env
            .http
            .patch(format!("{base}/{target}"))
            .json(&json!({ "content": format!("edited {}", Uuid::now_v7()) })),
        1 => env
            .http
            .put(format!("{base}/{target}/reactions/:big_{kind}:")),
        _ => env
            .http
            .post(&base)
            .json(&json!({ "content": "a reply", "reply_to": target })),
    };
    let started = Instant::now();
    let response = request.bearer_auth(token).send().await?;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "command {kind} on {target}: {status} {}",
        response.text().await.unwrap_or_default()
    );
    Ok(took)
}

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let big = scale.pick(20_000, 1_000_000);
    let memory_size = scale.pick(2_000, 100_000);
    let User {
        token, id: owner, ..
    } = env.register("big_room_owner").await?;

    let room = Uuid::now_v7();
    let big_ids = ids(big);
    let small_rooms: Vec<(Uuid, Vec<Uuid>)> = (0..MEMORY_ROOMS)
        .map(|_| (Uuid::now_v7(), ids(1)))
        .collect();
    let big_rooms: Vec<(Uuid, Vec<Uuid>)> = (0..MEMORY_ROOMS)
        .map(|_| (Uuid::now_v7(), ids(memory_size)))
        .collect();
    let history = |i: usize| format!("natter keeps message r{i}x of a long history");
    let mut events: Box<dyn Iterator<Item = (String, Envelope)> + Send + '_> =
        Box::new(room_events(env, room, owner, &big_ids, history));
    for (r, m) in small_rooms.iter().chain(&big_rooms) {
        events = Box::new(events.chain(room_events(env, *r, owner, m, |i| format!("m {i}"))));
    }
    let head = env.append_all(events).await?;
    env.projected(head).await?;

    // Commands on the big room, from an instance that has never seen it.
    let cold = env.another("command").await?;
    let mut latencies = Vec::with_capacity(COMMANDS);
    for k in 0..COMMANDS {
        let target = if k % 2 == 0 {
            big_ids[k]
        } else {
            big_ids[big - 1 - k]
        };
        latencies.push(command(env, &cold, &token, room, target, k).await?);
    }
    let first = latencies[0];
    latencies.sort_by(f64::total_cmp);
    drop(cold);
    let raw_subjects = crate::send::raw_stream(env).await?;
    let payload = Bytes::from(vec![b'x'; 300]);
    let mut raw = Vec::with_capacity(COMMANDS);
    for _ in 0..COMMANDS {
        let started = Instant::now();
        let js = env.store.jetstream();
        js.publish(format!("{raw_subjects}.big"), payload.clone())
            .await?
            .await?;
        raw.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    raw.sort_by(f64::total_cmp);

    // Memory: 10 rooms of one message, then 10 big ones, on one fresh instance.
    let fresh = env.another("command").await?;
    let pid = fresh.pid().context("the fresh instance runs")?;
    for (i, (r, m)) in small_rooms.iter().enumerate() {
        command(env, &fresh, &token, *r, m[0], 3 * i).await?;
    }
    let after_small = rss_kib(pid)?;
    for (i, (r, m)) in big_rooms.iter().enumerate() {
        command(env, &fresh, &token, *r, m[0], 3 * i).await?;
    }
    let after_big = rss_kib(pid)?;
    drop(fresh);

    // Search, through the instance serving every role.
    // Messages no command above touched.
    let rare = |k: usize| format!("r{}x", big / 2 + k * 7);
    let mut common = Vec::new();
    let mut rare_ms = Vec::new();
    let mut common_raw = Vec::new();
    let mut rare_raw = Vec::new();
    for k in 0..SEARCHES {
        for (q, natter, raw) in [
            ("natter".to_string(), &mut common, &mut common_raw),
            (rare(k), &mut rare_ms, &mut rare_raw),
        ] {
            let started = Instant::now();
            let query = [
                ("q", q.as_str()),
                ("room_id", &room.to_string()),
                ("limit", "20"),
            ];
            let body = env.get_ok("/search/messages", &query, &token).await?;
            natter.push(started.elapsed().as_secs_f64() * 1000.0);
            let found = body["results"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(found > 0, "nothing found for {q:?}");

            let started = Instant::now();
            let _: Vec<(i64, f32)> = sqlx::query_as(
                "WITH q AS (SELECT to_tsquery('simple', \
                    (SELECT string_agg(lexeme || ':*', ' & ') FROM unnest(to_tsvector('simple', $1)))) AS query) \
                 SELECT x.position, ts_rank(x.search, q.query) AS rank \
                 FROM q, messages x \
                 WHERE x.search @@ q.query AND NOT x.deleted AND x.room_id = $2 \
                 ORDER BY rank DESC, x.position DESC LIMIT 20",
            )
            .bind(&q)
            .bind(room)
            .fetch_all(&env.pool)
            .await?;
            raw.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    for v in [&mut common, &mut rare_ms, &mut common_raw, &mut rare_raw] {
        v.sort_by(f64::total_cmp);
    }
    let raw_p50 = quantile(&raw, 0.5);
    Ok(vec![
        Figure::new(
            "big-room",
            format!("first command, cold, room of {big}"),
            first,
            "ms",
        )
        .against(raw_p50, "big_first_vs_raw"),
        Figure::new(
            "big-room",
            format!("slowest of {COMMANDS} commands, old and new"),
            latencies[latencies.len() - 1],
            "ms",
        )
        .against(raw_p50, "big_max_vs_raw"),
        Figure::new(
            "big-room",
            format!("RSS growth, {MEMORY_ROOMS} rooms of {memory_size} vs of 1"),
            (after_big as f64 - after_small as f64) / 1024.0,
            "MB",
        ),
        Figure::new(
            "big-room",
            "search a word in every message p50",
            quantile(&common, 0.5),
            "ms",
        )
        .against(quantile(&common_raw, 0.5), "big_common_vs_raw"),
        Figure::new(
            "big-room",
            "search a rare word p50",
            quantile(&rare_ms, 0.5),
            "ms",
        )
        .against(quantile(&rare_raw, 0.5), "big_rare_vs_raw"),
    ])
}
