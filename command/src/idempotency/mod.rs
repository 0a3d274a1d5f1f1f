//! `Idempotency-Key`: a command retried with the same key by the same caller within 24 hours
//! appends nothing new and gets the original response; the same key with a different request
//! gets `409 conflict`; while the first request still runs, `409 in_progress` with
//! `Retry-After`.
//!
//! Responses are kept for 24 h in a JetStream key-value bucket (`{stream}_idem`, shared by all
//! command instances), far beyond NATS's 2-minute duplicate window. The key is first claimed
//! with a `pending` record (an atomic create), so two concurrent requests with one key cannot
//! both run. A claim is a lease of [`CLAIM_LEASE`], renewed every [`RENEW_EVERY`] while its
//! request runs: a claim left by a request that died (its process crashed, or releasing it
//! failed) expires within seconds and the next retry takes it over. Event ids inside an
//! idempotent command are derived from the key, so a command re-run after such a crash
//! appends with the same `Nats-Msg-Id` and is deduplicated. Leases compare the instances'
//! clocks: keep them in sync (NTP), as any cluster needs.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use natter_edge::ApiError;
use natter_edge::auth::bearer_token;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;

mod claim;
use claim::{Claim, Lease, claim};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_KEY_LEN: usize = 128;
const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// A pending claim not renewed for this long belongs to a request that died.
pub const CLAIM_LEASE: Duration = Duration::from_secs(5);
/// How often a running request renews its claim.
const RENEW_EVERY: Duration = Duration::from_millis(1500);
/// The `Retry-After` of `409 in_progress`, in seconds.
const RETRY_IN_PROGRESS_SECS: u64 = 1;

/// The key-value bucket of stored responses (shared: cloning a `kv::Store` copies its
/// stream's whole configuration).
#[derive(Clone)]
pub struct IdempotencyStore {
    kv: std::sync::Arc<kv::Store>,
}

