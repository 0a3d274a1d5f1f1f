//! natter's projector: turns the event log into Postgres read models, in stream order and in
//! batches, each batch in one transaction with its checkpoint.
//!
//! - [`db`]: database creation and the embedded migrations (`migrations/`).

pub mod db;
