//! Room state cached in memory and kept fresh from the log, so a command never re-reads a
//! room's history: the process's live tail of the log (one consumer, shared with the gateway in
//! `--role all`) delivers every room event to the cached rooms, and a cache miss or a sequence
//! conflict catches the room up from the log.
//!
//! Each cached room is a [`LiveRoom`], the fold shared with the gateway: it applies an event
//! delivered twice (by the live tail and by a catch-up, or after our own append) once, and
//! parks live events while a catch-up reads, so none falls between the two.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use natter_events::room::{LiveRoom, Room};
use natter_events::store::decode_known;
use natter_events::{EventStore, LiveTail, Recorded, RoomPart, SubjectKind};
use uuid::Uuid;

/// How many rooms a process keeps folded in memory; the least recently used are dropped.
pub const DEFAULT_CAPACITY: usize = 100_000;

type Fold = LiveRoom<(RoomPart, Recorded)>;

/// One cached room.
pub struct RoomEntry {
    id: Uuid,
    fold: Mutex<Fold>,
    /// Serializes catch-ups of this room.
    loading: tokio::sync::Mutex<()>,
    /// Serializes this process's appends to the room's `meta` subject, so that local callers
    /// queue instead of conflicting.
    pub meta_writer: tokio::sync::Mutex<()>,
    /// The same for the `read` subject.
    pub read_writer: tokio::sync::Mutex<()>,
    /// The same for the `msg` subject's version-checked appends (edits, deletions,
    /// reactions); sends do not take it.
    pub msg_writer: tokio::sync::Mutex<()>,
}

impl RoomEntry {
    fn new(id: Uuid) -> Self {
        RoomEntry {
            id,
            fold: Mutex::new(LiveRoom::default()),
            loading: tokio::sync::Mutex::new(()),
            meta_writer: tokio::sync::Mutex::new(()),
            read_writer: tokio::sync::Mutex::new(()),
            msg_writer: tokio::sync::Mutex::new(()),
        }
    }

    fn fold(&self) -> std::sync::MutexGuard<'_, Fold> {
        self.fold.lock().expect("room fold lock")
    }

    /// Runs `f` on the room as currently known, with the version of `part`.
    pub fn with_room<T>(&self, part: RoomPart, f: impl FnOnce(Option<&Room>, u64) -> T) -> T {
        let fold = self.fold();
        f(fold.room(), fold.version(part))
    }

    /// [`with_room`](Self::with_room), also given the version of the room's `meta` subject
    /// (its membership) that the state holds.
    pub fn with_room_and_meta<T>(
        &self,
        part: RoomPart,
        f: impl FnOnce(Option<&Room>, u64, u64) -> T,
    ) -> T {
        let fold = self.fold();
        f(
            fold.room(),
            fold.version(part),
            fold.version(RoomPart::Meta),
        )
    }

    /// Waits for any catch-up of this room in progress (live events are parked during one).
    pub async fn settled(&self) {
        drop(self.loading.lock().await);
    }

    /// Applies an event this process appended with an expected position (so no other event of
    /// that part lies between the cached version and it). It is applied even during a
    /// catch-up: the catch-up's older events are then skipped by their positions.
    pub fn apply_own(&self, part: RoomPart, recorded: Recorded) {
        self.fold().apply(&(part, recorded));
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
    /// Whether any room here folds its messages (after an edit or a deletion): until one
    /// does, message events cost the live consumer nothing beyond their subject.
    folds_messages: Arc<AtomicBool>,
}

impl RoomCache {
    pub fn new(store: EventStore, capacity: usize, barrier_wait: Duration) -> Self {
        RoomCache {
            store,
            entries: Arc::new(quick_cache::sync::Cache::new(capacity)),
            seen: Arc::new(watch::Sender::new(0)),
            barrier_wait,
            folds_messages: Arc::default(),
        }
    }

    /// Starts following the log on the process's live tail (every event, not only rooms':
    /// the read barrier compares with the log's head). Returns
    /// a task that holds the subscription and ends if the tail stops; aborting it unsubscribes.
    pub fn start_live(&self, tail: &LiveTail) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let cache = self.clone();
        let (head, subscription) = tail.subscribe(move |message| cache.on_message(message))?;
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
        if part == RoomPart::Msg && !self.folds_messages.load(Ordering::Relaxed) {
            return;
        }
        let Some(entry) = self.entries.get(&room_id) else {
            return;
        };
        // Messages are decoded only for rooms that fold them (for edits and deletions).
        if part == RoomPart::Msg && !entry.fold().is_loaded(RoomPart::Msg) {
            return;
        }
        match decode_known(message.clone()) {
            Ok(Some(recorded)) => {
                entry.fold().deliver((part, recorded));
            }
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

    /// The cached room, with `parts` loaded from the log if they are not yet.
    pub async fn room(&self, room_id: Uuid, parts: &[RoomPart]) -> anyhow::Result<Arc<RoomEntry>> {
        let entry = self
            .entries
            .get_or_insert_with(&room_id, || {
                Ok::<_, Infallible>(Arc::new(RoomEntry::new(room_id)))
            })
            .unwrap_or_else(|e| match e {});
        if parts.iter().any(|p| !entry.fold().is_loaded(*p)) {
            self.catch_up(&entry, parts).await?;
        }
        Ok(entry)
    }

    /// Reads what the log holds beyond the cached versions of `parts` and applies it.
    pub async fn catch_up(&self, entry: &RoomEntry, parts: &[RoomPart]) -> anyhow::Result<()> {
        let _loading = entry.loading.lock().await;
        let from = entry.fold().begin_catch_up(parts);
        if from.iter().any(|(p, _)| *p == RoomPart::Msg) {
            self.folds_messages.store(true, Ordering::Relaxed);
        }
        let read = async {
            let mut read = Vec::new();
            for (part, after) in from {
                let subject = self.store.subjects().room(entry.id, part);
                let events = self.store.read_subject(&subject, after).await?;
                read.extend(events.into_iter().map(|e| (part, e)));
            }
            // Every event up to the last one read is parked before the fold ends the
            // catch-up, so that it applies them all in log order.
            let last = read.iter().map(|(_, e)| e.position).max().unwrap_or(0);
            let mut seen = self.seen.subscribe();
            tokio::time::timeout(self.barrier_wait, seen.wait_for(|s| *s >= last))
                .await
                .map_err(|_| anyhow::anyhow!("the live tail did not reach position {last}"))?
                .map_err(|_| anyhow::anyhow!("the room cache consumer stopped"))?;
            anyhow::Ok(read)
        };
        match read.await {
            Ok(read) => {
                entry.fold().end_catch_up(read, &[]);
                Ok(())
            }
            Err(e) => {
                entry.fold().abandon_catch_up();
                // Drop the room, so the next use loads it whole.
                self.entries.remove(&entry.id);
                Err(e.context("catching a room up from the log"))
            }
        }
    }
}
