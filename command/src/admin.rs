//! Operators' commands (admins only: a user in `NATTER_ADMINS` or an `admin` API token):
//!
//! - `POST /admin/tokens`, `DELETE /admin/tokens/{token_id}`: API tokens for service clients,
//!   on the token's own subject (`token.issued`, then perhaps `token.revoked`). The token is
//!   shown once; the log keeps its SHA-256. Every instance folds these events through its live
//!   tail (`natter_edge::credentials`), so a revocation is enforced everywhere within moments.
//! - `POST /admin/rooms/{room_id}/broadcast`: a `system` message in any room that exists.
//! - `DELETE /admin/connections/{user_id}`: closes that user's websockets on every gateway
//!   (`natter_edge::gateways`); it appends nothing.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use natter_edge::credentials::NewApiToken;
use natter_edge::views::{MessageAnswer, MessageView, Positioned};
use natter_edge::{Admin, ApiError, ApiJson, ApiPath};
use natter_events::catalogue::{
    Event, MessageKind, MessageSent, TokenIssued, TokenRevoked, TokenRole,
};
use natter_events::room::RoomCommand;
use natter_events::{AppendError, Envelope, Expect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::idempotency::EventIds;
use crate::idempotency::{Reissue, reissue};
use crate::input::EditedContent;
use crate::rooms::run_at;

/// The longest an API token may be issued for (none given: it does not expire).
const MAX_TOKEN_SECS: i64 = 10 * 365 * 24 * 3600;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_token))
        .routes(routes!(revoke_token))
        .routes(routes!(broadcast))
        .routes(routes!(disconnect))
}

/// A new API token: the only time the token is shown.
#[derive(Serialize, ToSchema)]
struct IssuedToken {
    id: Uuid,
    /// `natter_<id>_<secret>`; stored only as a hash, so shown this once: a replay of the
    /// request's `Idempotency-Key` answers without it.
    #[schema(required = false)]
    token: String,
    name: String,
    role: TokenRole,
    expires_at: Option<DateTime<Utc>>,
    position: u64,
}

/// `{closed, gateways}`.
#[derive(Serialize, ToSchema)]
struct Disconnected {
    /// Sockets closed (4003) over every gateway that answered.
    closed: u64,
    /// Gateways that answered.
    gateways: usize,
}

#[derive(Deserialize, ToSchema)]
struct IssueToken {
    /// 1-100 characters, no control character.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// `service` (the default) or `admin`.
    role: Option<TokenRole>,
    /// 1 s to 10 years; no expiry when absent.
    #[schema(minimum = 1, maximum = 315_360_000)]
    expires_in_secs: Option<i64>,
}

/// Issue an API token for a service client.
///
/// `POST /admin/tokens`: 201 `{id, token, name, role, expires_at, position}`.
#[utoipa::path(post, path = "/admin/tokens", operation_id = "issueApiToken", tag = "admin", request_body = IssueToken, responses((status = 201, description = "issued; admins only", body = IssuedToken)), security(("login_token" = []), ("api_token" = [])))]
async fn issue_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    mut ids: EventIds,
    ApiJson(body): ApiJson<IssueToken>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_string();
    if !(1..=100).contains(&name.chars().count()) || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name must be 1-100 characters without control characters",
        ));
    }
    let now = crate::now();
    let expires_at = match body.expires_in_secs {
        None => None,
        Some(secs @ 1..=MAX_TOKEN_SECS) => Some(now + chrono::Duration::seconds(secs)),
        Some(_) => {
            return Err(ApiError::validation(format!(
                "expires_in_secs must be 1 to {MAX_TOKEN_SECS} (omit it for a token that does not expire)"
            )));
        }
    };
    let role = body.role.unwrap_or_default();
    let new = NewApiToken::generate();
    let issued = TokenIssued {
        token_id: new.id,
        name: Some(name.clone()),
        role,
        token_hash: new.hash,
        expires_at,
    };
    let envelope = Envelope::new(
        ids.next_id(),
        now,
        Some(admin.actor_id()),
        None,
        Event::TokenIssued(issued.clone()),
    );
    let position = append(&state, new.id, &envelope, Expect::LastAt(0)).await?;
    // This instance accepts it at once; the others as their tails deliver it (or on a
    // look-up of the unknown id, whichever comes first).
    state.keys.credentials().issued(&issued, now);
    let answer = IssuedToken {
        id: new.id,
        token: new.token,
        name,
        role,
        expires_at,
        position,
    };
    Ok(reissue(Reissue::Never, (StatusCode::CREATED, Json(answer))))
}

