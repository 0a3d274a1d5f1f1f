//! The projector loop: one active instance per projection (a session advisory lock on a
//! dedicated connection; standbys poll for it and take over when the holder's connection
//! dies), reading the log in order from the checkpoint and committing each batch with it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use natter_events::EventStore;
use natter_readmodel::checkpoint;
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool};

use crate::apply;
use crate::batch::Batch;
use crate::messages_only::Written;
use crate::read::{Reader, fold};

/// Held for as long as an instance is the active projector.
const LEADER_LOCK: i64 = 0x6e61_7474_6572_0001;
/// How long a batch keeps gathering live events once it holds [`LIVE_GATHER_FROM`] of them.
const LIVE_GATHER: Duration = Duration::from_millis(5);
const LIVE_GATHER_FROM: usize = 8;
/// How many times in a row one event may be refused by Postgres before the projection is
/// shown as halted.
const HALT_AFTER: u32 = 3;
/// How often a halted projection tries the refused event again.
const HALTED_RETRY: Duration = Duration::from_secs(5);
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
    /// Set when an event could not be decoded (the projection stops there), or Postgres
    /// keeps refusing one (retried until it is stored).
    pub halted: Mutex<Option<Halt>>,
    /// Batches hold one event each up to this position (to pin a refused batch on its event).
    pub narrow_through: AtomicU64,
    /// Whether the projection reads the process's live tail now (caught up), rather than a
    /// consumer of its own.
    pub on_tail: Arc<AtomicBool>,
    /// How many times the projection has handed over to the live tail.
    pub tail_handovers: Arc<AtomicU64>,
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
    /// The process's live tail, which the projector reads once it has caught up (`None`: a
    /// consumer of its own throughout).
    pub tail: Option<natter_events::LiveTail>,
}

