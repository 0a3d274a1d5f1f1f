//! Room, invite, message and read-marker commands.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, patch, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use natter_edge::views::{InviteView, MessageView, RoomView};
use natter_edge::{ApiError, ApiJson, ApiPath, AuthUser, OptionalJson};
use natter_events::RoomPart;
use natter_events::catalogue::{Attachment, MessageKind, MessageSent, RoomKind, Visibility};
use natter_events::room::{Command, DomainError, RoomCommand};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::execute::{CommandError, Executed, execute};
use crate::idempotency::Ids;
use crate::input::{EditedContent, MessageBody, RoomName};

pub const DEFAULT_MAX_MEMBERS: u32 = 1_000;
pub const MAX_MEMBERS_LIMIT: u32 = 100_000;
const DEFAULT_INVITE_SECS: i64 = 7 * 24 * 3600;
const MAX_INVITE_SECS: i64 = 30 * 24 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms", post(create_room))
        .route("/rooms/{room_id}", patch(update_room).delete(delete_room))
        .route("/rooms/{room_id}/members/{user_id}", delete(remove_member))
        .route("/direct/{user_id}", post(open_direct))
        .route("/match", post(find_match))
        .route("/rooms/{room_id}/join", post(join))
        .route("/rooms/{room_id}/leave", post(leave))
        .route("/rooms/{room_id}/invites", post(create_invite))
        .route("/rooms/{room_id}/invites/{token}", delete(revoke_invite))
        .route("/invites/{token}/accept", post(accept_invite))
        .route("/rooms/{room_id}/messages", post(send_message))
        .route(
            "/rooms/{room_id}/messages/{message_id}",
            patch(edit_message).delete(delete_message),
        )
        .route("/rooms/{room_id}/read", post(mark_read))
}

/// Runs `action` by `user` on the room at `now`, with the next of `ids` as the event id.
async fn run_at(
    state: &AppState,
    user: &AuthUser,
    ids: &mut Ids,
    room_id: Uuid,
    now: DateTime<Utc>,
    action: RoomCommand,
) -> Result<Executed, ApiError> {
    let command = Command {
        actor: user.id,
        now,
        action,
    };
    Ok(execute(state, room_id, command, ids.next_id()).await?)
}

/// [`run_at`] now.
async fn run(
    state: &AppState,
    user: &AuthUser,
    ids: &mut Ids,
    room_id: Uuid,
    action: RoomCommand,
) -> Result<Executed, ApiError> {
    run_at(state, user, ids, room_id, Utc::now(), action).await
}

fn room_view(done: &Executed) -> Result<RoomView, ApiError> {
    done.entry
        .with_room(RoomPart::Meta, |room, _| room.map(RoomView::from))
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a room vanished after a command")))
}

fn room_response(done: Executed) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "room": room_view(&done)?, "position": done.position }),
    ))
}

#[derive(Deserialize)]
struct CreateRoom {
    name: String,
    visibility: Option<Visibility>,
    max_members: Option<u32>,
}

