//! The room aggregate, pure: [`state`] folds its events ([`evolve`]), [`command`] says what
//! a caller may ask, [`decide`] turns a command into at most one event, and [`live`] keeps a room folded while the log goes on
//! (the fold the room cache and the gateway share).

pub mod command;
pub mod decide;
pub mod live;
pub mod state;

pub use command::{Command, Concurrency, DomainError, RoomCommand};
pub use decide::decide;
pub use live::{Applied, Delivery, LiveRoom, RoomEvent};
pub use state::{Invite, InviteGone, Member, Message, Room, evolve};
