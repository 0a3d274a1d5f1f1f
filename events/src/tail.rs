//! The live tail of the log, shared by everything in a process that follows it from now on.
//!
//! The command side's room cache and the gateway's hub each need every new event as it is
//! stored. In one process (`natter serve --role all`) they share one ordered consumer, so the
//! server delivers each event to the process once, not once per reader. Subscribers are called
//! in log order, synchronously, from the tail's task: they must not block.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use tokio::sync::Notify;

use crate::store::{EventStore, RawMessage, Start};

type Callback = Box<dyn Fn(&RawMessage) + Send + Sync>;

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the task when its last subscriber leaves.
    left: Notify,
    /// Resolved when the task stopped.
    stopped: tokio::sync::watch::Sender<bool>,
}

struct State {
    /// Set, under this lock, when the task decides to end: no one subscribes after that.
    ended: bool,
    /// The position of the last event delivered (or the head the tail started at).
    last: u64,
    next_id: u64,
    subscribers: Vec<(u64, Callback)>,
}

/// A subscription to the tail; dropping it unsubscribes.
pub struct TailSubscription {
    shared: Arc<Shared>,
    id: u64,
}

impl TailSubscription {
    /// Resolves if the tail stopped delivering (its task ended): the subscriber then misses
    /// events and must not go on as if current.
    pub async fn closed(&self) {
        let mut stopped = self.shared.stopped.subscribe();
        let _ = stopped.wait_for(|s| *s).await;
    }
}

impl Drop for TailSubscription {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.subscribers.retain(|(id, _)| *id != self.id);
        if state.subscribers.is_empty() {
            self.shared.left.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A subscriber that panicked poisons the lock; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a subscriber; it is called for every event after the returned position. Gives
    /// the callback back if this tail has ended.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        callback: Callback,
    ) -> Result<(u64, TailSubscription), Callback> {
        let mut state = self.lock();
        if state.ended {
            return Err(callback);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.subscribers.push((id, callback));
        Ok((
            state.last,
            TailSubscription {
                shared: self.clone(),
                id,
            },
        ))
    }

    /// The position delivered up to, unless the tail has ended.
    pub(crate) fn position(&self) -> Option<u64> {
        let state = self.lock();
        (!state.ended).then_some(state.last)
    }

    /// Delivers one event; false when no one is left (the tail then ends).
    fn deliver(&self, message: &RawMessage) -> bool {
        let mut state = self.lock();
        state.last = message.position;
        for (_, callback) in &state.subscribers {
            callback(message);
        }
        self.keep_going(&mut state)
    }

    fn keep_going(&self, state: &mut State) -> bool {
        if state.subscribers.is_empty() {
            state.ended = true;
        }
        !state.ended
    }
}

/// Starts a tail from the current head of the log with its first subscriber; it runs while
/// it has subscribers.
pub(crate) async fn start(
    store: EventStore,
    first: Callback,
) -> anyhow::Result<(Arc<Shared>, (u64, TailSubscription))> {
    let head = store.head().await?;
    let filter = store.subjects().all_events();
    let mut messages = Box::pin(store.follow(&filter, Start::After(head)).await?);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            ended: false,
            last: head,
            next_id: 1,
            subscribers: vec![(0, first)],
        }),
        left: Notify::new(),
        stopped: tokio::sync::watch::Sender::new(false),
    });
    let subscription = TailSubscription {
        shared: shared.clone(),
        id: 0,
    };
    let tail = shared.clone();
    tokio::spawn(async move {
        let _stopped = StopOnDrop(tail.clone());
        loop {
            let next = tokio::select! {
                next = messages.try_next() => next,
                () = tail.left.notified() => {
                    if !tail.keep_going(&mut tail.lock()) {
                        return;
                    }
                    continue;
                }
            };
            match next {
                Ok(Some(message)) => {
                    if !tail.deliver(&message) {
                        return;
                    }
                    continue;
                }
                Ok(None) => tracing::warn!("the log's live tail ended; resuming"),
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "the log's live tail failed; resuming"
                ),
            }
            // Resume exactly after the last event delivered, so none falls in between.
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let after = tail.lock().last;
                match store.follow(&filter, Start::After(after)).await {
                    Ok(m) => {
                        messages = Box::pin(m);
                        break;
                    }
                    Err(e) => tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot resume the log's live tail"
                    ),
                }
            }
        }
    });
    Ok((shared, (head, subscription)))
}

/// Marks the tail stopped however its task ends (including a subscriber's panic), so that
/// no one subscribes to a dead tail and current subscribers learn of it.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.lock().ended = true;
        self.0.stopped.send_replace(true);
    }
}
