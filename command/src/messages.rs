//! Message and read-marker commands: send, edit, delete, mark read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{patch, post};
use axum::{Json, Router};
use natter_edge::views::MessageView;
use natter_edge::{ApiError, ApiJson, ApiPath, AuthUser};
use natter_events::RoomPart;
use natter_events::catalogue::{Attachment, MessageKind, MessageSent};
use natter_events::room::RoomCommand;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::idempotency::Ids;
use crate::input::{EditedContent, MessageBody};
use crate::rooms::{run, run_at};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms/{room_id}/messages", post(send_message))
        .route(
            "/rooms/{room_id}/messages/{message_id}",
            patch(edit_message).delete(delete_message),
        )
        .route("/rooms/{room_id}/read", post(mark_read))
}

#[derive(Deserialize)]
struct SendMessage {
    #[serde(default)]
    content: String,
    kind: Option<MessageKind>,
    attachment: Option<Attachment>,
}

async fn send_message(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = MessageBody::parse(body.kind, &body.content, body.attachment)?;
    if let Some(limiter) = &state.limiter {
        limiter
            .check(user.id, room_id)
            .map_err(ApiError::rate_limited)?;
    }
    let sent = body.into_message(ids.next_id());
    let now = crate::now();
    let action = RoomCommand::SendMessage(sent.clone());
    // A send is never already satisfied: its position is the message's.
    let done = run_at(&state, user.id, &mut ids, room_id, now, action).await?;
    let message = MessageView::new(room_id, Some(user.id), sent, done.position, now);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "message": message, "position": done.position })),
    ))
}

#[derive(Deserialize)]
struct EditMessage {
    content: String,
}

async fn edit_message(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath((room_id, message_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<EditMessage>,
) -> Result<Json<Value>, ApiError> {
    let content = EditedContent::parse(&body.content)?.into_inner();
    let now = crate::now();
    let action = RoomCommand::EditMessage {
        message_id,
        content: content.clone(),
    };
    let done = run_at(&state, user.id, &mut ids, room_id, now, action).await?;
    let message = done
        .entry
        .with_room(RoomPart::Msg, |room, _| {
            let m = room?.messages.get(&message_id)?;
            let sent = MessageSent {
                message_id,
                kind: m.kind,
                content,
                attachment: m.attachment.clone(),
            };
            Some(MessageView {
                edited_at: Some(now),
                ..MessageView::new(room_id, m.sender_id, sent, m.position, m.created_at)
            })
        })
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an edited message vanished")))?;
    Ok(Json(
        json!({ "message": message, "position": done.position }),
    ))
}

async fn delete_message(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath((room_id, message_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Value>, ApiError> {
    let action = RoomCommand::DeleteMessage { message_id };
    let done = run(&state, user.id, &mut ids, room_id, action).await?;
    Ok(Json(json!({ "position": done.position })))
}

#[derive(Deserialize)]
struct MarkRead {
    up_to_position: u64,
}

async fn mark_read(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<MarkRead>,
) -> Result<Json<Value>, ApiError> {
    let up_to = body.up_to_position;
    if up_to == 0 {
        return Err(ApiError::validation(
            "up_to_position must be a position of the log (1 or more)",
        ));
    }
    // Markers may not point past the end of the log; ask the stream only when the live
    // consumer has not yet seen that far.
    if up_to > state.rooms.last_seen()
        && up_to > state.store.head().await.map_err(ApiError::unavailable)?
    {
        return Err(ApiError::validation(
            "up_to_position is beyond the end of the log",
        ));
    }
    let action = RoomCommand::MarkRead {
        up_to_position: up_to,
    };
    let done = run(&state, user.id, &mut ids, room_id, action).await?;
    Ok(Json(json!({ "position": done.position })))
}
