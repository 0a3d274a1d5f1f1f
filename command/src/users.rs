//! Registration, login, and changes to one's own profile (`PATCH /me`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use natter_edge::views::{SessionAnswer, UserView};
use natter_edge::{ApiError, ApiJson, AuthUser};
use natter_events::user::{self, SignIn, User, decide_register, normalize_username};
use natter_events::{AppendError, Envelope, Expect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::idempotency::{EventIds, Reissue, reissue};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(update_me))
}

#[derive(Deserialize, ToSchema)]
struct Register {
    /// 3-32 characters of `a-z 0-9 _ -`, unique case-insensitively (stored lower-case).
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_-]{3,32}$")]
    username: String,
    /// 8-256 characters.
    #[schema(min_length = 8, max_length = 256)]
    password: String,
    /// 1-64 characters; the username when absent.
    #[schema(min_length = 1, max_length = 64)]
    display_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct Login {
    username: String,
    password: String,
}

/// `PATCH /me`'s answer.
#[derive(Serialize, ToSchema)]
struct ProfileAnswer {
    user: UserView,
    position: u64,
    /// A fresh login token, after a password change (every older one is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
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

/// A username and display name as given, checked: the stored (lower-case) username and the
/// display name (the username when none is given).
pub(crate) fn new_user_names(
    username: &str,
    display_name: Option<String>,
) -> Result<(String, String), ApiError> {
    let username = normalize_username(username).map_err(ApiError::validation)?;
    let display_name = display_name.unwrap_or_else(|| username.clone());
    check_display_name(&display_name)?;
    Ok((username, display_name))
}

/// Register a user with a password.
///
/// Register a user who signs in with a password.
#[utoipa::path(post, path = "/auth/register", operation_id = "register", tag = "users", request_body = Register,
    responses((status = 201, description = "registered", body = SessionAnswer)))]
async fn register(
    State(state): State<AppState>,
    mut ids: EventIds,
    ApiJson(body): ApiJson<Register>,
) -> Result<Response, ApiError> {
    let (username, display_name) = new_user_names(&body.username, body.display_name)?;
    check_password(&body.password)?;
    // Fail fast without hashing when the name is visibly taken; the append decides.
    if username_claim(&state, &username).await?.is_some() {
        return Err(ApiError::conflict("username is taken"));
    }
    let password_hash = state.passwords.hash(body.password).await?;
    let user_id = ids.next_id();
    let (user, position) = create_user(
        &state,
        &mut ids,
        user_id,
        &username,
        &display_name,
        SignIn::Password(password_hash),
        user_id,
    )
    .await?;
    let token = state.issue_token(user.id, &user.username)?;
    Ok(session(StatusCode::CREATED, &user, token, Some(position)))
}

/// `{user, token, position}`, whose token a replay of its `Idempotency-Key` mints afresh.
pub(crate) fn session(
    status: StatusCode,
    user: &User,
    token: String,
    position: Option<u64>,
) -> Response {
    let answer = SessionAnswer {
        user: UserView::from(user),
        token,
        position,
    };
    reissue(Reissue::login(user), (status, Json(answer)))
}

/// The user holding `username` (normalised), from its subject's registration.
async fn username_claim(state: &AppState, username: &str) -> Result<Option<User>, ApiError> {
    Ok(state
        .store
        .last_event(&state.store.subjects().username(username))
        .await
        .map_err(ApiError::unavailable)?
        .and_then(|r| user::evolve(None, &r.envelope)))
}

/// Claims `username` for a new user `user_id` (one event on the username's subject, which
/// must be empty: usernames stay unique across users who sign in with a password and users
/// an app manages) with `actor` as the event's actor.
pub(crate) async fn create_user(
    state: &AppState,
    ids: &mut EventIds,
    user_id: uuid::Uuid,
    username: &str,
    display_name: &str,
    sign_in: SignIn,
    actor: uuid::Uuid,
) -> Result<(User, u64), ApiError> {
    let subject = state.store.subjects().username(username);
    let event = decide_register(None, user_id, username, display_name, sign_in)
        .map_err(|e| ApiError::conflict(e.to_string()))?;
    let envelope = Envelope::new(ids.next_id(), crate::now(), Some(actor), None, event);
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
    state.directory.add(
        user.id,
        user.is_app_managed().then_some(user.username.as_str()),
    );
    Ok((user, position))
}

