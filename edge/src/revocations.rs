//! Tokens issued before a user's password changed are refused, by every instance, within
//! moments of the change: each process follows the users' subjects in the log and remembers,
//! per user, when their credentials last changed; [`JwtKeys::verify`](crate::JwtKeys::verify)
//! refuses a token issued before that millisecond.
//!
//! The follow starts one token lifetime back, since a token older than that has expired
//! anyway, so a process that starts knows every change that still matters before it serves.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use natter_events::catalogue::Event;
use natter_events::store::decode_known;
use natter_events::{EventStore, Start};
use uuid::Uuid;

/// Per user, the millisecond their credentials last changed.
#[derive(Default)]
pub struct Revocations {
    changed: RwLock<HashMap<Uuid, i64>>,
}

impl Revocations {
    /// Whether a token of `user` issued at `issued_ms` predates a credentials change.
    pub fn refuses(&self, user: Uuid, issued_ms: i64) -> bool {
        self.changed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user)
            .is_some_and(|changed| issued_ms < *changed)
    }

    /// Records that `user`'s credentials changed at `at` (milliseconds).
    pub fn changed(&self, user: Uuid, at: i64) {
        let mut changed = self.changed.write().unwrap_or_else(|e| e.into_inner());
        let entry = changed.entry(user).or_insert(at);
        *entry = (*entry).max(at);
    }

    /// Follows the users' subjects from `lifetime` ago, recording every credentials change,
    /// until the task is aborted. Returns once it has read what the log held when it began.
    pub async fn follow(
        self: Arc<Self>,
        store: EventStore,
        lifetime: Duration,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let filter = store.subjects().all_users();
        let from = Utc::now() - chrono::Duration::from_std(lifetime)?;
        let (mut pending, messages) = store.follow_counted(&filter, Start::At(from)).await?;
        let mut messages = Box::pin(messages);
        let record = |this: &Revocations, message| {
            if let Ok(Some(recorded)) = decode_known(message)
                && let Event::CredentialsSet(c) = &recorded.envelope.event
            {
                this.changed(c.user_id, recorded.envelope.occurred_at.timestamp_millis());
            }
        };
        while pending > 0 {
            let Some(message) = messages.try_next().await? else {
                break;
            };
            pending = message.pending;
            record(&self, message);
        }
        Ok(tokio::spawn(async move {
            loop {
                match messages.try_next().await {
                    Ok(Some(message)) => record(&self, message),
                    Ok(None) => return,
                    // The follow heals itself; a failed recreation is retried on the next poll.
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "following credential changes");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        }))
    }
}
