//! User queries: oneself and others' public profiles.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use natter_edge::views::UserView;
use natter_edge::{ApiError, ApiPath, AuthUser};
use uuid::Uuid;

use crate::QueryState;
use crate::rows::{UserRow, db_error};

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/me", get(me))
        .route("/users/{user_id}", get(user))
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

async fn me(State(state): State<QueryState>, user: AuthUser) -> Result<Json<UserView>, ApiError> {
    load(&state, user.id).await.map(Json)
}

async fn user(
    State(state): State<QueryState>,
    _caller: AuthUser,
    ApiPath(user_id): ApiPath<Uuid>,
) -> Result<Json<UserView>, ApiError> {
    load(&state, user_id).await.map(Json)
}
