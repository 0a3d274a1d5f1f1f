//! One connection's client ops: subscribing (a replay runs beside the connection's other
//! ops), unsubscribing, typing and signals, and `send` and `read`, which go to the write
//! side as commands and answer with an `ack` or an `error` naming their `client_id`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use natter_edge::commands::{Call, Outcome};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::Gateway;
use crate::conn::Conn;
use crate::protocol::{self, ClientOp, FrameError};
use crate::sends::SendOrder;
use crate::session::{MAX_CLIENT_FRAME, MAX_SUBSCRIPTIONS};

/// The rooms a connection follows, and whether it has ended (after which a subscription
/// that completes late takes itself off its feed).
#[derive(Default)]
pub(super) struct Followed {
    pub ids: HashSet<Uuid>,
    pub ended: bool,
    /// Per room being subscribed to: whose turn it is (one subscribe at a time).
    pub turns: HashMap<Uuid, Arc<Turn>>,
    /// Numbers the connection's subscribes.
    pub next_subscribe: u64,
}

/// The subscribes of one connection to one room, one at a time.
#[derive(Default)]
pub(super) struct Turn {
    lock: tokio::sync::Mutex<()>,
    /// Subscribes numbered up to this were unsubscribed before they went live.
    cancelled_up_to: AtomicU64,
}

/// One `subscribe` op of a connection.
struct Subscribe {
    room_id: Uuid,
    since: Option<u64>,
    epoch: Option<String>,
    seq: u64,
}

impl Subscribe {
    /// Runs once the subscribes before it are done (so two replays never interleave; one
    /// sent again restarts the stream). One unsubscribed before it went live ends with
    /// `unsubscribed` (after its replay and `subscribed`, if those had begun).
    async fn in_turn(self, gateway: &Gateway, conn: &Conn, rooms: &Mutex<Followed>, turn: &Turn) {
        let room_id = self.room_id;
        let _turn = turn.lock.lock().await;
        let cancelled = || self.seq <= turn.cancelled_up_to.load(Ordering::SeqCst);
        let unsubscribed = || Utf8Bytes::from(protocol::unsubscribed(room_id, "requested"));
        if cancelled() {
            conn.offer(unsubscribed());
            return;
        }
        if rooms.lock().expect("rooms lock").ids.remove(&room_id) {
            // Subscribing again restarts the room's stream from the new `since`.
            gateway.hub.unsubscribe(conn.id, room_id);
        }
        let mut since = self.since;
        if self.epoch.is_some_and(|e| e != gateway.hub.epoch()) {
            // The log was recreated: positions from the old one mean nothing here.
            if gateway.hub.admits(room_id, conn.user).await.is_ok() {
                conn.offer(Utf8Bytes::from(protocol::reset(room_id)));
                since = Some(0);
            }
        }
        if let Err(e) = gateway.hub.subscribe(conn, room_id, since).await {
            conn.offer(error_frame(&e));
            return;
        }
        let (ended, cancelled) = {
            let mut followed = rooms.lock().expect("rooms lock");
            let cancelled = cancelled();
            if !cancelled && !followed.ended {
                followed.ids.insert(room_id);
            }
            (followed.ended, cancelled)
        };
        if ended || cancelled {
            // Closed, or unsubscribed, while the replay ran: nobody else will take it off the
            // feed.
            gateway.hub.unsubscribe(conn.id, room_id);
        }
        if cancelled {
            conn.offer(unsubscribed());
        }
    }
}

pub(super) fn error_frame(e: &FrameError) -> Utf8Bytes {
    Utf8Bytes::from(protocol::error(e))
}

/// A connection's way to the write side: its token, how many of its `send` and `read` ops
/// may run at once (more wait, and hold up the connection's later frames), and the order of
/// its sends to each room.
pub(super) struct WriteLane {
    pub token: Arc<str>,
    pub in_flight: Arc<Semaphore>,
    pub sends: SendOrder,
}

