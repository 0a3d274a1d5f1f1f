//! `latency`: REST send → websocket delivery to another member, at a fixed 1,000 msg/s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Env, Figure, Scale, quantile, ws};

const RATE: u64 = 1000;

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let sender = env.register("lat_sender").await?.token;
    let receiver = env.register("lat_receiver").await?.token;
    let (_, room) = env
        .post("/rooms", Some(&sender), &json!({ "name": "latency" }))
        .await?;
    let room: uuid::Uuid = room["room"]["id"].as_str().unwrap_or_default().parse()?;
    env.post(&format!("/rooms/{room}/join"), Some(&receiver), &json!({}))
        .await?;
    let mut client = ws::Client::connect(env.addr, &receiver).await?;
    client.subscribe(room, None).await?;
    client.until_subscribed().await?;

    let total = RATE * scale.pick(3, 15);
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let receiving = {
        let sent_at = sent_at.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total as usize);
            while latencies.len() < total as usize {
                let frame = client.next().await?;
                if let Some(content) = frame["event"]["data"]["content"].as_str()
                    && let Some(at) = sent_at.lock().expect("lock").remove(content)
                {
                    latencies.push(at.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        })
    };
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let url = format!("{}/rooms/{room}/messages", env.base);
    for i in 0..total {
        tick.tick().await;
        let content = format!("lat-{i}");
        sent_at
            .lock()
            .expect("lock")
            .insert(content.clone(), Instant::now());
        let request = env
            .http
            .post(&url)
            .bearer_auth(&sender)
            .json(&json!({ "content": content }));
        tokio::spawn(async move {
            let _ = request.send().await;
        });
    }
    let mut latencies = tokio::time::timeout(Duration::from_secs(60), receiving).await???;
    latencies.sort_by(f64::total_cmp);
    Ok(vec![
        Figure::new(
            "latency",
            "send -> ws delivery p50 @1k msg/s",
            quantile(&latencies, 0.5),
            "ms",
        ),
        Figure::new(
            "latency",
            "send -> ws delivery p99 @1k msg/s",
            quantile(&latencies, 0.99),
            "ms",
        ),
        Figure::new(
            "latency",
            "send -> ws delivery max @1k msg/s",
            latencies.last().copied().unwrap_or(f64::NAN),
            "ms",
        ),
    ])
}
