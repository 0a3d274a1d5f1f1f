//! App-managed users: an app that keeps its own accounts creates natter users with its API
//! token (`POST /users`) and mints their login tokens (`POST /users/{user_id}/tokens`). Such
//! a user has no password, so cannot log in with one; their tokens are ordinary login tokens
//! (role `user`, whatever `NATTER_ADMINS` says) that outlive the API token that minted them.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, TimeZone, Utc};
use natter_edge::views::SessionAnswer;
use natter_edge::{ApiError, ApiJson, ApiPath, OptionalJson, Service, UserRole};
use natter_events::user::SignIn;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::directory::Entry;
use crate::idempotency::{EventIds, Reissue, reissue};
use crate::users::{create_user, new_user_names, session};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(mint))
}

#[derive(Deserialize, ToSchema)]
struct CreateUser {
    /// 3-32 characters of `a-z 0-9 _ -`, unique among all users.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_-]{3,32}$")]
    username: String,
    /// 1-64 characters; the username when absent.
    #[schema(min_length = 1, max_length = 64)]
    display_name: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
struct Mint {
    /// 1 s up to the configured login-token lifetime (the default).
    #[schema(minimum = 1)]
    expires_in_secs: Option<i64>,
}

/// A login token minted for an app-managed user.
#[derive(Serialize, ToSchema)]
struct MintedToken {
    token: String,
    expires_at: DateTime<Utc>,
    user_id: Uuid,
}

/// Create an app-managed user.
///
/// Create a user the calling app manages (no password), with a login token for them.
#[utoipa::path(post, path = "/users", operation_id = "createUser", tag = "service clients", request_body = CreateUser,
    responses((status = 201, description = "created", body = SessionAnswer)),
    security(("api_token" = [])))]
async fn create(
    State(state): State<AppState>,
    service: Service,
    mut ids: EventIds,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<Response, ApiError> {
    let (username, display_name) = new_user_names(&body.username, body.display_name)?;
    let user_id = ids.next_id();
    let (user, position) = create_user(
        &state,
        &mut ids,
        user_id,
        &username,
        &display_name,
        SignIn::App {
            service_token_id: service.token_id,
        },
        service.token_id,
    )
    .await?;
    let (token, _) =
        state
            .keys
            .issue_for(user.id, &user.username, UserRole::User, state.keys.ttl())?;
    Ok(session(StatusCode::CREATED, &user, token, Some(position)))
}

/// Mint a login token for an app-managed user.
///
/// `POST /users/{user_id}/tokens`: another login token for an app-managed user, valid for
/// `expires_in_secs` (1 s up to the configured login-token lifetime, which is the default).
/// A user who signs in with a password is not the app's to act for: `403`.
#[utoipa::path(post, path = "/users/{user_id}/tokens", operation_id = "mintUserToken", tag = "service clients",
    params(("user_id" = Uuid, Path, description = "an app-managed user")),
    request_body(content = Mint, description = "optional"),
    responses((status = 201, description = "minted", body = MintedToken)),
    security(("api_token" = [])))]
async fn mint(
    State(state): State<AppState>,
    _service: Service,
    ApiPath(user_id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<Mint>,
) -> Result<Response, ApiError> {
    let longest = state.keys.ttl();
    let lifetime = match body.expires_in_secs {
        None => longest,
        Some(secs) if secs >= 1 && secs as u64 <= longest.as_secs() => {
            Duration::from_secs(secs as u64)
        }
        Some(_) => {
            return Err(ApiError::validation(format!(
                "expires_in_secs must be 1 to {}",
                longest.as_secs()
            )));
        }
    };
    let entry = match state.directory.get(user_id) {
        Some(entry) => entry,
        None => {
            // Perhaps created through another instance a moment ago.
            state.rooms.barrier().await.map_err(ApiError::unavailable)?;
            state
                .directory
                .get(user_id)
                .ok_or_else(|| ApiError::not_found("user not found"))?
        }
    };
    let Entry::AppManaged(username) = entry else {
        return Err(ApiError::forbidden(
            "this user signs in with a password; a service mints tokens only for the users it created",
        ));
    };
    let (token, exp) = state
        .keys
        .issue_for(user_id, &username, UserRole::User, lifetime)?;
    let expires_at = Utc
        .timestamp_opt(exp, 0)
        .single()
        .ok_or_else(|| ApiError::validation("expiry out of range"))?;
    let how = Reissue::Until {
        user_id,
        username: username.to_string(),
        until: expires_at,
    };
    let answer = MintedToken {
        token,
        expires_at,
        user_id,
    };
    Ok(reissue(how, (StatusCode::CREATED, Json(answer))))
}
