//! Ops endpoints: `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use natter_events::EventStore;
use serde_json::{Value, json};
use sqlx::PgPool;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct OpsState {
    pub nats: async_nats::Client,
    pub store: EventStore,
    /// Present for roles that need Postgres.
    pub pool: Option<PgPool>,
}

pub fn routes(state: OpsState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn readyz(State(state): State<OpsState>) -> (StatusCode, Json<Value>) {
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let stream = tokio::time::timeout(CHECK_TIMEOUT, state.store.head()).await;
    let (stream_ok, head) = match stream {
        Ok(Ok(head)) => (true, json!({ "ok": true, "last_position": head })),
        Ok(Err(e)) => (false, json!({ "ok": false, "error": format!("{e:#}") })),
        Err(_) => (false, json!({ "ok": false, "error": "timed out" })),
    };
    let (pg_ok, pg) = match &state.pool {
        None => (true, json!({ "ok": true, "required": false })),
        Some(pool) => {
            match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(pool)).await {
                Ok(Ok(_)) => (true, json!({ "ok": true, "required": true })),
                Ok(Err(e)) => (
                    false,
                    json!({ "ok": false, "required": true, "error": e.to_string() }),
                ),
                Err(_) => (
                    false,
                    json!({ "ok": false, "required": true, "error": "timed out" }),
                ),
            }
        }
    };
    let ready = nats && stream_ok && pg_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "unready" },
            "checks": { "nats": { "ok": nats }, "stream": head, "postgres": pg },
        })),
    )
}
