//! The event store on JetStream: one stream holds every event; each aggregate is one subject,
//! so the per-subject expected sequence gives optimistic concurrency.
//!
//! Works the same on nats-server 2.9 and 2.12: it sends only 2.9 headers
//! (`Nats-Msg-Id`, `Nats-Expected-Last-Subject-Sequence`) and uses single-filter consumers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_nats::HeaderMap;
use async_nats::jetstream::{
    self,
    consumer::{self, DeliverPolicy},
    context::PublishErrorKind,
    message::PublishMessage,
    stream::{self, DirectGetErrorKind, Stream},
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream as FuturesStream, StreamExt, TryStreamExt};

use crate::envelope::{Decoded, Envelope, Recorded};
use crate::subjects::Subjects;
use crate::witness::{Witness, Witnessed};

/// The header naming an event's type, so tools can filter without decoding payloads.
pub const EVENT_TYPE_HEADER: &str = "Natter-Event-Type";

/// How long a publish may wait for its ack (and any JetStream request for its answer) before
/// it is retried (a publish with the same message id, which the server deduplicates). An
/// answer normally takes milliseconds; one that takes seconds was sent to a server that is
/// gone or to a stream whose cluster is electing a new leader, and a retry then reaches the
/// new one.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
const PUBLISH_ATTEMPTS: usize = 3;
/// How long an append waits for a reconnection under way before it answers unavailable.
const RECONNECT_GRACE: Duration = Duration::from_millis(500);
/// How many times the head lookup lets queued tasks run first, while appends are in flight,
/// so that one of them may cover its waiters instead.
const COVER_YIELDS: usize = 4;

/// Where the event store lives.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// JetStream stream name.
    pub stream: String,
    /// Subject prefix; the stream holds `{prefix}.events.>`.
    pub prefix: String,
    /// Stream replicas: 1 on a single server, 3 on a production cluster.
    pub replicas: usize,
}

/// What an append expects of the aggregate's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No check: the event goes after whatever is there.
    Any,
    /// The subject's last event must be at this position (0: the subject must be empty).
    LastAt(u64),
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

/// Handle to the event stream. Cheap to clone (one reference count): axum clones state for
/// every request, and the JetStream handles inside carry whole stream configurations.
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    js: jetstream::Context,
    stream: Stream,
    subjects: Subjects,
    /// Bounds of the head from this handle's own appends (see [`EventStore::head_bound`]).
    witness: Arc<Witness>,
    /// Whether the task answering uncovered [`EventStore::head_bound`] callers was started.
    lookups: OnceLock<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the lookup task notice that the store is gone.
        self.witness.wake.notify_one();
    }
}

