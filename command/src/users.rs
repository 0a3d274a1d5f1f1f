//! Registration and login.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use natter_edge::views::UserView;
use natter_edge::{ApiError, ApiJson};
use natter_events::user::{self, User, decide_register, normalize_username};
use natter_events::{AppendError, Envelope, Expect, Recorded};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::idempotency::Ids;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
}

#[derive(Deserialize)]
struct Register {
    username: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

pub(crate) fn check_password(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if (8..=256).contains(&len) {
        Ok(())
    } else {
        Err(ApiError::validation("password must be 8-256 characters"))
    }
}

pub(crate) fn check_display_name(name: &str) -> Result<(), ApiError> {
    let len = name.chars().count();
    if !(1..=64).contains(&len) || name.trim().is_empty() {
        return Err(ApiError::validation(
            "display_name must be 1-64 characters, not all blank",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "display_name may not contain control characters",
        ));
    }
    Ok(())
}

async fn register(
    State(state): State<AppState>,
    mut ids: Ids,
    ApiJson(body): ApiJson<Register>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let username = normalize_username(&body.username).map_err(ApiError::validation)?;
    check_password(&body.password)?;
    let display_name = body.display_name.unwrap_or_else(|| username.clone());
    check_display_name(&display_name)?;

    let subject = state.store.subjects().username(&username);
    // Fail fast without hashing when the name is visibly taken; the append below decides.
    let claim = state
        .store
        .last_event(&subject)
        .await
        .map_err(ApiError::unavailable)?
        .and_then(|r| user::evolve(None, &r.envelope));
    let user_id = ids.next_id();
    let password_hash = state.passwords.hash(body.password).await?;
    let event = decide_register(
        claim.as_ref(),
        user_id,
        &username,
        &display_name,
        &password_hash,
    )
    .map_err(|e| ApiError::conflict(e.to_string()))?;
    let envelope = Envelope::new(ids.next_id(), Utc::now(), Some(user_id), None, event);
    let position = match state
        .store
        .append(
            &subject,
            &envelope,
            &envelope.id.to_string(),
            Expect::LastAt(0),
        )
        .await
    {
        Ok(p) => p,
        Err(AppendError::Conflict) => return Err(ApiError::conflict("username is taken")),
        Err(AppendError::Unavailable(e)) => return Err(ApiError::unavailable(e)),
    };
    let user = user::evolve(None, &envelope).expect("a registration folds into a user");
    let token = state.issue_token(user.id, &user.username)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": UserView::from(&user), "token": token, "position": position })),
    ))
}

/// The user registered under `username` (normalised), folded with their own subject.
pub(crate) async fn load_user(state: &AppState, username: &str) -> Result<Option<User>, ApiError> {
    let registration: Option<Recorded> = state
        .store
        .last_event(&state.store.subjects().username(username))
        .await
        .map_err(ApiError::unavailable)?;
    let Some(user) = registration.and_then(|r| user::evolve(None, &r.envelope)) else {
        return Ok(None);
    };
    let later = state
        .store
        .read_subject(&state.store.subjects().user(user.id), 0)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(later
        .iter()
        .try_fold(user, |u, r| user::evolve(Some(u), &r.envelope)))
}

async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Login>,
) -> Result<Json<Value>, ApiError> {
    let bad_login = || ApiError::unauthorized("wrong username or password");
    let user = match normalize_username(&body.username) {
        Ok(name) => load_user(&state, &name).await?,
        Err(_) => None,
    };
    let ok = state
        .passwords
        .verify(
            body.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    let user = user.filter(|_| ok).ok_or_else(bad_login)?;
    let token = state.issue_token(user.id, &user.username)?;
    Ok(Json(
        json!({ "user": UserView::from(&user), "token": token }),
    ))
}
