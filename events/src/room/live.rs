//! One room kept folded while the log goes on: the fold that the command side's room cache
//! and the gateway's room feeds share.
//!
//! A room's state comes from two sources that overlap: a catch-up, which reads a subject of
//! the room from the log, and the live tail, which delivers every new event as it is stored.
//! [`LiveRoom`] makes their union exact with positions alone:
//!
//! - each subject of the room ([`RoomPart`]) remembers the position of its last event applied
//!   (its *version*), and an event at or below it is skipped: applying is idempotent, so the
//!   same event from both sources, or an own append delivered again, counts once;
//! - while a catch-up reads, live events are *parked*; when it ends, they and the events it
//!   read are applied together in log order, so no event falls between the read and the live
//!   tail and none is applied out of order;
//! - a subject that was never caught up is not followed: its live events are skipped until a
//!   catch-up loads it (the read then includes them).
//!
//! Pure: no IO, no clock, no locks; the caller serializes access.

use super::state::{Room, evolve};
use crate::envelope::{Envelope, Recorded};
use crate::subjects::RoomPart;

/// An event of one room, as a reader of the live tail holds it.
pub trait RoomEvent {
    fn position(&self) -> u64;
    fn part(&self) -> RoomPart;
    /// The event decoded, when the reader decodes this part. An event without one moves its
    /// part's version only (the gateway decodes `meta` events alone).
    fn envelope(&self) -> Option<&Envelope>;
}

/// A shared event (the gateway keeps one copy for the fold and the frame).
impl<T: RoomEvent> RoomEvent for std::sync::Arc<T> {
    fn position(&self) -> u64 {
        (**self).position()
    }
    fn part(&self) -> RoomPart {
        (**self).part()
    }
    fn envelope(&self) -> Option<&Envelope> {
        (**self).envelope()
    }
}

/// A decoded event of a known part.
impl RoomEvent for (RoomPart, Recorded) {
    fn position(&self) -> u64 {
        self.1.position
    }
    fn part(&self) -> RoomPart {
        self.0
    }
    fn envelope(&self) -> Option<&Envelope> {
        Some(&self.1.envelope)
    }
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Nothing: it was applied before, or its part is not followed.
    Skipped,
    /// Applied, and it is the room's newest event: `prev` is the position of the room's event
    /// before it (a stream of the room's events carries it as `prev_position`).
    Newest { prev: u64 },
    /// Applied to its part, which it caught up; a later event of another part is already
    /// known, so it is not the room's newest.
    Behind,
}

/// What a live delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Kept until the catch-up under way ends.
    Parked,
    Applied(Applied),
}

#[derive(Debug, Clone, Copy, Default)]
struct Part {
    loaded: bool,
    /// Position of the last event of this part applied (0: none).
    version: u64,
}

/// A room folded from the log and the live tail; see the module's documentation.
#[derive(Debug)]
pub struct LiveRoom<E> {
    room: Option<Room>,
    parts: [Part; 3],
    /// While a catch-up reads: the live events that arrived meanwhile.
    parked: Option<Vec<E>>,
    /// The parts the catch-up under way loads.
    catching: Vec<RoomPart>,
}

impl<E> Default for LiveRoom<E> {
    fn default() -> Self {
        LiveRoom {
            room: None,
            parts: [Part::default(); 3],
            parked: None,
            catching: Vec::new(),
        }
    }
}

fn index(part: RoomPart) -> usize {
    match part {
        RoomPart::Meta => 0,
        RoomPart::Msg => 1,
        RoomPart::Read => 2,
    }
}

impl<E: RoomEvent> LiveRoom<E> {
    /// The room as folded so far (`None`: not created, or nothing loaded yet).
    pub fn room(&self) -> Option<&Room> {
        self.room.as_ref()
    }

    /// The position of the last event of `part` applied (0: none).
    pub fn version(&self, part: RoomPart) -> u64 {
        self.parts[index(part)].version
    }

    /// Whether `part` has been caught up, so its live events are applied.
    pub fn is_loaded(&self, part: RoomPart) -> bool {
        self.parts[index(part)].loaded
    }

    /// The position of the room's last event known, over every part.
    pub fn last(&self) -> u64 {
        self.parts.iter().map(|p| p.version).max().unwrap_or(0)
    }