impl EventStore {
    /// Connects to the stream, creating it if missing and checking its configuration if present.
    pub async fn open(client: async_nats::Client, config: &StoreConfig) -> anyhow::Result<Self> {
        let subjects = Subjects::new(&config.prefix).map_err(|e| anyhow!(e))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .build(client);
        let wanted = stream::Config {
            name: config.stream.clone(),
            description: Some("natter event log: the system of record".into()),
            subjects: vec![subjects.all_events()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            // An event store never discards: no message, byte or age limits.
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            max_age: Duration::ZERO,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            num_replicas: config.replicas.max(1),
            ..Default::default()
        };
        let stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .with_context(|| format!("opening JetStream stream {}", config.stream))?;
        verify_config(&stream.cached_info().config, &wanted)?;
        Ok(EventStore {
            inner: Arc::new(Inner {
                js,
                stream,
                subjects,
                witness: Arc::default(),
                lookups: OnceLock::new(),
            }),
        })
    }

    pub fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    pub fn stream_name(&self) -> &str {
        &self.inner.stream.cached_info().config.name
    }

    /// Identifies this incarnation of the log: a stream recreated under the same name has a
    /// different epoch, so positions from the old one are not trusted.
    pub fn epoch(&self) -> String {
        format!(
            "{}",
            self.inner
                .stream
                .cached_info()
                .created
                .unix_timestamp_nanos()
        )
    }

    /// Appends one event. `msg_id` makes retries safe: an append repeated with the same id
    /// within the stream's duplicate window is stored once and answers the original position.
    /// Returns the event's position.
    pub async fn append(
        &self,
        subject: &str,
        envelope: &Envelope,
        msg_id: &str,
        expect: Expect,
    ) -> Result<u64, AppendError> {
        let payload = Bytes::from(envelope.encode());
        let mut last_error = None;
        for _ in 0..PUBLISH_ATTEMPTS {
            let mut headers = HeaderMap::new();
            headers.insert(EVENT_TYPE_HEADER, envelope.event.type_name());
            let mut publish = PublishMessage::build()
                .payload(payload.clone())
                .headers(headers)
                .message_id(msg_id);
            if let Expect::LastAt(seq) = expect {
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

    /// The position of the first message at or after `from` on `filter` (wildcards allowed),
    /// if there is one.
    pub async fn next_position(&self, filter: &str, from: u64) -> anyhow::Result<Option<u64>> {
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

    /// The position of the last event in the whole stream.
    pub async fn head(&self) -> anyhow::Result<u64> {
        let info = self
            .inner
            .stream
            .get_info()
            .await
            .context("reading the event stream's state")?;
        Ok(info.state.last_sequence)
    }

    /// A position at or above every event acknowledged (to anyone) before this call: the
    /// position of an append this handle began after the call, less one, or failing that the
    /// stream's last position read after the call. Concurrent callers that no append covers
    /// share one lookup.
    pub async fn head_bound(&self) -> anyhow::Result<u64> {
        let answer = self.inner.witness.wait();
        self.inner.lookups.get_or_init(|| {
            tokio::spawn(serve_lookups(
                Arc::downgrade(&self.inner),
                self.inner.witness.clone(),
            ));
        });
        answer
            .await
            .map_err(|_| anyhow!("the head lookup stopped"))?
            .map_err(|e| anyhow!("reading the log's head: {e}"))
    }

    /// How many head lookups [`head_bound`](Self::head_bound) has made: the rest were
    /// answered by this handle's own appends.
    pub fn head_lookups(&self) -> u64 {
        self.inner.witness.lookups.load(Ordering::Relaxed)
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

    /// How many times the NATS client has connected (a change means it reconnected).
    pub(crate) fn connects(&self) -> u64 {
        self.inner
            .js
            .client()
            .statistics()
            .connects
            .load(Ordering::Relaxed)
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

/// Answers [`EventStore::head_bound`] callers that no append covers, in rounds: each round's
/// lookup starts after its callers came. Ends when the store is dropped.
async fn serve_lookups(inner: Weak<Inner>, witness: Arc<Witness>) {
    loop {
        if !witness.has_uncovered() {
            if inner.strong_count() == 0 {
                return;
            }
            witness.wake.notified().await;
            continue;
        }
        // While appends are under way, others may be about to begin and cover the waiters
        // (those it covers are answered by its ack): let the runtime's queued tasks run
        // first. Under load that queue holds the requests about to append; when nearly
        // idle it is empty and the lookup goes out at once.
        for _ in 0..COVER_YIELDS {
            if !witness.busy() || !witness.has_uncovered() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let round = witness.uncovered();
        if round.is_empty() {
            continue;
        }
        let Some(inner) = inner.upgrade() else { return };
        witness.lookups.fetch_add(1, Ordering::Relaxed);
        let head = EventStore { inner }
            .head()
            .await
            .map_err(|e| format!("{e:#}"));
        for waiter in round {
            let _ = waiter.send(head.clone());
        }
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

/// The stream exists but is not configured as natter's event log: an operator's error that
/// no retry cures.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAnEventLog(String);

/// Refuses to run on a stream that could lose events or does not hold natter's subjects.
fn verify_config(actual: &stream::Config, wanted: &stream::Config) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if !actual.subjects.iter().any(|s| wanted.subjects.contains(s)) {
        problems.push(format!(
            "subjects are {:?}, expected {:?}",
            actual.subjects, wanted.subjects
        ));
    }
    if actual.storage != stream::StorageType::File {
        problems.push("storage is not file".to_string());
    }
    if actual.retention != stream::RetentionPolicy::Limits {
        problems.push("retention is not limits".to_string());
    }
    if actual.max_messages > 0
        || actual.max_bytes > 0
        || actual.max_messages_per_subject > 0
        || !actual.max_age.is_zero()
    {
        problems.push("it has message, byte or age limits, so it would discard events".to_string());
    }
    if !problems.is_empty() {
        return Err(NotAnEventLog(format!(
            "stream {} exists but is not a natter event log: {}",
            actual.name,
            problems.join("; ")
        ))
        .into());
    }
    if !actual.deny_delete || !actual.deny_purge {
        tracing::warn!(stream = %actual.name, "the event stream allows deleting or purging events");
    }
    Ok(())
}