impl IdempotencyStore {
    /// Opens (creating if needed) the bucket `{event_stream}_idem`. The bucket's stream is
    /// created by hand because `create_key_value` cannot talk to nats-server 2.9.
    pub async fn open(
        js: &jetstream::Context,
        event_stream: &str,
        replicas: usize,
    ) -> anyhow::Result<Self> {
        let bucket = format!("{event_stream}_idem");
        js.get_or_create_stream(jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age: RETENTION,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            storage: jetstream::stream::StorageType::File,
            num_replicas: replicas.max(1),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating the idempotency bucket {bucket}"))?;
        let kv = js
            .get_key_value(&bucket)
            .await
            .with_context(|| format!("opening the idempotency bucket {bucket}"))?;
        Ok(IdempotencyStore {
            kv: std::sync::Arc::new(kv),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    claimed_at: DateTime<Utc>,
    /// The claim's own id while pending (absent in records of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<Uuid>,
    response: Option<StoredResponse>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredResponse {
    status: u16,
    body: String,
    /// What the response's `token` (never stored) becomes in a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reissue: Option<Reissue>,
    /// Records of builds before [`Reissue`] (kept 24 h): the response carried a token that a
    /// replay mints again from the body's `user`. Remove once no such record can remain.
    #[serde(default)]
    reissue_token: bool,
}

/// What a replay mints in place of a response's `token`, which is never stored. A handler
/// that answers a token says which with [`reissue`]; no other response loses a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reissue {
    /// A fresh login token for the user (registration, login, a password change, a user a
    /// service created).
    Login { user_id: Uuid, username: String },
    /// A token for an app-managed user that expires when the first did (none once it has).
    Until {
        user_id: Uuid,
        username: String,
        until: DateTime<Utc>,
    },
    /// Shown once (an API token's secret): the replay answers without it.
    Never,
}

impl Reissue {
    /// A fresh login token for `user`.
    pub fn login(user: &natter_events::user::User) -> Reissue {
        Reissue::Login {
            user_id: user.id,
            username: user.username.clone(),
        }
    }
}

/// `response`, whose top-level `token` a replay re-mints as `how` says.
pub fn reissue(how: Reissue, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(how);
    response
}

/// Seeds the ids a command creates, so that a re-run after a crash creates the same ones.
#[derive(Debug, Clone, Copy)]
struct IdSeed([u8; 32]);

/// Fresh ids for a command: random (time-ordered), or derived from the idempotency key.
pub struct EventIds {
    seed: Option<[u8; 32]>,
    counter: u32,
}

impl EventIds {
    pub fn next_id(&mut self) -> Uuid {
        self.counter += 1;
        match self.seed {
            None => Uuid::now_v7(),
            Some(seed) => {
                let mut name = seed.to_vec();
                name.extend_from_slice(&self.counter.to_be_bytes());
                Uuid::new_v5(&Uuid::NAMESPACE_OID, &name)
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for EventIds {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(EventIds {
            seed: parts.extensions.get::<IdSeed>().map(|s| s.0),
            counter: 0,
        })
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a response is the stable outcome of the request (and so replayed on retry).
/// Failures that a retry may cure (auth, rate limits, unavailability) are not kept.
fn keep(status: StatusCode) -> bool {
    status.is_success() || matches!(status.as_u16(), 400 | 403 | 404 | 409 | 410 | 413 | 422)
}

/// The middleware around every command route.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match run(state, req, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(state: AppState, req: Request, next: Next) -> Result<Response, ApiError> {
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1-128 visible ASCII characters")
        })?
        .to_string();

    let (mut parts, body) = req.into_parts();
    // Keys are per caller: an authenticated request is scoped to its user or API token; one
    // that is not (registration) to the anonymous scope. An invalid token is left to the
    // handler to refuse.
    let scope = match bearer_token(&parts) {
        Some(token) => state.keys.authenticate(token).await.ok(),
        None => None,
    }
    .map(|caller| caller.actor_id().to_string())
    .unwrap_or_else(|| "anonymous".into());
    let body = to_bytes(body, state.config.body_limit).await.map_err(|e| {
        if natter_edge::limits::is_body_timeout(&e) {
            natter_edge::limits::timeout()
        } else {
            ApiError::payload_too_large("the request body is over the limit")
        }
    })?;
    let fingerprint = hex(&sha256(&[
        parts.method.as_str().as_bytes(),
        parts.uri.path().as_bytes(),
        parts.uri.query().unwrap_or("").as_bytes(),
        &body,
    ]));
    let seed = sha256(&[scope.as_bytes(), key.as_bytes()]);
    let kv_key = hex(&seed);
    let store = &state.idempotency.kv;

    let revision = claim(store, &kv_key, &fingerprint, &state).await?;
    let revision = match revision {
        Claim::Replay(response) => return Ok(response),
        Claim::Claimed(revision) => revision,
    };

    parts.extensions.insert(IdSeed(seed));
    let lease = Lease::renew(store.clone(), kv_key.clone(), fingerprint.clone(), revision);
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (mut head, body) = response.into_parts();
    let reissue = head.extensions.remove::<Reissue>();
    let bytes = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("buffering a response: {e}")))?;
    let revision = lease.end().await;

    if keep(head.status) {
        let stored_body = match reissue {
            Some(_) => without_token(&bytes),
            None => String::from_utf8_lossy(&bytes).into_owned(),
        };
        let record = Record {
            fingerprint,
            claimed_at: Utc::now(),
            claim: None,
            response: Some(StoredResponse {
                status: head.status.as_u16(),
                body: stored_body,
                reissue,
                reissue_token: false,
            }),
        };
        let value = serde_json::to_vec(&record).expect("records serialize");
        if let Err(e) = store.update(&kv_key, value.into(), revision).await {
            tracing::warn!(error = %e, "could not store an idempotent response");
        }
    } else if let Err(e) = store.delete(&kv_key).await {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
    Ok(Response::from_parts(head, Body::from(bytes)))
}

/// `body` without its top-level `token` (a secret, never stored).
fn without_token(body: &[u8]) -> String {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(mut obj)) => {
            obj.remove("token");
            serde_json::Value::Object(obj).to_string()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

fn replay(stored: StoredResponse, state: &AppState) -> Result<Response, ApiError> {
    let mut body = stored.body;
    let reissue = stored.reissue.or_else(|| {
        // A record of an older build: its user is the body's.
        let value: serde_json::Value = serde_json::from_str(&body).ok()?;
        let user = &value["user"];
        (stored.reissue_token).then_some(())?;
        Some(Reissue::Login {
            user_id: user["id"].as_str()?.parse().ok()?,
            username: user["username"].as_str()?.to_string(),
        })
    });
    let token = match &reissue {
        Some(Reissue::Login { user_id, username }) => Some(state.issue_token(*user_id, username)?),
        Some(Reissue::Until {
            user_id,
            username,
            until,
        }) => state.remint(*user_id, username, *until)?,
        Some(Reissue::Never) | None => None,
    };
    if let Some(token) = token {
        let mut value: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| ApiError::internal(anyhow::Error::new(e).context("a stored response")))?;
        value["token"] = serde_json::Value::String(token);
        body = value.to_string();
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok(response)
}
