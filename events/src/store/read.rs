//! Reading the log: single events and positions by direct get, subjects read whole, and
//! ordered consumers followed endlessly.

use anyhow::{Context as _, anyhow};
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{self, DeliverPolicy};
use async_nats::jetstream::stream::DirectGetErrorKind;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream as FuturesStream, StreamExt, TryStreamExt};

use super::{EVENT_TYPE_HEADER, EventStore};
use crate::RoomPart;
use crate::envelope::{Decoded, Envelope, Recorded};

/// A stored message, not yet decoded.
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub position: u64,
    pub subject: String,
    pub payload: Bytes,
    /// Messages matching the reader's filter still after this one (0 when not known).
    pub pending: u64,
    /// When the log stored it.
    pub recorded_at: DateTime<Utc>,
    /// The `Natter-Event-Type` header, if present.
    pub event_type: Option<String>,
}

/// JetStream's timestamps are `time` types; natter speaks chrono.
fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX))
}

fn event_type(headers: Option<&HeaderMap>) -> Option<String> {
    headers?
        .get(EVENT_TYPE_HEADER)
        .map(|v| v.as_str().to_string())
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// With the next event appended after the consumer is created.
    New,
    /// With the first event after this position.
    After(u64),
    /// With the first event the log stored at or after this time.
    At(DateTime<Utc>),
}

/// The event stream's size, as `GET /admin/stats` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StreamSize {
    pub messages: u64,
    pub bytes: u64,
    pub last_position: u64,
}

impl EventStore {
    /// The position of the first message at or after `from` on `filter` (wildcards allowed),
    /// if there is one.
    ///
    /// A room's events (`room_events`) are looked up on each of its literal subjects and the
    /// least taken: the server finds a literal subject's next message from its per-subject
    /// index, while a wildcard makes nats-server 2.9 walk every message from `from` on (on a
    /// log of a million events, past the 2 s timeout: a `since: 0` subscribe was refused).
    pub async fn next_position(&self, filter: &str, from: u64) -> anyhow::Result<Option<u64>> {
        let Some(room) = self.inner.subjects.room_of_filter(filter) else {
            return self.next_on(filter, from).await;
        };
        let lookups = RoomPart::ALL.map(|part| {
            let subject = self.inner.subjects.room(room, part);
            async move { self.next_on(&subject, from).await }
        });
        let found = futures::future::try_join_all(lookups).await?;
        Ok(found.into_iter().flatten().min())
    }

    async fn next_on(&self, filter: &str, from: u64) -> anyhow::Result<Option<u64>> {
        match self
            .inner
            .stream
            .direct_get_builder()
            .sequence(from.max(1))
            .next_by_subject(filter)
            .send()
            .await
        {
            Ok(m) => Ok(Some(m.sequence)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context("looking up the next event of a subject")),
        }
    }

