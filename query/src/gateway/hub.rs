//! The hub of one gateway instance: ONE ordered JetStream consumer over every room event,
//! fanned out in-process to the connections subscribed to each room, so the NATS-side cost
//! does not grow with connections.
//!
//! Each room with subscribers has a feed: the room's membership (folded from its `meta`
//! events with the same `evolve` as the write side), the position of its last event (so each
//! frame carries `prev_position`), a window of recent frames (so a reconnect storm is served
//! from memory), and its subscribers.
//!
//! Subscribing with `since` replays from the window when it reaches back far enough, and
//! otherwise from JetStream without holding any lock; then, holding the feed's lock (which
//! the hub also holds to deliver), it sends what arrived meanwhile from the window and joins
//! the live subscribers in one step: no gap, no duplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use futures::TryStreamExt;
use natter_events::catalogue::{Event, Visibility};
use natter_events::history;
use natter_events::room::{Room, evolve};
use natter_events::{Decoded, Envelope, EventStore, RawMessage, RoomPart, Start, SubjectKind};
use tokio::sync::{Notify, Semaphore, mpsc};
use uuid::Uuid;

use super::protocol::{self, FrameError};

/// Recent frames kept per active room.
pub const WINDOW: usize = 512;
/// Frames queued for one connection before it counts as too slow.
pub const SEND_BUFFER: usize = 2048;
/// Bytes queued for one connection before it counts as too slow.
pub const SEND_BUFFER_BYTES: usize = 1024 * 1024;
/// Replays from JetStream running at once (a reconnect storm waits here).
const CONCURRENT_REPLAYS: usize = 32;
/// How long a room without subscribers keeps its feed (and window).
const IDLE_FEED: Duration = Duration::from_secs(60);

pub type ConnId = u64;

/// Signals a connection to close because it fell behind.
#[derive(Default)]
pub struct Kill {
    flag: AtomicBool,
    notify: Notify,
}

impl Kill {
    pub fn kill(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_killed(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub async fn killed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }
}

/// What a connection has queued and not yet written to its socket.
#[derive(Default)]
pub struct Queued {
    bytes: AtomicUsize,
    drained: Notify,
}

impl Queued {
    /// The writer took `len` bytes off the queue.
    pub fn written(&self, len: usize) {
        self.bytes.fetch_sub(len, Ordering::SeqCst);
        self.drained.notify_waiters();
    }
}

/// The hub's handle on one websocket connection.
#[derive(Clone)]
pub struct Conn {
    pub id: ConnId,
    pub user: Uuid,
    tx: mpsc::Sender<Utf8Bytes>,
    pub kill: Arc<Kill>,
    pub queued: Arc<Queued>,
}

impl Conn {
    pub fn new(id: ConnId, user: Uuid, tx: mpsc::Sender<Utf8Bytes>) -> Self {
        Conn {
            id,
            user,
            tx,
            kill: Arc::new(Kill::default()),
            queued: Arc::new(Queued::default()),
        }
    }

