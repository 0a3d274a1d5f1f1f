//! Room queries: listing and search, one room, its members, and "my rooms" with unread counts.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use natter_edge::views::{MessageView, RoomView};
use natter_edge::{ApiError, ApiPath, ApiQuery, AuthUser};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::QueryState;
use crate::rows::{MESSAGE_COLUMNS, MessageRow, ROOM_COLUMNS, RoomRow, db_error};

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_rooms))
        .routes(routes!(get_room))
        .routes(routes!(members))
        .routes(routes!(my_rooms))
}

#[derive(sqlx::FromRow)]
struct AccessRow {
    #[sqlx(flatten)]
    room: RoomRow,
    is_member: bool,
    invited: bool,
}

/// The room if `user` may see it (public, a member, or holding a usable personal invite);
/// otherwise 404, as if it did not exist. The flag says whether `user` is a member.
pub async fn visible_room(
    pool: &PgPool,
    room_id: Uuid,
    user: Uuid,
) -> Result<(RoomRow, bool), ApiError> {
    let sql = format!(
        "SELECT {ROOM_COLUMNS}, \
           EXISTS (SELECT 1 FROM members m WHERE m.room_id = r.id AND m.user_id = $2) AS is_member, \
           EXISTS (SELECT 1 FROM invites i WHERE i.room_id = r.id AND i.invitee_id = $2 AND NOT i.revoked \
                   AND i.expires_at > now() AND (i.max_uses IS NULL OR i.uses < i.max_uses)) AS invited \
         FROM rooms r WHERE r.id = $1 AND NOT r.deleted"
    );
    let row: Option<AccessRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(room_id)
        .bind(user)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    match row {
        Some(r) if r.room.visibility == "public" || r.is_member || r.invited => {
            Ok((r.room, r.is_member))
        }
        _ => Err(ApiError::not_found("room not found")),
    }
}

/// The room if `user` is a member; 403 if they can see it but are not; 404 otherwise.
pub async fn member_room(pool: &PgPool, room_id: Uuid, user: Uuid) -> Result<RoomRow, ApiError> {
    let (room, is_member) = visible_room(pool, room_id, user).await?;
    if is_member {
        Ok(room)
    } else {
        Err(ApiError::forbidden("only members may see this"))
    }
}

