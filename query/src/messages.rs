//! Message queries: pages of a room's history by position, and one message.

use axum::Json;
use axum::extract::State;
use natter_edge::views::MessageView;
use natter_edge::{ApiError, ApiPath, ApiQuery, AuthUser};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::QueryState;
use crate::rooms::{check_limit, member_room};
use crate::rows::{MESSAGE_COLUMNS, MessageRow, db_error};

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(one))
        .routes(routes!(my_mentions))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Messages before this position (none: the latest).
    before: Option<i64>,
    /// Messages after this position, forward.
    after: Option<i64>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Page this thread (the replies to this root message) instead of the main timeline.
    thread_id: Option<Uuid>,
}

/// A page of messages, ascending by position.
#[derive(Serialize, ToSchema)]
struct MessagePage {
    messages: Vec<MessageView>,
    /// Whether more lie in the direction paged.
    has_more: bool,
}

impl MessagePage {
    /// The page of up to `limit` of `rows` (fetched one over, to know whether more remain),
    /// reversed when they were fetched newest first.
    fn of(mut rows: Vec<MessageRow>, limit: i64, reverse: bool) -> Result<Self, ApiError> {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        if reverse {
            rows.reverse();
        }
        let messages = rows
            .iter()
            .map(MessageRow::view)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MessagePage { messages, has_more })
    }
}

/// Page a room's messages or a thread.
///
/// Ascending by position. With `after`: the `limit` messages following it (and `has_more` if
/// newer ones remain); otherwise the `limit` messages before `before` (or the latest), with
/// `has_more` if older ones remain. Both together bound the page on both sides. Without
/// `thread_id` the main timeline, which leaves thread replies out; with it, that thread's
/// replies (its root is `GET /rooms/{room_id}/messages/{thread_id}`).
#[utoipa::path(get, path = "/rooms/{room_id}/messages", operation_id = "listMessages", tag = "messages", params(("room_id" = Uuid, Path, description = "the room"), Page), responses((status = 200, description = "a page; members only", body = MessagePage)), security(("login_token" = [])))]
async fn page(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<Page>,
) -> Result<Json<MessagePage>, ApiError> {
    let limit = check_limit(params.limit)?;
    if params.before.is_some_and(|b| b < 0) || params.after.is_some_and(|a| a < 0) {
        return Err(ApiError::validation(
            "before and after must be positions (0 or more)",
        ));
    }
    member_room(&state.pool, room_id, user.id).await?;
    let before = params.before.unwrap_or(i64::MAX);
    if let Some(root) = params.thread_id {
        let found: Option<(bool,)> =
            sqlx::query_as("SELECT thread_id IS NULL FROM messages WHERE room_id = $1 AND id = $2")
                .bind(room_id)
                .bind(root)
                .fetch_optional(&state.pool)
                .await
                .map_err(db_error)?;
        if found != Some((true,)) {
            return Err(ApiError::not_found("thread not found"));
        }
    }
    // `$5`: the thread, or none for the main timeline; each form has its own index.
    let which = match params.thread_id {
        Some(_) => "x.thread_id = $5",
        None => "x.thread_id IS NULL AND $5::uuid IS NULL",
    };
    let forward = params.after.is_some();
    let order = if forward { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages x WHERE x.room_id = $1 AND {which} \
         AND x.position > $2 AND x.position < $3 ORDER BY x.position {order} LIMIT $4"
    );
    let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(room_id)
        .bind(params.after.unwrap_or(0))
        .bind(before)
        .bind(limit + 1)
        .bind(params.thread_id)
        .fetch_all(&state.pool)
        .await
        .map_err(db_error)?;
    MessagePage::of(rows, limit, !forward).map(Json)
}

/// A message.
#[utoipa::path(get, path = "/rooms/{room_id}/messages/{message_id}", operation_id = "getMessage", tag = "messages", params(("room_id" = Uuid, Path, description = "the room"), ("message_id" = Uuid, Path, description = "the message")), responses((status = 200, description = "the message; members only", body = MessageView)), security(("login_token" = [])))]
async fn one(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiPath((room_id, message_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<MessageView>, ApiError> {
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
    Ok(Json(row.view()?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MentionsPage {
    /// Mentions before this position (none: the latest).
    before: Option<i64>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// Messages that mention the caller.
///
/// Newest first: messages that mention the caller, in the rooms the caller is in now (a room
/// left takes its mentions with it, a room joined again brings them back, as its history;
/// a deleted message is no mention), `has_more` if older ones remain.
#[utoipa::path(get, path = "/me/mentions", operation_id = "listMyMentions", tag = "messages", params(MentionsPage), responses((status = 200, description = "messages that mention the caller, newest first", body = MessagePage)), security(("login_token" = [])))]
async fn my_mentions(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiQuery(params): ApiQuery<MentionsPage>,
) -> Result<Json<MessagePage>, ApiError> {
    let limit = check_limit(params.limit)?;
    if params.before.is_some_and(|b| b < 0) {
        return Err(ApiError::validation(
            "before must be a position (0 or more)",
        ));
    }
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM mentions mm \
         JOIN members me ON me.room_id = mm.room_id AND me.user_id = mm.user_id \
         JOIN messages x ON x.id = mm.message_id \
         WHERE mm.user_id = $1 AND mm.position < $2 \
         ORDER BY mm.position DESC LIMIT $3"
    );
    let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user.id)
        .bind(params.before.unwrap_or(i64::MAX))
        .bind(limit + 1)
        .fetch_all(&state.pool)
        .await
        .map_err(db_error)?;
    MessagePage::of(rows, limit, false).map(Json)
}
