//! The write loop: decide on the cached room, append with the expected position, and on a
//! conflict catch up and decide again (bounded). The event id stays the same across attempts,
//! so an attempt whose ack was lost and is retried is stored once.

use std::sync::Arc;
use std::time::Duration;

use natter_edge::ApiError;
use natter_events::room::{Command, Concurrency, DomainError, decide};
use natter_events::{AppendError, Envelope, Expect, Recorded, RoomPart};
use rand::Rng;
use uuid::Uuid;

use crate::AppState;
use crate::cache::RoomEntry;

/// Attempts before a command on a very contended room gives up with `503`.
const MAX_ATTEMPTS: usize = 32;

/// What a command did.
pub struct Executed {
    pub entry: Arc<RoomEntry>,
    /// The position of the appended event, or of the state the command found already
    /// satisfied.
    pub position: u64,
}

#[derive(Debug)]
pub enum CommandError {
    Domain(DomainError),
    Unavailable(anyhow::Error),
    /// Other instances kept winning the race for this room.
    Contended,
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(d) => domain_error(d),
            CommandError::Unavailable(cause) => ApiError::unavailable(cause),
            CommandError::Contended => ApiError::unavailable(anyhow::anyhow!(
                "gave up after {MAX_ATTEMPTS} conflicting attempts"
            )),
        }
    }
}

/// The contract's status for each domain refusal.
pub fn domain_error(e: DomainError) -> ApiError {
    let message = e.to_string();
    match e {
        DomainError::RoomNotFound
        | DomainError::InviteNotFound
        | DomainError::MemberNotFound
        | DomainError::MessageNotFound => ApiError::not_found(message),
        DomainError::NotAMember
        | DomainError::NotOwner
        | DomainError::NotJoinable
        | DomainError::InviteForAnotherUser
        | DomainError::NotTheSender
        | DomainError::NotSenderOrOwner
        | DomainError::NotAGroup => ApiError::forbidden(message),
        DomainError::RoomExists
        | DomainError::NotJoined
        | DomainError::AlreadyMember
        | DomainError::BelowMemberCount
        | DomainError::MessageDeleted
        | DomainError::PairTaken => ApiError::conflict(message),
        DomainError::RoomFull => {
            ApiError::new(axum::http::StatusCode::CONFLICT, "room_full", message)
        }
        DomainError::InviteExpired | DomainError::InviteRevoked | DomainError::InviteUsedUp => {
            ApiError::gone(message)
        }
        DomainError::BadReplyTo | DomainError::BadThreadRoot | DomainError::MentionsNonMember => {
            ApiError::validation(message)
        }
    }
}

/// Runs `command` against room `room_id`, appending its event (if any) to the subject and
/// under the concurrency rule the command names.
pub async fn execute(
    state: &AppState,
    room_id: Uuid,
    command: Command,
    event_id: Uuid,
) -> Result<Executed, CommandError> {
    let cache = &state.rooms;
    let part = command.action.part();
    let reads = command.action.reads();
    let concurrency = command.action.concurrency();
    let entry = cache
        .room(room_id, reads)
        .await
        .map_err(CommandError::Unavailable)?;
    let _writer = match part {
        RoomPart::Meta => Some(entry.meta_writer.lock().await),
        RoomPart::Read => Some(entry.read_writer.lock().await),
        RoomPart::Msg if concurrency == Concurrency::ExpectVersion => {
            Some(entry.msg_writer.lock().await)
        }
        RoomPart::Msg => None,
    };
    let subject = state.store.subjects().room(room_id, part);
    let meta_subject = state.store.subjects().room(room_id, RoomPart::Meta);
    // An append that expects no version of its own subject (a message) is decided on
    // membership it must not miss a change of: a member removed through another instance
    // cannot post once the removal has been acknowledged. Where the server can check an
    // append against another subject (2.12.2+), the append expects the room's `meta` subject
    // at the version the decision saw, so a change since makes it conflict and the command is
    // decided again: one JetStream operation. Elsewhere the decision waits for the cache to be
    // at least as current as the log was when the command arrived (a head lookup shared by
    // concurrent commands, no history read).
    let guarded = concurrency == Concurrency::Barrier && state.store.guards_on_other_subjects();
    let mut verified = false;
    if concurrency == Concurrency::Barrier && !guarded {
        cache.barrier().await.map_err(CommandError::Unavailable)?;
        entry.settled().await;
        verified = true;
    }
    for _ in 0..MAX_ATTEMPTS {
        let (decision, version, meta_version) = entry
            .with_room_and_meta(part, |room, version, meta| {
                (decide(room, &command), version, meta)
            });
        let event = match decision {
            // A refusal or a no-op may come from a cache that has not yet seen an event
            // appended through another instance: confirm against the log before answering.
            Err(_) | Ok(None) if !verified => {
                cache.barrier().await.map_err(CommandError::Unavailable)?;
                entry.settled().await;
                verified = true;
                continue;
            }
            Err(e) => return Err(CommandError::Domain(e)),
            Ok(None) => {
                return Ok(Executed {
                    entry: entry.clone(),
                    position: version,
                });
            }
            Ok(Some(event)) => event,
        };
        // The decision's clock is the event's: one reading per command.
        let envelope = Envelope::new(
            event_id,
            command.now,
            Some(command.actor),
            Some(room_id),
            event,
        );
        let expect = match concurrency {
            Concurrency::ExpectVersion => Expect::LastAt(version),
            Concurrency::Barrier if guarded => Expect::LastOn {
                subject: &meta_subject,
                seq: meta_version,
            },
            Concurrency::Barrier => Expect::Any,
        };
        match state
            .store
            .append(&subject, &envelope, &event_id.to_string(), expect)
            .await
        {
            Ok(position) => {
                if concurrency == Concurrency::ExpectVersion {
                    entry.apply_own(
                        part,
                        Recorded {
                            position,
                            subject,
                            recorded_at: envelope.occurred_at,
                            envelope,
                        },
                    );
                }
                return Ok(Executed {
                    entry: entry.clone(),
                    position,
                });
            }
            Err(AppendError::Conflict) => {
                let pause = rand::rng().random_range(0..3u64);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                cache
                    .catch_up(&entry, reads)
                    .await
                    .map_err(CommandError::Unavailable)?;
                verified = true;
            }
            Err(AppendError::Unavailable(e)) => return Err(CommandError::Unavailable(e)),
        }
    }
    Err(CommandError::Contended)
}
