//! The rooms of two: `POST /direct/{user_id}` (the one direct room of two users) and
//! `POST /match` (random 1:1 matching over numbered pair rooms).

use axum::Json;
use axum::extract::State;
use natter_edge::views::{RoomAnswer, RoomView};
use natter_edge::{ApiError, ApiPath, AuthUser};
use natter_events::RoomPart;
use natter_events::room::{Command, DomainError, RoomCommand};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::execute::{CommandError, execute};
use crate::idempotency::EventIds;
use crate::rooms::{room_response, room_view, run};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open_direct))
        .routes(routes!(find_match))
}

/// `POST /match`'s answer.
#[derive(Serialize, ToSchema)]
struct MatchAnswer {
    room: RoomView,
    /// Whether the room held two when answered (`false`: waiting for a partner).
    matched: bool,
    position: u64,
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

/// Open the direct room with a user.
#[utoipa::path(post, path = "/direct/{user_id}", operation_id = "openDirectRoom", tag = "rooms", params(("user_id" = Uuid, Path, description = "the other user")), responses((status = 200, description = "the one direct room of the two, created on first use", body = RoomAnswer)), security(("login_token" = [])))]
async fn open_direct(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiPath(other): ApiPath<Uuid>,
) -> Result<Json<RoomAnswer>, ApiError> {
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
        user.id,
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

/// Pair up with someone waiting.
#[utoipa::path(post, path = "/match", operation_id = "findMatch", tag = "rooms", responses((status = 200, description = "a pair room: matched, or waiting", body = MatchAnswer)), security(("login_token" = [])))]
async fn find_match(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
) -> Result<Json<MatchAnswer>, ApiError> {
    use std::sync::atomic::Ordering;
    let mut slot = last_slot(&state).await?;
    let event_id = ids.next_id();
    for _ in 0..MAX_SLOTS_PER_MATCH {
        let command = Command {
            actor: user.id,
            now: crate::now(),
            action: RoomCommand::Match,
        };
        // The same event id at each slot would be deduplicated across slots: derive one per
        // slot from the request's.
        let slot_event = Uuid::new_v5(&event_id, &slot.to_be_bytes());
        match execute(&state, pair_room_id(slot), command, slot_event).await {
            Ok(done) => {
                state.match_slot.fetch_max(slot, Ordering::Relaxed);
                let room = room_view(&done)?;
                return Ok(Json(MatchAnswer {
                    matched: room.member_count == 2,
                    room,
                    position: done.position,
                }));
            }
            Err(CommandError::Domain(DomainError::PairTaken)) => slot += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(anyhow::anyhow!(
        "no free pair room within {MAX_SLOTS_PER_MATCH} slots"
    )))
}
