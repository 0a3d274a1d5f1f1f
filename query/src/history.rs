//! History and audit, read from JetStream (not Postgres): a room's events as NDJSON, the
//! whole log for admins, and a room's state at any position or time, folded with the same
//! `evolve` as the write side. Responses stream; credentials are redacted.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use natter_edge::views::RoomView;
use natter_edge::{ApiError, ApiPath, ApiQuery, Caller};
use natter_events::RoomPart;
use natter_events::catalogue::{Role, Visibility};
use natter_events::envelope::PublicEvent;
use natter_events::history::{self, Bound, Range};
use natter_events::room::{Room, evolve};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::QueryState;
use crate::position::POSITION_HEADER;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(room_events))
        .routes(routes!(room_state))
        .routes(routes!(admin_events))
}

/// A room as it was at a point of the log.
#[derive(Serialize, ToSchema)]
struct RoomState {
    room: RoomView,
    deleted: bool,
    members: Vec<StateMember>,
    /// The position of the last event folded.
    position: u64,
}

/// A member as the log knew them then.
#[derive(Serialize, ToSchema)]
struct StateMember {
    user_id: Uuid,
    role: Role,
    joined_at: chrono::DateTime<chrono::Utc>,
}

fn bound(s: Option<&str>, name: &str) -> Result<Option<Bound>, ApiError> {
    s.map(|s| {
        s.parse()
            .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
    })
    .transpose()
}

fn check_limit(limit: Option<u64>) -> Result<Option<u64>, ApiError> {
    match limit {
        Some(0) => Err(ApiError::validation("limit must be at least 1")),
        other => Ok(other),
    }
}

/// The room folded from its `meta` events up to `until` (all of them with `None`).
async fn fold_room(
    state: &QueryState,
    room_id: Uuid,
    until: Option<Bound>,
) -> Result<(Option<Room>, u64), ApiError> {
    let subject = state.store.subjects().room(room_id, RoomPart::Meta);
    let filter = Range {
        to: until,
        ..Range::default()
    };
    let mut events = Box::pin(
        history::read(&state.store, &subject, &filter)
            .await
            .map_err(ApiError::unavailable)?,
    );
    let (mut room, mut position) = (None, 0);
    while let Some(message) = events.next().await {
        let message = message.map_err(ApiError::unavailable)?;
        position = message.position;
        if let Some(recorded) =
            natter_events::store::decode_known(message).map_err(ApiError::internal)?
        {
            room = evolve(room, &recorded.envelope);
        }
    }
    Ok((room, position))
}

/// Members and admins may read a room's history; a private room is invisible to others.
async fn authorize(state: &QueryState, caller: &Caller, room_id: Uuid) -> Result<(), ApiError> {
    let (room, _) = fold_room(state, room_id, None).await?;
    match room {
        Some(_) if caller.is_admin() => Ok(()),
        Some(r) if caller.user().is_some_and(|u| r.is_member(u.id)) => Ok(()),
        Some(r) if !r.deleted && r.visibility == Visibility::Public => Err(ApiError::forbidden(
            "only members and admins may read a room's history",
        )),
        _ => Err(ApiError::not_found("room not found")),
    }
}

/// The log's head as the request begins: the `X-Natter-Position` of a history answer (it
/// reads the log itself, so the head is what it is as current as).
async fn head(state: &QueryState) -> Result<u64, ApiError> {
    state.store.head().await.map_err(ApiError::unavailable)
}

fn with_position(mut response: Response, head: u64) -> Response {
    response
        .headers_mut()
        .insert(POSITION_HEADER, HeaderValue::from(head));
    response
}

