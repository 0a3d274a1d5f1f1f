//! natter's events: the catalogue every other part speaks, the pure domain, and the event
//! store on JetStream.
//!
//! - [`catalogue`]: event types with their fixed wire names (the API's event catalogue).
//! - [`envelope`]: the envelope, decoding with upcasting, redaction; `schema` (private): its
//!   public JSON Schema, a union on `type`.
//! - [`subjects`]: subject names under the configured prefix.
//! - [`room`], [`user`]: the aggregates as `decide`/`evolve` functions, with no IO, and
//!   [`room::LiveRoom`], one room kept folded from the log and the live tail.
//! - [`connection`]: the NATS connection (server list, first-connect retries, reconnects).
//! - [`store`]: the JetStream adapter (opening, appends with expectations, reads).
//! - `witness` (private): bounds of the log's head from our own appends, behind
//!   [`EventStore::head_bound`].
//! - [`tail`]: the process's live tail of the log, shared by its live readers.
//! - `follow` (private): the self-healing follow behind [`EventStore::follow`].
//! - [`audit`]: the checks `natter verify` runs over a whole log.
//! - [`history`]: ranges of the log as auditors see them, streamed.

pub mod audit;
pub mod catalogue;
pub mod connection;
pub mod envelope;
mod follow;
pub mod history;
pub mod room;
mod schema;
pub mod store;
pub mod subjects;
pub mod tail;
pub mod user;
mod witness;

pub use catalogue::Event;
pub use envelope::{Decoded, Envelope, RawEnvelope, Recorded};
pub use store::{AppendError, EventStore, Expect, RawMessage, Start, StoreConfig};
pub use subjects::{RoomPart, SubjectKind, Subjects};
pub use tail::{LiveTail, TailSubscription};
