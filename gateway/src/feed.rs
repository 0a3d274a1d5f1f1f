//! The feed of one room a gateway follows: the room folded from the live tail (the shared
//! [`LiveRoom`], for membership), a window of its recent frames (so a reconnect storm is served
//! from memory), and its subscribers. Every room event makes one frame carrying its
//! `prev_position`, offered to each subscriber; an event that ends someone's right to the room
//! is their last.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use natter_events::catalogue::{Event, Visibility};
use natter_events::room::{Applied, Delivery, LiveRoom, RoomEvent};
use natter_events::{Envelope, EventStore, RoomPart};
use uuid::Uuid;

use crate::conn::{Conn, ConnId};
use crate::protocol::{self, FrameError};

/// Recent frames kept per active room.
pub const WINDOW: usize = 512;
/// How long a room without subscribers keeps its feed (and window).
pub(super) const IDLE_FEED: Duration = Duration::from_secs(60);

/// One frame of a room's stream.
pub(super) struct Frame {
    pub position: u64,
    pub prev: u64,
    pub text: Utf8Bytes,
}

/// A room event as the hub received it from the live tail.
pub(super) struct Incoming {
    pub position: u64,
    pub part: RoomPart,
    /// Its public JSON, as clients see it.
    pub json: bytes::Bytes,
    /// Decoded, for `meta` events (membership and the user feed).
    pub known: Option<Envelope>,
}

impl RoomEvent for Incoming {
    fn position(&self) -> u64 {
        self.position
    }
    fn part(&self) -> RoomPart {
        self.part
    }
    fn envelope(&self) -> Option<&Envelope> {
        self.known.as_ref()
    }
}

pub(super) struct Feed {
    pub fold: LiveRoom<Arc<Incoming>>,
    pub window: VecDeque<Arc<Frame>>,
    pub subscribers: HashMap<ConnId, Conn>,
    /// Connections between their `subscribe` and going live, and whether each asked for a
    /// `since`. Once the feed is loaded, every event it takes reaches them as a room event
    /// (replayed or from the window); before, only those with a `since` are sure to get it
    /// so (one subscribing "from now" starts after it). Those do not get it on their own feed.
    pub joining: HashMap<ConnId, bool>,
    pub idle_since: Option<Instant>,
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
    pub fn is_loaded(&self) -> bool {
        self.fold.is_loaded(RoomPart::Meta)
    }

    /// A live event of the room.
    pub fn deliver(&mut self, room_id: Uuid, incoming: Arc<Incoming>) {
        if let Delivery::Applied(applied) = self.fold.deliver(incoming.clone()) {
            self.emit(room_id, &incoming, applied);
        }
    }

    /// Makes the frame of an event the fold took as the room's newest.
    fn emit(&mut self, room_id: Uuid, incoming: &Incoming, applied: Applied) {
        let Applied::Newest { prev } = applied else {
            return;
        };
        let text = Utf8Bytes::from(protocol::event(
            room_id,
            incoming.position,
            Some(prev),
            &incoming.json,
            false,
        ));
        let frame = Arc::new(Frame {
            position: incoming.position,
            prev,
            text,
        });
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
    pub fn admits(&self, user: Uuid) -> Result<(), FrameError> {
        match self.fold.room() {
            Some(room) if !room.deleted && room.is_member(user) => Ok(()),
            Some(room) if !room.deleted && room.visibility == Visibility::Public => Err(
                FrameError::new("forbidden", "only members may subscribe to this room"),
            ),
            _ => Err(FrameError::new("not_found", "room not found")),
        }
    }

    /// The connections that get `incoming` as a room event, taken before it is applied:
    /// subscribers (whoever it unsubscribes still gets it) and joining connections.
    pub fn streaming_to(&self) -> Vec<ConnId> {
        let loaded = self.is_loaded();
        let subscribers = self.subscribers.keys().filter(|_| loaded);
        let joining = self
            .joining
            .iter()
            .filter(|(_, since)| loaded || **since)
            .map(|(id, _)| id);
        subscribers.chain(joining).copied().collect()
    }

    pub fn is_member(&self, user: Uuid) -> bool {
        self.fold.room().is_some_and(|r| r.is_member(user))
    }
}

/// A feed behind its lock, with the lock that serializes its catch-up.
pub(super) struct FeedSlot {
    pub room_id: Uuid,
    state: Mutex<Feed>,
    loading: tokio::sync::Mutex<()>,
}

impl FeedSlot {
    pub fn new(room_id: Uuid) -> Self {
        FeedSlot {
            room_id,
            state: Mutex::new(Feed {
                fold: LiveRoom::default(),
                window: VecDeque::new(),
                subscribers: HashMap::new(),
                joining: HashMap::new(),
                idle_since: Some(Instant::now()),
            }),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Feed> {
        self.state.lock().expect("feed lock")
    }

    /// Catches the feed up from the log once: the room's membership from its `meta` events,
    /// and the last position of each of its other subjects. Live events that arrive
    /// meanwhile are parked and applied after (their frames start the window).
    ///
    /// The feed folds one subject (`meta`), whose read and parked events the fold merges in
    /// log order, so it need not wait for the live tail as the room cache does.
    pub async fn ensure_loaded(&self, store: &EventStore) -> anyhow::Result<()> {
        let _loading = self.loading.lock().await;
        let after = {
            let mut feed = self.lock();
            if feed.is_loaded() {
                return Ok(());
            }
            feed.fold.begin_catch_up(&[RoomPart::Meta])[0].1
        };
        let read = async {
            let subjects = store.subjects();
            let meta = store
                .read_subject(&subjects.room(self.room_id, RoomPart::Meta), after)
                .await?;
            let mut known = Vec::new();
            for part in [RoomPart::Msg, RoomPart::Read] {
                let last = store
                    .last_position(&subjects.room(self.room_id, part))
                    .await?;
                known.push((part, last));
            }
            anyhow::Ok((meta, known))
        };
        let (meta, known) = match read.await {
            Ok(found) => found,
            Err(e) => {
                self.lock().fold.abandon_catch_up();
                return Err(e);
            }
        };
        let read = meta
            .into_iter()
            .map(|recorded| {
                Arc::new(Incoming {
                    position: recorded.position,
                    part: RoomPart::Meta,
                    // A read event makes no frame.
                    json: bytes::Bytes::new(),
                    known: Some(recorded.envelope),
                })
            })
            .collect();
        let mut feed = self.lock();
        for (incoming, applied) in feed.fold.end_catch_up(read, &known) {
            feed.emit(self.room_id, &incoming, applied);
        }
        Ok(())
    }
}