impl Projector {
    /// Runs forever: stand by until this instance holds the leader lock, then project.
    ///
    /// A batch that Postgres refuses for its data (not for a lost connection) is retried one
    /// event at a time, which pins the failure on one event; when that event fails
    /// [`HALT_AFTER`] times in a row the projection is marked halted (`/readyz` 503 with the
    /// position and the error, `natter_projection_halted` 1, an error log line) and retried
    /// every [`HALTED_RETRY`], so that it resumes by itself once the cause is gone (a fixed
    /// schema, a new build).
    pub async fn run(self) {
        let mut failing: Option<(u64, u32)> = None;
        loop {
            let error = match self.lead().await {
                Ok(()) => continue,
                Err(e) => e,
            };
            self.status.active.store(false, Ordering::SeqCst);
            let Some(refused) = error.downcast_ref::<BatchRefused>() else {
                tracing::error!(error = format!("{error:#}"), "projector failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let (first, last, single) = (refused.first, refused.last, refused.single);
            let count = match failing {
                Some((at, n)) if at == first && single => n + 1,
                _ if single => 1,
                _ => 0,
            };
            failing = Some((first, count));
            // Narrow down to the one event: single-event batches through the failed one.
            self.status.narrow_through.fetch_max(last, Ordering::SeqCst);
            if count >= HALT_AFTER {
                let halt = Halt {
                    position: first,
                    error: format!("{error:#}"),
                };
                tracing::error!(
                    position = first,
                    error = %halt.error,
                    "projection halted: Postgres refuses the event at this position; the read \
                     models stay at the position before it until the cause is fixed (retrying)"
                );
                *self.status.halted.lock().expect("status lock") = Some(halt);
                tokio::time::sleep(HALTED_RETRY).await;
            } else {
                tracing::warn!(
                    position = first,
                    error = format!("{error:#}"),
                    "Postgres refused a batch; retrying it one event at a time"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
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
        checkpoint::ensure(&mut tx).await?;
        let position = checkpoint::for_update(&mut tx).await?;
        tx.commit().await?;
        Ok(position)
    }

    /// Projects from the checkpoint: forever (`until: None`) or up to a position. With
    /// `exclusive`, each batch takes the apply lock (the live projection does; a rebuild
    /// writing its own tables does not).
    pub async fn project(&self, until: Option<u64>, exclusive: bool) -> anyhow::Result<()> {
        let mut after = self.checkpoint().await?;
        tracing::info!(checkpoint = after, "projecting from the checkpoint");
        self.status.position.store(after, Ordering::SeqCst);
        let mut conn = self.batch_connection().await?;
        let mut reader = self.reader(after).await?;
        loop {
            if until.is_some_and(|u| after >= u) {
                return Ok(());
            }
            let Some(first) = reader.next(Duration::from_secs(1)).await? else {
                continue;
            };
            // Take what is buffered; while the log says more is pending (a backlog), wait
            // briefly for it too, so batches fill up and per-batch costs are shared. Under
            // live load (several events already waiting) gather for a few milliseconds more:
            // one transaction then carries dozens of events instead of a handful. A lone
            // event is applied at once.
            let mut items = vec![first];
            let gather_until = tokio::time::Instant::now() + LIVE_GATHER;
            let limit = if after < self.status.narrow_through.load(Ordering::SeqCst) {
                1
            } else {
                self.config.batch_size
            };
            while items.len() < limit {
                let wait = if items.last().is_some_and(|i| i.pending > 0) {
                    Duration::from_millis(20)
                } else if items.len() >= LIVE_GATHER_FROM {
                    gather_until.saturating_duration_since(tokio::time::Instant::now())
                } else {
                    Duration::ZERO
                };
                match reader.next(wait).await? {
                    Some(item) => items.push(item),
                    None => break,
                }
            }
            if let Some(u) = until {
                items.retain(|i| i.position <= u);
            }
            let ((batch, lag), halt) = fold(items, after)?;
            if !batch.is_empty() || batch.last > after {
                let committed = self
                    .commit(&mut conn, &batch, after, exclusive)
                    .await
                    .map_err(|e| match refused_for_its_data(&e) {
                        true => anyhow::Error::new(BatchRefused {
                            first: after + 1,
                            last: batch.last,
                            single: batch.events <= 1,
                            cause: format!("{e:#}"),
                        }),
                        false => e,
                    })?;
                match committed {
                    Committed::Applied => {
                        after = batch.last;
                        self.clear_halt();
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
                        reader = self.reader(after).await?;
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

    /// A commit went through: a halt for a refused event is over.
    fn clear_halt(&self) {
        let mut halted = self.status.halted.lock().expect("status lock");
        if let Some(halt) = halted.take() {
            tracing::info!(
                position = halt.position,
                "the projection resumed past the event it was halted at"
            );
        }
    }

    /// A reader of the log after `after`, on the live tail once caught up (if there is one).
    async fn reader(&self, after: u64) -> anyhow::Result<Reader> {
        let flags = (&self.status.on_tail, &self.status.tail_handovers);
        Reader::start(
            &self.store,
            self.tail.as_ref(),
            flags,
            after,
            self.config.batch_size,
        )
        .await
    }

    /// The connection batches are written on: one held for as long as this projection runs
    /// (a pool's connection would be pinged when taken and again when given back: two more
    /// round trips per batch), with asynchronous commit.
    ///
    /// **Why asynchronous commit is safe here.** The read models are derived from the log and
    /// each batch commits together with its checkpoint, atomically. If Postgres itself crashes
    /// (not natter: a natter crash loses no commit Postgres acknowledged), its last commits,
    /// at most ~3 × `wal_writer_delay` (600 ms by default), may be lost: batch and checkpoint
    /// together, never one without the other. The projector then starts from the older
    /// checkpoint and applies those events again from the log. What it risks: for that
    /// moment after a Postgres crash, a reader can see the read models behind a position it
    /// was already shown (a `min_position` read waits until they are back). What it saves: a
    /// WAL flush, and the wait for it, per batch.
    async fn batch_connection(&self) -> anyhow::Result<PgConnection> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("connecting for the projection's batches")?
            .detach();
        // A batch's statements are the same few, over and over, with arrays as parameters:
        // planning them afresh for each batch (what Postgres does for the first executions,
        // and may go on doing) costs more than running them.
        sqlx::raw_sql("SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan")
            .execute(&mut conn)
            .await?;
        Ok(conn)
    }

    /// Writes one batch. A batch of new messages only, the common one, is one statement in
    /// its own transaction: one round trip ([`crate::messages_only::write`]). Any other is
    /// one transaction: `BEGIN` with the apply lock, the checkpoint check, the batch's
    /// statements, the checkpoint's move with its announcement, `COMMIT`. Live batches take
    /// the apply lock shared; a rebuild's swap takes it exclusively.
    async fn commit(
        &self,
        conn: &mut PgConnection,
        batch: &Batch,
        after: u64,
        exclusive: bool,
    ) -> anyhow::Result<Committed> {
        if batch.only_new_messages() {
            loop {
                let written = crate::messages_only::write(conn, batch, after, exclusive)
                    .await
                    .with_context(|| format!("applying events up to position {}", batch.last))?;
                match written {
                    Written::Applied => return Ok(Committed::Applied),
                    Written::Moved(checkpoint) => return Ok(Committed::Moved(checkpoint)),
                    // The swap takes a moment; its end moves the checkpoint.
                    Written::Paused => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        let mut tx = if exclusive {
            // One round trip for both: a simple query of two statements (a constant).
            conn.begin_with(sqlx::AssertSqlSafe(format!(
                "BEGIN; SELECT pg_advisory_xact_lock_shared({APPLY_LOCK})"
            )))
            .await?
        } else {
            conn.begin().await?
        };
        let checkpoint = checkpoint::for_update(&mut tx).await?;
        if checkpoint != after {
            tx.rollback().await?;
            return Ok(Committed::Moved(checkpoint));
        }
        apply::write(&mut tx, batch)
            .await
            .with_context(|| format!("applying events up to position {}", batch.last))?;
        tx.commit().await?;
        Ok(Committed::Applied)
    }
}

/// Postgres refused a batch for what it holds (not for a lost connection): the events from
/// `first` on could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("Postgres refused the events from position {first}: {cause}")]
struct BatchRefused {
    first: u64,
    last: u64,
    /// The batch held one event, so the failure is that event's.
    single: bool,
    cause: String,
}

/// Whether a failed commit failed because of the data (an error a retry of the same events
/// would meet again), as opposed to a lost or overloaded connection.
fn refused_for_its_data(error: &anyhow::Error) -> bool {
    let Some(sqlx::Error::Database(db)) = error.chain().find_map(|e| e.downcast_ref()) else {
        return false;
    };
    // 08 connection, 40 transaction rollback (deadlock, serialization), 53 insufficient
    // resources, 57 operator intervention (shutdown), 58 system error: worth a plain retry.
    !db.code().is_some_and(|c| {
        ["08", "40", "53", "57", "58"]
            .iter()
            .any(|k| c.starts_with(k))
    })
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
