//! Room commands: creation, the owner's controls, membership and invites. Messages and read
//! markers are in `messages.rs`, direct and pair rooms in `one_to_one.rs`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use natter_edge::credentials::token_hash;
use natter_edge::views::{InviteAnswer, InviteView, Positioned, RoomAnswer, RoomView};
use natter_edge::{ApiError, ApiJson, ApiPath, AuthUser, OptionalJson};
use natter_events::RoomPart;
use natter_events::catalogue::{RoomKind, Visibility};
use natter_events::room::{Command, RoomCommand};
use rand::RngCore;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::execute::{Executed, execute};
use crate::idempotency::EventIds;
use crate::input::RoomName;

pub const DEFAULT_MAX_MEMBERS: u32 = 1_000;
pub const MAX_MEMBERS_LIMIT: u32 = 100_000;
const DEFAULT_INVITE_SECS: i64 = 7 * 24 * 3600;
const MAX_INVITE_SECS: i64 = 30 * 24 * 3600;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room))
        .routes(routes!(update_room, delete_room))
        .routes(routes!(remove_member))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(create_invite))
        .routes(routes!(revoke_invite))
        .routes(routes!(accept_invite))
}

/// Runs `action` by `actor` on the room at `now`, with the next of `ids` as the event id.
pub(crate) async fn run_at(
    state: &AppState,
    actor: Uuid,
    ids: &mut EventIds,
    room_id: Uuid,
    now: DateTime<Utc>,
    action: RoomCommand,
) -> Result<Executed, ApiError> {
    let command = Command { actor, now, action };
    Ok(execute(state, room_id, command, ids.next_id()).await?)
}

/// [`run_at`] now.
pub(crate) async fn run(
    state: &AppState,
    actor: Uuid,
    ids: &mut EventIds,
    room_id: Uuid,
    action: RoomCommand,
) -> Result<Executed, ApiError> {
    run_at(state, actor, ids, room_id, crate::now(), action).await
}

pub(crate) fn room_view(done: &Executed) -> Result<RoomView, ApiError> {
    done.entry
        .with_room(RoomPart::Meta, |room, _| room.map(RoomView::from))
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a room vanished after a command")))
}

pub(crate) fn room_response(done: Executed) -> Result<Json<RoomAnswer>, ApiError> {
    Ok(Json(RoomAnswer {
        room: room_view(&done)?,
        position: done.position,
    }))
}

#[derive(Deserialize, ToSchema)]
struct CreateRoom {
    /// 1-100 characters (trimmed), no control character.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// `public` (the default) or `private`.
    visibility: Option<Visibility>,
    /// 2-100000 (default 1000).
    #[schema(minimum = 2, maximum = 100_000)]
    max_members: Option<u32>,
}

/// Create a room.
#[utoipa::path(post, path = "/rooms", operation_id = "createRoom", tag = "rooms", request_body = CreateRoom, responses((status = 201, description = "created; the caller is its owner", body = RoomAnswer)), security(("login_token" = [])))]
async fn create_room(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiJson(body): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<RoomAnswer>), ApiError> {
    let name = RoomName::parse(&body.name)?;
    let max_members = check_max_members(body.max_members.unwrap_or(DEFAULT_MAX_MEMBERS))?;
    let action = RoomCommand::Create {
        name: name.into_inner(),
        visibility: body.visibility.unwrap_or(Visibility::Public),
        kind: RoomKind::Group,
        max_members,
    };
    let room_id = ids.next_id();
    let done = run(&state, user.id, &mut ids, room_id, action).await?;
    Ok((StatusCode::CREATED, room_response(done)?))
}

/// Checks `max_members` as `POST /rooms` and `PATCH /rooms/{id}` take it.
fn check_max_members(max_members: u32) -> Result<u32, ApiError> {
    if !(2..=MAX_MEMBERS_LIMIT).contains(&max_members) {
        return Err(ApiError::validation(format!(
            "max_members must be 2-{MAX_MEMBERS_LIMIT}"
        )));
    }
    Ok(max_members)
}

