//! Message and read-marker commands: send, edit, delete, mark read.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use natter_edge::views::{MessageAnswer, MessageView, Positioned};
use natter_edge::{ApiError, ApiJson, ApiPath, AuthUser};
use natter_events::RoomPart;
use natter_events::catalogue::{Attachment, MessageKind};
use natter_events::room::RoomCommand;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::idempotency::EventIds;
use crate::input::{EditedContent, Emoji, Links, MessageBody};
use crate::rooms::{run, run_at};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(react, unreact))
        .routes(routes!(mark_read))
}

#[derive(Deserialize, ToSchema)]
struct SendMessage {
    /// Up to 4000 characters, no NUL; empty only with an attachment.
    #[serde(default)]
    #[schema(max_length = 4000)]
    content: String,
    kind: Option<MessageKind>,
    attachment: Option<Attachment>,
    /// Quote this message of the room (not deleted) in a reply.
    reply_to: Option<Uuid>,
    /// Reply inside the thread of this message of the room's main timeline (not deleted).
    thread_id: Option<Uuid>,
    /// Members of the room to mention (at most 50; anyone else: 422).
    #[schema(max_items = 50)]
    mentions: Option<Vec<Uuid>>,
}

/// Send a message.
#[utoipa::path(post, path = "/rooms/{room_id}/messages", operation_id = "sendMessage", tag = "messages", params(("room_id" = Uuid, Path, description = "the room")), request_body = SendMessage, responses((status = 201, description = "sent; members only", body = MessageAnswer), (status = 429, description = "rate limited (`Retry-After`)", body = natter_edge::error::ErrorBody)), security(("login_token" = [])))]
async fn send_message(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<MessageAnswer>), ApiError> {
    let links = Links::parse(body.reply_to, body.thread_id, body.mentions)?;
    let body = MessageBody::parse(body.kind, &body.content, body.attachment)?;
    if let Some(limiter) = &state.limiter {
        limiter
            .check(user.id, room_id)
            .map_err(ApiError::rate_limited)?;
    }
    let sent = body.into_message(ids.next_id(), links);
    let now = crate::now();
    let action = RoomCommand::SendMessage(sent.clone());
    // A send is never already satisfied: its position is the message's.
    let done = run_at(&state, user.id, &mut ids, room_id, now, action).await?;
    let message = MessageView::new(room_id, Some(user.id), sent, done.position, now);
    Ok((
        StatusCode::CREATED,
        Json(MessageAnswer {
            message,
            position: done.position,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
struct EditMessage {
    /// 1-4000 characters, no NUL.
    #[schema(min_length = 1, max_length = 4000)]
    content: String,
}

/// Edit a message.
#[utoipa::path(patch, path = "/rooms/{room_id}/messages/{message_id}", operation_id = "editMessage", tag = "messages", params(("room_id" = Uuid, Path, description = "the room"), ("message_id" = Uuid, Path, description = "the message")), request_body = EditMessage, responses((status = 200, description = "edited; sender only", body = MessageAnswer)), security(("login_token" = [])))]
async fn edit_message(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath((room_id, message_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<EditMessage>,
) -> Result<Json<MessageAnswer>, ApiError> {
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
            let view = MessageView::folded(room?, message_id, content)?;
            Some(MessageView {
                edited_at: Some(now),
                ..view
            })
        })
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an edited message vanished")))?;
    Ok(Json(MessageAnswer {
        message,
        position: done.position,
    }))
}

/// Delete a message.
#[utoipa::path(delete, path = "/rooms/{room_id}/messages/{message_id}", operation_id = "deleteMessage", tag = "messages", params(("room_id" = Uuid, Path, description = "the room"), ("message_id" = Uuid, Path, description = "the message")), responses((status = 200, description = "deleted (again: nothing changes); sender or owner", body = Positioned)), security(("login_token" = [])))]
async fn delete_message(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath((room_id, message_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Positioned>, ApiError> {
    let action = RoomCommand::DeleteMessage { message_id };
    positioned(run(&state, user.id, &mut ids, room_id, action).await)
}

/// React to a message.
#[utoipa::path(put, path = "/rooms/{room_id}/messages/{message_id}/reactions/{emoji}", operation_id = "addReaction", tag = "messages", params(("room_id" = Uuid, Path, description = "the room"), ("message_id" = Uuid, Path, description = "the message"), ("emoji" = String, Path, description = "one emoji, or a `:short_name:` of 1-32 characters of `a-z 0-9 _ + -`")), responses((status = 200, description = "the caller reacts with it (reacting again changes nothing); members only", body = Positioned), (status = 429, description = "reacting too fast (`Retry-After`)", body = natter_edge::error::ErrorBody)), security(("login_token" = [])))]
async fn react(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath((room_id, message_id, emoji)): ApiPath<(Uuid, Uuid, String)>,
) -> Result<Json<Positioned>, ApiError> {
    let emoji = Emoji::parse(&emoji)?.into_inner();
    let action = RoomCommand::React { message_id, emoji };
    reaction(&state, user.id, &mut ids, room_id, action).await
}

/// Take back a reaction.
#[utoipa::path(delete, path = "/rooms/{room_id}/messages/{message_id}/reactions/{emoji}", operation_id = "removeReaction", tag = "messages", params(("room_id" = Uuid, Path, description = "the room"), ("message_id" = Uuid, Path, description = "the message"), ("emoji" = String, Path, description = "the emoji reacted with")), responses((status = 200, description = "the caller's reaction is gone (or never was); members only", body = Positioned), (status = 429, description = "reacting too fast (`Retry-After`)", body = natter_edge::error::ErrorBody)), security(("login_token" = [])))]
async fn unreact(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath((room_id, message_id, emoji)): ApiPath<(Uuid, Uuid, String)>,
) -> Result<Json<Positioned>, ApiError> {
    let emoji = Emoji::parse(&emoji)?.into_inner();
    let action = RoomCommand::Unreact { message_id, emoji };
    reaction(&state, user.id, &mut ids, room_id, action).await
}

/// Runs a reaction's command, within the reactions' own rate limit (see `ratelimit`).
async fn reaction(
    state: &AppState,
    user: Uuid,
    ids: &mut EventIds,
    room_id: Uuid,
    action: RoomCommand,
) -> Result<Json<Positioned>, ApiError> {
    if let Some(limiter) = &state.limiter {
        limiter
            .check_reaction(user, room_id)
            .map_err(ApiError::rate_limited)?;
    }
    positioned(run(state, user, ids, room_id, action).await)
}

/// `{position}` of what a command did.
fn positioned(
    done: Result<crate::execute::Executed, ApiError>,
) -> Result<Json<Positioned>, ApiError> {
    Ok(Json(Positioned {
        position: done?.position,
    }))
}

#[derive(Deserialize, ToSchema)]
struct MarkRead {
    /// A position in the room; a marker never moves backwards.
    #[schema(minimum = 0)]
    up_to_position: u64,
}

/// Move the caller's read marker.
#[utoipa::path(post, path = "/rooms/{room_id}/read", operation_id = "markRead", tag = "messages", params(("room_id" = Uuid, Path, description = "the room")), request_body = MarkRead, responses((status = 200, description = "the marker is at least there (it never moves backwards)", body = Positioned)), security(("login_token" = [])))]
async fn mark_read(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<MarkRead>,
) -> Result<Json<Positioned>, ApiError> {
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
    positioned(run(&state, user.id, &mut ids, room_id, action).await)
}