impl WriteLane {
    /// Runs a command for `client_id` without holding up the connection (beyond the bound),
    /// and answers with an `ack` or an `error` frame naming it. With `room`, it is a send:
    /// it runs after the connection's earlier sends to that room are answered.
    async fn run(
        &self,
        gateway: &Gateway,
        conn: &Conn,
        client_id: Option<String>,
        call: Call,
        room: Option<Uuid>,
    ) {
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        // Queued here, in the order the connection's frames arrive.
        let mut slot = room.map(|room| self.sends.queue(room));
        let (commands, conn) = (gateway.commands.clone(), conn.clone());
        tokio::spawn(async move {
            let client_id = client_id.as_deref();
            let held = match slot.as_mut() {
                Some(slot) => slot.turn(client_id.unwrap_or_default()).await,
                None => None,
            };
            let frame = if let Some((code, retry_after)) = held {
                protocol::op_error(
                    &code,
                    "an earlier send to this room was refused for now: send it again before \
                     the ones after it, so that they keep their order",
                    client_id,
                    retry_after,
                )
            } else {
                let answer = commands.call(call).await;
                match answer.outcome() {
                    Outcome::Done { position, message } => {
                        protocol::ack(client_id, position, message)
                    }
                    Outcome::Refused { code, message } => {
                        if let Some(slot) = &slot {
                            slot.refused(client_id.unwrap_or_default(), code, answer.retry_after);
                        }
                        protocol::op_error(code, message, client_id, answer.retry_after)
                    }
                }
            };
            conn.offer(Utf8Bytes::from(frame));
            // Answered: the next send to the room may go.
            drop(slot);
            drop(permit);
        });
    }
}

/// The write side's idempotency key for an op's `client_id`: fixed-length, and apart from
/// the keys REST clients choose and from the other op's.
fn op_key(op: &str, client_id: &str) -> String {
    format!(
        "ws-{op}-{}",
        Uuid::new_v5(&Uuid::NAMESPACE_OID, client_id.as_bytes())
    )
}

/// Answers one client frame.
pub(super) async fn handle(
    gateway: &Gateway,
    conn: &Conn,
    rooms: &Arc<Mutex<Followed>>,
    pending: &Arc<AtomicUsize>,
    lane: &WriteLane,
    text: &str,
) {
    if text.len() > MAX_CLIENT_FRAME {
        conn.offer(error_frame(&FrameError::new(
            "frame_too_large",
            format!("frames are at most {MAX_CLIENT_FRAME} bytes"),
        )));
        return;
    }
    let op = match protocol::parse(text) {
        Ok(op) => op,
        Err(e) => {
            conn.offer(error_frame(&e));
            return;
        }
    };
    match op {
        ClientOp::Ping => conn.offer(Utf8Bytes::from(protocol::pong())),
        ClientOp::Auth { .. } => conn.offer(error_frame(&FrameError::new(
            "bad_request",
            "already authenticated: auth is the first frame of a connection opened without a token",
        ))),
        ClientOp::Send {
            room_id,
            client_id,
            content,
            kind,
            attachment,
            reply_to,
            thread_id,
            mentions,
        } => {
            let fields = [
                ("content", content),
                ("kind", kind),
                ("attachment", attachment),
                ("reply_to", reply_to),
                ("thread_id", thread_id),
                ("mentions", mentions),
            ];
            send(gateway, conn, lane, room_id, client_id, fields).await;
        }
        ClientOp::Read {
            room_id,
            up_to_position,
            client_id,
        } => read(gateway, conn, lane, room_id, up_to_position, client_id).await,
        ClientOp::Subscribe {
            room_id,
            since,
            epoch,
        } => subscribe(gateway, conn, rooms, pending, room_id, since, epoch),
        ClientOp::Unsubscribe { room_id } => unsubscribe(gateway, conn, rooms, room_id),
        ClientOp::Typing { room_id, typing } => {
            if subscribed(gateway, conn, room_id) {
                gateway.ephemeral.typing(room_id, conn.user, typing).await;
            }
        }
        ClientOp::Signal {
            room_id,
            signal,
            on,
        } => {
            if subscribed(gateway, conn, room_id) {
                gateway
                    .ephemeral
                    .signal(room_id, conn.user, signal, on)
                    .await;
            }
        }
    }
}

/// Whether `client_id` is acceptable; if not, the op is answered with `validation_failed`.
fn valid_client_id(conn: &Conn, client_id: Option<&str>) -> bool {
    if client_id.is_some_and(|c| c.is_empty() || c.chars().count() > protocol::MAX_CLIENT_ID) {
        conn.offer(Utf8Bytes::from(protocol::op_error(
            "validation_failed",
            &format!("client_id must be 1-{} characters", protocol::MAX_CLIENT_ID),
            client_id,
            None,
        )));
        return false;
    }
    true
}

