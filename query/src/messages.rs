//! Message queries: pages of a room's history by position, and one message.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use natter_edge::{ApiError, ApiPath, ApiQuery, AuthUser};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::QueryState;
use crate::rooms::{check_limit, member_room};
use crate::rows::{MESSAGE_COLUMNS, MessageRow, db_error};

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/rooms/{room_id}/messages", get(page))
        .route("/rooms/{room_id}/messages/{message_id}", get(one))
}

#[derive(Deserialize)]
struct Page {
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<i64>,
}

/// Ascending by position. With `after`: the `limit` messages following it (and `has_more` if
/// newer ones remain); otherwise the `limit` messages before `before` (or the latest), with
/// `has_more` if older ones remain. Both together bound the page on both sides.
async fn page(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = check_limit(params.limit)?;
    if params.before.is_some_and(|b| b < 0) || params.after.is_some_and(|a| a < 0) {
        return Err(ApiError::validation(
            "before and after must be positions (0 or more)",
        ));
    }
    member_room(&state.pool, room_id, user.id).await?;
    let before = params.before.unwrap_or(i64::MAX);
    let (sql, forward) = match params.after {
        Some(_) => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages x WHERE x.room_id = $1 AND x.position > $2 \
                 AND x.position < $3 ORDER BY x.position ASC LIMIT $4"
            ),
            true,
        ),
        None => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages x WHERE x.room_id = $1 AND x.position > $2 \
                 AND x.position < $3 ORDER BY x.position DESC LIMIT $4"
            ),
            false,
        ),
    };
    let mut rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(room_id)
        .bind(params.after.unwrap_or(0))
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&state.pool)
        .await
        .map_err(db_error)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if !forward {
        rows.reverse();
    }
    let messages = rows
        .iter()
        .map(MessageRow::view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "messages": messages, "has_more": has_more })))
}

async fn one(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiPath((room_id, message_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Value>, ApiError> {
    member_room(&state.pool, room_id, user.id).await?;
    let row: Option<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages x WHERE x.room_id = $1 AND x.id = $2"
    )))
    .bind(room_id)
    .bind(message_id)
    .fetch_optional(&state.pool)
    .await
    .map_err(db_error)?;
    let row = row.ok_or_else(|| ApiError::not_found("message not found"))?;
    Ok(Json(
        serde_json::to_value(row.view()?).expect("views serialize"),
    ))
}
