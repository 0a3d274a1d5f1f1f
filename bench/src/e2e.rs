//! `e2e`: a chat message end to end. User A sends over their websocket (`send` ops) into a
//! room of A and B; a message counts once both A's and B's sockets delivered it. At 1, 16 and
//! 64 messages in flight: messages/s, send → receipt at B (p50, p99), and the CPU each part
//! spent per delivered message (natter, nats-server, Postgres; see `cpu.rs`). The projector
//! runs meanwhile, as in production, so Postgres's share is what the read models cost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Env, Figure, Scale, cpu, quantile, ws};

const IN_FLIGHT: [usize; 3] = [1, 16, 64];

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let a = env.register("e2e_a").await?.token;
    let b = env.register("e2e_b").await?.token;
    let (_, room) = env
        .post("/rooms", Some(&a), &json!({ "name": "e2e" }))
        .await?;
    let room: uuid::Uuid = room["room"]["id"].as_str().unwrap_or_default().parse()?;
    env.post(&format!("/rooms/{room}/join"), Some(&b), &json!({}))
        .await?;
    let mut sender = ws::Client::connect(env.addr, &a).await?;
    let mut receiver = ws::Client::connect(env.addr, &b).await?;
    for client in [&mut sender, &mut receiver] {
        client.subscribe(room, None).await?;
        client.until_subscribed().await?;
    }
    // Earlier scenarios' events may still be projecting: their Postgres work is not this one's.
    env.projected(env.store.head().await?).await?;
    let duration = scale.pick(Duration::from_secs(2), Duration::from_secs(10));
    let mut figures = Vec::new();
    for (round, in_flight) in IN_FLIGHT.into_iter().enumerate() {
        let content = |i: usize| format!("e2e-{round}-{i}");
        // Receipts: content → (sent at, seen by A, seen by B).
        let mut pending: HashMap<String, (Instant, bool, Option<Duration>)> = HashMap::new();
        let mut latencies = Vec::new();
        let mut delivered = 0u64;
        let mut next = 0usize;
        let before = cpu::sample(env.server_pid());
        let started = Instant::now();
        let op = |i: usize| {
            json!({ "op": "send", "room_id": room, "client_id": format!("e{round}-{i}"),
                    "content": content(i) })
        };
        while next < in_flight {
            pending.insert(content(next), (Instant::now(), false, None));
            sender.send(&op(next)).await?;
            next += 1;
        }
        while !pending.is_empty() {
            // Whichever socket has a frame; both are read so neither backs up.
            let (from_a, frame) = tokio::select! {
                f = sender.next() => (true, f?),
                f = receiver.next() => (false, f?),
            };
            if frame["type"] == "error" {
                anyhow::bail!("a send was refused: {frame}");
            }
            let Some(text) = frame["event"]["data"]["content"].as_str() else {
                continue;
            };
            let Some(entry) = pending.get_mut(text) else {
                continue;
            };
            if from_a {
                entry.1 = true;
            } else {
                entry.2 = Some(entry.0.elapsed());
            }
            if let (true, Some(latency)) = (entry.1, entry.2) {
                pending.remove(text);
                latencies.push(latency.as_secs_f64() * 1000.0);
                delivered += 1;
                if started.elapsed() < duration {
                    pending.insert(content(next), (Instant::now(), false, None));
                    sender.send(&op(next)).await?;
                    next += 1;
                }
            }
        }
        let elapsed = started.elapsed();
        // Let the projector finish this phase's events, so its work is counted in it.
        env.projected(env.store.head().await?).await?;
        let spent = before.until(cpu::sample(env.server_pid()));
        latencies.sort_by(f64::total_cmp);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / delivered.max(1) as f64;
        let label = |what: &str| format!("{what} @{in_flight} in flight");
        figures.extend([
            Figure::new(
                "e2e",
                label("messages delivered to A and B"),
                delivered as f64 / elapsed.as_secs_f64(),
                "msg/s",
            ),
            Figure::new(
                "e2e",
                label("send -> receipt p50"),
                quantile(&latencies, 0.5),
                "ms",
            ),
            Figure::new(
                "e2e",
                label("send -> receipt p99"),
                quantile(&latencies, 0.99),
                "ms",
            ),
            Figure::new("e2e", label("CPU/msg natter"), per(spent.natter), "µs"),
            Figure::new("e2e", label("CPU/msg nats-server"), per(spent.nats), "µs"),
            Figure::new("e2e", label("CPU/msg postgres"), per(spent.postgres), "µs"),
            Figure::new(
                "e2e",
                label("CPU/msg total"),
                per(spent.natter + spent.nats + spent.postgres),
                "µs",
            ),
        ]);
    }
    Ok(figures)
}
