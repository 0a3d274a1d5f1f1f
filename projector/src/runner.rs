//! The projector loop: one active instance per projection (a session advisory lock on a
//! dedicated connection; standbys poll for it and take over when the holder's connection
//! dies), reading the log in order from the checkpoint and committing each batch with it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::{FutureExt, StreamExt};
use natter_events::store::decode_known;
use natter_events::{EventStore, RawMessage, Start};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};

use crate::apply;
use crate::batch::Batch;

/// The read models' projection name (its row in `projection_checkpoints`).
pub const PROJECTION: &str = "read_models";
/// Held for as long as an instance is the active projector.
const LEADER_LOCK: i64 = 0x6e61_7474_6572_0001;
/// Held by each batch transaction, so a rebuild can swap tables between two batches.
pub(crate) const APPLY_LOCK: i64 = 0x6e61_7474_6572_0002;

/// Where the projection is, for `/readyz` and metrics.
#[derive(Debug, Default)]
pub struct ProjectionStatus {
    /// The checkpoint: position of the last event applied.
    pub position: AtomicU64,
    /// Events in the log after the checkpoint, as last seen.
    pub lag: AtomicU64,
    /// Whether this instance is the active projector (not a standby).
    pub active: AtomicBool,
    /// Set when an event could not be decoded: the projection stops there.
    pub halted: Mutex<Option<Halt>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Halt {
    pub position: u64,
    pub error: String,
}

/// Settings of a projector.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Connection string of the read-model database (the leader lock uses a dedicated
    /// connection to it, so that the lock dies with the process).
    pub database_url: String,
    /// Most events applied in one transaction.
    pub batch_size: usize,
}

/// What one batch commit did.
enum Committed {
    Applied,
    /// The checkpoint was not where this reader was (a rebuild swapped the tables, or
    /// another projector wrote): resume after it.
    Moved(u64),
}

#[derive(Clone)]
pub struct Projector {
    pub pool: PgPool,
    pub store: EventStore,
    pub status: Arc<ProjectionStatus>,
    pub config: ProjectorConfig,
}

impl Projector {
    /// Runs forever: stand by until this instance holds the leader lock, then project.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.lead().await {
                tracing::error!(error = format!("{e:#}"), "projector failed; retrying");
            }
            self.status.active.store(false, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn lead(&self) -> anyhow::Result<()> {
        let mut lock = PgConnection::connect(&self.config.database_url)
            .await
            .context("connecting for the projector lock")?;
        loop {
            let (held,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK)
                .fetch_one(&mut lock)
                .await?;
            if held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::info!("this instance is now the active projector");
        self.status.active.store(true, Ordering::SeqCst);
        let result = tokio::select! {
            r = self.project(None, true) => r,
            // If the lock's connection dies, another instance may take over: stop at once.
            e = watch_connection(&mut lock) => Err(e),
        };
        let _ = lock.close().await;
        result
    }

    /// Reads the checkpoint.
    pub async fn checkpoint(&self) -> anyhow::Result<u64> {
        let mut tx = self.pool.begin().await?;
        let position = apply::checkpoint_for_update(&mut tx, PROJECTION).await?;
        tx.commit().await?;
        Ok(position)
    }

    /// Projects from the checkpoint: forever (`until: None`) or up to a position. With
    /// `exclusive`, each batch takes the apply lock (the live projection does; a rebuild
    /// writing its own tables does not).
    pub async fn project(&self, until: Option<u64>, exclusive: bool) -> anyhow::Result<()> {
        let mut after = self.checkpoint().await?;
        self.status.position.store(after, Ordering::SeqCst);
        let filter = self.store.subjects().all_events();
        let mut messages = Box::pin(self.store.follow(&filter, Start::After(after)).await?);
        loop {
            if until.is_some_and(|u| after >= u) {
                return Ok(());
            }
            let first = match tokio::time::timeout(Duration::from_secs(1), messages.next()).await {
                Err(_) => continue,
                Ok(None) => bail!("the event consumer ended"),
                Ok(Some(m)) => m?,
            };
            let mut raw = vec![first];
            while raw.len() < self.config.batch_size {
                match messages.next().now_or_never() {
                    Some(Some(m)) => raw.push(m?),
                    _ => break,
                }
            }
            if let Some(u) = until {
                raw.retain(|m| m.position <= u);
            }
            let (batch, halt) = fold(raw, after)?;
            let lag = batch.1;
            let batch = batch.0;
            if !batch.is_empty() || batch.last > after {
                match self.commit(&batch, after, exclusive).await? {
                    Committed::Applied => {
                        after = batch.last;
                        self.status.position.store(after, Ordering::SeqCst);
                        self.status.lag.store(lag, Ordering::SeqCst);
                    }
                    Committed::Moved(checkpoint) => {
                        tracing::info!(
                            checkpoint,
                            "the checkpoint moved under this projector; resuming after it"
                        );
                        after = checkpoint;
                        self.status.position.store(after, Ordering::SeqCst);
                        messages = Box::pin(self.store.follow(&filter, Start::After(after)).await?);
                        continue;
                    }
                }
            }
            if let Some(halt) = halt {
                tracing::error!(position = halt.position, error = %halt.error, "projection halted: an event does not decode");
                *self.status.halted.lock().expect("status lock") = Some(halt);
                // Nothing after the bad event can be applied in order; wait for an operator.
                std::future::pending::<()>().await;
            }
        }
    }

    async fn commit(
        &self,
        batch: &Batch,
        after: u64,
        exclusive: bool,
    ) -> anyhow::Result<Committed> {
        let mut tx = self.pool.begin().await?;
        if exclusive {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPLY_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let checkpoint = apply::checkpoint_for_update(&mut tx, PROJECTION).await?;
        if checkpoint != after {
            tx.rollback().await?;
            return Ok(Committed::Moved(checkpoint));
        }
        apply::write(&mut tx, PROJECTION, batch)
            .await
            .with_context(|| format!("applying events up to position {}", batch.last))?;
        tx.commit().await?;
        Ok(Committed::Applied)
    }
}

/// Folds raw messages following position `after` into a batch, stopping before the first
/// one that does not decode. Returns the batch with the lag after it, and the halt if any.
pub(crate) fn fold(
    raw: Vec<RawMessage>,
    after: u64,
) -> anyhow::Result<((Batch, u64), Option<Halt>)> {
    let mut batch = Batch::after(after);
    let mut lag = 0;
    let mut expected = after + 1;
    for message in raw {
        if message.position < expected {
            continue;
        }
        if message.position > expected {
            bail!(
                "the log skipped from {} to {}",
                expected - 1,
                message.position
            );
        }
        let position = message.position;
        let pending = message.pending;
        match decode_known(message) {
            Ok(Some(recorded)) => batch.add(&recorded),
            Ok(None) => {
                tracing::info!(
                    position,
                    "skipping an event of a type this build does not know"
                );
                batch.skip(position);
            }
            Err(e) => {
                return Ok((
                    (batch, pending + 1),
                    Some(Halt {
                        position,
                        error: format!("{e:#}"),
                    }),
                ));
            }
        }
        lag = pending;
        expected = position + 1;
    }
    Ok(((batch, lag), None))
}

/// Resolves when the connection stops answering.
async fn watch_connection(conn: &mut PgConnection) -> anyhow::Error {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Err(e) = conn.ping().await {
            return anyhow::Error::new(e).context("the projector lock's connection died");
        }
    }
}
