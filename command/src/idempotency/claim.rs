//! Claiming a key: an atomic create of a `pending` record (or a takeover of an expired one),
//! and the lease that renews the claim while its request runs.

use async_nats::jetstream::kv;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use natter_edge::ApiError;
use uuid::Uuid;

use super::{CLAIM_LEASE, RENEW_EVERY, RETRY_IN_PROGRESS_SECS, Record, replay};
use crate::AppState;

pub(super) enum Claim {
    Claimed(u64),
    Replay(Response),
}

pub(super) async fn claim(
    store: &kv::Store,
    kv_key: &str,
    fingerprint: &str,
    state: &AppState,
) -> Result<Claim, ApiError> {
    // Names this claim, so that a create whose answer was lost with the connection, retried,
    // recognises its own record instead of seeing someone else's request in progress.
    let claim_id = Uuid::new_v4();
    let pending = || pending_record(fingerprint, Some(claim_id));
    let events = &state.store;
    for attempt in 0..5 {
        if attempt == 0 {
            // Most keys are new: claim before reading, one round trip instead of two.
            match events
                .unless_disconnected(store.create(kv_key, pending().into()))
                .await
            {
                Some(Ok(revision)) => return Ok(Claim::Claimed(revision)),
                Some(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                None => continue,
                Some(Err(e)) => {
                    return Err(ApiError::unavailable(
                        anyhow::Error::new(e).context("claiming an idempotency key"),
                    ));
                }
            }
        }
        let Some(existing) = events.unless_disconnected(store.entry(kv_key)).await else {
            continue;
        };
        let existing = existing
            .map_err(|e| {
                ApiError::unavailable(anyhow::Error::new(e).context("reading an idempotency key"))
            })?
            .filter(|e| e.operation == kv::Operation::Put);
        let Some(entry) = existing else {
            match events
                .unless_disconnected(store.create(kv_key, pending().into()))
                .await
            {
                Some(Ok(revision)) => return Ok(Claim::Claimed(revision)),
                None => continue,
                Some(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Some(Err(e)) => {
                    return Err(ApiError::unavailable(
                        anyhow::Error::new(e).context("claiming an idempotency key"),
                    ));
                }
            }
        };
        let record: Record = serde_json::from_slice(&entry.value).map_err(|e| {
            ApiError::internal(anyhow::Error::new(e).context("a stored idempotency record"))
        })?;
        if record.fingerprint != fingerprint {
            return Err(ApiError::conflict(
                "this Idempotency-Key was used with a different request",
            ));
        }
        if let Some(stored) = record.response {
            return Ok(Claim::Replay(replay(stored, state)?));
        }
        if record.claim == Some(claim_id) {
            return Ok(Claim::Claimed(entry.revision));
        }
        let age = Utc::now().signed_duration_since(record.claimed_at);
        if age.to_std().unwrap_or_default() < CLAIM_LEASE {
            return Err(in_progress());
        }
        match events
            .unless_disconnected(store.update(kv_key, pending().into(), entry.revision))
            .await
        {
            Some(Ok(revision)) => return Ok(Claim::Claimed(revision)),
            None => continue,
            Some(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Some(Err(e)) => {
                return Err(ApiError::unavailable(
                    anyhow::Error::new(e).context("taking over an idempotency key"),
                ));
            }
        }
    }
    Err(ApiError::unavailable(anyhow::anyhow!(
        "the idempotency bucket did not answer"
    )))
}

fn in_progress() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        "in_progress",
        "the first request with this Idempotency-Key is still running; retry shortly",
    );
    e.retry_after = Some(RETRY_IN_PROGRESS_SECS);
    e
}

fn pending_record(fingerprint: &str, claim: Option<Uuid>) -> Vec<u8> {
    serde_json::to_vec(&Record {
        fingerprint: fingerprint.to_string(),
        claimed_at: Utc::now(),
        claim,
        response: None,
    })
    .expect("records serialize")
}

/// A claim being renewed while its request runs. Dropped without [`Lease::end`] (the
/// request's future was dropped: its client went away, or the server is stopping), it stops
/// renewing, so the claim lapses within [`CLAIM_LEASE`].
pub(super) struct Lease {
    stop: std::sync::Arc<tokio::sync::Notify>,
    task: Option<tokio::task::JoinHandle<u64>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Lease {
    pub(super) fn renew(
        store: std::sync::Arc<kv::Store>,
        key: String,
        fingerprint: String,
        revision: u64,
    ) -> Lease {
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut revision = revision;
            loop {
                tokio::select! {
                    () = stopped.notified() => return revision,
                    () = tokio::time::sleep(RENEW_EVERY) => {}
                }
                match store
                    .update(&key, pending_record(&fingerprint, None).into(), revision)
                    .await
                {
                    Ok(r) => revision = r,
                    // Not fatal: the claim may lapse and a retry run alongside, which the
                    // derived event ids make harmless (the append is deduplicated).
                    Err(e) => tracing::warn!(error = %e, "could not renew an idempotency claim"),
                }
            }
        });
        Lease {
            stop,
            task: Some(task),
        }
    }

    /// Stops renewing (never in the middle of an update); returns the claim's revision.
    pub(super) async fn end(mut self) -> u64 {
        self.stop.notify_one();
        match self.task.take() {
            Some(task) => task.await.unwrap_or(0),
            None => 0,
        }
    }
}
