//! Room state cached in memory and kept fresh from the log, so a command never re-reads a
//! room's history: the process's live tail of the log (one consumer, shared with the gateway in
//! `--role all`) applies every room event to the cached rooms, and a cache miss or a sequence
//! conflict catches the room up from the log.
//!
//! Each cached part (`meta`, `read`) remembers the position of the last event applied to it,
//! so an event delivered twice (by the live consumer and by a catch-up, or after our own
//! append) is applied once. While a catch-up reads the log, live deliveries for that room are
//! buffered and applied after it, so none falls between the two.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use natter_events::room::{Room, evolve};
use natter_events::store::decode_known;
use natter_events::{EventStore, Recorded, RoomPart, SubjectKind};
use uuid::Uuid;

/// How many rooms a process keeps folded in memory; the least recently used are dropped.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// One cached room.
pub struct RoomEntry {
    id: Uuid,
    state: Mutex<EntryState>,
    /// Serializes catch-ups of this room.
    loading: tokio::sync::Mutex<()>,
    /// Serializes this process's appends to the room's `meta` subject, so that local callers
    /// queue instead of conflicting.
    pub meta_writer: tokio::sync::Mutex<()>,
    /// The same for the `read` subject.
    pub read_writer: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct EntryState {
    room: Option<Room>,
    meta: PartState,
    read: PartState,
    catching_up: bool,
    pending: Vec<Recorded>,
}

#[derive(Default, Clone, Copy)]
struct PartState {
    loaded: bool,
    /// Position of the last event of this part applied (0: none).
    version: u64,
}

impl EntryState {
    fn part(&mut self, part: RoomPart) -> Option<&mut PartState> {
        match part {
            RoomPart::Meta => Some(&mut self.meta),
            RoomPart::Read => Some(&mut self.read),
            RoomPart::Msg => None,
        }
    }