    /// Applies `event` now, unless applied before or its part is not followed. Used for the
    /// events a catch-up read and for an own append (its position was expected, so nothing
    /// of its part lies between the version and it).
    pub fn apply(&mut self, event: &impl RoomEvent) -> Applied {
        let last = self.last();
        let part = &mut self.parts[index(event.part())];
        if !part.loaded || event.position() <= part.version {
            return Applied::Skipped;
        }
        part.version = event.position();
        if let Some(envelope) = event.envelope() {
            self.room = evolve(self.room.take(), envelope);
            // `evolve` knows no positions; a message's is its `message.sent`'s.
            if let (Some(room), crate::catalogue::Event::MessageSent(m)) =
                (self.room.as_mut(), &envelope.event)
                && let Some(message) = room.messages.get_mut(&m.message_id)
            {
                message.position = event.position();
            }
        }
        if event.position() > last {
            Applied::Newest { prev: last }
        } else {
            Applied::Behind
        }
    }

    /// A live event: parked during a catch-up, applied otherwise.
    pub fn deliver(&mut self, event: E) -> Delivery {
        match &mut self.parked {
            Some(parked) => {
                parked.push(event);
                Delivery::Parked
            }
            None => Delivery::Applied(self.apply(&event)),
        }
    }

    /// Starts a catch-up of `parts`: live events are parked until it ends. Returns where to
    /// read each part from (the events after that position).
    ///
    /// A part's events must be applied in log order with the others' (a member who leaves
    /// loses their read marker), so a part loaded into a room whose other parts are already
    /// folded starts the room over: every part asked for, and every part it held, is read
    /// from the start (the returned list then names them all).
    pub fn begin_catch_up(&mut self, parts: &[RoomPart]) -> Vec<(RoomPart, u64)> {
        let mut wanted = parts.to_vec();
        let late = parts.iter().any(|p| !self.is_loaded(*p)) && self.parts.iter().any(|p| p.loaded);
        if late {
            for part in [RoomPart::Meta, RoomPart::Msg, RoomPart::Read] {
                if self.is_loaded(part) && !wanted.contains(&part) {
                    wanted.push(part);
                }
            }
            *self = LiveRoom {
                parked: self.parked.take(),
                ..LiveRoom::default()
            };
        }
        self.parked.get_or_insert_with(Vec::new);
        self.catching = wanted.clone();
        wanted.iter().map(|p| (*p, self.version(*p))).collect()
    }

    /// Ends the catch-up with what it found: `read`, the events of the parts it folds after
    /// the positions [`begin_catch_up`](Self::begin_catch_up) gave, and `known`, the last
    /// position of each part it does not fold (whose events it did not read: the room's
    /// stream is known to reach there). The events read and the parked ones are applied
    /// together in log order; returns each parked event that changed something, with what it
    /// did.
    ///
    /// Exact when every event up to the last one read has been delivered (and so parked)
    /// by now: the caller waits for the live tail to get that far.
    pub fn end_catch_up(&mut self, read: Vec<E>, known: &[(RoomPart, u64)]) -> Vec<(E, Applied)> {
        for part in std::mem::take(&mut self.catching) {
            self.parts[index(part)].loaded = true;
        }
        for (part, position) in known {
            let part = &mut self.parts[index(*part)];
            part.loaded = true;
            part.version = part.version.max(*position);
        }
        let mut all: Vec<(E, bool)> = read.into_iter().map(|e| (e, false)).collect();
        all.extend(
            self.parked
                .take()
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e, true)),
        );
        // Stable: of an event both read and delivered, the read copy comes first and the
        // delivered one is then skipped as applied.
        all.sort_by_key(|(e, _)| e.position());
        let mut applied = Vec::new();
        for (event, live) in all {
            let a = self.apply(&event);
            if live && a != Applied::Skipped {
                applied.push((event, a));
            }
        }
        applied
    }

    /// Gives the catch-up up (its read failed): the parked events are dropped, so no part
    /// counts as loaded any more; the next catch-up reads from the versions reached.
    pub fn abandon_catch_up(&mut self) {
        self.parked = None;
        self.catching.clear();
        for part in &mut self.parts {
            part.loaded = false;
        }
    }
}
