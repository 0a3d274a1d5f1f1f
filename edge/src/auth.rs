//! Authentication. Two kinds of bearer tokens:
//!
//! - login tokens: HS256 JWTs issued at registration, login and by a service for its users,
//!   each for one user; refused once the user's password changed after they were issued;
//! - API tokens (`natter_…`, see [`credentials`](crate::credentials)): a service client's
//!   long-lived credential, role `service` or `admin`, for no user; refused once revoked.
//!
//! Extractors: [`AuthUser`] (a user: every user endpoint), [`Caller`] (a user or an API token),
//! [`Admin`] (an admin user or an `admin` API token) and [`Service`] (an API token).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use natter_events::catalogue::TokenRole;

use crate::credentials::{API_TOKEN_PREFIX, Credentials, TokenRefused};
use crate::error::ApiError;

/// What a caller may do beyond their own rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    User,
    Admin,
}

/// The claims natter puts in its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub username: String,
    pub role: UserRole,
    pub iat: i64,
    pub exp: i64,
    /// When it was issued, in milliseconds (`iat` has seconds only): a password change
    /// revokes exactly the tokens issued before it. Tokens without it count from `iat`.
    #[serde(default)]
    pub iat_ms: i64,
}

impl Claims {
    /// When the token was issued, in milliseconds since the epoch.
    pub fn issued_at_ms(&self) -> i64 {
        if self.iat_ms > 0 {
            self.iat_ms
        } else {
            self.iat.saturating_mul(1000)
        }
    }
}

/// Signs and verifies login tokens with one shared secret, refusing those that a later
/// password change revoked, and checks API tokens (see [`Credentials`]).
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    credentials: Arc<Credentials>,
    /// Whether this process already follows credential changes into `credentials`.
    following: AtomicBool,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        // Only HS256 is accepted, so `alg: none` and algorithm-confusion tokens are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            credentials: Arc::default(),
            following: AtomicBool::new(false),
        }
    }

    /// How long a login token stays valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts following credential changes in the log through the live tail (once per
    /// process: later calls return `None`), after reading what the log already holds.
    pub async fn follow_credentials(
        &self,
        store: &natter_events::EventStore,
        tail: &natter_events::LiveTail,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        if self.following.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        match self
            .credentials
            .clone()
            .follow(store.clone(), tail, self.ttl)
            .await
        {
            Ok(task) => Ok(Some(task)),
            Err(e) => {
                self.following.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// The credentials this process knows of.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A token for `user_id` valid for the configured lifetime.
    pub fn issue(&self, user_id: Uuid, username: &str, role: UserRole) -> anyhow::Result<String> {
        Ok(self.issue_for(user_id, username, role, self.ttl)?.0)
    }

    /// A token for `user_id` valid for `lifetime`, and when it expires (seconds since the
    /// epoch).
    pub fn issue_for(
        &self,
        user_id: Uuid,
        username: &str,
        role: UserRole,
        lifetime: Duration,
    ) -> anyhow::Result<(String, i64)> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let exp = now + lifetime.as_secs() as i64;
        let claims = Claims {
            sub: user_id,
            username: username.to_string(),
            role,
            iat: now,
            exp,
            iat_ms: now_ms,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Checks a login token (not an API token).
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        if self.credentials.refuses(claims.sub, claims.issued_at_ms()) {
            return Err(ApiError::unauthorized(
                "the token was issued before the password changed; log in again",
            ));
        }
        Ok(claims)
    }

    /// Checks a bearer token of either kind.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        if !token.starts_with(API_TOKEN_PREFIX) {
            let claims = self.verify(token)?;
            return Ok(Caller::User(AuthUser {
                id: claims.sub,
                username: claims.username,
                role: claims.role,
            }));
        }
        match self.credentials.api_token(token).await {
            Ok(t) => Ok(Caller::Service(Service {
                token_id: t.id,
                name: t.name,
                role: t.role,
            })),
            Err(TokenRefused::Unavailable) => Err(ApiError::unavailable(anyhow::anyhow!(
                "the log cannot be read to check the API token"
            ))),
            Err(refused) => Err(ApiError::unauthorized(refused.to_string())),
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: Uuid,
    pub username: String,
    pub role: UserRole,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == UserRole::Admin
    }
}

/// The bearer token of a request, if it has a well-formed `Authorization` header.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A service client, authenticated by its API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub token_id: Uuid,
    /// The name the token was issued with.
    pub name: String,
    pub role: TokenRole,
}

/// Whoever made a request: a user, or a service client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    User(AuthUser),
    Service(Service),
}

impl Caller {
    /// An admin user (`NATTER_ADMINS`) or an `admin` API token.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::User(user) => user.is_admin(),
            Caller::Service(service) => service.role == TokenRole::Admin,
        }
    }

    /// The `actor_id` of the events this caller's commands append: the user, or the API
    /// token (whose `token.issued` names it).
    pub fn actor_id(&self) -> Uuid {
        match self {
            Caller::User(user) => user.id,
            Caller::Service(service) => service.token_id,
        }
    }

    /// The user, if the caller is one.
    pub fn user(&self) -> Option<&AuthUser> {
        match self {
            Caller::User(user) => Some(user),
            Caller::Service(_) => None,
        }
    }
}

/// An admin: a user listed in `NATTER_ADMINS` or an `admin` API token. Anyone else: `403`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(pub Caller);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<JwtKeys>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Arc::<JwtKeys>::from_ref(state);
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::unauthorized("missing or malformed Authorization: Bearer header")
        })?;
        keys.authenticate(token).await
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<JwtKeys>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::User(user) => Ok(user),
            Caller::Service(_) => Err(ApiError::forbidden(
                "an API token acts for no user; mint a login token for one with POST /users/{user_id}/tokens",
            )),
        }
    }
}

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Arc<JwtKeys>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_admin() {
            Ok(Admin(caller))
        } else {
            Err(ApiError::forbidden("admins only"))
        }
    }
}

impl<S> FromRequestParts<S> for Service
where
    S: Send + Sync,
    Arc<JwtKeys>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Service(service) => Ok(service),
            Caller::User(_) => Err(ApiError::forbidden(
                "only a service client's API token may do this (POST /admin/tokens issues one)",
            )),
        }
    }
}
