//! `projector`: events/s from a pre-filled log into Postgres (200k messages in 100 rooms of 5
//! members, so each message also moves four unread counts), against a raw UNNEST batch insert
//! of the same message rows into a copy of the messages table, in batches of the same size.

use std::time::Instant;

use chrono::Utc;
use natter_events::catalogue::{
    Event, MessageKind, MessageSent, RoomCreated, RoomKind, Visibility,
};
use natter_events::{Envelope, RoomPart};
use natter_projector::{ProjectionStatus, Projector};
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::{Env, Figure, Scale};

const ROOMS: usize = 100;
const MEMBERS: usize = 5;

pub async fn run(env: &Env, scale: Scale) -> anyhow::Result<Vec<Figure>> {
    let messages = scale.pick(20_000, 200_000);
    let owner = Uuid::now_v7();
    // Five members a room, each sending in turn, so every message moves others' unread counts.
    let members: Vec<Uuid> = std::iter::once(owner)
        .chain((1..MEMBERS).map(|_| Uuid::now_v7()))
        .collect();
    let rooms: Vec<Uuid> = (0..ROOMS).map(|_| Uuid::now_v7()).collect();
    let subjects = env.store.subjects().clone();
    let mut events = Vec::with_capacity(messages + ROOMS);
    for room in &rooms {
        events.push((
            subjects.room(*room, RoomPart::Meta),
            Envelope::new(
                Uuid::now_v7(),
                Utc::now(),
                Some(owner),
                Some(*room),
                Event::RoomCreated(RoomCreated {
                    name: "projector bench".into(),
                    visibility: Visibility::Public,
                    kind: RoomKind::Group,
                    max_members: 1000,
                    owner_id: owner,
                    with_user_id: None,
                }),
            ),
        ));
    }
    let mut rows = Vec::with_capacity(messages);
    for i in 0..messages {
        let room = rooms[i % ROOMS];
        let sender = members[(i / ROOMS) % MEMBERS];
        let message_id = Uuid::now_v7();
        let content = format!("message {i} {}", "x".repeat(80));
        rows.push((room, content.clone()));
        events.push((
            subjects.room(room, RoomPart::Msg),
            Envelope::new(
                Uuid::now_v7(),
                Utc::now(),
                Some(sender),
                Some(room),
                Event::MessageSent(MessageSent {
                    message_id,
                    kind: MessageKind::Text,
                    content,
                    attachment: None,
                    ..Default::default()
                }),
            ),
        ));
    }
    let head = env.append_all(events).await?;
    // Let the live projector of the running natter catch up first, so it does not compete.
    env.projected(head).await?;

    // natter's projector, from scratch, into a schema of its own.
    let schema = "bench_projector";
    let mut setup = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
    for table in natter_projector::rebuild::TABLES {
        setup.push_str(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL);"
        ));
    }
    env.pool.execute(sqlx::AssertSqlSafe(setup)).await?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET search_path TO bench_projector, public")
                    .await?;
                Ok(())
            })
        })
        .connect(&env.config.database_url)
        .await?;
    let batch_size = env.config.projector_batch;
    let projector = Projector {
        pool: pool.clone(),
        store: env.store.clone(),
        status: std::sync::Arc::new(ProjectionStatus::default()),
        tail: None,
        config: natter_projector::ProjectorConfig {
            database_url: env.config.database_url.clone(),
            batch_size,
        },
    };
    let started = Instant::now();
    projector.project(Some(head), false).await?;
    let projected = head as f64 / started.elapsed().as_secs_f64();

    // Raw: the same message rows, UNNEST-inserted in transactions of the same size.
    let started = Instant::now();
    for (n, chunk) in rows.chunks(batch_size).enumerate() {
        let mut tx = pool.begin().await?;
        let offset = n * batch_size;
        let positions: Vec<i64> = (0..chunk.len())
            .map(|i| (10_000_000 + offset + i) as i64)
            .collect();
        sqlx::query(
            "INSERT INTO messages (position, id, room_id, sender_id, kind, content, attachment, created_at, edited_at, deleted) \
             SELECT p, id, r, $4, 'text', c, NULL, now(), NULL, false \
             FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $5::text[]) AS v(p, id, r, c)",
        )
        .bind(&positions)
        .bind(chunk.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(owner)
        .bind(chunk.iter().map(|r| r.1.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let raw = rows.len() as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    env.pool
        .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await?;
    Ok(vec![
        Figure::new(
            "projector",
            format!("events applied ({head} in the log)"),
            projected,
            "ev/s",
        )
        .against(raw, "projector_vs_raw"),
    ])
}
