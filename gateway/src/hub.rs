//! The hub of one gateway instance: the registry of the room feeds it follows and of its
//! connections by user. It subscribes once to the process's live tail (one JetStream consumer
//! for the whole process, shared with the room cache in `--role all`) and hands each room
//! event to that room's feed, so the NATS-side cost does not grow with connections.
//!
//! - [`conn`](crate::conn): one connection's bounded outbox;
//! - [`feed`](crate::feed): one room's fold, window and subscribers;
//! - [`replay`](crate::replay): bringing a subscriber up to the live feed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use natter_edge::gateways::UserConnections;
use natter_events::catalogue::Event;
use natter_events::envelope::public_json;
use natter_events::{Decoded, Envelope, EventStore, LiveTail, RawMessage, RoomPart, SubjectKind};
use uuid::Uuid;

use crate::conn::{Conn, ConnId};
use crate::feed::{FeedSlot, IDLE_FEED, Incoming};
use crate::protocol::{self, FrameError};
use crate::replay::{Replayer, unavailable};

/// The hub: feeds of active rooms, and every local connection by user.
pub struct Hub {
    store: EventStore,
    feeds: Mutex<HashMap<Uuid, Arc<FeedSlot>>>,
    users: Mutex<HashMap<Uuid, HashMap<ConnId, Conn>>>,
    replayer: Replayer,
    next_conn: AtomicU64,
}