/// `send`: `POST /rooms/{room_id}/messages` with the fields the client gave, in the room's
/// line of this connection's sends.
async fn send(
    gateway: &Gateway,
    conn: &Conn,
    lane: &WriteLane,
    room_id: Uuid,
    client_id: String,
    fields: [(&str, Option<serde_json::Value>); 6],
) {
    if !valid_client_id(conn, Some(&client_id)) {
        return;
    }
    let body: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .filter_map(|(field, value)| Some((field.to_string(), value?)))
        .collect();
    let key = op_key("send", &client_id);
    let call = Call::send_message(&lane.token, room_id, body.into(), key);
    lane.run(gateway, conn, Some(client_id), call, Some(room_id))
        .await;
}

/// `read`: `POST /rooms/{room_id}/read`.
async fn read(
    gateway: &Gateway,
    conn: &Conn,
    lane: &WriteLane,
    room_id: Uuid,
    up_to_position: serde_json::Value,
    client_id: Option<String>,
) {
    if !valid_client_id(conn, client_id.as_deref()) {
        return;
    }
    let key = client_id.as_deref().map(|c| op_key("read", c));
    let call = Call::mark_read(&lane.token, room_id, up_to_position, key);
    lane.run(gateway, conn, client_id, call, None).await;
}

/// `subscribe`: a replay from `since`, then live, beside the connection's other ops; one
/// subscribe to a room at a time.
fn subscribe(
    gateway: &Gateway,
    conn: &Conn,
    rooms: &Arc<Mutex<Followed>>,
    pending: &Arc<AtomicUsize>,
    room_id: Uuid,
    since: Option<u64>,
    epoch: Option<String>,
) {
    let (turn, seq) = {
        let mut followed = rooms.lock().expect("rooms lock");
        // Subscribing again restarts the room's stream: it does not count twice.
        let again = usize::from(followed.ids.contains(&room_id));
        if followed.ids.len() - again + pending.load(Ordering::SeqCst) >= MAX_SUBSCRIPTIONS {
            conn.offer(error_frame(&FrameError::new(
                "too_many_subscriptions",
                format!("a connection follows at most {MAX_SUBSCRIPTIONS} rooms"),
            )));
            return;
        }
        followed.next_subscribe += 1;
        let seq = followed.next_subscribe;
        (followed.turns.entry(room_id).or_default().clone(), seq)
    };
    pending.fetch_add(1, Ordering::SeqCst);
    let (gateway, conn, rooms, pending) = (
        gateway.clone(),
        conn.clone(),
        rooms.clone(),
        pending.clone(),
    );
    // A replay may take a while: the connection keeps serving other ops meanwhile.
    tokio::spawn(async move {
        let subscribe = Subscribe {
            room_id,
            since,
            epoch,
            seq,
        };
        subscribe.in_turn(&gateway, &conn, &rooms, &turn).await;
        pending.fetch_sub(1, Ordering::SeqCst);
        let mut followed = rooms.lock().expect("rooms lock");
        // The map's and this one: nobody else waits for this room.
        if Arc::strong_count(&turn) == 2 {
            followed.turns.remove(&room_id);
        }
    });
}

/// `unsubscribe`: ends the room's stream (or a subscribe still replaying) with
/// `unsubscribed`.
fn unsubscribe(gateway: &Gateway, conn: &Conn, rooms: &Arc<Mutex<Followed>>, room_id: Uuid) {
    let (was, pending) = {
        let mut followed = rooms.lock().expect("rooms lock");
        let was = followed.ids.remove(&room_id);
        // Subscribes still under way end as soon as they can, with `unsubscribed`.
        let pending = followed.turns.get(&room_id).cloned();
        if let Some(turn) = &pending {
            turn.cancelled_up_to
                .store(followed.next_subscribe, Ordering::SeqCst);
        }
        (was, pending.is_some())
    };
    if was && gateway.hub.unsubscribe(conn.id, room_id) {
        conn.offer(Utf8Bytes::from(protocol::unsubscribed(
            room_id,
            "requested",
        )));
    } else if !pending {
        conn.offer(error_frame(&FrameError::new(
            "not_subscribed",
            "not subscribed to this room",
        )));
    }
}

/// The guard of the ephemeral ops (typing, signals): only to a room the connection follows;
/// otherwise answered with `not_subscribed`.
fn subscribed(gateway: &Gateway, conn: &Conn, room_id: Uuid) -> bool {
    if gateway.hub.is_subscribed(conn.id, room_id) {
        return true;
    }
    conn.offer(error_frame(&FrameError::new(
        "not_subscribed",
        "subscribe to the room first",
    )));
    false
}
