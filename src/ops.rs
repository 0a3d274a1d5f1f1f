//! Ops endpoints: `/healthz` (the process is alive), `/readyz` (its dependencies answer; the
//! projection's position, lag and any halt) and `/metrics` (Prometheus text).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use natter_events::{EventStore, LiveTail};
use natter_projector::ProjectionStatus;
use natter_query::position::ProjectionWatch;
use serde_json::{Value, json};
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the live tail may take to reach the head `/readyz` read before it counts as
/// behind (an event is normally delivered within milliseconds of its ack).
const TAIL_WAIT: Duration = Duration::from_secs(1);

/// Whether the live tail has delivered up to `head`, waiting up to [`TAIL_WAIT`].
async fn tail_check(tail: &LiveTail, head: u64) -> (bool, Value) {
    let deadline = tokio::time::Instant::now() + TAIL_WAIT;
    loop {
        match tail.position() {
            None => {
                return (
                    false,
                    json!({ "ok": false, "error": "the live tail stopped" }),
                );
            }
            Some(p) if p >= head => return (true, json!({ "ok": true, "position": p })),
            Some(p) if tokio::time::Instant::now() >= deadline => {
                return (
                    false,
                    json!({ "ok": false, "position": p,
                            "error": format!("the live tail is behind the log (at {p}, the log at {head})") }),
                );
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[derive(Clone)]
pub struct OpsState {
    pub nats: async_nats::Client,
    pub store: EventStore,
    /// Present for roles that need Postgres.
    pub pool: Option<PgPool>,
    /// Present where this process runs the projector.
    pub projector: Option<Arc<ProjectionStatus>>,
    /// Present where this process serves queries.
    pub applied: Option<ProjectionWatch>,
    pub metrics: PrometheusHandle,
    /// The process's live tail, where it follows the log live (command and gateway roles):
    /// it can serve only while that tail keeps up.
    pub live_tail: Option<LiveTail>,
}

pub fn routes(state: OpsState) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(state)
}

fn api() -> OpenApiRouter<OpsState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(asyncapi_json))
}

/// The OpenAPI description of the ops endpoints.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// `{status: "ok"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
}

/// Liveness.
///
/// The process is alive.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "ops", responses((status = 200, description = "alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// This REST API as OpenAPI 3.1.
///
/// natter's REST API as OpenAPI 3.1, derived from the handlers.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "getOpenApi", tag = "ops", responses((status = 200, description = "this document", content_type = "application/json")))]
async fn openapi_json() -> Json<&'static Value> {
    Json(crate::api_doc::openapi())
}

/// The websocket protocol as AsyncAPI 3.0.
///
/// The websocket protocol as AsyncAPI 3.0, its schemas derived from the gateway's types.
#[utoipa::path(get, path = "/api/v1/asyncapi.json", operation_id = "getAsyncApi", tag = "ops", responses((status = 200, description = "the AsyncAPI document", content_type = "application/json")))]
async fn asyncapi_json(headers: axum::http::HeaderMap) -> Json<Value> {
    let mut doc = crate::api_doc::asyncapi().clone();
    // The server is the one asked, as the client reached it (a proxy's host and scheme).
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("x-forwarded-host").or(header("host"));
    if let Some(host) = host.filter(|h| !h.is_empty() && h.len() <= 255) {
        doc["servers"]["natter"]["host"] = json!(host);
    }
    if header("x-forwarded-proto") == Some("https") {
        doc["servers"]["natter"]["protocol"] = json!("wss");
    }
    Json(doc)
}

/// The projection's state as this process knows it; `None` where it runs neither side.
fn projection(state: &OpsState, head: Option<u64>) -> Option<Value> {
    let (position, active, halted) = match (&state.projector, &state.applied) {
        (Some(s), _) => (
            s.position.load(Ordering::SeqCst),
            Some(s.active.load(Ordering::SeqCst)),
            s.halted.lock().expect("status lock").clone(),
        ),
        (None, Some(w)) => (w.current(), None, None),
        (None, None) => return None,
    };
    let lag = head.map(|h| h.saturating_sub(position));
    Some(json!({ "position": position, "lag": lag, "active": active, "halted": halted }))
}

/// Readiness, with what is not ready.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "ops", responses((status = 200, description = "NATS, the stream, the live tail and (for roles that need it) Postgres answer; details per check and the projection's position and lag", content_type = "application/json"), (status = 503, description = "not ready: the same details say what is not", content_type = "application/json")))]
async fn readyz(State(state): State<OpsState>) -> (StatusCode, Json<Value>) {
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let (stream_ok, head, stream) =
        match tokio::time::timeout(CHECK_TIMEOUT, state.store.head()).await {
            Ok(Ok(head)) => (
                true,
                Some(head),
                json!({ "ok": true, "last_position": head }),
            ),
            Ok(Err(e)) => (
                false,
                None,
                json!({ "ok": false, "error": format!("{e:#}") }),
            ),
            Err(_) => (false, None, json!({ "ok": false, "error": "timed out" })),
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
    let (tail_ok, tail) = match (&state.live_tail, head) {
        (None, _) => (true, json!({ "ok": true, "required": false })),
        (Some(tail), Some(head)) => tail_check(tail, head).await,
        (Some(_), None) => (
            false,
            json!({ "ok": false, "error": "the log's head cannot be read" }),
        ),
    };
    let projection = projection(&state, head);
    let halted = projection.as_ref().is_some_and(|p| !p["halted"].is_null());
    let ready = nats && stream_ok && pg_ok && tail_ok && !halted;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "unready" },
            "checks": { "nats": { "ok": nats }, "stream": stream, "postgres": pg, "live_tail": tail },
            "projection": projection,
        })),
    )
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "ops", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
async fn metrics(State(state): State<OpsState>) -> String {
    let head = state.store.head().await.ok();
    if let Some(p) = projection(&state, head) {
        metrics::gauge!("natter_projection_position")
            .set(p["position"].as_u64().unwrap_or(0) as f64);
        if let Some(lag) = p["lag"].as_u64() {
            metrics::gauge!("natter_projection_lag").set(lag as f64);
        }
        metrics::gauge!("natter_projection_halted").set(if p["halted"].is_null() {
            0.0
        } else {
            1.0
        });
    }
    if let Some(h) = head {
        metrics::gauge!("natter_stream_last_position").set(h as f64);
    }
    // Read barriers answered by a stream lookup rather than by one of this process's appends.
    metrics::counter!("natter_head_lookups_total").absolute(state.store.head_lookups());
    state.metrics.render()
}
