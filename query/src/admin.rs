//! Operators' queries (admins only: a user in `NATTER_ADMINS` or an `admin` API token):
//!
//! - `GET /admin/stats`: users, rooms and messages from the read models, connections over
//!   every gateway, the stream's size and the projection's position and lag;
//! - `GET /admin/connections`: who is connected, over every gateway;
//! - `GET /admin/tokens`: the API tokens issued (never the tokens), from this instance's fold
//!   of the log.
//!
//! Gateways are asked over NATS at once (`natter_edge::gateways`): an answer takes that
//! module's short deadline.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use natter_edge::gateways::{self, Connected};
use natter_edge::{Admin, ApiError};
use serde_json::{Value, json};

use crate::QueryState;

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/admin/stats", get(stats))
        .route("/admin/connections", get(connections))
        .route("/admin/tokens", get(tokens))
}

async fn connected(state: &QueryState) -> Result<Connected, ApiError> {
    let nats = state.store.jetstream().client();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        gateways::connections(&nats, state.store.subjects().prefix()),
    )
    .await
    .map_err(|_| ApiError::unavailable(anyhow::anyhow!("NATS did not take the request")))?
    .map_err(ApiError::unavailable)
}

/// `GET /admin/stats`. `rooms` and `messages` leave out deleted ones; `lag` is how many
/// positions the read models trail the log's head.
async fn stats(State(state): State<QueryState>, _admin: Admin) -> Result<Json<Value>, ApiError> {
    let counts = sqlx::query_as::<_, (i64, i64, i64, i64)>(
        "SELECT (SELECT count(*) FROM users), \
                (SELECT count(*) FROM rooms WHERE NOT deleted), \
                (SELECT count(*) FROM messages WHERE NOT deleted), \
                COALESCE((SELECT position FROM projection_checkpoints WHERE projection = $1), 0)",
    )
    .bind(natter_readmodel::checkpoint::PROJECTION);
    let (stream, connected, counts) = tokio::join!(
        state.store.size(),
        connected(&state),
        counts.fetch_one(&state.pool),
    );
    let stream = stream.map_err(ApiError::unavailable)?;
    let connected = connected?;
    let (users, rooms, messages, projected) =
        counts.map_err(|e| ApiError::unavailable(e.into()))?;
    let projected = u64::try_from(projected).unwrap_or(0);
    Ok(Json(json!({
        "users": users,
        "rooms": rooms,
        "messages": messages,
        "connections": connected.total,
        "gateways": connected.gateways,
        "stream": stream,
        "projection": {
            "position": projected,
            "lag": stream.last_position.saturating_sub(projected),
        },
    })))
}

/// `GET /admin/connections`: per user, their sockets summed over gateways, most first.
async fn connections(
    State(state): State<QueryState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let connected = connected(&state).await?;
    Ok(Json(json!({
        "connections": connected.users,
        "total": connected.total,
        "gateways": connected.gateways,
        "truncated": connected.truncated,
    })))
}

/// `GET /admin/tokens`: `{tokens: [{id, name, role, created_at, expires_at, revoked}]}`,
/// newest first.
async fn tokens(State(state): State<QueryState>, _admin: Admin) -> Json<Value> {
    let tokens: Vec<Value> = state
        .keys
        .credentials()
        .api_tokens()
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "role": t.role,
                "created_at": t.issued_at,
                "expires_at": t.expires_at,
                "revoked": t.revoked,
            })
        })
        .collect();
    Json(json!({ "tokens": tokens }))
}
