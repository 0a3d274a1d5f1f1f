//! Reading the log into batches: events read and decoded in a task of their own ahead of the
//! batch loop ([`Reader`]), and folded into a [`Batch`] in log order, stopping at an event
//! that does not decode ([`fold`]). Shared by the live projection and the rebuild.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use futures::{FutureExt, StreamExt};
use natter_events::store::decode_known;
use natter_events::tail::TailSubscription;
use natter_events::{EventStore, LiveTail, RawMessage, Recorded, Start};

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
///
/// With the process's live tail at hand (`natter serve` with the projector beside a command
/// or query role), the reader catches up on a consumer of its own and then hands over to
/// the tail, which already receives every event for the room cache and the gateway: the
/// server then delivers each event to the process once instead of twice. It goes back to a
/// consumer of its own whenever the tail cannot keep it whole (the projector fell behind
/// the tail's buffer, or the tail stopped), from the last event it passed on.
pub(crate) struct Reader {
    rx: tokio::sync::mpsc::Receiver<anyhow::Result<Item>>,
    task: tokio::task::JoinHandle<()>,
    on_tail: Arc<AtomicBool>,
}

/// How many live events the tail may hold for the projector before it lets go of it.
const TAIL_BUFFER: usize = 4096;

impl Reader {
    pub(crate) async fn start(
        store: &EventStore,
        tail: Option<&LiveTail>,
        (on_tail, handovers): (&Arc<AtomicBool>, &Arc<AtomicU64>),
        after: u64,
        batch_size: usize,
    ) -> anyhow::Result<Reader> {
        // The first consumer is made here, so that a failure to read at all is the caller's.
        let messages = store
            .follow(&store.subjects().all_events(), Start::After(after))
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(batch_size.max(1) * 4);
        let (store, tail, flag) = (store.clone(), tail.cloned(), on_tail.clone());
        let handovers = handovers.clone();
        let task = tokio::spawn(async move {
            let mut messages = Some(messages.boxed());
            let mut last = after;
            loop {
                let stream = match messages.take() {
                    Some(m) => m,
                    None => match store
                        .follow(&store.subjects().all_events(), Start::After(last))
                        .await
                    {
                        Ok(m) => m.boxed(),
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    },
                };
                match own_consumer(stream, tail.as_ref(), &mut last, &tx).await {
                    Ok(Some(handover)) => {
                        flag.store(true, Ordering::SeqCst);
                        handovers.fetch_add(1, Ordering::SeqCst);
                        let more = from_tail(handover, &mut last, &tx).await;
                        flag.store(false, Ordering::SeqCst);
                        if !more {
                            return;
                        }
                        tracing::debug!(last, "the projector reads on a consumer of its own again");
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(Reader {
            rx,
            task,
            on_tail: on_tail.clone(),
        })
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

type Items = tokio::sync::mpsc::Sender<anyhow::Result<Item>>;

/// The tail, subscribed, with its events after `from` buffered for the projector.
struct Handover {
    events: tokio::sync::mpsc::Receiver<RawMessage>,
    /// Set when the buffer was full and an event was dropped.
    overflowed: Arc<AtomicBool>,
    _subscription: TailSubscription,
}

/// Passes on events from a consumer of the projector's own, after `last`, until it has caught
/// up with the tail (then returns the tail, subscribed). `Ok(None)`: the receiver is gone.
async fn own_consumer(
    mut messages: futures::stream::BoxStream<'static, anyhow::Result<RawMessage>>,
    tail: Option<&LiveTail>,
    last: &mut u64,
    tx: &Items,
) -> anyhow::Result<Option<Handover>> {
    let mut handover: Option<(u64, Handover)> = None;
    while let Some(message) = messages.next().await {
        let message = message?;
        let (position, pending) = (message.position, message.pending);
        if position <= *last {
            continue;
        }
        *last = position;
        if tx.send(Ok(Item::decode(message))).await.is_err() {
            return Ok(None);
        }
        if let Some((from, _)) = &handover
            && *last >= *from
        {
            return Ok(handover.map(|(_, h)| h));
        }
        // Caught up with the log: subscribe to the tail, then read on until this consumer has
        // passed on everything before the tail's first buffered event.
        if pending == 0
            && handover.is_none()
            && let Some(tail) = tail
        {
            let (events_tx, events) = tokio::sync::mpsc::channel(TAIL_BUFFER);
            let overflowed = Arc::new(AtomicBool::new(false));
            let flag = overflowed.clone();
            let Ok((from, subscription)) = tail.subscribe(move |m: &RawMessage| {
                if !flag.load(Ordering::Relaxed) && events_tx.try_send(m.clone()).is_err() {
                    flag.store(true, Ordering::Relaxed);
                }
            }) else {
                continue;
            };
            let h = Handover {
                events,
                overflowed,
                _subscription: subscription,
            };
            if *last >= from {
                return Ok(Some(h));
            }
            handover = Some((from, h));
        }
    }
    anyhow::bail!("the event consumer ended")
}

/// Passes on the tail's events after `last` until it cannot keep them whole. Returns false
/// when the receiver is gone.
async fn from_tail(mut handover: Handover, last: &mut u64, tx: &Items) -> bool {
    loop {
        let message = match handover.events.try_recv() {
            Ok(m) => m,
            Err(_) if handover.overflowed.load(Ordering::Relaxed) => return true,
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return true,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                match handover.events.recv().await {
                    Some(m) => m,
                    // The tail stopped.
                    None => return true,
                }
            }
        };
        if message.position <= *last {
            continue;
        }
        if message.position != *last + 1 {
            // Never expected (the tail delivers every event in order); a consumer of the
            // projector's own makes sure nothing is skipped.
            tracing::warn!(
                last = *last,
                next = message.position,
                "the live tail skipped events; reading them on a consumer"
            );
            return true;
        }
        *last = message.position;
        if tx.send(Ok(Item::decode(message))).await.is_err() {
            return false;
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
        self.on_tail.store(false, Ordering::SeqCst);
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
