//! Authentication: HS256 JWTs issued at registration and login, checked by the [`AuthUser`]
//! extractor on every authenticated route (the websocket upgrade included).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::revocations::Revocations;

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

/// Signs and verifies tokens with one shared secret, refusing those that a later password
/// change revoked (see [`Revocations`]).
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    revocations: Arc<Revocations>,
    /// Whether this process already follows credential changes into `revocations`.
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
            revocations: Arc::default(),
            following: AtomicBool::new(false),
        }
    }

    /// Starts following credential changes in the log (once per process: later calls return
    /// `None`), after reading those of the last token lifetime.
    pub async fn follow_revocations(
        &self,
        store: &natter_events::EventStore,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        if self.following.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        match self
            .revocations
            .clone()
            .follow(store.clone(), self.ttl)
            .await
        {
            Ok(task) => Ok(Some(task)),
            Err(e) => {
                self.following.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// The credential changes this process knows of.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// A token for `user_id` valid for the configured lifetime.
    pub fn issue(&self, user_id: Uuid, username: &str, role: UserRole) -> anyhow::Result<String> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let claims = Claims {
            sub: user_id,
            username: username.to_string(),
            role,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            iat_ms: now_ms,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        if self.revocations.refuses(claims.sub, claims.issued_at_ms()) {
            return Err(ApiError::unauthorized(
                "the token was issued before the password changed; log in again",
            ));
        }
        Ok(claims)
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

impl<S> FromRequestParts<S> for AuthUser
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
        let claims = keys.verify(token)?;
        Ok(AuthUser {
            id: claims.sub,
            username: claims.username,
            role: claims.role,
        })
    }
}