    /// Queues a frame without waiting. A full queue (in frames or bytes) means the client is
    /// not keeping up: it is closed (4008) rather than buffered without bound.
    pub fn offer(&self, frame: Utf8Bytes) {
        let len = frame.len();
        if self.queued.bytes.load(Ordering::SeqCst) + len > SEND_BUFFER_BYTES {
            self.kill.kill();
            return;
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.queued.bytes.fetch_add(len, Ordering::SeqCst);
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.kill.kill(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues a frame, waiting for room (replays, which go at the client's pace).
    pub async fn send(&self, frame: Utf8Bytes) -> bool {
        let len = frame.len();
        loop {
            let drained = self.queued.drained.notified();
            if self.queued.bytes.load(Ordering::SeqCst) + len <= SEND_BUFFER_BYTES.max(len) {
                break;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.kill.killed() => return false,
            }
        }
        tokio::select! {
            sent = self.tx.send(frame) => {
                if sent.is_ok() {
                    self.queued.bytes.fetch_add(len, Ordering::SeqCst);
                }
                sent.is_ok()
            }
            _ = self.kill.killed() => false,
        }
    }

    /// Whether `bytes` more bytes fit in the queue now.
    fn fits(&self, bytes: usize) -> bool {
        self.queued.bytes.load(Ordering::SeqCst) + bytes <= SEND_BUFFER_BYTES
    }

    /// Whether `frames` more frames (of a window) fit in the queue.
    fn room_for(&self, frames: usize) -> bool {
        self.tx.capacity() >= frames
            && self.queued.bytes.load(Ordering::SeqCst) <= SEND_BUFFER_BYTES / 2
    }
}

/// One frame of a room's stream.
struct Frame {
    position: u64,
    prev: u64,
    text: Utf8Bytes,
}

/// A room event as the hub received it.
struct Incoming {
    position: u64,
    part: RoomPart,
    /// The redacted envelope with its position, as clients see it.
    envelope: bytes::Bytes,
    /// Decoded, for `meta` events (membership and the user feed).
    known: Option<Envelope>,
}

#[derive(Default)]
struct Feed {
    loaded: bool,
    pending: Vec<Arc<Incoming>>,
    room: Option<Room>,
    meta_version: u64,
    last_position: u64,
    window: VecDeque<Arc<Frame>>,
    subscribers: HashMap<ConnId, Conn>,
    idle_since: Option<Instant>,
}

struct FeedSlot {
    room_id: Uuid,
    state: Mutex<Feed>,
    loading: tokio::sync::Mutex<()>,
}

/// Why a subscriber stops receiving a room.
fn ending(envelope: &Envelope) -> Option<(Option<Uuid>, &'static str)> {
    match &envelope.event {
        Event::MemberLeft(l) => Some((Some(l.user_id), "left")),
        Event::MemberRemoved(r) => Some((Some(r.user_id), "removed")),
        Event::RoomDeleted(_) => Some((None, "deleted")),
        _ => None,
    }
}

impl Feed {
    fn apply(&mut self, room_id: Uuid, incoming: &Incoming) {
        if incoming.part == RoomPart::Meta && incoming.position > self.meta_version {
            if let Some(envelope) = &incoming.known {
                self.room = evolve(self.room.take(), envelope);
            }
            self.meta_version = incoming.position;
        }
        if incoming.position <= self.last_position {
            return;
        }
        let prev = self.last_position;
        let text = Utf8Bytes::from(protocol::event(
            room_id,
            incoming.position,
            Some(prev),
            &incoming.envelope,
            false,
        ));
        let frame = Arc::new(Frame {
            position: incoming.position,
            prev,
            text,
        });
        self.last_position = incoming.position;
        self.window.push_back(frame.clone());
        if self.window.len() > WINDOW {
            self.window.pop_front();
        }
        for conn in self.subscribers.values() {
            conn.offer(frame.text.clone());
        }
        // Authorization follows the log: whoever leaves, is removed, or loses the room gets
        // this event as their last, then `unsubscribed`.
        if let Some((who, reason)) = incoming.known.as_ref().and_then(ending) {
            let unsubscribed = Utf8Bytes::from(protocol::unsubscribed(room_id, reason));
            self.subscribers.retain(|_, conn| {
                let ends = who.is_none_or(|user| user == conn.user);
                if ends {
                    conn.offer(unsubscribed.clone());
                }
                !ends
            });
            if self.subscribers.is_empty() {
                self.idle_since.get_or_insert_with(Instant::now);
            }
        }
    }

    /// `Ok` if `user` may subscribe: members only; a private room looks nonexistent.
    fn admits(&self, user: Uuid) -> Result<(), FrameError> {
        match &self.room {
            Some(room) if !room.deleted && room.is_member(user) => Ok(()),
            Some(room) if !room.deleted && room.visibility == Visibility::Public => Err(
                FrameError::new("forbidden", "only members may subscribe to this room"),
            ),
            _ => Err(FrameError::new("not_found", "room not found")),
        }
    }
}

/// The hub: feeds of active rooms, and every local connection by user.
pub struct Hub {
    store: EventStore,
    feeds: Mutex<HashMap<Uuid, Arc<FeedSlot>>>,
    users: Mutex<HashMap<Uuid, HashMap<ConnId, Conn>>>,
    replays: Semaphore,
    next_conn: AtomicU64,
    /// Identifies the log's incarnation (see `EventStore::epoch`).
    pub epoch: String,
}

impl Hub {
    /// Starts following the log from its current head, on the process's shared live tail.
    /// The returned task holds the subscription and sweeps idle feeds; it ends if the tail
    /// stops, and aborting it unsubscribes.
    pub async fn start(
        store: EventStore,
    ) -> anyhow::Result<(Arc<Hub>, tokio::task::JoinHandle<()>)> {
        let hub = Arc::new(Hub {
            epoch: store.epoch(),
            store,
            feeds: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            replays: Semaphore::new(CONCURRENT_REPLAYS),
            next_conn: AtomicU64::new(1),
        });
        let (_, subscription) = {
            let hub = hub.clone();
            hub.store
                .clone()
                .subscribe_live(move |message| hub.on_message(message))
                .await?
        };
        let task = {
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut sweep = tokio::time::interval(Duration::from_secs(15));
                loop {
                    tokio::select! {
                        () = subscription.closed() => {
                            tracing::error!("the log's live tail stopped; the gateway is no longer current");
                            return;
                        }
                        _ = sweep.tick() => hub.sweep_idle_feeds(),
                    }
                }
            })
        };
        Ok((hub, task))
    }

    /// The feed of a room, if this gateway holds one (never creates it).
    fn held_slot(&self, room_id: Uuid) -> Option<Arc<FeedSlot>> {
        self.feeds
            .lock()
            .expect("feeds lock")
            .get(&room_id)
            .cloned()
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn on_message(&self, message: &RawMessage) {
        let Some(SubjectKind::Room(room_id, part)) = self.store.subjects().parse(&message.subject)
        else {
            return;
        };
        let slot = self.held_slot(room_id);
        // Messages of rooms nobody here follows cost nothing beyond the subject check.
        if slot.is_none() && part != RoomPart::Meta {
            return;
        }
        // Only `meta` events are decoded (membership, the user feed); every frame carries the
        // stored envelope spliced in, not re-encoded.
        let known = if part == RoomPart::Meta {
            match Envelope::decode(&message.payload) {
                Ok(Decoded::Known(envelope)) => Some(envelope),
                Ok(Decoded::Unknown(_)) => None,
                Err(e) => {
                    tracing::error!(position = message.position, error = %e, "a room event does not decode");
                    None
                }
            }
        } else {
            None
        };
        let envelope = history::line(message);
        let incoming = Arc::new(Incoming {
            position: message.position,
            part,
            envelope,
            known,
        });
        let mut prev = None;
        let mut subscribed = Vec::new();
        if let Some(slot) = &slot {
            let mut feed = slot.state.lock().expect("feed lock");
            if feed.loaded {
                prev = Some(feed.last_position);
                // Taken before applying: whoever this event unsubscribes still got it as a
                // room event, and must not get it again on their own feed.
                subscribed = feed.subscribers.keys().copied().collect();
                feed.apply(room_id, &incoming);
            } else {
                feed.pending.push(incoming.clone());
            }
        }
        self.notify_named_user(room_id, &incoming, prev, &subscribed);
    }

    /// Events that name a user (an invite for them, their joins, leaves and removals) reach
    /// all that user's connections, as `"feed": "me"` frames; a connection subscribed to the
    /// room already got it as a room event.
    fn notify_named_user(
        &self,
        room_id: Uuid,
        incoming: &Incoming,
        prev: Option<u64>,
        subscribed: &[ConnId],
    ) {
        let Some(envelope) = &incoming.known else {
            return;
        };
        let named = match &envelope.event {
            Event::InviteCreated(i) => i.invitee_id,
            Event::MemberJoined(j) => Some(j.user_id),
            Event::MemberLeft(l) => Some(l.user_id),
            Event::MemberRemoved(r) => Some(r.user_id),
            _ => None,
        };
        let Some(user) = named else { return };
        let users = self.users.lock().expect("users lock");
        let Some(conns) = users.get(&user) else {
            return;
        };
        let text = Utf8Bytes::from(protocol::event(
            room_id,
            incoming.position,
            prev,
            &incoming.envelope,
            true,
        ));
        for conn in conns.values().filter(|c| !subscribed.contains(&c.id)) {
            conn.offer(text.clone());
        }
    }

    pub fn connected(&self, conn: &Conn) {
        self.users
            .lock()
            .expect("users lock")
            .entry(conn.user)
            .or_default()
            .insert(conn.id, conn.clone());
    }

    pub fn disconnected(&self, conn: &Conn, rooms: &[Uuid]) {
        for room in rooms {
            self.unsubscribe(conn.id, *room);
        }
        let mut users = self.users.lock().expect("users lock");
        if let Some(conns) = users.get_mut(&conn.user) {
            conns.remove(&conn.id);
            if conns.is_empty() {
                users.remove(&conn.user);
            }
        }
    }

    fn slot(&self, room_id: Uuid) -> Arc<FeedSlot> {
        self.feeds
            .lock()
            .expect("feeds lock")
            .entry(room_id)
            .or_insert_with(|| {
                Arc::new(FeedSlot {
                    room_id,
                    state: Mutex::new(Feed {
                        idle_since: Some(Instant::now()),
                        ..Feed::default()
                    }),
                    loading: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// Loads a feed's membership and last position from the log; live events that arrive
    /// meanwhile are kept and applied after.
    async fn ensure_loaded(&self, slot: &FeedSlot) -> anyhow::Result<()> {
        let _loading = slot.loading.lock().await;
        if slot.state.lock().expect("feed lock").loaded {
            return Ok(());
        }
        let subjects = self.store.subjects();
        let meta = self
            .store
            .read_subject(&subjects.room(slot.room_id, RoomPart::Meta), 0)
            .await?;
        let mut last = 0;
        for part in [RoomPart::Meta, RoomPart::Msg, RoomPart::Read] {
            last = last.max(
                self.store
                    .last_position(&subjects.room(slot.room_id, part))
                    .await?,
            );
        }
        let mut feed = slot.state.lock().expect("feed lock");
        for recorded in &meta {
            feed.room = evolve(feed.room.take(), &recorded.envelope);
            feed.meta_version = recorded.position;
        }
        feed.last_position = last;
        feed.loaded = true;
        for incoming in std::mem::take(&mut feed.pending) {
            feed.apply(slot.room_id, &incoming);
        }
        Ok(())
    }

    /// Whether `user` may subscribe to `room_id` (loading the room if needed).
    pub async fn admits(&self, room_id: Uuid, user: Uuid) -> Result<(), FrameError> {
        let slot = self.slot(room_id);
        self.ensure_loaded(&slot).await.map_err(unavailable)?;
        slot.state.lock().expect("feed lock").admits(user)
    }

    /// Subscribes `conn` to a room: every room event after `since` (none: from now), then
    /// `subscribed`, then live events. Returns once live.
    pub async fn subscribe(
        &self,
        conn: &Conn,
        room_id: Uuid,
        since: Option<u64>,
    ) -> Result<(), FrameError> {
        let slot = self.slot(room_id);
        self.ensure_loaded(&slot).await.map_err(unavailable)?;
        let mut cursor = {
            let feed = slot.state.lock().expect("feed lock");
            feed.admits(conn.user)?;
            since.unwrap_or(feed.last_position)
        };
        let mut prev = None;
        loop {
            // Under the lock: if the window reaches back to the cursor, send the rest from it
            // and go live in the same step.
            if conn.room_for(WINDOW + 1) {
                // Under the lock: the window covers the cursor and the rest of it fits the
                // queue: send it and go live in one step. If it covers the cursor but its
                // bytes do not fit (big events), take part of it to send at the client's
                // pace, outside the lock, and look again.
                let chunk = {
                    let mut feed = slot.state.lock().expect("feed lock");
                    let covered = cursor >= feed.last_position
                        || feed.window.front().is_some_and(|f| f.prev <= cursor);
                    let rest: usize = feed
                        .window
                        .iter()
                        .filter(|f| f.position > cursor)
                        .map(|f| f.text.len())
                        .sum();
                    if covered && conn.fits(rest + 256) {
                        feed.admits(conn.user)?;
                        for frame in feed.window.iter().filter(|f| f.position > cursor) {
                            conn.offer(frame.text.clone());
                        }
                        let position = feed.last_position.max(cursor);
                        conn.offer(Utf8Bytes::from(protocol::subscribed(
                            room_id,
                            position,
                            &self.epoch,
                        )));
                        feed.subscribers.insert(conn.id, conn.clone());
                        feed.idle_since = None;
                        return Ok(());
                    }
                    if covered {
                        feed.admits(conn.user)?;
                        let mut budget = SEND_BUFFER_BYTES / 2;
                        let mut chunk: Vec<(u64, Utf8Bytes)> = Vec::new();
                        for f in feed.window.iter().filter(|f| f.position > cursor) {
                            // The first frame goes even if it alone is over the budget.
                            if !chunk.is_empty() && f.text.len() > budget {
                                break;
                            }
                            budget = budget.saturating_sub(f.text.len());
                            chunk.push((f.position, f.text.clone()));
                        }
                        Some(chunk)
                    } else {
                        None
                    }
                };
                if let Some(chunk) = chunk {
                    for (position, text) in chunk {
                        if !conn.send(text).await {
                            return Err(FrameError::new("too_slow", "the connection fell behind"));
                        }
                        cursor = position;
                        prev = Some(position);
                    }
                    continue;
                }
            }
            if conn.kill.is_killed() {
                return Err(FrameError::new("too_slow", "the connection fell behind"));
            }
            // Otherwise replay from the log up to where the feed is now, and look again.
            let target = slot.state.lock().expect("feed lock").last_position;
            if cursor < target {
                let _permit = self
                    .replays
                    .acquire()
                    .await
                    .map_err(|_| FrameError::new("unavailable", "shutting down"))?;
                let from = match prev {
                    Some(p) => p,
                    None => self
                        .room_event_at_or_before(room_id, cursor)
                        .await
                        .map_err(unavailable)?,
                };
                prev = Some(
                    self.replay(conn, room_id, cursor, from, target)
                        .await
                        .map_err(unavailable)?,
                );
                cursor = target;
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Sends the room's events in `(after, until]` from JetStream; `prev` is the position of
    /// the room's event before the first of them. Returns the last position sent.
    async fn replay(
        &self,
        conn: &Conn,
        room_id: Uuid,
        after: u64,
        mut prev: u64,
        until: u64,
    ) -> anyhow::Result<u64> {
        let filter = self.store.subjects().room_events(room_id);
        // Start at the room's next event: a filtered consumer from an early position would make
        // the server walk past every other room's events first.
        let start = match self.store.next_position(&filter, after + 1).await? {
            Some(first) => first - 1,
            None => return Ok(prev),
        };
        let mut messages = Box::pin(self.store.follow(&filter, Start::After(start)).await?);
        while prev < until {
            let Some(message) = messages.try_next().await? else {
                break;
            };
            if message.position > until {
                break;
            }
            let text = protocol::event(
                room_id,
                message.position,
                Some(prev),
                &history::line(&message),
                false,
            );
            if !conn.send(Utf8Bytes::from(text)).await {
                anyhow::bail!("the connection closed during a replay");
            }
            prev = message.position;
        }
        Ok(prev)
    }

    /// The position of the room's last event at or before `position` (0: none), for the
    /// `prev_position` of the first replayed event. One lookup when `position` is itself a
    /// room event (the usual `since`), a binary search over the room's subjects otherwise.
    async fn room_event_at_or_before(&self, room_id: Uuid, position: u64) -> anyhow::Result<u64> {
        if position == 0 {
            return Ok(0);
        }
        let filter = self.store.subjects().room_events(room_id);
        let next = |from: u64| {
            let filter = filter.clone();
            async move { self.store.next_position(&filter, from).await }
        };
        if next(position).await? == Some(position) {
            return Ok(position);
        }
        match next(1).await? {
            Some(first) if first <= position => {
                // Largest x in [first, position] with next(x) <= position; next(x) is then it.
                let (mut lo, mut hi, mut best) = (first, position, first);
                while lo <= hi {
                    let mid = lo + (hi - lo) / 2;
                    match next(mid).await? {
                        Some(p) if p <= position => {
                            best = p;
                            lo = p + 1;
                        }
                        _ => hi = mid - 1,
                    }
                }
                Ok(best)
            }
            _ => Ok(0),
        }
    }

    pub fn unsubscribe(&self, conn_id: ConnId, room_id: Uuid) -> bool {
        let Some(slot) = self.held_slot(room_id) else {
            return false;
        };
        let mut feed = slot.state.lock().expect("feed lock");
        let removed = feed.subscribers.remove(&conn_id).is_some();
        if feed.subscribers.is_empty() {
            feed.idle_since.get_or_insert_with(Instant::now);
        }
        removed
    }

    pub fn is_subscribed(&self, conn_id: ConnId, room_id: Uuid) -> bool {
        let slot = self.held_slot(room_id);
        slot.is_some_and(|s| {
            s.state
                .lock()
                .expect("feed lock")
                .subscribers
                .contains_key(&conn_id)
        })
    }

    /// The connections subscribed to a room.
    pub fn subscribers(&self, room_id: Uuid) -> Vec<Conn> {
        let slot = self.held_slot(room_id);
        slot.map(|s| {
            s.state
                .lock()
                .expect("feed lock")
                .subscribers
                .values()
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    }

    /// Connections subscribed to any room `user` is a member of (for presence), each once.
    pub fn watchers_of(&self, user: Uuid) -> Vec<Conn> {
        let slots: Vec<_> = self
            .feeds
            .lock()
            .expect("feeds lock")
            .values()
            .cloned()
            .collect();
        let mut out: HashMap<ConnId, Conn> = HashMap::new();
        for slot in slots {
            let feed = slot.state.lock().expect("feed lock");
            if feed.room.as_ref().is_some_and(|r| r.is_member(user)) {
                for conn in feed.subscribers.values() {
                    out.entry(conn.id).or_insert_with(|| conn.clone());
                }
            }
        }
        out.into_values().collect()
    }

    fn sweep_idle_feeds(&self) {
        let mut feeds = self.feeds.lock().expect("feeds lock");
        feeds.retain(|_, slot| {
            let feed = slot.state.lock().expect("feed lock");
            !(feed.subscribers.is_empty()
                && feed.idle_since.is_some_and(|t| t.elapsed() > IDLE_FEED))
        });
    }
}

fn unavailable(e: anyhow::Error) -> FrameError {
    tracing::warn!(error = format!("{e:#}"), "gateway could not read the log");
    FrameError::new("unavailable", "the event log is unavailable; retry")
}
