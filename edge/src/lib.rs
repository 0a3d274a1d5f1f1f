//! The HTTP edge shared by natter's command and query services, so both speak the contract's
//! errors and authentication the same way.
//!
//! - [`error`]: `ApiError`, the contract's JSON error body with the status mapping.
//! - [`extract`]: `ApiJson`, `ApiPath`, `ApiQuery` with JSON rejections.
//! - [`auth`]: JWT issue/verify and the `AuthUser` extractor.
//! - [`limits`]: request bodies: early `413`, `408` for a body that does not arrive.
//! - [`text`]: the contract's rules for names and message bodies (control characters).
//! - [`views`]: the JSON shapes of users, rooms, invites and messages.

pub mod auth;
pub mod commands;
pub mod error;
pub mod extract;
pub mod limits;
pub mod revocations;
pub mod text;
pub mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;

pub use auth::{AuthUser, Claims, JwtKeys, UserRole};
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
