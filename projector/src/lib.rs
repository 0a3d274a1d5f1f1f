//! natter's projector: turns the event log into Postgres read models, in stream order and in
//! batches, each batch in one transaction with its checkpoint, so a crash anywhere neither
//! loses nor doubles an effect. One instance is active per projection; others stand by.
//!
//! - [`batch`]: folds a run of events into net row changes (pure), as [`rows`].
//! - [`apply`]: writes a batch with set-based statements plus the checkpoint.
//! - [`messages_only`]: the same for a batch of new messages only, in one statement.
//! - [`read`]: the log read ahead and folded into batches.
//! - [`runner`]: the loop, leader election, status (position, lag, halt).
//! - [`rebuild`]: replays the whole log into fresh tables and swaps them in.
//! - [`storable`]: what Postgres cannot store (NUL) made storable in the read models only.
//!
//! The schema, its migrations and the checkpoint row are the read-model contract, in
//! `natter-readmodel`, which the queries depend on as well.

pub mod apply;
pub mod batch;
pub mod messages_only;
pub mod read;
pub mod rebuild;
pub mod rows;
pub mod runner;
pub mod storable;

pub use runner::{Halt, ProjectionStatus, Projector, ProjectorConfig};
