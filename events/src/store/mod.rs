//! The event store on JetStream: one stream holds every event; each aggregate is one subject,
//! so the per-subject expected sequence gives optimistic concurrency.
//!
//! Works the same on nats-server 2.9 and 2.12: it sends only 2.9 headers
//! (`Nats-Msg-Id`, `Nats-Expected-Last-Subject-Sequence`) and uses single-filter consumers.
//!
//! - this module: the handle, opening (and checking) the stream;
//! - [`append`]: appends with an expected position, retried safely;
//! - [`read`]: reads and follows (the self-healing follow is `crate::follow`);
//! - the head bound that the read barrier uses is `crate::witness`.

mod append;
mod read;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_nats::jetstream::{
    self,
    stream::{self, Stream},
};

use crate::subjects::Subjects;
use crate::witness::Witness;

pub use append::{AppendError, Expect};
pub use read::{RawMessage, Start, StreamSize, decode_known};

/// The header naming an event's type, so tools can filter without decoding payloads.
pub const EVENT_TYPE_HEADER: &str = "Natter-Event-Type";

/// How long a publish may wait for its ack (and any JetStream request for its answer) before
/// it is retried (a publish with the same message id, which the server deduplicates). An
/// answer normally takes milliseconds; one that takes seconds was sent to a server that is
/// gone or to a stream whose cluster is electing a new leader, and a retry then reaches the
/// new one.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(2);
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

/// Handle to the event stream. Cheap to clone (one reference count): axum clones state for
/// every request, and the JetStream handles inside carry whole stream configurations.
#[derive(Clone)]
pub struct EventStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) js: jetstream::Context,
    pub(crate) stream: Stream,
    pub(crate) subjects: Subjects,
    /// Bounds of the head from this handle's own appends (see [`EventStore::head_bound`]).
    pub(crate) witness: Arc<Witness>,
    /// Whether the task answering uncovered [`EventStore::head_bound`] callers was started.
    pub(crate) lookups: OnceLock<()>,
    /// See [`EventStore::guards_on_other_subjects`].
    pub(crate) other_subject_guard: bool,
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
        let other_subject_guard =
            version_at_least(&js.client().server_info().version, OTHER_SUBJECT_GUARD);
        Ok(EventStore {
            inner: Arc::new(Inner {
                js,
                stream,
                subjects,
                witness: Arc::default(),
                lookups: OnceLock::new(),
                other_subject_guard,
            }),
        })
    }

    /// Whether appends can be checked against another subject's last position
    /// ([`Expect::LastOn`]): the server natter connected to is 2.12.2 or later. 2.11 brought
    /// the header, but a server before 2.12.2 can mistake it for the expected-sequence header
    /// and skip the check without a word (2.9 ignores it, with the same effect). Decided once,
    /// when the store is opened.
    pub fn guards_on_other_subjects(&self) -> bool {
        self.inner.other_subject_guard
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

    /// How many times the NATS client has connected (a change means it reconnected).
    pub(crate) fn connects(&self) -> u64 {
        self.inner
            .js
            .client()
            .statistics()
            .connects
            .load(Ordering::Relaxed)
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

/// The first nats-server release whose appends natter checks against another subject.
const OTHER_SUBJECT_GUARD: (u64, u64, u64) = (2, 12, 2);

/// Whether a version such as `2.12.2`, `v2.15.1` or `2.13.0-beta` is at least `least`.
fn version_at_least(version: &str, least: (u64, u64, u64)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().ok());
    let mut next = || parts.next().flatten();
    match (next(), next(), next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c) >= least,
        _ => false,
    }
}

#[cfg(test)]
mod version_tests {
    use super::version_at_least;

    #[test]
    fn versions_compare_by_release() {
        let least = (2, 12, 2);
        assert!(!version_at_least("2.9.10", least));
        assert!(!version_at_least("2.11.9", least));
        assert!(!version_at_least("2.12.1", least));
        assert!(version_at_least("2.12.2", least));
        assert!(version_at_least("v2.15.1", least));
        assert!(version_at_least("3.0.0-beta", least));
        assert!(!version_at_least("garbage", least));
    }
}
