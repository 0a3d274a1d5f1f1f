//! `memory`: the server's resident memory per idle websocket connection (each subscribed to
//! a room), at 10,000 connections; `resume`: 1,000 clients resubscribing with `since` at once.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use serde_json::json;
use uuid::Uuid;

use crate::{Env, Figure, Scale, ws};

/// Open-file limit of this process (each client connection is one).
fn open_file_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

async fn connect_many(
    env: &Env,
    token: &str,
    room: Uuid,
    n: usize,
    since: Option<u64>,
) -> anyhow::Result<Vec<ws::Client>> {
    stream::iter(0..n)
        .map(|_| async move {
            let mut c = ws::Client::connect(env.addr, token).await?;
            c.subscribe(room, since).await?;
            c.until_subscribed().await?;
            Ok::<_, anyhow::Error>(c)
        })
        .buffer_unordered(100)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

pub async fn memory(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let wanted = scale.pick(1000, 10_000);
    let n = wanted.min(open_file_limit().saturating_sub(500) as usize);
    let token = env.register("idle_user").await?.token;
    let (_, room) = env
        .post("/rooms", Some(&token), &json!({ "name": "idle" }))
        .await?;
    let room: Uuid = room["room"]["id"].as_str().unwrap_or_default().parse()?;
    // Warm the server's per-room state first, so it is not counted per connection.
    let warm = connect_many(env, &token, room, 10, None).await?;
    // The growth from the first half of the connections to all of them: the allocator keeps
    // memory freed earlier (start-up, the warm-up) and hands it to the first connections
    // without RSS growing, which would understate the cost of each.
    let first = connect_many(env, &token, room, n / 2, None).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = env.server_rss_kib()?;
    let second = connect_many(env, &token, room, n - n / 2, None).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = env.server_rss_kib()?;
    drop((warm, first, second));
    let per = (after.saturating_sub(before)) as f64 / (n - n / 2) as f64;
    Ok(vec![Figure::new(
        "memory",
        format!("RSS per idle connection at {n}"),
        per,
        "KiB",
    )])
}

pub async fn resume(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let n = scale.pick(200, 1000);
    let token = env.register("resumer").await?.token;
    let (_, room) = env
        .post("/rooms", Some(&token), &json!({ "name": "storm" }))
        .await?;
    let room: Uuid = room["room"]["id"].as_str().unwrap_or_default().parse()?;
    let mut since = 0;
    for i in 0..100 {
        let (_, sent) = env
            .post(
                &format!("/rooms/{room}/messages"),
                Some(&token),
                &json!({ "content": format!("m{i}") }),
            )
            .await?;
        if i == 49 {
            since = sent["position"].as_u64().unwrap_or_default();
        }
    }
    let mut clients: Vec<ws::Client> = stream::iter(0..n)
        .map(|_| ws::Client::connect(env.addr, &token))
        .buffer_unordered(100)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let results = futures::future::join_all(clients.iter_mut().map(|c| async move {
        c.subscribe(room, Some(since)).await?;
        c.until_subscribed().await
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    for missed in results {
        anyhow::ensure!(
            missed? == 50,
            "a client did not get exactly the 50 events it missed"
        );
    }
    Ok(vec![Figure::new(
        "resume",
        format!("{n} clients resume at once (50 missed each)"),
        elapsed,
        "ms",
    )])
}
