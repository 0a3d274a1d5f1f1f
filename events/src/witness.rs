//! Bounds of the log's head without asking the server each time.
//!
//! A reader that must be at least as current as the log was at some moment (the command side's
//! read barrier) needs a position at or above every event acknowledged before that moment. The
//! stream's last position, read after the moment, is one such bound. So is the position of any
//! append that this process *began* after the moment: the server stored it after every event
//! already acknowledged, so they all lie below it. Under load, appends begin every few
//! microseconds, and a waiter is answered by the next one's ack, with no request of its own;
//! only a waiter that no later append covers within a moment (an idle process, or the covering
//! append failed) gets a real head lookup, shared by everyone waiting at that moment.
//!
//! [`EventStore::head_bound`] lives here, with the task that answers uncovered waiters.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use anyhow::anyhow;

use tokio::sync::{Notify, oneshot};

use crate::store::{EventStore, Inner};

/// How many times the head lookup lets queued tasks run first, while appends are in flight,
/// so that one of them may cover its waiters instead.
const COVER_YIELDS: usize = 4;

/// Appends begun by this process and callers waiting for a bound.
#[derive(Default)]
pub(crate) struct Witness {
    state: Mutex<State>,
    /// Wakes the lookup task: there may be waiters no append in flight covers.
    pub(crate) wake: Notify,
    /// Head lookups made for uncovered waiters (for metrics and tests).
    pub(crate) lookups: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Appends begun so far (the index of the latest).
    begun: u64,
    /// Indices of appends begun and not yet finished.
    in_flight: BTreeSet<u64>,
    /// Each waiter with the value of `begun` when it came: an append with a higher index
    /// began after it.
    waiters: Vec<(u64, oneshot::Sender<Result<u64, String>>)>,
}

impl State {
    /// The index of the latest append in flight (0: none); it covers every waiter that came
    /// before it began.
    fn latest_in_flight(&self) -> u64 {
        self.in_flight.last().copied().unwrap_or(0)
    }
}

impl Witness {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("head witness lock")
    }

    /// Registers a waiter for a bound of the head as of now.
    pub(crate) fn wait(&self) -> oneshot::Receiver<Result<u64, String>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            let begun = state.begun;
            state.waiters.push((begun, tx));
        }
        self.wake.notify_one();
        rx
    }

    /// An append is about to be sent; returns its index.
    pub(crate) fn begin(&self) -> u64 {
        let mut state = self.state();
        state.begun += 1;
        let index = state.begun;
        state.in_flight.insert(index);
        index
    }

    /// The append `index` was stored at `position` (a fresh store, not a duplicate's ack):
    /// every waiter that came before it began gets `position - 1` as its bound.
    pub(crate) fn stored(&self, index: u64, position: u64) {
        let answered = {
            let mut state = self.state();
            state.in_flight.remove(&index);
            let (answered, waiting) = std::mem::take(&mut state.waiters)
                .into_iter()
                .partition(|(came, _)| *came < index);
            state.waiters = waiting;
            answered
        };
        for (_, tx) in answered {
            let _ = tx.send(Ok(position.saturating_sub(1)));
        }
    }

    /// The append `index` did not give a usable position (failed, refused or a duplicate).
    pub(crate) fn abandoned(&self, index: u64) {
        self.state().in_flight.remove(&index);
        // Its waiters may now be uncovered.
        self.wake.notify_one();
    }

    /// Whether appends are in flight, so that more are likely to begin any moment.
    pub(crate) fn busy(&self) -> bool {
        !self.state().in_flight.is_empty()
    }

    /// Whether some waiter is not covered by an append in flight.
    pub(crate) fn has_uncovered(&self) -> bool {
        let state = self.state();
        let latest = state.latest_in_flight();
        state.waiters.iter().any(|(came, _)| *came >= latest)
    }

    /// Takes the waiters that no append in flight covers (they need a lookup).
    pub(crate) fn uncovered(&self) -> Vec<oneshot::Sender<Result<u64, String>>> {
        let mut state = self.state();
        let latest = state.latest_in_flight();
        let (uncovered, covered) = std::mem::take(&mut state.waiters)
            .into_iter()
            .partition(|(came, _)| *came >= latest);
        state.waiters = covered;
        uncovered.into_iter().map(|(_, tx)| tx).collect()
    }
}

/// Marks an append finished without a usable position unless it was [`Witnessed::stored`].
pub(crate) struct Witnessed<'a> {
    witness: &'a Witness,
    index: u64,
    done: bool,
}

impl<'a> Witnessed<'a> {
    pub(crate) fn begin(witness: &'a Witness) -> Self {
        Witnessed {
            witness,
            index: witness.begin(),
            done: false,
        }
    }

    pub(crate) fn stored(mut self, position: u64) {
        self.done = true;
        self.witness.stored(self.index, position);
    }
}

impl Drop for Witnessed<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.witness.abandoned(self.index);
        }
    }
}

impl EventStore {
    /// A position at or above every event acknowledged (to anyone) before this call: the
    /// position of an append this handle began after the call, less one, or failing that the
    /// stream's last position read after the call. Concurrent callers that no append covers
    /// share one lookup.
    pub async fn head_bound(&self) -> anyhow::Result<u64> {
        let answer = self.inner.witness.wait();
        self.inner.lookups.get_or_init(|| {
            tokio::spawn(serve_lookups(
                Arc::downgrade(&self.inner),
                self.inner.witness.clone(),
            ));
        });
        answer
            .await
            .map_err(|_| anyhow!("the head lookup stopped"))?
            .map_err(|e| anyhow!("reading the log's head: {e}"))
    }

    /// How many head lookups [`head_bound`](Self::head_bound) has made: the rest were
    /// answered by this handle's own appends.
    pub fn head_lookups(&self) -> u64 {
        self.inner.witness.lookups.load(Ordering::Relaxed)
    }
}

/// Answers [`EventStore::head_bound`] callers that no append covers, in rounds: each round's
/// lookup starts after its callers came. Ends when the store is dropped.
async fn serve_lookups(inner: Weak<Inner>, witness: Arc<Witness>) {
    loop {
        if !witness.has_uncovered() {
            if inner.strong_count() == 0 {
                return;
            }
            witness.wake.notified().await;
            continue;
        }
        // While appends are under way, others may be about to begin and cover the waiters
        // (those it covers are answered by its ack): let the runtime's queued tasks run
        // first. Under load that queue holds the requests about to append; when nearly
        // idle it is empty and the lookup goes out at once.
        for _ in 0..COVER_YIELDS {
            if !witness.busy() || !witness.has_uncovered() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let round = witness.uncovered();
        if round.is_empty() {
            continue;
        }
        let Some(inner) = inner.upgrade() else { return };
        witness.lookups.fetch_add(1, Ordering::Relaxed);
        let head = EventStore { inner }
            .head()
            .await
            .map_err(|e| format!("{e:#}"));
        for waiter in round {
            let _ = waiter.send(head.clone());
        }
    }
}