#[derive(Deserialize, ToSchema)]
struct UpdateRoom {
    /// 1-100 characters (trimmed), no control character.
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    visibility: Option<Visibility>,
    /// 2-100000, not below the room's member count.
    #[schema(minimum = 2, maximum = 100_000)]
    max_members: Option<u32>,
}

/// Rename a room or change its settings.
#[utoipa::path(patch, path = "/rooms/{room_id}", operation_id = "updateRoom", tag = "rooms", params(("room_id" = Uuid, Path, description = "the room")), request_body = UpdateRoom, responses((status = 200, description = "updated (only what changed); owner only", body = RoomAnswer)), security(("login_token" = [])))]
async fn update_room(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateRoom>,
) -> Result<Json<RoomAnswer>, ApiError> {
    let action = RoomCommand::Update {
        name: body
            .name
            .as_deref()
            .map(RoomName::parse)
            .transpose()?
            .map(RoomName::into_inner),
        visibility: body.visibility,
        max_members: body.max_members.map(check_max_members).transpose()?,
    };
    let done = run(&state, user.id, &mut ids, room_id, action).await?;
    room_response(done)
}

/// Delete a room.
#[utoipa::path(delete, path = "/rooms/{room_id}", operation_id = "deleteRoom", tag = "rooms", params(("room_id" = Uuid, Path, description = "the room")), responses((status = 200, description = "deleted; owner only", body = Positioned)), security(("login_token" = [])))]
async fn delete_room(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<Positioned>, ApiError> {
    let done = run(&state, user.id, &mut ids, room_id, RoomCommand::Delete).await?;
    Ok(Json(Positioned {
        position: done.position,
    }))
}

/// Remove a member from a room.
#[utoipa::path(delete, path = "/rooms/{room_id}/members/{user_id}", operation_id = "removeMember", tag = "rooms", params(("room_id" = Uuid, Path, description = "the room"), ("user_id" = Uuid, Path, description = "the member")), responses((status = 200, description = "removed; owner only", body = Positioned)), security(("login_token" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath((room_id, member)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Positioned>, ApiError> {
    if member == user.id {
        return Err(ApiError::validation(
            "an owner cannot remove themself; leave the room instead",
        ));
    }
    let action = RoomCommand::RemoveMember { user_id: member };
    let done = run(&state, user.id, &mut ids, room_id, action).await?;
    Ok(Json(Positioned {
        position: done.position,
    }))
}

