//! The live tail of the log: one ordered consumer of every event from "now" on, shared by
//! everything in a process that follows the log live (the command side's room cache, the
//! gateway's hub, `/readyz`). `natter serve` starts one and hands it to each role it runs, so
//! the server delivers each event to the process once, not once per reader.
//!
//! Subscribers are called in log order, synchronously, from the tail's task: they must not
//! block. The tail runs while a handle or a subscription to it is held.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use futures::stream::{BoxStream, StreamExt};

use crate::store::{EventStore, RawMessage, Start};

type Callback = Box<dyn Fn(&RawMessage) + Send + Sync>;

/// Handle to the process's live tail. Cheap to clone.
#[derive(Clone)]
pub struct LiveTail {
    shared: Arc<Shared>,
    /// Stops the task when the last handle goes.
    _task: Arc<AbortOnDrop>,
}

struct Shared {
    state: Mutex<State>,
    /// Set when the task stopped (it does not restart).
    stopped: tokio::sync::watch::Sender<bool>,
}

struct State {
    /// Set, under this lock, when the task ended: no one subscribes after that.
    ended: bool,
    /// The position of the last event delivered (or the head the tail started at).
    last: u64,
    next_id: u64,
    subscribers: Vec<(u64, Callback)>,
}

/// A subscription to the tail; dropping it unsubscribes.
pub struct TailSubscription {
    tail: LiveTail,
    id: u64,
}

impl TailSubscription {
    /// Resolves if the tail stopped delivering: the subscriber then misses events and must
    /// not go on as if current.
    pub async fn closed(&self) {
        self.tail.stopped().await;
    }
}

impl Drop for TailSubscription {
    fn drop(&mut self) {
        self.tail
            .shared
            .lock()
            .subscribers
            .retain(|(id, _)| *id != self.id);
    }
}

impl LiveTail {
    /// Starts following the log from its current head.
    pub async fn start(store: &EventStore) -> anyhow::Result<LiveTail> {
        let head = store.head().await?;
        let filter = store.subjects().all_events();
        let messages = store.follow(&filter, Start::After(head)).await?.boxed();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ended: false,
                last: head,
                next_id: 0,
                subscribers: Vec::new(),
            }),
            stopped: tokio::sync::watch::Sender::new(false),
        });
        let task = tokio::spawn(run(store.clone(), shared.clone(), filter, messages));
        Ok(LiveTail {
            shared,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// Calls `callback` with every event after the returned position, in log order, until
    /// the subscription is dropped. Fails if the tail has stopped.
    pub fn subscribe(
        &self,
        callback: impl Fn(&RawMessage) + Send + Sync + 'static,
    ) -> anyhow::Result<(u64, TailSubscription)> {
        let mut state = self.shared.lock();
        if state.ended {
            anyhow::bail!("the log's live tail has stopped");
        }
        let id = state.next_id;
        state.next_id += 1;
        state.subscribers.push((id, Box::new(callback)));
        Ok((
            state.last,
            TailSubscription {
                tail: self.clone(),
                id,
            },
        ))
    }

    /// The position delivered up to, unless the tail has stopped.
    pub fn position(&self) -> Option<u64> {
        let state = self.shared.lock();
        (!state.ended).then_some(state.last)
    }

    /// Resolves once the tail has stopped (its task ended, by a subscriber's panic say).
    pub async fn stopped(&self) {
        let mut stopped = self.shared.stopped.subscribe();
        let _ = stopped.wait_for(|s| *s).await;
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A subscriber that panicked poisons the lock; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deliver(&self, message: &RawMessage) {
        let mut state = self.lock();
        state.last = message.position;
        for (_, callback) in &state.subscribers {
            callback(message);
        }
    }
}

/// The tail's task: delivers every event, and resumes exactly after the last one delivered
/// when the follow ends or fails, so none falls in between.
async fn run(
    store: EventStore,
    shared: Arc<Shared>,
    filter: String,
    mut messages: BoxStream<'static, anyhow::Result<RawMessage>>,
) {
    let _stopped = StopOnDrop(shared.clone());
    loop {
        match messages.try_next().await {
            Ok(Some(message)) => {
                shared.deliver(&message);
                continue;
            }
            Ok(None) => tracing::warn!("the log's live tail ended; resuming"),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "the log's live tail failed; resuming"
            ),
        }
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let after = shared.lock().last;
            match store.follow(&filter, Start::After(after)).await {
                Ok(m) => {
                    messages = m.boxed();
                    break;
                }
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot resume the log's live tail"
                ),
            }
        }
    }
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

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
