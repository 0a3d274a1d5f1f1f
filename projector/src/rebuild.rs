//! Rebuild: replays the whole log into fresh tables beside the live ones, then swaps them in,
//! so the read API keeps answering (from the old tables) until the new ones take over.
//!
//! 1. Tables are created in schema `natter_rebuild` as copies of the live ones' structure.
//! 2. The log is projected into them up to the head seen at the start (no lock held).
//! 3. In one transaction holding the apply lock (the live projector pauses between two
//!    batches), the rest of the log is applied, the live tables are dropped and the new ones
//!    moved into their place. The live projector then finds the checkpoint moved and resumes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use natter_events::{EventStore, Start};
use natter_readmodel::checkpoint;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

use crate::apply;
use crate::read::{Item, fold};
use crate::runner::{APPLY_LOCK, ProjectionStatus, Projector, ProjectorConfig};

const SCHEMA: &str = "natter_rebuild";
/// One rebuild at a time.
const REBUILD_LOCK: i64 = 0x6e61_7474_6572_0003;
/// The read-model tables, in the live schema `public`.
pub const TABLES: &[&str] = &[
    "users",
    "rooms",
    "members",
    "invites",
    "messages",
    "reactions",
    "mentions",
    "projection_checkpoints",
];

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub position: u64,
    pub events: u64,
    pub elapsed: Duration,
}

/// A transaction holding the apply lock and an exclusive lock on every live table.
async fn lock_live_tables(
    pool: &PgPool,
) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let tables = TABLES
        .iter()
        .map(|t| format!("public.{t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPLY_LOCK)
            .execute(&mut *tx)
            .await?;
        let locked = tx
            .execute(sqlx::AssertSqlSafe(format!(
                "LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE NOWAIT"
            )))
            .await;
        match locked {
            Ok(_) => return Ok(tx),
            // 55P03 lock_not_available: a query is reading; let it finish and try again.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("55P03") && Instant::now() < deadline =>
            {
                tx.rollback().await?;
                // Spread retries so they do not fall into step with a steady query load.
                let pause = rand::random_range(5..25);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context("locking the live tables for the swap"));
            }
        }
    }
}

/// Rebuilds the read models from the whole log. `progress(done, total)` is called as it goes.
pub async fn rebuild(
    pool: &PgPool,
    store: &EventStore,
    config: &ProjectorConfig,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let mut guard = pool.acquire().await?;
    let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
        .bind(REBUILD_LOCK)
        .fetch_one(&mut *guard)
        .await?;
    anyhow::ensure!(locked, "another rebuild is running");
    let result = run(pool, store, config, progress, started).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(REBUILD_LOCK)
        .execute(&mut *guard)
        .await;
    result
}

async fn run(
    pool: &PgPool,
    store: &EventStore,
    config: &ProjectorConfig,
    progress: impl Fn(u64, u64),
    started: Instant,
) -> anyhow::Result<Summary> {
    let mut setup = format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};");
    for table in TABLES {
        setup.push_str(&format!(
            "CREATE TABLE {SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL);"
        ));
    }
    pool.execute(sqlx::AssertSqlSafe(setup))
        .await
        .context("creating the rebuild tables")?;

    let rebuild_pool = PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "SET search_path TO {SCHEMA}, public"
                )))
                .await?;
                Ok(())
            })
        })
        .connect(&config.database_url)
        .await
        .context("connecting for the rebuild")?;
    let head = store.head().await?;
    let status = Arc::new(ProjectionStatus::default());
    let projector = Projector {
        pool: rebuild_pool.clone(),
        store: store.clone(),
        status: status.clone(),
        config: config.clone(),
        tail: None,
    };
    let projected = projector.project(Some(head), false);
    tokio::pin!(projected);
    loop {
        tokio::select! {
            result = &mut projected => break result?,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                progress(status.position.load(std::sync::atomic::Ordering::SeqCst), head);
            }
        }
    }
    progress(head, head);

    // Catch up once more without locks, so that the locked window below stays short.
    let head = store.head().await?;
    projector.project(Some(head), false).await?;
    rebuild_pool.close().await;

    // The swap: pause the live projector, lock the live tables, apply what came since, move
    // the tables. The table locks are taken all at once without waiting (and retried from
    // scratch), so the swap never holds one lock while waiting for another that a running
    // query holds: no deadlock with queries, which pause only for the swap itself.
    let mut tx = lock_live_tables(pool).await?;
    tx.execute(sqlx::AssertSqlSafe(format!(
        "SET LOCAL search_path TO {SCHEMA}, public"
    )))
    .await?;
    let mut position = checkpoint::for_update(&mut tx).await?;
    let now = store.head().await?;
    if now > position {
        let mut messages = Box::pin(
            store
                .follow(&store.subjects().all_events(), Start::After(position))
                .await?,
        );
        while position < now {
            let mut raw = Vec::new();
            while let Some(m) = messages.next().await {
                let m = m?;
                let done = m.position >= now || raw.len() + 1 >= config.batch_size;
                raw.push(m);
                if done {
                    break;
                }
            }
            let ((batch, _), halt) = fold(raw.into_iter().map(Item::decode).collect(), position)?;
            if let Some(halt) = halt {
                anyhow::bail!(
                    "the event at position {} does not decode: {}",
                    halt.position,
                    halt.error
                );
            }
            apply::write(&mut tx, &batch).await?;
            position = batch.last;
        }
    }
    let mut swap = String::from("SET LOCAL search_path TO public;");
    for table in TABLES {
        swap.push_str(&format!(
            "DROP TABLE public.{table}; ALTER TABLE {SCHEMA}.{table} SET SCHEMA public;"
        ));
    }
    swap.push_str(&format!("DROP SCHEMA {SCHEMA};"));
    tx.execute(sqlx::AssertSqlSafe(swap))
        .await
        .context("swapping in the rebuilt tables")?;
    checkpoint::announce(&mut *tx, position).await?;
    tx.commit().await?;
    Ok(Summary {
        position,
        events: position,
        elapsed: started.elapsed(),
    })
}
