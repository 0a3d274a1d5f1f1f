//! The order of one connection's sends to a room: each runs after the one before it is
//! answered, so the log stores them in the order the connection sent them (pipelined: a
//! client need not wait for acks). Sends to different rooms do not wait for each other.
//!
//! A send refused for now (`rate_limited`, `unavailable`, `in_progress`) holds the ones behind
//! it in that room: they are refused the same way until the refused one comes again, or for at
//! most [`HOLD_AFTER_REFUSAL`], so that a client resending its pending messages in order after
//! `retry_after` keeps their order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use uuid::Uuid;

/// How long the sends behind a refused one are refused too, unless it comes again first: long
/// enough for the sends already on the wire when the refusal went out to arrive.
const HOLD_AFTER_REFUSAL: Duration = Duration::from_secs(2);

/// A connection's sends, per room.
#[derive(Clone, Default)]
pub(super) struct SendOrder(Arc<Mutex<HashMap<Uuid, RoomSends>>>);

/// A connection's sends to one room: the last one queued, and the refusal that holds the ones
/// behind it.
#[derive(Default)]
struct RoomSends {
    /// The number of the last send queued, and what tells its successor it is done.
    tail: Option<(u64, oneshot::Receiver<()>)>,
    refused: Option<Refusal>,
    next: u64,
}

struct Refusal {
    client_id: String,
    at: Instant,
    code: String,
    retry_after: Option<u64>,
}

/// One send's place in its room's line. Dropping it (once its answer is out) lets the next go.
pub(super) struct SendSlot {
    order: SendOrder,
    room: Uuid,
    number: u64,
    previous: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl SendOrder {
    /// Takes the next place in `room`'s line: call it in the order the frames arrive.
    pub fn queue(&self, room: Uuid) -> SendSlot {
        let (done, wait) = oneshot::channel();
        let mut rooms = self.0.lock().expect("sends lock");
        let entry = rooms.entry(room).or_default();
        entry.next += 1;
        let previous = entry.tail.replace((entry.next, wait)).map(|(_, rx)| rx);
        SendSlot {
            order: self.clone(),
            room,
            number: entry.next,
            previous,
            _done: done,
        }
    }
}

impl SendSlot {
    /// Waits for the sends before it to be answered; then, if an earlier refusal holds this
    /// send (`client_id`), the code and the `retry_after` left to answer it with.
    pub async fn turn(&mut self, client_id: &str) -> Option<(String, Option<u64>)> {
        if let Some(previous) = self.previous.take() {
            // Answered or dropped, either way its turn is over.
            let _ = previous.await;
        }
        let mut rooms = self.order.0.lock().expect("sends lock");
        let entry = rooms.get_mut(&self.room)?;
        let refusal = entry.refused.as_ref()?;
        let elapsed = refusal.at.elapsed();
        if refusal.client_id == client_id || elapsed >= HOLD_AFTER_REFUSAL {
            entry.refused = None;
            return None;
        }
        let left = refusal
            .retry_after
            .map(|secs| secs.saturating_sub(elapsed.as_secs()).max(1));
        Some((refusal.code.clone(), left))
    }

    /// The write side refused this send with `code`: when that means "not now", the sends
    /// behind it are held.
    pub fn refused(&self, client_id: &str, code: &str, retry_after: Option<u64>) {
        if !matches!(code, "rate_limited" | "unavailable" | "in_progress") {
            return;
        }
        let mut rooms = self.order.0.lock().expect("sends lock");
        if let Some(entry) = rooms.get_mut(&self.room) {
            entry.refused = Some(Refusal {
                client_id: client_id.to_string(),
                at: Instant::now(),
                code: code.to_string(),
                retry_after,
            });
        }
    }
}

impl Drop for SendSlot {
    fn drop(&mut self) {
        let mut rooms = self.order.0.lock().expect("sends lock");
        // The last send to the room, and nothing held: the room's entry can go.
        if rooms.get(&self.room).is_some_and(|entry| {
            entry.tail.as_ref().is_some_and(|(n, _)| *n == self.number) && entry.refused.is_none()
        }) {
            rooms.remove(&self.room);
        }
    }
}