/// Revoke an API token.
///
/// `DELETE /admin/tokens/{token_id}`: 200 `{position}`; revoking a revoked token changes
/// nothing (its position is the revocation's).
#[utoipa::path(delete, path = "/admin/tokens/{token_id}", operation_id = "revokeApiToken", tag = "admin", params(("token_id" = Uuid, Path, description = "the API token id")), responses((status = 200, description = "revoked (again: nothing changes); admins only", body = Positioned)), security(("login_token" = []), ("api_token" = [])))]
async fn revoke_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    mut ids: EventIds,
    ApiPath(token_id): ApiPath<Uuid>,
) -> Result<Json<Positioned>, ApiError> {
    let subject = state.store.subjects().token(token_id);
    for _ in 0..3 {
        let history = state
            .store
            .read_subject(&subject, 0)
            .await
            .map_err(ApiError::unavailable)?;
        let mut name = None;
        let mut version = 0;
        for recorded in &history {
            version = recorded.position;
            match &recorded.envelope.event {
                Event::TokenIssued(t) => name = Some(t.name.clone()),
                Event::TokenRevoked(_) => {
                    state.keys.credentials().revoked(token_id);
                    return Ok(Json(Positioned {
                        position: recorded.position,
                    }));
                }
                _ => {}
            }
        }
        let Some(name) = name else {
            return Err(ApiError::not_found("no such API token"));
        };
        let envelope = Envelope::new(
            ids.next_id(),
            crate::now(),
            Some(admin.actor_id()),
            None,
            Event::TokenRevoked(TokenRevoked { token_id, name }),
        );
        match append(&state, token_id, &envelope, Expect::LastAt(version)).await {
            Ok(position) => {
                state.keys.credentials().revoked(token_id);
                return Ok(Json(Positioned { position }));
            }
            // Revoked concurrently: read again and answer with that revocation.
            Err(e) if e.status == StatusCode::CONFLICT => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::unavailable(anyhow::anyhow!(
        "the token's subject kept changing"
    )))
}

async fn append(
    state: &AppState,
    token_id: Uuid,
    envelope: &Envelope,
    expect: Expect<'_>,
) -> Result<u64, ApiError> {
    let subject = state.store.subjects().token(token_id);
    match state
        .store
        .append(&subject, envelope, &envelope.id.to_string(), expect)
        .await
    {
        Ok(position) => Ok(position),
        Err(AppendError::Conflict) => Err(ApiError::conflict("the API token changed concurrently")),
        Err(AppendError::Unavailable(e)) => Err(ApiError::unavailable(e)),
    }
}

#[derive(Deserialize, ToSchema)]
struct Broadcast {
    /// 1-4000 characters, no NUL.
    #[schema(min_length = 1, max_length = 4000)]
    content: String,
}

/// Post a system message in a room.
///
/// `POST /admin/rooms/{room_id}/broadcast`: 201 `{message, position}`, a `system` message
/// (no sender) that reaches the room like any other; any room that exists, private or not.
#[utoipa::path(post, path = "/admin/rooms/{room_id}/broadcast", operation_id = "broadcastToRoom", tag = "admin", params(("room_id" = Uuid, Path, description = "the room")), request_body = Broadcast, responses((status = 201, description = "a `system` message in the room; admins only", body = MessageAnswer)), security(("login_token" = []), ("api_token" = [])))]
async fn broadcast(
    State(state): State<AppState>,
    Admin(admin): Admin,
    mut ids: EventIds,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Broadcast>,
) -> Result<(StatusCode, Json<MessageAnswer>), ApiError> {
    let content = EditedContent::parse(&body.content)?.into_inner();
    let sent = MessageSent {
        message_id: ids.next_id(),
        kind: MessageKind::System,
        content,
        attachment: None,
        ..Default::default()
    };
    let now = crate::now();
    let action = RoomCommand::Broadcast(sent.clone());
    let done = run_at(&state, admin.actor_id(), &mut ids, room_id, now, action).await?;
    let message = MessageView::new(room_id, None, sent, done.position, now);
    Ok((
        StatusCode::CREATED,
        Json(MessageAnswer {
            message,
            position: done.position,
        }),
    ))
}

/// Close a user's websockets on every gateway.
///
/// `DELETE /admin/connections/{user_id}`: 200 `{closed, gateways}`, the sockets closed (4003)
/// over every gateway that answered within the deadline.
#[utoipa::path(delete, path = "/admin/connections/{user_id}", operation_id = "disconnectUser", tag = "admin", params(("user_id" = Uuid, Path, description = "the user")), responses((status = 200, description = "their sockets closed on every gateway; admins only", body = Disconnected)), security(("login_token" = []), ("api_token" = [])))]
async fn disconnect(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(user_id): ApiPath<Uuid>,
) -> Result<Json<Disconnected>, ApiError> {
    let nats = state.store.jetstream().client();
    let (closed, gateways) = tokio::time::timeout(
        Duration::from_secs(5),
        natter_edge::gateways::disconnect(&nats, state.store.subjects().prefix(), user_id),
    )
    .await
    .map_err(|_| ApiError::unavailable(anyhow::anyhow!("NATS did not take the request")))?
    .map_err(ApiError::unavailable)?;
    Ok(Json(Disconnected { closed, gateways }))
}