fn ndjson(
    lines: impl futures::Stream<Item = anyhow::Result<natter_events::RawMessage>> + Send + 'static,
) -> Response {
    // Lines already read go out together: one body chunk per event would cost a write (and a
    // chunk header) per event.
    let body = lines.ready_chunks(512).map(|batch| {
        let mut chunk = Vec::with_capacity(batch.len() * 256);
        for message in batch {
            let message = message.map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            chunk.extend_from_slice(&natter_events::envelope::public_json(&message));
            chunk.push(b'\n');
        }
        Ok::<_, std::io::Error>(bytes::Bytes::from(chunk))
    });
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RoomEvents {
    /// A position or an RFC 3339 time (when the log stored the event), inclusive.
    from: Option<String>,
    /// How many events at most.
    #[param(minimum = 1)]
    limit: Option<u64>,
}

/// A room's events from the log (NDJSON).
#[utoipa::path(get, path = "/rooms/{room_id}/events", operation_id = "listRoomEvents", tag = "history", params(("room_id" = Uuid, Path, description = "the room"), RoomEvents), responses((status = 200, description = "NDJSON: one event per line, ascending; members and admins", content_type = "application/x-ndjson", body = PublicEvent)), security(("login_token" = []), ("api_token" = [])))]
async fn room_events(
    State(state): State<QueryState>,
    caller: Caller,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<RoomEvents>,
) -> Result<Response, ApiError> {
    let range = Range {
        from: bound(params.from.as_deref(), "from")?,
        limit: check_limit(params.limit)?,
        ..Range::default()
    };
    let head = head(&state).await?;
    authorize(&state, &caller, room_id).await?;
    let filter = state.store.subjects().room_events(room_id);
    let lines = history::read(&state.store, &filter, &range)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(with_position(ndjson(lines), head))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AdminEvents {
    /// A position or an RFC 3339 time, inclusive.
    from: Option<String>,
    /// A position or an RFC 3339 time, inclusive.
    to: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only this room's events.
    room: Option<Uuid>,
    /// How many events at most.
    #[param(minimum = 1)]
    limit: Option<u64>,
}

/// Read every event of the log (NDJSON).
#[utoipa::path(get, path = "/admin/events", operation_id = "listAllEvents", tag = "history", params(AdminEvents), responses((status = 200, description = "NDJSON: every event in range; admins only", content_type = "application/x-ndjson", body = PublicEvent)), security(("login_token" = []), ("api_token" = [])))]
async fn admin_events(
    State(state): State<QueryState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AdminEvents>,
) -> Result<Response, ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::forbidden("admins only"));
    }
    let range = Range {
        from: bound(params.from.as_deref(), "from")?,
        to: bound(params.to.as_deref(), "to")?,
        event_type: params.event_type,
        limit: check_limit(params.limit)?,
    };
    let filter = match params.room {
        Some(room) => state.store.subjects().room_events(room),
        None => state.store.subjects().all_events(),
    };
    let head = head(&state).await?;
    let lines = history::read(&state.store, &filter, &range)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(with_position(ndjson(lines), head))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct At {
    /// A position or an RFC 3339 time; none: now.
    at: Option<String>,
}

/// A room as it was at a position or time.
#[utoipa::path(get, path = "/rooms/{room_id}/state", operation_id = "getRoomState", tag = "history", params(("room_id" = Uuid, Path, description = "the room"), At), responses((status = 200, description = "the room folded from the log up to that point; members and admins", body = RoomState)), security(("login_token" = []), ("api_token" = [])))]
async fn room_state(
    State(state): State<QueryState>,
    caller: Caller,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<At>,
) -> Result<Response, ApiError> {
    let at = bound(params.at.as_deref(), "at")?;
    let head = head(&state).await?;
    authorize(&state, &caller, room_id).await?;
    let (room, position) = fold_room(&state, room_id, at).await?;
    let room = room.ok_or_else(|| ApiError::not_found("the room did not exist at that point"))?;
    let mut members: Vec<_> = room.members.iter().collect();
    members.sort_by_key(|(_, m)| m.order);
    let members = members
        .into_iter()
        .map(|(id, m)| StateMember {
            user_id: *id,
            role: m.role,
            joined_at: m.joined_at,
        })
        .collect();
    let body = Json(RoomState {
        room: RoomView::from(&room),
        deleted: room.deleted,
        members,
        position,
    });
    Ok(with_position(body.into_response(), head))
}