async fn create_room(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiJson(body): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = RoomName::parse(&body.name)?;
    let max_members = check_max_members(body.max_members.unwrap_or(DEFAULT_MAX_MEMBERS))?;
    let action = RoomCommand::Create {
        name: name.into_inner(),
        visibility: body.visibility.unwrap_or(Visibility::Public),
        kind: RoomKind::Group,
        max_members,
    };
    let room_id = ids.next_id();
    let done = run(&state, &user, &mut ids, room_id, action).await?;
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

#[derive(Deserialize)]
struct UpdateRoom {
    name: Option<String>,
    visibility: Option<Visibility>,
    max_members: Option<u32>,
}

async fn update_room(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateRoom>,
) -> Result<Json<Value>, ApiError> {
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
    let done = run(&state, &user, &mut ids, room_id, action).await?;
    room_response(done)
}

async fn delete_room(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let done = run(&state, &user, &mut ids, room_id, RoomCommand::Delete).await?;
    Ok(Json(json!({ "position": done.position })))
}

async fn remove_member(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath((room_id, member)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<Value>, ApiError> {
    if member == user.id {
        return Err(ApiError::validation(
            "an owner cannot remove themself; leave the room instead",
        ));
    }
    let action = RoomCommand::RemoveMember { user_id: member };
    let done = run(&state, &user, &mut ids, room_id, action).await?;
    Ok(Json(json!({ "position": done.position })))
}

/// The id of the one direct room of two users, the same whichever of them asks: concurrent
/// first calls all try to create this one room, and its creation expects an empty subject.
fn direct_room_id(a: Uuid, b: Uuid) -> Uuid {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    let mut pair = [0u8; 32];
    pair[..16].copy_from_slice(low.as_bytes());
    pair[16..].copy_from_slice(high.as_bytes());
    Uuid::new_v5(&DIRECT_ROOMS, &pair)
}

/// The namespace of direct room ids.
const DIRECT_ROOMS: Uuid = Uuid::from_u128(0x6e61_7474_6572_6469_7265_6374_0000_0001);

async fn open_direct(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(other): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    if other == user.id {
        return Err(ApiError::validation(
            "a direct room is with another user, not yourself",
        ));
    }
    if !state.directory.contains(other) {
        // Perhaps registered through another instance a moment ago: look again once this
        // instance has seen everything acknowledged so far.
        state.rooms.barrier().await.map_err(ApiError::unavailable)?;
        if !state.directory.contains(other) {
            return Err(ApiError::not_found("user not found"));
        }
    }
    let room_id = direct_room_id(user.id, other);
    let done = run(
        &state,
        &user,
        &mut ids,
        room_id,
        RoomCommand::OpenDirect { with: other },
    )
    .await?;
    room_response(done)
}

/// The namespace of pair room ids.
const PAIR_ROOMS: Uuid = Uuid::from_u128(0x6e61_7474_6572_7061_6972_0000_0000_0001);
/// Pair rooms a `/match` moves past before it gives up with `503`.
const MAX_SLOTS_PER_MATCH: usize = 256;

/// The pair room of slot `k`. Slots fill in order: slot `k + 1` is created only once slot `k`
/// is matched or ended, each creation expecting an empty subject, so racing callers pair up
/// two by two in the same room.
fn pair_room_id(slot: u64) -> Uuid {
    Uuid::new_v5(&PAIR_ROOMS, &slot.to_be_bytes())
}

/// The last slot the log holds (0 when none): slots exist as a prefix, so a binary search.
async fn last_slot(state: &AppState) -> Result<u64, ApiError> {
    let exists = |slot: u64| async move {
        let subject = state
            .store
            .subjects()
            .room(pair_room_id(slot), RoomPart::Meta);
        state
            .store
            .last_position(&subject)
            .await
            .map(|p| p > 0)
            .map_err(ApiError::unavailable)
    };
    let start = state.match_slot.load(std::sync::atomic::Ordering::Relaxed);
    if !exists(start).await? {
        return Ok(start);
    }
    let (mut lo, mut step) = (start, 1u64);
    while exists(lo + step).await? {
        lo += step;
        step *= 2;
    }
    let mut hi = lo + step; // missing
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exists(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

async fn find_match(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
) -> Result<Json<Value>, ApiError> {
    use std::sync::atomic::Ordering;
    let mut slot = last_slot(&state).await?;
    let event_id = ids.next_id();
    for _ in 0..MAX_SLOTS_PER_MATCH {
        let command = Command {
            actor: user.id,
            now: Utc::now(),
            action: RoomCommand::Match,
        };
        // The same event id at each slot would be deduplicated across slots: derive one per
        // slot from the request's.
        let slot_event = Uuid::new_v5(&event_id, &slot.to_be_bytes());
        match execute(&state, pair_room_id(slot), command, slot_event).await {
            Ok(done) => {
                state.match_slot.fetch_max(slot, Ordering::Relaxed);
                let room = room_view(&done)?;
                return Ok(Json(json!({
                    "matched": room.member_count == 2,
                    "room": room,
                    "position": done.position,
                })));
            }
            Err(CommandError::Domain(DomainError::PairTaken)) => slot += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(anyhow::anyhow!(
        "no free pair room within {MAX_SLOTS_PER_MATCH} slots"
    )))
}

async fn join(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let done = run(&state, &user, &mut ids, room_id, RoomCommand::Join).await?;
    room_response(done)
}

async fn leave(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let done = run(&state, &user, &mut ids, room_id, RoomCommand::Leave).await?;
    Ok(Json(json!({ "position": done.position })))
}

#[derive(Deserialize, Default)]
struct CreateInvite {
    user_id: Option<Uuid>,
    expires_in_secs: Option<i64>,
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

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn create_invite(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(room_id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<CreateInvite>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let now = Utc::now();
    let expires_at = now + Duration::seconds(secs);
    let action = RoomCommand::CreateInvite {
        invite_id: ids.next_id(),
        token_hash: token_hash(&token),
        invitee_id: body.user_id,
        expires_at,
        max_uses,
    };
    let done = run_at(&state, &user, &mut ids, room_id, now, action).await?;
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
        Json(json!({ "invite": invite, "position": done.position })),
    ))
}

async fn revoke_invite(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath((room_id, token)): ApiPath<(Uuid, String)>,
) -> Result<Json<Value>, ApiError> {
    let (_, hash) = parse_token(&token)
        .filter(|(token_room, _)| *token_room == room_id)
        .ok_or_else(|| ApiError::not_found("invite not found"))?;
    let action = RoomCommand::RevokeInvite { token_hash: hash };
    let done = run(&state, &user, &mut ids, room_id, action).await?;
    Ok(Json(json!({ "position": done.position })))
}

async fn accept_invite(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: Ids,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let (room_id, hash) =
        parse_token(&token).ok_or_else(|| ApiError::not_found("invite not found"))?;
    let action = RoomCommand::AcceptInvite { token_hash: hash };
    let done = run(&state, &user, &mut ids, room_id, action).await?;
    room_response(done)
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
    let now = Utc::now();
    let action = RoomCommand::SendMessage(sent.clone());
    // A send is never already satisfied: its position is the message's.
    let done = run_at(&state, &user, &mut ids, room_id, now, action).await?;
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
    let now = Utc::now();
    let action = RoomCommand::EditMessage {
        message_id,
        content: content.clone(),
    };
    let done = run_at(&state, &user, &mut ids, room_id, now, action).await?;
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
    let done = run(&state, &user, &mut ids, room_id, action).await?;
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
    let done = run(&state, &user, &mut ids, room_id, action).await?;
    Ok(Json(json!({ "position": done.position })))
}