/// Join a room.
#[utoipa::path(post, path = "/rooms/{room_id}/join", operation_id = "joinRoom", tag = "rooms", params(("room_id" = Uuid, Path, description = "the room")), responses((status = 200, description = "a member (already one: nothing changes)", body = RoomAnswer)), security(("login_token" = [])))]
async fn join(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<RoomAnswer>, ApiError> {
    let done = run(&state, user.id, &mut ids, room_id, RoomCommand::Join).await?;
    room_response(done)
}

/// Leave a room.
#[utoipa::path(post, path = "/rooms/{room_id}/leave", operation_id = "leaveRoom", tag = "rooms", params(("room_id" = Uuid, Path, description = "the room")), responses((status = 200, description = "left", body = Positioned)), security(("login_token" = [])))]
async fn leave(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<Positioned>, ApiError> {
    let done = run(&state, user.id, &mut ids, room_id, RoomCommand::Leave).await?;
    Ok(Json(Positioned {
        position: done.position,
    }))
}

#[derive(Deserialize, Default, ToSchema)]
struct CreateInvite {
    /// For this user only (then one use by default); without it, a link anyone may accept.
    user_id: Option<Uuid>,
    /// 1 s to 30 days (default 7 days).
    #[schema(minimum = 1, maximum = 2_592_000)]
    expires_in_secs: Option<i64>,
    /// 1-100000; unlimited when absent (one for a personal invite).
    #[schema(minimum = 1, maximum = 100_000)]
    max_uses: Option<u32>,
}

/// An invite token names its room (so accepting needs nothing else) and carries 192 random
/// bits; only its SHA-256 is stored.
fn new_token(room_id: Uuid) -> String {
    let mut bytes = [0u8; 40];
    bytes[..16].copy_from_slice(room_id.as_bytes());
    rand::rng().fill_bytes(&mut bytes[16..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The room a token belongs to and the token's hash; `None` for anything that is not a token.
fn parse_token(token: &str) -> Option<(Uuid, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() != 40 {
        return None;
    }
    let room_id = Uuid::from_slice(&bytes[..16]).ok()?;
    Some((room_id, token_hash(token)))
}

/// Invite someone to a room.
#[utoipa::path(post, path = "/rooms/{room_id}/invites", operation_id = "createInvite", tag = "invites", params(("room_id" = Uuid, Path, description = "the room")), request_body(content = CreateInvite, description = "optional"), responses((status = 201, description = "created; owner only; the token is shown once", body = InviteAnswer)), security(("login_token" = [])))]
async fn create_invite(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(room_id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<CreateInvite>,
) -> Result<(StatusCode, Json<InviteAnswer>), ApiError> {
    let secs = body.expires_in_secs.unwrap_or(DEFAULT_INVITE_SECS);
    if !(1..=MAX_INVITE_SECS).contains(&secs) {
        return Err(ApiError::validation(format!(
            "expires_in_secs must be 1-{MAX_INVITE_SECS}"
        )));
    }
    // A personal invite is for one use unless said otherwise; a link is unlimited.
    let max_uses = body.max_uses.or(body.user_id.map(|_| 1));
    if max_uses.is_some_and(|m| !(1..=MAX_MEMBERS_LIMIT).contains(&m)) {
        return Err(ApiError::validation(format!(
            "max_uses must be 1-{MAX_MEMBERS_LIMIT}"
        )));
    }
    if body.user_id == Some(user.id) {
        return Err(ApiError::validation("you cannot invite yourself"));
    }
    let token = new_token(room_id);
    let now = crate::now();
    let expires_at = now + Duration::seconds(secs);
    let action = RoomCommand::CreateInvite {
        invite_id: ids.next_id(),
        token_hash: token_hash(&token),
        invitee_id: body.user_id,
        expires_at,
        max_uses,
    };
    let done = run_at(&state, user.id, &mut ids, room_id, now, action).await?;
    let invite = InviteView {
        token,
        room_id,
        invitee_id: body.user_id,
        expires_at,
        max_uses,
        uses: 0,
    };
    Ok((
        StatusCode::CREATED,
        Json(InviteAnswer {
            invite,
            position: done.position,
        }),
    ))
}

/// Revoke an invite.
#[utoipa::path(delete, path = "/rooms/{room_id}/invites/{token}", operation_id = "revokeInvite", tag = "invites", params(("room_id" = Uuid, Path, description = "the room"), ("token" = String, Path, description = "the invite token")), responses((status = 200, description = "revoked; owner only", body = Positioned)), security(("login_token" = [])))]
async fn revoke_invite(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath((room_id, token)): ApiPath<(Uuid, String)>,
) -> Result<Json<Positioned>, ApiError> {
    let (_, hash) = parse_token(&token)
        .filter(|(token_room, _)| *token_room == room_id)
        .ok_or_else(|| ApiError::not_found("invite not found"))?;
    let action = RoomCommand::RevokeInvite { token_hash: hash };
    let done = run(&state, user.id, &mut ids, room_id, action).await?;
    Ok(Json(Positioned {
        position: done.position,
    }))
}

/// Accept an invite.
#[utoipa::path(post, path = "/invites/{token}/accept", operation_id = "acceptInvite", tag = "invites", params(("token" = String, Path, description = "the invite token")), responses((status = 200, description = "a member", body = RoomAnswer)), security(("login_token" = [])))]
async fn accept_invite(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<RoomAnswer>, ApiError> {
    let (room_id, hash) =
        parse_token(&token).ok_or_else(|| ApiError::not_found("invite not found"))?;
    let action = RoomCommand::AcceptInvite { token_hash: hash };
    let done = run(&state, user.id, &mut ids, room_id, action).await?;
    room_response(done)
}