/// `limit`: 1-100, default 50.
pub fn check_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(50);
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::validation("limit must be 1-100"))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Scope {
    Public,
    Joined,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListRooms {
    /// `public` (the default): every public room; `joined`: the caller's rooms.
    #[param(inline)]
    scope: Option<Scope>,
    /// Matches names case-insensitively anywhere (`%` and `_` literally); up to 100 chars.
    #[param(max_length = 100)]
    q: Option<String>,
    /// 1-100, default 50.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// A `next_cursor` from the previous page.
    cursor: Option<String>,
}

/// A page of rooms, newest first.
#[derive(Serialize, ToSchema)]
struct RoomList {
    rooms: Vec<RoomView>,
    /// Absent on the last page.
    next_cursor: Option<String>,
}

/// One member of a room.
#[derive(Serialize, ToSchema)]
struct Member {
    user_id: Uuid,
    username: Option<String>,
    display_name: Option<String>,
    /// `owner` or `member`.
    role: String,
    joined_at: chrono::DateTime<chrono::Utc>,
    last_read_position: i64,
    /// Whether a gateway heard from them lately (at most 30 s old).
    online: bool,
}

/// `{members}`, in the order they joined.
#[derive(Serialize, ToSchema)]
struct Members {
    members: Vec<Member>,
}

/// The other user of a direct room.
#[derive(Serialize, Deserialize, ToSchema)]
struct OtherUser {
    id: Uuid,
    username: String,
    display_name: String,
}

/// A room of the caller's, with their unread count and the latest message.
#[derive(Serialize, ToSchema)]
struct MyRoom {
    #[serde(flatten)]
    room: RoomView,
    unread_count: i64,
    /// Messages after the read marker that mention the caller (thread replies included).
    unread_mentions: i64,
    last_read_position: i64,
    last_message: Option<MessageView>,
    /// For a direct room: the other user.
    #[serde(skip_serializing_if = "Option::is_none")]
    other_user: Option<OtherUser>,
}

/// `{rooms}`, most recently active first.
#[derive(Serialize, ToSchema)]
struct MyRooms {
    rooms: Vec<MyRoom>,
}

fn encode_cursor(created_position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("r:{created_position}"))
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("r:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::bad_request("malformed cursor"))
}

/// `LIKE` pattern matching `q` anywhere, with its own wildcards taken literally.
fn contains_pattern(q: &str) -> String {
    let escaped = q
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// List or search rooms.
#[utoipa::path(get, path = "/rooms", operation_id = "listRooms", tag = "rooms", params(ListRooms), responses((status = 200, description = "a page of rooms", body = RoomList)), security(("login_token" = [])))]
async fn list_rooms(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiQuery(params): ApiQuery<ListRooms>,
) -> Result<Json<RoomList>, ApiError> {
    let limit = check_limit(params.limit)?;
    let before = params
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .unwrap_or(i64::MAX);
    let pattern = params
        .q
        .as_deref()
        .filter(|q| !q.is_empty())
        .map(contains_pattern);
    if let Some(q) = &params.q {
        if q.chars().count() > 100 {
            return Err(ApiError::validation("q must be at most 100 characters"));
        }
        natter_edge::text::check_name("q", q)?;
    }
    let scope_filter = match params.scope.unwrap_or(Scope::Public) {
        Scope::Public => "r.visibility = 'public'",
        Scope::Joined => {
            "EXISTS (SELECT 1 FROM members m WHERE m.room_id = r.id AND m.user_id = $4)"
        }
    };
    let sql = format!(
        "SELECT {ROOM_COLUMNS} FROM rooms r \
         WHERE NOT r.deleted AND {scope_filter} AND r.created_position < $1 \
           AND ($2::text IS NULL OR r.name ILIKE $2) \
         ORDER BY r.created_position DESC LIMIT $3"
    );
    let rows: Vec<RoomRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(before)
        .bind(pattern)
        .bind(limit + 1)
        .bind(user.id)
        .fetch_all(&state.pool)
        .await
        .map_err(db_error)?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let next_cursor =
        more.then(|| encode_cursor(page.last().expect("a full page").created_position));
    let rooms = page
        .iter()
        .map(RoomRow::view)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(RoomList { rooms, next_cursor }))
}

/// A room.
#[utoipa::path(get, path = "/rooms/{room_id}", operation_id = "getRoom", tag = "rooms", params(("room_id" = Uuid, Path, description = "the room")), responses((status = 200, description = "the room (private and not a member: 404)", body = RoomView)), security(("login_token" = [])))]
async fn get_room(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<RoomView>, ApiError> {
    let (room, _) = visible_room(&state.pool, room_id, user.id).await?;
    Ok(Json(room.view()?))
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: Uuid,
    username: Option<String>,
    display_name: Option<String>,
    role: String,
    joined_at: chrono::DateTime<chrono::Utc>,
    last_read_position: i64,
}

/// A room's members.
#[utoipa::path(get, path = "/rooms/{room_id}/members", operation_id = "listMembers", tag = "rooms", params(("room_id" = Uuid, Path, description = "the room")), responses((status = 200, description = "the members; members only", body = Members)), security(("login_token" = [])))]
async fn members(
    State(state): State<QueryState>,
    user: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<Members>, ApiError> {
    member_room(&state.pool, room_id, user.id).await?;
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT m.user_id, u.username, u.display_name, m.role, m.joined_at, m.last_read_position \
         FROM members m LEFT JOIN users u ON u.id = m.user_id \
         WHERE m.room_id = $1 ORDER BY m.joined_position",
    )
    .bind(room_id)
    .fetch_all(&state.pool)
    .await
    .map_err(db_error)?;
    let members = rows
        .into_iter()
        .map(|m| Member {
            // Presence as the gateways announce it (bounded staleness: see
            // natter_edge::presence).
            online: state.presence.is_online(m.user_id),
            user_id: m.user_id,
            username: m.username,
            display_name: m.display_name,
            role: m.role,
            joined_at: m.joined_at,
            last_read_position: m.last_read_position,
        })
        .collect();
    Ok(Json(Members { members }))
}

#[derive(sqlx::FromRow)]
struct MyRoomRow {
    #[sqlx(flatten)]
    room: RoomRow,
    unread_count: i64,
    unread_mentions: i64,
    last_read_position: i64,
    last_message_position: Option<i64>,
    /// For a direct room, the other user (`{id, username, display_name}`).
    other_user: Option<sqlx::types::Json<OtherUser>>,
}

/// The caller's rooms, with unread counts.
#[utoipa::path(get, path = "/me/rooms", operation_id = "listMyRooms", tag = "rooms", responses((status = 200, description = "the caller's rooms with unread counts", body = MyRooms)), security(("login_token" = [])))]
async fn my_rooms(
    State(state): State<QueryState>,
    user: AuthUser,
) -> Result<Json<MyRooms>, ApiError> {
    let sql = format!(
        "SELECT {ROOM_COLUMNS}, m.unread_count, m.last_read_position, r.last_message_position, \
                (SELECT count(*) FROM mentions mm WHERE mm.user_id = $1 AND mm.room_id = r.id \
                   AND mm.position > GREATEST(m.last_read_position, m.joined_position)) AS unread_mentions, \
                CASE WHEN r.kind = 'direct' THEN ( \
                    SELECT json_build_object('id', u.id, 'username', u.username, \
                                             'display_name', u.display_name) \
                    FROM members o JOIN users u ON u.id = o.user_id \
                    WHERE o.room_id = r.id AND o.user_id <> $1 LIMIT 1) END AS other_user \
         FROM members m JOIN rooms r ON r.id = m.room_id AND NOT r.deleted \
         WHERE m.user_id = $1 \
         ORDER BY COALESCE(r.last_message_position, r.created_position) DESC"
    );
    let rows: Vec<MyRoomRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user.id)
        .fetch_all(&state.pool)
        .await
        .map_err(db_error)?;
    let positions: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.last_message_position)
        .collect();
    let last_messages: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages x WHERE x.position = ANY($1)"
    )))
    .bind(&positions)
    .fetch_all(&state.pool)
    .await
    .map_err(db_error)?;
    let by_position: std::collections::HashMap<i64, &MessageRow> =
        last_messages.iter().map(|m| (m.position, m)).collect();
    let mut rooms = Vec::with_capacity(rows.len());
    for row in rows {
        let last_message = row
            .last_message_position
            .and_then(|p| by_position.get(&p))
            .map(|m| m.view())
            .transpose()?;
        rooms.push(MyRoom {
            room: row.room.view()?,
            unread_count: row.unread_count,
            unread_mentions: row.unread_mentions,
            last_read_position: row.last_read_position,
            last_message,
            other_user: row.other_user.map(|o| o.0),
        });
    }
    Ok(Json(MyRooms { rooms }))
}
