//! `send`: REST sends with 64 in flight over 1,000 rooms, against raw JetStream
//! publish-and-ack with 64 in flight and the same payload size; and the latency of a single
//! send with nothing else in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use natter_events::Envelope;
use natter_events::catalogue::{Event, MessageKind, MessageSent};
use natter_testkit::api::User;
use serde_json::json;
use uuid::Uuid;

use crate::{Env, Figure, Scale, http1, quantile};

pub const IN_FLIGHT: usize = 64;
const ROOMS: usize = 1000;
pub const CONTENT_CHARS: usize = 100;

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let User {
        token, id: user, ..
    } = env.register("bench_sender").await?;
    let rooms = env.create_rooms(&token, ROOMS, "bench").await?;
    let body = json!({ "content": "x".repeat(CONTENT_CHARS) });

    // One request at a time: what a single client waits for.
    let mut latencies = Vec::new();
    for i in 0..scale.pick(300, 2000) {
        let started = Instant::now();
        let (status, _) = env
            .post(
                &format!("/rooms/{}/messages", rooms[i % ROOMS]),
                Some(&token),
                &body,
            )
            .await?;
        anyhow::ensure!(status == 201, "send failed with {status}");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);

    let duration = scale.pick(Duration::from_secs(3), Duration::from_secs(15));
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // The load generator shares the two cores with natter, NATS and Postgres: one kept-alive
    // HTTP/1.1 connection per request in flight, the body encoded once.
    let fixed = http1::Fixed::new(env.addr, &token)?;
    let body_bytes = Bytes::from(serde_json::to_vec(&body)?);
    let uris: Arc<Vec<hyper::Uri>> = Arc::new(
        rooms
            .iter()
            .map(|r| format!("/api/v1/rooms/{r}/messages").parse())
            .collect::<Result<_, _>>()?,
    );
    let mut connections = Vec::new();
    for _ in 0..IN_FLIGHT {
        connections.push(http1::Connection::open(env.addr, fixed.clone()).await?);
    }
    let lookups_before = head_lookups(env).await?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for (w, mut connection) in connections.into_iter().enumerate() {
        let (uris, body, sent, failed) = (
            uris.clone(),
            body_bytes.clone(),
            sent.clone(),
            failed.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while started.elapsed() < duration {
                match connection.post(uris[i % ROOMS].clone(), body.clone()).await {
                    Ok(201) => sent.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                i += IN_FLIGHT;
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let natter_rate = sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let lookups_per_send = (head_lookups(env).await? - lookups_before) as f64
        / sent.load(Ordering::Relaxed).max(1) as f64;
    anyhow::ensure!(
        failed.load(Ordering::Relaxed) == 0,
        "{} sends failed",
        failed.load(Ordering::Relaxed)
    );

    let raw_rate = raw_publish_rate(env, user, duration).await?;

    Ok(vec![
        Figure::new(
            "send",
            "single send latency p50",
            quantile(&latencies, 0.5),
            "ms",
        ),
        Figure::new(
            "send",
            "single send latency p99",
            quantile(&latencies, 0.99),
            "ms",
        ),
        Figure::new(
            "send",
            format!("sends, {IN_FLIGHT} in flight"),
            natter_rate,
            "msg/s",
        )
        .against(raw_rate, "send_vs_raw"),
        Figure::new("send", "stream head lookups per send", lookups_per_send, ""),
    ])
}

/// Raw JetStream publish-and-ack with [`IN_FLIGHT`] in flight for `duration`, each message the
/// size of a stored `message.sent` envelope of [`CONTENT_CHARS`], on a stream of its own
/// (`{stream}_RAW`, removed with the bench's): the figure natter's sends are read against.
pub async fn raw_publish_rate(env: &Env, user: Uuid, duration: Duration) -> anyhow::Result<f64> {
    let sample = Envelope::new(
        Uuid::now_v7(),
        Utc::now(),
        Some(user),
        Some(Uuid::now_v7()),
        Event::MessageSent(MessageSent {
            message_id: Uuid::now_v7(),
            kind: MessageKind::Text,
            content: "x".repeat(CONTENT_CHARS),
            attachment: None,
            ..Default::default()
        }),
    );
    let payload = Bytes::from(sample.encode());
    let js = env.store.jetstream().clone();
    let raw_subjects = raw_stream(env).await?;
    let published = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|w| {
            let (js, payload, published, raw_subjects) = (
                js.clone(),
                payload.clone(),
                published.clone(),
                raw_subjects.clone(),
            );
            tokio::spawn(async move {
                let mut i = w;
                while started.elapsed() < duration {
                    let ack = js
                        .publish(format!("{raw_subjects}.{}", i % ROOMS), payload.clone())
                        .await?;
                    ack.await?;
                    published.fetch_add(1, Ordering::Relaxed);
                    i += IN_FLIGHT;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(published.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// The bench's raw stream (`{stream}_RAW`, removed with the bench's), created if needed;
/// returns its subjects' prefix (publish to `{prefix}.anything`).
pub async fn raw_stream(env: &Env) -> anyhow::Result<String> {
    let raw_subjects = format!("{}raw", env.config.subject_prefix);
    env.store
        .jetstream()
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: format!("{}_RAW", env.config.stream),
            subjects: vec![format!("{raw_subjects}.>")],
            storage: async_nats::jetstream::stream::StorageType::File,
            // As many replicas as natter's own streams: on a cluster, the raw figure pays for
            // the same durability.
            num_replicas: env.config.stream_replicas.max(1),
            ..Default::default()
        })
        .await?;
    Ok(raw_subjects)
}

/// natter's count of read barriers answered by a stream lookup (from `/metrics`).
async fn head_lookups(env: &Env) -> anyhow::Result<u64> {
    let text = env
        .http
        .get(format!("http://{}/metrics", env.addr))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("natter_head_lookups_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64)
}
