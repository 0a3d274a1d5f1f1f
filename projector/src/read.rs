//! Reading the log into batches: events read and decoded in a task of their own ahead of the
//! batch loop ([`Reader`]), and folded into a [`Batch`] in log order, stopping at an event
//! that does not decode ([`fold`]). Shared by the live projection and the rebuild.

use std::time::Duration;

use anyhow::bail;
use futures::{FutureExt, StreamExt};
use natter_events::store::decode_known;
use natter_events::{EventStore, RawMessage, Recorded, Start};

use crate::batch::Batch;
use crate::runner::Halt;

/// One event as read and decoded ahead of the batch loop.
pub(crate) struct Item {
    pub position: u64,
    /// Events after this one in the log, as the consumer saw it.
    pub pending: u64,
    /// `Ok(None)`: a type this build does not know.
    pub event: Result<Option<Recorded>, String>,
}

impl Item {
    pub(crate) fn decode(mut message: RawMessage) -> Item {
        let (position, pending) = (message.position, message.pending);
        if let std::borrow::Cow::Owned(payload) = crate::storable::storable(&message.payload) {
            tracing::info!(
                position,
                "an event holds NUL characters; the read models store them as U+FFFD"
            );
            message.payload = payload.into();
        }
        Item {
            position,
            pending,
            event: decode_known(message).map_err(|e| format!("{e:#}")),
        }
    }
}

/// Reads and decodes the log in a task of its own, so that reading from NATS overlaps with
/// writing to Postgres. Stops when dropped.
pub(crate) struct Reader {
    rx: tokio::sync::mpsc::Receiver<anyhow::Result<Item>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    pub(crate) async fn start(
        store: &EventStore,
        after: u64,
        batch_size: usize,
    ) -> anyhow::Result<Reader> {
        let mut messages = Box::pin(
            store
                .follow(&store.subjects().all_events(), Start::After(after))
                .await?,
        );
        let (tx, rx) = tokio::sync::mpsc::channel(batch_size.max(1) * 4);
        let task = tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                if tx.send(message.map(Item::decode)).await.is_err() {
                    break;
                }
            }
            let _ = tx
                .send(Err(anyhow::anyhow!("the event consumer ended")))
                .await;
        });
        Ok(Reader { rx, task })
    }

    /// The next item, waiting at most `wait` (zero: only what is already read).
    pub(crate) async fn next(&mut self, wait: Duration) -> anyhow::Result<Option<Item>> {
        let item = if wait.is_zero() {
            self.rx.recv().now_or_never().flatten()
        } else {
            tokio::time::timeout(wait, self.rx.recv())
                .await
                .ok()
                .flatten()
        };
        item.transpose()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Folds decoded items following position `after` into a batch, stopping before the first
/// that does not decode. Returns the batch with the lag after it, and the halt if any.
pub(crate) fn fold(items: Vec<Item>, after: u64) -> anyhow::Result<((Batch, u64), Option<Halt>)> {
    let mut batch = Batch::after(after);
    let mut lag = 0;
    let mut expected = after + 1;
    for item in items {
        if item.position < expected {
            continue;
        }
        if item.position > expected {
            bail!("the log skipped from {} to {}", expected - 1, item.position);
        }
        match item.event {
            Ok(Some(recorded)) => batch.add(&recorded),
            Ok(None) => {
                tracing::info!(
                    position = item.position,
                    "skipping an event of a type this build does not know"
                );
                batch.skip(item.position);
            }
            Err(error) => {
                return Ok((
                    (batch, item.pending + 1),
                    Some(Halt {
                        position: item.position,
                        error,
                    }),
                ));
            }
        }
        lag = item.pending;
        expected = item.position + 1;
    }
    Ok(((batch, lag), None))
}