/// The user registered under `username` (normalised), folded with their own subject.
pub(crate) async fn load_user(state: &AppState, username: &str) -> Result<Option<User>, ApiError> {
    let Some(user) = username_claim(state, username).await? else {
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

/// Log in with a password.
///
/// Log in with a password; a wrong name or password is `401`, the same for both.
#[utoipa::path(post, path = "/auth/login", operation_id = "login", tag = "users", request_body = Login,
    responses((status = 200, description = "logged in", body = SessionAnswer)))]
async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let bad_login = || ApiError::unauthorized("wrong username or password");
    let user = match normalize_username(&body.username) {
        Ok(name) => load_user(&state, &name).await?,
        Err(_) => None,
    };
    // A user an app manages has no password: refused like an unknown name, in as long.
    let hash = user
        .as_ref()
        .filter(|u| !u.is_app_managed())
        .map(|u| u.password_hash.clone());
    let ok = state.passwords.verify(body.password, hash).await?;
    let user = user.filter(|_| ok).ok_or_else(bad_login)?;
    let token = state.issue_token(user.id, &user.username)?;
    Ok(session(StatusCode::OK, &user, token, None))
}

#[derive(Deserialize, ToSchema)]
struct UpdateMe {
    /// 1-64 characters.
    #[schema(min_length = 1, max_length = 64)]
    display_name: Option<String>,
    /// 8-256 characters; needs `current_password`.
    #[schema(min_length = 8, max_length = 256)]
    password: Option<String>,
    current_password: Option<String>,
}

/// Change the caller's display name or password.
///
/// `PATCH /me`: a display name, a password (with the current one), or both, in one event.
/// After a password change every token issued before it is refused, so the answer carries a
/// fresh `token`.
#[utoipa::path(patch, path = "/me", operation_id = "updateMe", tag = "users", request_body = UpdateMe,
    responses((status = 200, description = "updated (or already so)", body = ProfileAnswer)),
    security(("login_token" = [])))]
async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    mut ids: EventIds,
    ApiJson(body): ApiJson<UpdateMe>,
) -> Result<Response, ApiError> {
    if let Some(name) = &body.display_name {
        check_display_name(name)?;
    }
    if let Some(password) = &body.password {
        check_password(password)?;
    }
    let subject = state.store.subjects().user(user.id);
    let current = load_user(&state, &user.username)
        .await?
        .filter(|u| u.id == user.id)
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    let password_hash = match body.password {
        None => None,
        Some(_) if current.is_app_managed() => {
            return Err(ApiError::forbidden(
                "this user signs in through their app and has no password to change",
            ));
        }
        Some(password) => {
            let current_password = body.current_password.ok_or_else(|| {
                ApiError::forbidden("changing the password needs current_password")
            })?;
            let right = state
                .passwords
                .verify(current_password, Some(current.password_hash.clone()))
                .await?;
            if !right {
                return Err(ApiError::forbidden("current_password is wrong"));
            }
            Some(state.passwords.hash(password).await?)
        }
    };
    let changes_password = password_hash.is_some();
    let version = state
        .store
        .last_position(&subject)
        .await
        .map_err(ApiError::unavailable)?;
    let Some(event) = user::decide_update(&current, body.display_name.as_deref(), password_hash)
    else {
        let position = version.max(
            state
                .store
                .last_position(&state.store.subjects().username(&user.username))
                .await
                .map_err(ApiError::unavailable)?,
        );
        return Ok(Json(ProfileAnswer {
            user: UserView::from(&current),
            position,
            token: None,
        })
        .into_response());
    };
    let envelope = Envelope::new(ids.next_id(), crate::now(), Some(user.id), None, event);
    // The user's subject serializes their changes: a concurrent change makes this a conflict,
    // which the caller retries on the new state.
    let position = match state
        .store
        .append(
            &subject,
            &envelope,
            &envelope.id.to_string(),
            Expect::LastAt(version),
        )
        .await
    {
        Ok(p) => p,
        Err(AppendError::Conflict) => {
            return Err(ApiError::conflict(
                "the profile changed concurrently; retry",
            ));
        }
        Err(AppendError::Unavailable(e)) => return Err(ApiError::unavailable(e)),
    };
    let updated = user::evolve(Some(current), &envelope).expect("a change folds into the user");
    let mut out = ProfileAnswer {
        user: UserView::from(&updated),
        position,
        token: None,
    };
    if changes_password {
        // This instance refuses the old tokens at once; the others as they read the event.
        state
            .keys
            .credentials()
            .password_changed(user.id, envelope.occurred_at.timestamp_millis());
        out.token = Some(state.issue_token(updated.id, &updated.username)?);
        return Ok(reissue(Reissue::login(&updated), Json(out)));
    }
    Ok(Json(out).into_response())
}
