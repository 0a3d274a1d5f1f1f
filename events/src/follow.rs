//! A follow of the log that heals itself: when the NATS client reconnects (a server
//! restart, a failover to another cluster node) or the consumer goes quiet while the log holds
//! a matching event after the last one delivered (its server died under it), the consumer is
//! recreated after that event at once, instead of after its two missed 15 s heartbeats.

use std::time::Duration;

use futures::{Stream, StreamExt};

use crate::store::{EventStore, RawMessage, Start};

/// Follows `filter` from `start` on one ordered consumer that is replaced whenever it is
/// lost. Returns the matching events the log held from `start` on when the read began, and
/// the stream. A recreation that fails is an error item; the next poll tries again.
pub(crate) async fn heal(
    store: EventStore,
    filter: &str,
    start: Start,
) -> anyhow::Result<(
    u64,
    impl Stream<Item = anyhow::Result<RawMessage>> + Send + use<>,
)> {
    let connects = store.connects();
    let (pending, messages) = store.ordered(filter, start).await?;
    let mut watch = tokio::time::interval(FOLLOW_CHECK);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let following = Following {
        store,
        filter: filter.to_string(),
        start,
        messages: Some(Box::pin(messages)),
        last: None,
        connects,
        watch,
        heard: tokio::time::Instant::now(),
    };
    Ok((
        pending,
        Box::pin(futures::stream::unfold(following, Following::next)),
    ))
}

/// Whether a follow's consumer is to be replaced: the client reconnected since it was
/// created (`connects`), or it has been quiet since `heard` while the log holds an event for
/// it after `last`.
async fn lost(
    store: &EventStore,
    filter: &str,
    connects: u64,
    heard: tokio::time::Instant,
    last: Option<u64>,
) -> bool {
    if store.connects() != connects {
        tracing::info!(filter, "NATS reconnected; recreating a consumer");
        return true;
    }
    let Some(last) = last.filter(|_| heard.elapsed() >= FOLLOW_QUIET) else {
        return false;
    };
    match store.next_position(filter, last + 1).await {
        Ok(Some(next)) => {
            tracing::info!(
                filter,
                last,
                next,
                "a consumer went quiet behind the log; recreating it"
            );
            true
        }
        // Nothing to deliver (or the server cannot say): quiet is right, for now.
        _ => false,
    }
}

/// How often a follow checks that its consumer still delivers.
const FOLLOW_CHECK: Duration = Duration::from_millis(250);
/// How long a follow may hear nothing while the log holds an event for it before it
/// recreates its consumer.
const FOLLOW_QUIET: Duration = Duration::from_millis(750);

type Messages = std::pin::Pin<Box<dyn Stream<Item = anyhow::Result<RawMessage>> + Send>>;

/// The state of a self-healing follow (see [`EventStore::follow_counted`]).
struct Following {
    store: EventStore,
    filter: String,
    start: Start,
    /// `None` after a failed recreation.
    messages: Option<Messages>,
    /// The position of the last message delivered.
    last: Option<u64>,
    /// The client's connect count when the consumer was created.
    connects: u64,
    watch: tokio::time::Interval,
    /// When the consumer last delivered (or was created).
    heard: tokio::time::Instant,
}

impl Following {
    async fn next(mut self) -> Option<(anyhow::Result<RawMessage>, Self)> {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                tokio::time::sleep(FOLLOW_CHECK).await;
                if let Err(e) = self.recreate().await {
                    return Some((Err(e), self));
                }
                continue;
            };
            tokio::select! {
                biased;
                item = messages.next() => {
                    match &item {
                        Some(Ok(m)) => {
                            self.last = Some(m.position);
                            self.heard = tokio::time::Instant::now();
                        }
                        Some(Err(_)) => {}
                        None => return None,
                    }
                    return item.map(|item| (item, self));
                }
                _ = self.watch.tick() => {
                    let resume_after = self.last.or(match self.start {
                        Start::After(p) => Some(p),
                        _ => None,
                    });
                    if lost(&self.store, &self.filter, self.connects, self.heard, resume_after).await
                        && let Err(e) = self.recreate().await
                    {
                        return Some((Err(e), self));
                    }
                }
            }
        }
    }

    /// Replaces the consumer by one that starts after the last message delivered.
    async fn recreate(&mut self) -> anyhow::Result<()> {
        self.messages = None;
        let start = match self.last {
            Some(p) => Start::After(p),
            None => self.start,
        };
        let connects = self.store.connects();
        let (_, messages) = self.store.ordered(&self.filter, start).await?;
        self.messages = Some(Box::pin(messages));
        self.connects = connects;
        self.heard = tokio::time::Instant::now();
        Ok(())
    }
}