    /// The position of the last event on `subject`, 0 when it has none.
    pub async fn last_position(&self, subject: &str) -> anyhow::Result<u64> {
        match self.inner.stream.direct_get_last_for_subject(subject).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(0),
            Err(e) => Err(anyhow::Error::new(e).context("reading the head of a subject")),
        }
    }

    /// The last event on `subject`, decoded.
    pub async fn last_event(&self, subject: &str) -> anyhow::Result<Option<Recorded>> {
        match self.inner.stream.direct_get_last_for_subject(subject).await {
            Ok(m) => decode_known(RawMessage {
                position: m.sequence,
                subject: m.subject.to_string(),
                pending: 0,
                recorded_at: to_chrono(m.time),
                event_type: event_type(Some(&m.headers)),
                payload: m.payload,
            }),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context("reading the last event of a subject")),
        }
    }

    /// The position of the last event in the whole stream: its last message's, by a direct
    /// get ([`direct_last`](Self::direct_last)); an empty stream, or a server that does not
    /// answer that way, gets the stream info's last sequence.
    pub async fn head(&self) -> anyhow::Result<u64> {
        match self.direct_last().await? {
            Some(sequence) => Ok(sequence),
            None => Ok(self.size().await?.last_position),
        }
    }

    /// The sequence of the stream's last message by a direct get for the subject `>`, which
    /// the server answers from the stream's last sequence: a fraction of what the stream info
    /// costs it (which counts the stream's subjects, one per room part, on every call).
    /// `None` when there is no message (or the server answers something else).
    pub async fn direct_last(&self) -> anyhow::Result<Option<u64>> {
        let name = &self.inner.stream.cached_info().config.name;
        let client = self.inner.js.client();
        let request = client.request(
            format!("$JS.API.DIRECT.GET.{name}"),
            Bytes::from_static(br#"{"last_by_subj":">"}"#),
        );
        // Bounded like every JetStream call of the store (the client's own bound is longer).
        let reply = tokio::time::timeout(super::ACK_TIMEOUT, request)
            .await
            .map_err(|_| anyhow!("reading the log's last position timed out"))?
            .context("reading the log's last position")?;
        Ok(reply
            .headers
            .as_ref()
            .filter(|_| reply.status.is_none())
            .and_then(|h| h.get(async_nats::header::NATS_SEQUENCE))
            .and_then(|v| v.as_str().parse::<u64>().ok()))
    }

    /// How much the stream holds.
    pub async fn size(&self) -> anyhow::Result<StreamSize> {
        let info = self
            .inner
            .stream
            .get_info()
            .await
            .context("reading the event stream's state")?;
        Ok(StreamSize {
            messages: info.state.messages,
            bytes: info.state.bytes,
            last_position: info.state.last_sequence,
        })
    }

    /// Every event of `subject` after position `after`, in order, decoded. Events of types this
    /// build does not know are skipped; an event that does not decode is an error.
    pub async fn read_subject(&self, subject: &str, after: u64) -> anyhow::Result<Vec<Recorded>> {
        let last = self.last_position(subject).await?;
        if last <= after {
            return Ok(Vec::new());
        }
        let mut messages = self.follow(subject, Start::After(after)).await?;
        let mut events = Vec::new();
        while let Some(message) = messages.try_next().await? {
            let position = message.position;
            if let Some(recorded) = decode_known(message)? {
                events.push(recorded);
            }
            if position >= last {
                break;
            }
        }
        Ok(events)
    }

    /// Follows `filter` (one subject, wildcards allowed) from `start`, endlessly, in stream
    /// order and without gaps (an ordered consumer recreates itself after a gap or a
    /// reconnect).
    pub async fn follow(
        &self,
        filter: &str,
        start: Start,
    ) -> anyhow::Result<impl FuturesStream<Item = anyhow::Result<RawMessage>> + Send + use<>> {
        Ok(self.follow_counted(filter, start).await?.1)
    }

    /// [`follow`](Self::follow), also telling how many matching events the log held from
    /// `start` on when the read began (so a bounded read knows where to stop).
    ///
    /// The follow heals itself: when the client reconnects (a server restart, a failover to
    /// another cluster node) or the consumer goes quiet while the log holds a matching event
    /// after the last one delivered (its server died under it), it recreates its consumer
    /// after that event, at once, instead of waiting out the consumer's missed heartbeats
    /// (two of 15 s each). A recreation that fails is an error item; the next poll tries
    /// again.
    pub async fn follow_counted(
        &self,
        filter: &str,
        start: Start,
    ) -> anyhow::Result<(
        u64,
        impl FuturesStream<Item = anyhow::Result<RawMessage>> + Send + use<>,
    )> {
        let (pending, messages) = crate::follow::heal(self.clone(), filter, start).await?;
        Ok((pending, messages))
    }

    /// One ordered consumer on `filter` from `start` (it recreates itself after a gap, but
    /// learns of a lost server only from missed heartbeats).
    pub(crate) async fn ordered(
        &self,
        filter: &str,
        start: Start,
    ) -> anyhow::Result<(
        u64,
        impl FuturesStream<Item = anyhow::Result<RawMessage>> + Send + use<>,
    )> {
        let deliver_policy = match start {
            Start::New => DeliverPolicy::New,
            Start::After(seq) => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
            Start::At(t) => DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(
                    t.timestamp_nanos_opt().unwrap_or(0),
                ))
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            },
        };
        let consumer = self
            .inner
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: filter.to_string(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating an ordered consumer on {filter}"))?;
        let pending = consumer.cached_info().num_pending;
        let messages = consumer
            .messages()
            .await
            .context("starting an ordered consumer")?;
        Ok((
            pending,
            messages.map(|m| {
                let m = m.context("reading from an ordered consumer")?;
                let info = m.info().map_err(|e| anyhow!("{e}"))?;
                Ok(RawMessage {
                    position: info.stream_sequence,
                    pending: info.pending,
                    recorded_at: to_chrono(info.published),
                    event_type: event_type(m.headers.as_ref()),
                    subject: m.subject.to_string(),
                    payload: m.payload.clone(),
                })
            }),
        ))
    }
}

/// Decodes a message into a [`Recorded`] event; `None` for a type this build does not know.
pub fn decode_known(message: RawMessage) -> anyhow::Result<Option<Recorded>> {
    match Envelope::decode(&message.payload) {
        Ok(Decoded::Known(envelope)) => Ok(Some(Recorded {
            position: message.position,
            subject: message.subject,
            recorded_at: message.recorded_at,
            envelope,
        })),
        Ok(Decoded::Unknown(raw)) => {
            tracing::debug!(position = message.position, r#type = %raw.type_name, "skipping an event type this build does not know");
            Ok(None)
        }
        Err(e) => Err(anyhow!(
            "event at position {} does not decode: {e}",
            message.position
        )),
    }
}
