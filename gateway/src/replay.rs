//! Bringing a subscriber up to the live feed: the frames after its `since`, from the feed's
//! window when it reaches back far enough, else replayed from JetStream without holding any
//! lock, at the client's pace. Then, holding the feed's lock (which the live tail's delivery
//! also takes), the rest of the window and the join happen in one step: no gap, no duplicate.

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures::TryStreamExt;
use natter_events::envelope::public_json;
use natter_events::{EventStore, Start};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::conn::{Conn, SEND_BUFFER_BYTES};
use crate::feed::{FeedSlot, WINDOW};
use crate::protocol::{self, FrameError};

/// Replays from JetStream running at once (a reconnect storm waits here).
const CONCURRENT_REPLAYS: usize = 32;

pub(super) struct Replayer {
    store: EventStore,
    permits: Semaphore,
    /// Identifies the log's incarnation (see `EventStore::epoch`).
    epoch: String,
}

impl Replayer {
    pub fn new(store: EventStore) -> Self {
        Replayer {
            epoch: store.epoch(),
            store,
            permits: Semaphore::new(CONCURRENT_REPLAYS),
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Joins `conn` to a loaded feed: every room event after `since` (none: from now), then
    /// `subscribed`, then live events. Returns once live.
    pub async fn join(
        &self,
        slot: &FeedSlot,
        conn: &Conn,
        since: Option<u64>,
    ) -> Result<(), FrameError> {
        let room_id = slot.room_id;
        let mut cursor = {
            let feed = slot.lock();
            feed.admits(conn.user)?;
            since.unwrap_or(feed.fold.last())
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
                    let mut feed = slot.lock();
                    let covered = cursor >= feed.fold.last()
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
                        let position = feed.fold.last().max(cursor);
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
            let target = slot.lock().fold.last();
            if cursor < target {
                let _permit = self
                    .permits
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
                &public_json(&message),
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
}

pub(super) fn unavailable(e: anyhow::Error) -> FrameError {
    tracing::warn!(error = format!("{e:#}"), "gateway could not read the log");
    FrameError::new("unavailable", "the event log is unavailable; retry")
}