impl Hub {
    /// Starts following the log on the process's live tail. The returned task holds the
    /// subscription and sweeps idle feeds; it ends if the tail stops, and aborting it
    /// unsubscribes.
    pub fn start(
        store: EventStore,
        tail: &LiveTail,
    ) -> anyhow::Result<(Arc<Hub>, tokio::task::JoinHandle<()>)> {
        let hub = Arc::new(Hub {
            replayer: Replayer::new(store.clone()),
            store,
            feeds: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        });
        let (_, subscription) = {
            let hub = hub.clone();
            tail.subscribe(move |message| hub.on_message(message))?
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

    /// Identifies the log's incarnation (see `EventStore::epoch`).
    pub fn epoch(&self) -> &str {
        self.replayer.epoch()
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
        let mentioned = if part == RoomPart::Msg {
            mentioned(message)
        } else {
            Vec::new()
        };
        // Messages of rooms nobody here follows cost nothing beyond the subject check (and
        // a look for mentions).
        if slot.is_none() && part != RoomPart::Meta && mentioned.is_empty() {
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
        let incoming = Arc::new(Incoming {
            position: message.position,
            part,
            json: public_json(message),
            known,
        });
        let named = match &incoming.known {
            Some(envelope) => named_users(envelope),
            None => mentioned,
        };
        let mut prev = None;
        let mut subscribed = Vec::new();
        if let Some(slot) = &slot {
            let mut feed = slot.lock();
            if feed.is_loaded() {
                prev = Some(feed.fold.last());
            }
            // Whoever gets it as a room event must not get it again on their own feed (looked
            // up only for an event that names someone: most name nobody).
            if !named.is_empty() {
                subscribed = feed.streaming_to();
            }
            feed.deliver(room_id, incoming.clone());
        }
        self.notify_named_user(room_id, &incoming, prev, &subscribed, named);
    }

    /// Events that name a user (an invite for them, their joins (a room's creation included),
    /// leaves and removals, a message that mentions them) reach all that user's
    /// connections, as `"feed": "me"` frames; a connection subscribed to the room already
    /// got it as a room event.
    fn notify_named_user(
        &self,
        room_id: Uuid,
        incoming: &Incoming,
        prev: Option<u64>,
        subscribed: &[ConnId],
        named: Vec<Uuid>,
    ) {
        if named.is_empty() {
            return;
        }
        let text = Utf8Bytes::from(protocol::event(
            room_id,
            incoming.position,
            prev,
            &incoming.json,
            true,
        ));
        let users = self.users.lock().expect("users lock");
        for user in named {
            let Some(conns) = users.get(&user) else {
                continue;
            };
            for conn in conns.values().filter(|c| !subscribed.contains(&c.id)) {
                conn.offer(text.clone());
            }
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

    /// This gateway's open sockets, and its users with the most sockets (at most `limit`).
    pub fn connections(&self, limit: usize) -> (u64, Vec<UserConnections>, bool) {
        let users = self.users.lock().expect("users lock");
        let total = users.values().map(|c| c.len() as u64).sum();
        let mut listed: Vec<UserConnections> = users
            .iter()
            .filter_map(|(id, conns)| {
                let any = conns.values().next()?;
                Some(UserConnections {
                    user_id: *id,
                    username: any.username.to_string(),
                    connections: conns.len() as u64,
                })
            })
            .collect();
        drop(users);
        let truncated = listed.len() > limit;
        if truncated {
            listed.select_nth_unstable_by(limit, |a, b| b.connections.cmp(&a.connections));
            listed.truncate(limit);
        }
        (total, listed, truncated)
    }

    /// Closes every socket of `user` on this gateway with 4003; returns how many.
    pub fn disconnect(&self, user: Uuid) -> u64 {
        let users = self.users.lock().expect("users lock");
        let Some(conns) = users.get(&user) else {
            return 0;
        };
        let mut closed = 0;
        for conn in conns.values() {
            if !conn.kill.is_killed() {
                closed += 1;
            }
            conn.kill
                .kill(protocol::CLOSE_BY_ADMIN, "disconnected by an admin");
        }
        closed
    }

    /// The feed of a room, created if needed; with `joining`, a connection (and whether it
    /// asked for a `since`) is marked joining it under the feeds' lock, so the sweep cannot
    /// take the feed away meanwhile.
    fn slot(&self, room_id: Uuid, joining: Option<(ConnId, bool)>) -> Arc<FeedSlot> {
        let mut feeds = self.feeds.lock().expect("feeds lock");
        let slot = feeds
            .entry(room_id)
            .or_insert_with(|| Arc::new(FeedSlot::new(room_id)));
        if let Some((conn, since)) = joining {
            slot.lock().joining.insert(conn, since);
        }
        slot.clone()
    }

    /// Whether `user` may subscribe to `room_id` (loading the room if needed).
    pub async fn admits(&self, room_id: Uuid, user: Uuid) -> Result<(), FrameError> {
        let slot = self.slot(room_id, None);
        slot.ensure_loaded(&self.store).await.map_err(unavailable)?;
        slot.lock().admits(user)
    }

    /// Subscribes `conn` to a room: every room event after `since` (none: from now), then
    /// `subscribed`, then live events. Returns once live. Meanwhile the events that name its
    /// user reach it once: as room events where the stream will carry them (see
    /// [`Feed::joining`](crate::feed::Feed::joining)), else on its feed.
    pub async fn subscribe(
        &self,
        conn: &Conn,
        room_id: Uuid,
        since: Option<u64>,
    ) -> Result<(), FrameError> {
        let slot = self.slot(room_id, Some((conn.id, since.is_some())));
        let joined = async {
            slot.ensure_loaded(&self.store).await.map_err(unavailable)?;
            self.replayer.join(&slot, conn, since).await
        }
        .await;
        slot.lock().joining.remove(&conn.id);
        joined
    }

    pub fn unsubscribe(&self, conn_id: ConnId, room_id: Uuid) -> bool {
        let Some(slot) = self.held_slot(room_id) else {
            return false;
        };
        let mut feed = slot.lock();
        let removed = feed.subscribers.remove(&conn_id).is_some();
        if feed.subscribers.is_empty() {
            feed.idle_since.get_or_insert_with(Instant::now);
        }
        removed
    }

    pub fn is_subscribed(&self, conn_id: ConnId, room_id: Uuid) -> bool {
        let slot = self.held_slot(room_id);
        slot.is_some_and(|s| s.lock().subscribers.contains_key(&conn_id))
    }

    /// The connections subscribed to a room.
    pub fn subscribers(&self, room_id: Uuid) -> Vec<Conn> {
        let slot = self.held_slot(room_id);
        slot.map(|s| s.lock().subscribers.values().cloned().collect())
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
            let feed = slot.lock();
            if feed.is_member(user) {
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
            let feed = slot.lock();
            !(feed.subscribers.is_empty()
                && feed.joining.is_empty()
                && feed.idle_since.is_some_and(|t| t.elapsed() > IDLE_FEED))
        });
    }
}

/// The users a `meta` event names: an invite for them, their joins (a room's creation
/// included; a join into a pair room also names the user who waited there: the match),
/// leaves and removals.
fn named_users(envelope: &Envelope) -> Vec<Uuid> {
    match &envelope.event {
        // A room's creation makes its owner (and, for a direct room, the other user) a
        // member: their joins.
        Event::RoomCreated(c) => std::iter::once(c.owner_id).chain(c.with_user_id).collect(),
        Event::InviteCreated(i) => i.invitee_id.into_iter().collect(),
        Event::MemberJoined(j) => std::iter::once(j.user_id).chain(j.matched_with).collect(),
        Event::MemberLeft(l) => vec![l.user_id],
        Event::MemberRemoved(r) => vec![r.user_id],
        _ => Vec::new(),
    }
}

/// The users a `msg` event mentions, but its sender. Only a payload that holds the word
/// `"mentions"` is decoded: the others cost a byte scan.
fn mentioned(message: &RawMessage) -> Vec<Uuid> {
    const KEY: &[u8] = b"\"mentions\"";
    if !message.payload.windows(KEY.len()).any(|w| w == KEY) {
        return Vec::new();
    }
    match Envelope::decode(&message.payload) {
        Ok(Decoded::Known(Envelope {
            actor_id,
            event: Event::MessageSent(m),
            ..
        })) => m
            .mentions
            .into_iter()
            .filter(|u| Some(*u) != actor_id)
            .collect(),
        _ => Vec::new(),
    }
}
