//! The room aggregate, pure: [`state`] folds its events ([`evolve`]), [`decide`] turns a
//! command into at most one event, and [`live`] keeps a room folded while the log goes on
//! (the fold the room cache and the gateway share).

pub mod decide;
pub mod live;
pub mod state;

pub use decide::{Command, Concurrency, DomainError, RoomCommand, decide};
pub use live::{Applied, Delivery, LiveRoom, RoomEvent};
pub use state::{Invite, InviteGone, Member, Message, Room, evolve};