    fn apply(&mut self, part: RoomPart, recorded: &Recorded) {
        let Some(p) = self.part(part) else { return };
        if p.loaded && recorded.position > p.version {
            p.version = recorded.position;
            self.room = evolve(self.room.take(), &recorded.envelope);
        }
    }
}

impl RoomEntry {
    fn new(id: Uuid) -> Self {
        RoomEntry {
            id,
            state: Mutex::new(EntryState::default()),
            loading: tokio::sync::Mutex::new(()),
            meta_writer: tokio::sync::Mutex::new(()),
            read_writer: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs `f` on the room as currently known, with the version of `part`.
    pub fn with_room<T>(&self, part: RoomPart, f: impl FnOnce(Option<&Room>, u64) -> T) -> T {
        let mut state = self.state.lock().expect("room state lock");
        let version = state.part(part).map(|p| p.version).unwrap_or(0);
        f(state.room.as_ref(), version)
    }

    /// Waits for any catch-up of this room in progress (live events are parked during one).
    pub async fn settled(&self) {
        drop(self.loading.lock().await);
    }

    /// Applies an event this process appended with an expected position (so no other event of
    /// that part lies between the cached version and it). It is applied even during a
    /// catch-up: the catch-up's older events are then skipped by the version check.
    pub fn apply_own(&self, part: RoomPart, recorded: &Recorded) {
        self.state
            .lock()
            .expect("room state lock")
            .apply(part, recorded);
    }

    fn deliver(&self, part: RoomPart, recorded: Recorded) {
        let mut state = self.state.lock().expect("room state lock");
        if state.catching_up {
            state.pending.push(recorded);
        } else {
            state.apply(part, &recorded);
        }
    }

    fn is_loaded(&self, part: RoomPart) -> bool {
        let mut state = self.state.lock().expect("room state lock");
        state.part(part).is_none_or(|p| p.loaded)
    }
}

/// The cache of rooms, and the position of the last event the live consumer applied.
#[derive(Clone)]
pub struct RoomCache {
    store: EventStore,
    entries: Arc<quick_cache::sync::Cache<Uuid, Arc<RoomEntry>>>,
    /// The position of the last event the live consumer applied (waitable).
    seen: Arc<watch::Sender<u64>>,
    /// How long a command waits for the live consumer to reach the log's head.
    barrier_wait: Duration,
}

impl RoomCache {
    pub fn new(store: EventStore, capacity: usize, barrier_wait: Duration) -> Self {
        RoomCache {
            store,
            entries: Arc::new(quick_cache::sync::Cache::new(capacity)),
            seen: Arc::new(watch::Sender::new(0)),
            barrier_wait,
        }
    }

    /// Starts following the log from its current head (every event, not only rooms': the
    /// read barrier compares with the log's head) on the process's shared live tail. Returns
    /// a task that holds the subscription and ends if the tail stops; aborting it unsubscribes.
    pub async fn start_live(&self) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let cache = self.clone();
        let (head, subscription) = self
            .store
            .subscribe_live(move |message| cache.on_message(message))
            .await?;
        self.saw(head);
        Ok(tokio::spawn(async move {
            subscription.closed().await;
            tracing::error!("the log's live tail stopped; the room cache is no longer current");
        }))
    }

    fn saw(&self, position: u64) {
        self.seen.send_if_modified(|seen| {
            let moved = position > *seen;
            if moved {
                *seen = position;
            }
            moved
        });
    }

    /// Returns once the live consumer has applied every event acknowledged before this was
    /// called: cached rooms are then at least as current as the log was at that moment. The
    /// bound of the log's head comes from a concurrent append's ack when there is one, else
    /// from a lookup shared by concurrent callers.
    pub async fn barrier(&self) -> anyhow::Result<()> {
        let wait = async {
            let head = self.store.head_bound().await?;
            let mut seen = self.seen.subscribe();
            seen.wait_for(|s| *s >= head)
                .await
                .map_err(|_| anyhow::anyhow!("the room cache consumer stopped"))?;
            Ok(())
        };
        // Bounded as a whole: a stuck head lookup or a consumer behind the log is a 503.
        tokio::time::timeout(self.barrier_wait, wait)
            .await
            .map_err(|_| {
                anyhow::anyhow!("this instance's view of the log did not catch up in time")
            })?
    }

    fn on_message(&self, message: &natter_events::RawMessage) {
        self.apply(message);
        self.saw(message.position);
    }

    fn apply(&self, message: &natter_events::RawMessage) {
        let Some(SubjectKind::Room(room_id, part)) = self.store.subjects().parse(&message.subject)
        else {
            return;
        };
        if part == RoomPart::Msg {
            return;
        }
        let Some(entry) = self.entries.get(&room_id) else {
            return;
        };
        match decode_known(message.clone()) {
            Ok(Some(recorded)) => entry.deliver(part, recorded),
            Ok(None) => {}
            Err(e) => {
                // The room cannot be folded past this event: forget it rather than serve a
                // state that silently skipped it.
                tracing::error!(room = %room_id, error = format!("{e:#}"), "undecodable room event");
                self.entries.remove(&room_id);
            }
        }
    }

    /// The highest position the live consumer has seen (a lower bound of the stream head).
    pub fn last_seen(&self) -> u64 {
        *self.seen.borrow()
    }

    /// The cached room, loaded from the log (its `meta` part, and `read` when asked) if needed.
    pub async fn room(&self, room_id: Uuid, with_reads: bool) -> anyhow::Result<Arc<RoomEntry>> {
        let entry = self
            .entries
            .get_or_insert_with(&room_id, || {
                Ok::<_, Infallible>(Arc::new(RoomEntry::new(room_id)))
            })
            .unwrap_or_else(|e| match e {});
        let mut parts = vec![RoomPart::Meta];
        if with_reads {
            parts.push(RoomPart::Read);
        }
        if parts.iter().any(|p| !entry.is_loaded(*p)) {
            self.catch_up(&entry, &parts).await?;
        }
        Ok(entry)
    }

    /// Reads what the log holds beyond the cached versions of `parts` and applies it.
    pub async fn catch_up(&self, entry: &RoomEntry, parts: &[RoomPart]) -> anyhow::Result<()> {
        let _loading = entry.loading.lock().await;
        let from: Vec<(RoomPart, u64)> = {
            let mut state = entry.state.lock().expect("room state lock");
            state.catching_up = true;
            parts
                .iter()
                .map(|p| (*p, state.part(*p).map(|s| s.version).unwrap_or(0)))
                .collect()
        };
        let mut read = Vec::new();
        let mut failure = None;
        for (part, after) in &from {
            let subject = self.store.subjects().room(entry.id, *part);
            match self.store.read_subject(&subject, *after).await {
                Ok(events) => read.push((*part, events)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut state = entry.state.lock().expect("room state lock");
        let pending = std::mem::take(&mut state.pending);
        state.catching_up = false;
        if let Some(e) = failure {
            // Buffered live events are gone with the failed catch-up: drop the room so the
            // next use loads it whole.
            drop(state);
            self.entries.remove(&entry.id);
            return Err(e.context("catching a room up from the log"));
        }
        for (part, events) in &read {
            if let Some(p) = state.part(*part) {
                p.loaded = true;
            }
            for e in events {
                state.apply(*part, e);
            }
        }
        let mut pending = pending;
        pending.sort_by_key(|r| r.position);
        for recorded in pending {
            if let Some(SubjectKind::Room(_, part)) = self.store.subjects().parse(&recorded.subject)
            {
                state.apply(part, &recorded);
            }
        }
        Ok(())
    }
}
