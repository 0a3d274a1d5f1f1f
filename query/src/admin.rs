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

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use natter_edge::gateways::{self, Connected, UserConnections};
use natter_edge::{Admin, ApiError};
use natter_events::catalogue::TokenRole;
use natter_events::store::StreamSize;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(connections))
        .routes(routes!(tokens))
}

/// `GET /admin/stats`.
#[derive(Serialize, ToSchema)]
struct Stats {
    users: i64,
    /// Rooms not deleted.
    rooms: i64,
    /// Messages not deleted.
    messages: i64,
    /// Open sockets over every gateway that answered.
    connections: u64,
    /// Gateways that answered.
    gateways: usize,
    stream: StreamSize,
    projection: Projection,
}

/// How far the read models are.
#[derive(Serialize, ToSchema)]
struct Projection {
    position: u64,
    /// Positions the read models trail the log's head.
    lag: u64,
}

/// `GET /admin/connections`.
#[derive(Serialize, ToSchema)]
struct Connections {
    /// Per user, summed over gateways, most sockets first.
    connections: Vec<UserConnections>,
    /// Open sockets in all.
    total: u64,
    /// Gateways that answered.
    gateways: usize,
    /// Whether a gateway left users out (each lists at most 5,000).
    truncated: bool,
}

/// An API token as the log describes it (never the token itself).
#[derive(Serialize, ToSchema)]
struct ApiTokenView {
    id: Uuid,
    name: String,
    role: TokenRole,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
}

/// `GET /admin/tokens`.
#[derive(Serialize, ToSchema)]
struct Tokens {
    tokens: Vec<ApiTokenView>,
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

/// Counts, the stream and the projection's lag.
///
/// `GET /admin/stats`. `rooms` and `messages` leave out deleted ones; `lag` is how many
/// positions the read models trail the log's head.
#[utoipa::path(get, path = "/admin/stats", operation_id = "getStats", tag = "admin", responses((status = 200, description = "admins only", body = Stats)), security(("login_token" = []), ("api_token" = [])))]
async fn stats(State(state): State<QueryState>, _admin: Admin) -> Result<Json<Stats>, ApiError> {
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
    Ok(Json(Stats {
        users,
        rooms,
        messages,
        connections: connected.total,
        gateways: connected.gateways,
        stream,
        projection: Projection {
            position: projected,
            lag: stream.last_position.saturating_sub(projected),
        },
    }))
}

/// List who is connected, over every gateway.
///
/// `GET /admin/connections`: per user, their sockets summed over gateways, most first.
#[utoipa::path(get, path = "/admin/connections", operation_id = "listConnections", tag = "admin", responses((status = 200, description = "who is connected, over every gateway; admins only", body = Connections)), security(("login_token" = []), ("api_token" = [])))]
async fn connections(
    State(state): State<QueryState>,
    _admin: Admin,
) -> Result<Json<Connections>, ApiError> {
    let connected = connected(&state).await?;
    Ok(Json(Connections {
        connections: connected.users,
        total: connected.total,
        gateways: connected.gateways,
        truncated: connected.truncated,
    }))
}

/// List API tokens.
///
/// `GET /admin/tokens`: `{tokens: [{id, name, role, created_at, expires_at, revoked}]}`,
/// newest first.
#[utoipa::path(get, path = "/admin/tokens", operation_id = "listApiTokens", tag = "admin", responses((status = 200, description = "the API tokens issued, newest first; admins only", body = Tokens)), security(("login_token" = []), ("api_token" = [])))]
async fn tokens(State(state): State<QueryState>, _admin: Admin) -> Json<Tokens> {
    let tokens = state
        .keys
        .credentials()
        .api_tokens()
        .into_iter()
        .map(|t| ApiTokenView {
            id: t.id,
            name: t.name,
            role: t.role,
            created_at: t.issued_at,
            expires_at: t.expires_at,
            revoked: t.revoked,
        })
        .collect();
    Json(Tokens { tokens })
}
