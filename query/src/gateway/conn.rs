//! One websocket connection as the hub sees it: where its frames go (a bounded outbox, in
//! frames and in bytes), and the switch that closes it when it falls behind.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use super::protocol::{CLOSE_TOO_SLOW, TOO_SLOW};

/// Frames queued for one connection before it counts as too slow.
pub const SEND_BUFFER: usize = 2048;
/// Bytes queued for one connection before it counts as too slow.
pub const SEND_BUFFER_BYTES: usize = 1024 * 1024;

pub type ConnId = u64;

/// Why a connection is being closed from the server's side.
pub type CloseReason = (u16, &'static str);

/// Signals a connection to close: it fell behind (4008), or an admin disconnected it (4003).
/// The first reason given is the one the client gets.
#[derive(Default)]
pub struct Kill {
    reason: OnceLock<CloseReason>,
    notify: Notify,
}

impl Kill {
    pub fn kill(&self, code: u16, why: &'static str) {
        let _ = self.reason.set((code, why));
        self.notify.notify_waiters();
    }

    pub fn is_killed(&self) -> bool {
        self.reason.get().is_some()
    }

    /// The close code and reason, once killed.
    pub fn reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
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
    pub username: Arc<str>,
    tx: mpsc::Sender<Utf8Bytes>,
    pub kill: Arc<Kill>,
    pub queued: Arc<Queued>,
}

impl Conn {
    pub fn new(id: ConnId, user: Uuid, username: &str, tx: mpsc::Sender<Utf8Bytes>) -> Self {
        Conn {
            id,
            user,
            username: Arc::from(username),
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
            self.kill.kill(CLOSE_TOO_SLOW, TOO_SLOW);
            return;
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.queued.bytes.fetch_add(len, Ordering::SeqCst);
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.kill.kill(CLOSE_TOO_SLOW, TOO_SLOW),
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
    pub(super) fn fits(&self, bytes: usize) -> bool {
        self.queued.bytes.load(Ordering::SeqCst) + bytes <= SEND_BUFFER_BYTES
    }

    /// Whether `frames` more frames (of a window) fit in the queue.
    pub(super) fn room_for(&self, frames: usize) -> bool {
        self.tx.capacity() >= frames
            && self.queued.bytes.load(Ordering::SeqCst) <= SEND_BUFFER_BYTES / 2
    }
}
