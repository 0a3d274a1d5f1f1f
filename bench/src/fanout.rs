//! `fanout`: one room's messages delivered to 1,000 websocket subscribers, against raw core
//! NATS fan-out of the same number of messages to 1,000 subscriptions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, stream};
use serde_json::json;

use crate::{Env, Figure, Scale, ws};

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let subscribers = scale.pick(200, 1000);
    let messages = scale.pick(50, 200);
    let token = env.register("fan_owner").await?.token;
    let (_, room) = env
        .post("/rooms", Some(&token), &json!({ "name": "fan-out" }))
        .await?;
    let room: uuid::Uuid = room["room"]["id"].as_str().unwrap_or_default().parse()?;
    // One member with many connections: the gateway's cost is per connection either way.
    let clients: Vec<ws::Client> = stream::iter(0..subscribers)
        .map(|_| {
            let token = token.clone();
            async move {
                let mut c = ws::Client::connect(env.addr, &token).await?;
                c.subscribe(room, None).await?;
                c.until_subscribed().await?;
                Ok::<_, anyhow::Error>(c)
            }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let progress: Vec<Arc<AtomicUsize>> = (0..subscribers).map(|_| Arc::default()).collect();
    let readers: Vec<_> = clients
        .into_iter()
        .zip(progress.iter().cloned())
        .map(|(mut c, got)| {
            tokio::spawn(async move {
                while got.load(Ordering::Relaxed) < messages {
                    if c.next().await?["type"] == "event" {
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<_, anyhow::Error>(Instant::now())
            })
        })
        .collect();
    let url = format!("{}/rooms/{room}/messages", env.base);
    let sent: Vec<anyhow::Result<()>> = stream::iter(0..messages)
        .map(|i| {
            let request = env
                .http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "content": format!("fan-{i}") }));
            async move {
                let response = request.send().await?;
                anyhow::ensure!(
                    response.status().as_u16() == 201,
                    "a send failed: {}",
                    response.status()
                );
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    sent.into_iter().collect::<anyhow::Result<()>>()?;
    let mut last = started;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for r in readers {
        match tokio::time::timeout_at(deadline, r).await {
            Ok(done) => last = last.max(done??),
            Err(_) => {
                let mut counts: Vec<usize> =
                    progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
                counts.sort_unstable();
                let short = counts.iter().filter(|c| **c < messages).count();
                anyhow::bail!(
                    "{short} of {subscribers} subscribers did not get all {messages} messages in 120 s \
                     (fewest {}, median {})",
                    counts[0],
                    counts[counts.len() / 2]
                );
            }
        }
    }
    let natter = (subscribers * messages) as f64 / last.duration_since(started).as_secs_f64();

    // Raw: the same deliveries over core NATS, 1,000 subscriptions on 10 connections.
    let subject = format!("{}raw.fanout", env.config.subject_prefix);
    let payload = Bytes::from(vec![b'x'; 600]);
    let mut tasks = Vec::new();
    let mut connections = Vec::new();
    for _ in 0..10 {
        connections.push(async_nats::connect(&env.config.nats_url).await?);
    }
    // Core NATS delivers at most once: under load the server may drop messages to a slow
    // subscriber, so each raw reader counts what arrives and stops after a quiet spell.
    for i in 0..subscribers {
        let mut sub = connections[i % 10].subscribe(subject.clone()).await?;
        tasks.push(tokio::spawn(async move {
            let (mut got, mut last) = (0usize, None);
            while got < messages {
                match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
                    Ok(Some(_)) => {
                        got += 1;
                        last = Some(Instant::now());
                    }
                    _ => break,
                }
            }
            (got, last)
        }));
    }
    for c in &connections {
        c.flush().await?;
    }
    let started = Instant::now();
    for _ in 0..messages {
        env.nats.publish(subject.clone(), payload.clone()).await?;
    }
    env.nats.flush().await?;
    let (mut received, mut last) = (0usize, started);
    for t in tasks {
        let (got, at) = t.await?;
        received += got;
        last = last.max(at.unwrap_or(started));
    }
    if received < subscribers * messages {
        eprintln!(
            "note: raw core NATS dropped {} of {} deliveries",
            subscribers * messages - received,
            subscribers * messages
        );
    }
    let raw = received as f64 / last.duration_since(started).as_secs_f64();
    Ok(vec![
        Figure::new(
            "fanout",
            format!("deliveries to {subscribers} subscribers"),
            natter,
            "msg/s",
        )
        .against(raw, "fanout_vs_raw"),
    ])
}
