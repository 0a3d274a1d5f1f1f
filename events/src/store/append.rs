//! Appending one event with an expectation of its subject, retried safely (the message id
//! makes the server store a retried append once), and giving up at once when the
//! connection is not there.

use std::time::Duration;

use anyhow::anyhow;
use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;

use super::{EVENT_TYPE_HEADER, EventStore};
use crate::envelope::Envelope;
use crate::witness::Witnessed;

const PUBLISH_ATTEMPTS: usize = 3;
/// How long an append waits for a reconnection under way before it answers unavailable.
const RECONNECT_GRACE: Duration = Duration::from_millis(500);
/// The header naming the subject whose last sequence `Nats-Expected-Last-Subject-Sequence`
/// is checked against, instead of the published subject's (nats-server 2.11+; see
/// [`EventStore::guards_on_other_subjects`]).
const EXPECTED_SUBJECT_HEADER: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

/// What an append expects of the aggregate's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// No check: the event goes after whatever is there.
    Any,
    /// The subject's last event must be at this position (0: the subject must be empty).
    LastAt(u64),
    /// Another subject's last event must be at this position: the event is appended only if
    /// that subject (a room's membership, say) is as the decision saw it. Only where
    /// [`EventStore::guards_on_other_subjects`]; panics otherwise, as the server would store
    /// the event unchecked.
    LastOn { subject: &'a str, seq: u64 },
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The subject moved on since the state the decision was made on.
    #[error("the aggregate changed concurrently")]
    Conflict,
    /// NATS could not be reached or did not answer; nothing is known to be stored.
    #[error("event store unavailable: {0:#}")]
    Unavailable(anyhow::Error),
}

impl EventStore {
    /// Appends one event. `msg_id` makes retries safe: an append repeated with the same id
    /// within the stream's duplicate window is stored once and answers the original position.
    /// Returns the event's position.
    pub async fn append(
        &self,
        subject: &str,
        envelope: &Envelope,
        msg_id: &str,
        expect: Expect<'_>,
    ) -> Result<u64, AppendError> {
        assert!(
            !matches!(expect, Expect::LastOn { .. }) || self.guards_on_other_subjects(),
            "this nats-server cannot check an append against another subject"
        );
        let payload = Bytes::from(envelope.encode());
        let mut last_error = None;
        for _ in 0..PUBLISH_ATTEMPTS {
            let mut headers = HeaderMap::new();
            headers.insert(EVENT_TYPE_HEADER, envelope.event.type_name());
            if let Expect::LastOn { subject, .. } = expect {
                headers.insert(EXPECTED_SUBJECT_HEADER, subject);
            }
            let mut publish = PublishMessage::build()
                .payload(payload.clone())
                .headers(headers)
                .message_id(msg_id);
            if let Expect::LastAt(seq) | Expect::LastOn { seq, .. } = expect {
                publish = publish.expected_last_subject_sequence(seq);
            }
            let witnessed = Witnessed::begin(&self.inner.witness);
            // Disconnected, the client would buffer the publish and its ack would time out;
            // and an ack does not survive a lost connection: give up on this attempt as soon
            // as the connection is not there (the next one, with the same message id, is
            // safe), instead of waiting out the ack timeout.
            let sent = self.unless_disconnected(async {
                match self
                    .inner
                    .js
                    .send_publish(subject.to_string(), publish)
                    .await
                {
                    Ok(future) => Ok(future.await),
                    Err(e) => Err(e),
                }
            });
            let ack = match sent.await {
                None => {
                    last_error = Some(anyhow!("not connected to NATS"));
                    continue;
                }
                Some(Ok(ack)) => ack,
                Some(Err(e)) => {
                    last_error = Some(anyhow::Error::new(e).context("publishing an event"));
                    continue;
                }
            };
            match ack {
                Ok(ack) => {
                    // A duplicate's ack names a position stored earlier: no bound of now.
                    if !ack.duplicate {
                        witnessed.stored(ack.sequence);
                    }
                    return Ok(ack.sequence);
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    // Newer servers check the expected sequence before the duplicate window:
                    // a retry of an append that was stored (its ack lost) lands here. If the
                    // event right after the expected position is this very message, it worked.
                    if let Expect::LastAt(seq) = expect
                        && let Some(position) = self.stored_after(subject, seq, msg_id).await
                    {
                        return Ok(position);
                    }
                    return Err(AppendError::Conflict);
                }
                Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                    return Err(AppendError::Unavailable(
                        anyhow::Error::new(e).context("the event stream is missing"),
                    ));
                }
                // A timed-out ack may still have been stored; the retry's message id makes
                // the server answer with the original position instead of storing twice.
                Err(e) => last_error = Some(anyhow::Error::new(e).context("awaiting an ack")),
            }
        }
        Err(AppendError::Unavailable(
            last_error.unwrap_or_else(|| anyhow!("publish failed")),
        ))
    }

    /// Runs a request to NATS (a key-value read or write, say) unless the connection drops
    /// while it waits: its answer would be lost with the connection, so `None` then tells the
    /// caller to retry at once (after a reconnection under way) rather than wait out the
    /// request's timeout. `None` also when not connected within a moment.
    pub async fn unless_disconnected<F: Future>(&self, request: F) -> Option<F::Output> {
        if !self.connected_within(RECONNECT_GRACE).await {
            return None;
        }
        let connects = self.connects();
        tokio::select! {
            out = request => Some(out),
            () = self.connection_lost(connects) => None,
        }
    }

    /// Resolves once the client is no longer connected as it was when its connect count was
    /// `connects` (it dropped, or reconnected in between).
    async fn connection_lost(&self, connects: u64) {
        use async_nats::connection::State;
        let client = self.inner.js.client();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if client.connection_state() != State::Connected || self.connects() != connects {
                return;
            }
        }
    }

    /// Whether the client is connected, waiting up to `grace` for a reconnection under way.
    pub async fn connected_within(&self, grace: Duration) -> bool {
        use async_nats::connection::State;
        let client = self.inner.js.client();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            if client.connection_state() == State::Connected {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The position of the first message on `subject` after `after`, if it carries `msg_id`.
    async fn stored_after(&self, subject: &str, after: u64, msg_id: &str) -> Option<u64> {
        let next = self
            .inner
            .stream
            .direct_get_builder()
            .sequence(after + 1)
            .next_by_subject(subject)
            .send()
            .await
            .ok()?;
        let id = next.headers.get(async_nats::header::NATS_MESSAGE_ID)?;
        (id.as_str() == msg_id).then_some(next.sequence)
    }
}
