//! `fanout`: one room's messages delivered to 1,000 websocket subscribers, against raw core
//! NATS fan-out of the same number of messages to 1,000 subscriptions.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, stream};
use serde_json::json;

use super::{Env, Figure, Scale, ws};

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let subscribers = scale.pick(200, 1000);
    let messages = scale.pick(50, 200);
    let (token, _) = env.register("fan_owner").await?;
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
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut got = 0;
                while got < messages {
                    if c.next().await?["type"] == "event" {
                        got += 1;
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
    for r in readers {
        last = last.max(tokio::time::timeout(Duration::from_secs(120), r).await???);
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
    for i in 0..subscribers {
        let mut sub = connections[i % 10].subscribe(subject.clone()).await?;
        tasks.push(tokio::spawn(async move {
            for _ in 0..messages {
                sub.next().await;
            }
            Instant::now()
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
    let mut last = started;
    for t in tasks {
        last = last.max(tokio::time::timeout(Duration::from_secs(120), t).await??);
    }
    let raw = (subscribers * messages) as f64 / last.duration_since(started).as_secs_f64();
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
