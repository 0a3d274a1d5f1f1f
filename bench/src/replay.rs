//! `replay`: reading the whole log as an auditor does — `natter replay` (a process writing
//! NDJSON) and `GET /admin/events` (streamed over HTTP) — against a raw ordered-consumer read
//! of the same stream.

use std::process::Stdio;
use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;
use natter_events::catalogue::{Event, MessageKind, MessageSent};
use natter_events::{Envelope, RoomPart, Start};
use natter_testkit::api::User;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::{Env, Figure, Scale};

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let count = scale.pick(50_000, 1_000_000);
    let User {
        token: admin,
        id: actor,
        ..
    } = env.register("bench_admin").await?;
    let rooms: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
    let subjects = env.store.subjects().clone();
    let head = env
        .append_all((0..count).map(|i| {
            let room = rooms[i % rooms.len()];
            (
                subjects.room(room, RoomPart::Msg),
                Envelope::new(
                    Uuid::now_v7(),
                    Utc::now(),
                    Some(actor),
                    Some(room),
                    Event::MessageSent(MessageSent {
                        message_id: Uuid::now_v7(),
                        kind: MessageKind::Text,
                        content: format!("audit {i} {}", "x".repeat(60)),
                        attachment: None,
                        ..Default::default()
                    }),
                ),
            )
        }))
        .await?;
    // Let natter's own projector finish, so it does not compete with the readers.
    env.projected(head).await?;

    let started = Instant::now();
    let (available, messages) = env
        .store
        .follow_counted(&subjects.all_events(), Start::After(0))
        .await?;
    let read = messages
        .take(available as usize)
        .fold(0u64, |n, m| async move { n + u64::from(m.is_ok()) })
        .await;
    let raw = read as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut child = tokio::process::Command::new(env.config.natter_binary()?)
        .arg("replay")
        .env("NATS_URL", &env.config.nats_url)
        .env("NATTER_STREAM", &env.config.stream)
        .env("NATTER_SUBJECT_PREFIX", &env.config.subject_prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (mut lines, mut buf) = (0u64, vec![0u8; 1 << 16]);
    loop {
        let n = stdout.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
    }
    anyhow::ensure!(child.wait().await?.success(), "natter replay failed");
    anyhow::ensure!(
        lines == read,
        "natter replay printed {lines} of {read} events"
    );
    let cli = lines as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let response = env
        .http
        .get(format!("{}/admin/events", env.base))
        .bearer_auth(&admin)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().as_u16() == 200,
        "GET /admin/events: {}",
        response.status()
    );
    let mut body = response.bytes_stream();
    let mut lines = 0u64;
    while let Some(chunk) = body.next().await {
        lines += chunk?.iter().filter(|b| **b == b'\n').count() as u64;
    }
    anyhow::ensure!(
        lines == read,
        "/admin/events streamed {lines} of {read} events"
    );
    let http = lines as f64 / started.elapsed().as_secs_f64();
    Ok(vec![
        Figure::new(
            "replay",
            format!("natter replay, {read} events"),
            cli,
            "ev/s",
        )
        .against(raw, "replay_vs_raw"),
        Figure::new(
            "replay",
            format!("GET /admin/events, {read} events"),
            http,
            "ev/s",
        )
        .against(raw, "admin_events_vs_raw"),
    ])
}
