//! The read-model contract that the projector writes and the queries read: the schema and its
//! migrations ([`db`]), and the projection's checkpoint with the notification that announces
//! each move of it ([`checkpoint`]). Both sides depend on this crate and not on each other.

pub mod checkpoint;
pub mod db;

pub use checkpoint::{NOTIFY_CHANNEL, PROJECTION};
pub use db::{ACQUIRE_TIMEOUT, MIGRATOR, connect, prepare};
