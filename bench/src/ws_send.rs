//! `ws-send`: messages sent over the websocket (`send` ops, each with its `client_id`), 64 in
//! flight on one connection, against raw JetStream publish-and-ack with 64 in flight in the
//! same run. Each op carries a `client_id`, so each is also an idempotent command (a claim and
//! a stored answer), which REST's `send` scenario does not pay.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use natter_testkit::api::User;
use serde_json::json;

use crate::send::{CONTENT_CHARS, IN_FLIGHT, raw_publish_rate};
use crate::{Env, Figure, Scale, ws};

const ROOMS: usize = 64;

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let User {
        token, id: user, ..
    } = env.register("bench_ws_sender").await?;
    let rooms = env.create_rooms(&token, ROOMS, "ws bench").await?;
    let content = "x".repeat(CONTENT_CHARS);
    let duration = scale.pick(Duration::from_secs(3), Duration::from_secs(15));
    let mut client = ws::Client::connect(env.addr, &token).await?;
    let op = |i: usize| {
        json!({ "op": "send", "room_id": rooms[i % ROOMS], "client_id": format!("b{i}"),
                "content": content })
    };
    let started = Instant::now();
    let mut next = 0;
    let mut waiting = HashSet::new();
    while next < IN_FLIGHT {
        client.send(&op(next)).await?;
        waiting.insert(format!("b{next}"));
        next += 1;
    }
    let mut acked = 0u64;
    while !waiting.is_empty() {
        let frame = client.next().await?;
        match frame["type"].as_str() {
            Some("ack") => {
                let id = frame["client_id"].as_str().unwrap_or_default().to_string();
                anyhow::ensure!(waiting.remove(&id), "an ack for no op in flight: {frame}");
                acked += 1;
                if started.elapsed() < duration {
                    client.send(&op(next)).await?;
                    waiting.insert(format!("b{next}"));
                    next += 1;
                }
            }
            Some("error") => anyhow::bail!("a send over the socket was refused: {frame}"),
            _ => {}
        }
    }
    let rate = acked as f64 / started.elapsed().as_secs_f64();
    let raw = raw_publish_rate(env, user, duration).await?;
    Ok(vec![
        Figure::new(
            "ws-send",
            format!("socket sends, {IN_FLIGHT} in flight"),
            rate,
            "msg/s",
        )
        .against(raw, "ws_send_vs_raw"),
    ])
}
