//! The projection's checkpoint: one row of `projection_checkpoints` holding the last log
//! position whose effects the read models contain. It moves only in the transaction that
//! writes those effects, and every move is announced on [`NOTIFY_CHANNEL`] with the new
//! position as payload, so readers waiting for their own writes wake at once.

use sqlx::{Executor, Postgres, Transaction};

/// The read models' projection name: its row in `projection_checkpoints`.
pub const PROJECTION: &str = "read_models";

/// The channel each checkpoint move notifies, with the new position as payload.
pub const NOTIFY_CHANNEL: &str = "natter_projection";

/// Creates the checkpoint row (at 0) if it does not exist yet.
pub async fn ensure(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0) \
         ON CONFLICT DO NOTHING",
    )
    .bind(PROJECTION)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reads the checkpoint (see [`ensure`]), locking its row for this transaction.
pub async fn for_update(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<u64> {
    let (position,): (i64,) = sqlx::query_as(
        "SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
    )
    .bind(PROJECTION)
    .fetch_one(&mut **tx)
    .await?;
    Ok(position as u64)
}

/// Reads the checkpoint without locking it: 0 before the first batch.
pub async fn read<'c, E: Executor<'c, Database = Postgres>>(executor: E) -> sqlx::Result<u64> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT position FROM projection_checkpoints WHERE projection = $1")
            .bind(PROJECTION)
            .fetch_optional(executor)
            .await?;
    Ok(row.map_or(0, |(p,)| p as u64))
}

/// Moves the checkpoint to `position` and announces it, in one statement; the announcement
/// is delivered when the transaction commits, and not at all if it rolls back.
pub async fn advance(tx: &mut Transaction<'_, Postgres>, position: u64) -> sqlx::Result<()> {
    sqlx::query(
        "WITH moved AS (UPDATE projection_checkpoints SET position = $2, updated_at = now() \
                        WHERE projection = $1 RETURNING position) \
         SELECT pg_notify($3, position::text) FROM moved",
    )
    .bind(PROJECTION)
    .bind(position as i64)
    .bind(NOTIFY_CHANNEL)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Announces `position` on [`NOTIFY_CHANNEL`] (on commit, inside a transaction).
pub async fn announce<'c, E: Executor<'c, Database = Postgres>>(
    executor: E,
    position: u64,
) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(position.to_string())
        .execute(executor)
        .await?;
    Ok(())
}
