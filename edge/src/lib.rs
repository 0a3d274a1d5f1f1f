//! The HTTP edge shared by natter's command and query services, so both speak the contract's
//! errors and authentication the same way.
//!
//! - [`error`]: `ApiError`, the contract's JSON error body with the status mapping.
//! - [`extract`]: `ApiJson`, `ApiPath`, `ApiQuery` with JSON rejections.
//! - [`auth`]: login tokens (JWT) and API tokens, and the `AuthUser`, `Caller`, `Admin` and
//!   `Service` extractors.
//! - [`credentials`]: password changes and API tokens, folded from the log by every instance.
//! - [`limits`]: request bodies: early `413`, `408` for a body that does not arrive.
//! - [`text`]: the contract's rules for names and message bodies (control characters).
//! - [`gateways`]: asking every websocket gateway at once (connections, disconnects).
//! - [`presence`]: who is online across gateways, from their announcements on core NATS.
//! - [`openapi`]: what every part of the OpenAPI description shares (security, errors).
//! - [`views`]: the JSON shapes of users, rooms, invites and messages.

pub mod auth;
pub mod commands;
pub mod credentials;
pub mod error;
pub mod extract;
pub mod gateways;
pub mod limits;
pub mod openapi;
pub mod presence;
pub mod text;
pub mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;

pub use auth::{Admin, AuthUser, Caller, Claims, JwtKeys, Service, UserRole};
pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
pub use limits::RequestLimits;

/// Request bodies larger than this are refused with `413` unless configured otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Finishes a router: JSON 404 and 405 answers, the body limit and the body deadline.
pub fn finish<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    limits: RequestLimits,
) -> Router<S> {
    router
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(limits.body))
        .layer(limits::RequestLimitsLayer(limits))
}
