//! User queries: oneself and others' public profiles.

use axum::Json;
use axum::extract::State;
use natter_edge::views::UserView;
use natter_edge::{ApiError, ApiPath, AuthUser};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::QueryState;
use crate::rows::{UserRow, db_error};

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(user))
}

async fn load(state: &QueryState, id: Uuid) -> Result<UserView, ApiError> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, username, display_name, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.pool)
            .await
            .map_err(db_error)?;
    row.map(|r| r.view())
        .ok_or_else(|| ApiError::not_found("user not found"))
}

/// The caller.
#[utoipa::path(get, path = "/me", operation_id = "getMe", tag = "users", responses((status = 200, description = "the caller", body = UserView)), security(("login_token" = [])))]
async fn me(State(state): State<QueryState>, user: AuthUser) -> Result<Json<UserView>, ApiError> {
    load(&state, user.id).await.map(Json)
}

/// A user's public profile.
#[utoipa::path(get, path = "/users/{user_id}", operation_id = "getUser", tag = "users", params(("user_id" = Uuid, Path, description = "the user")), responses((status = 200, description = "their public profile", body = UserView)), security(("login_token" = [])))]
async fn user(
    State(state): State<QueryState>,
    _caller: AuthUser,
    ApiPath(user_id): ApiPath<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    load(&state, user_id).await.map(Json)
}
