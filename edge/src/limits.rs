//! Request bodies: refused with `413` as soon as the declared `Content-Length` is over the
//! limit (before any of the body is read), and read in full, within a deadline, before a
//! handler runs: a body that trickles in gets `408 timeout` instead of holding a connection
//! and a task forever. (Headers that trickle are bounded by the HTTP server itself; see
//! `natter serve`.)

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;

/// How long a request may take to arrive, by default.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits on what a client sends.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest body accepted, in bytes.
    pub body: usize,
    /// How long the body may take to arrive once the headers have.
    pub read_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            body: crate::DEFAULT_BODY_LIMIT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

fn timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "timeout",
        "the request body did not arrive in time",
    )
}

fn too_large() -> ApiError {
    ApiError::payload_too_large("the request body is over the limit")
}

/// The middleware: checks the declared length, then reads the body (if the request has one).
pub async fn read_body(limits: RequestLimits, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return ApiError::bad_request("malformed Content-Length").into_response(),
        },
    };
    if declared.is_some_and(|n| n > limits.body as u64) {
        return too_large().into_response();
    }
    let has_body =
        declared.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, limits.body).collect();
    let bytes = match tokio::time::timeout(limits.read_timeout, read).await {
        Err(_) => return timeout().into_response(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large().into_response();
        }
        Ok(Err(e)) => {
            return ApiError::bad_request(format!("the request body could not be read: {e}"))
                .into_response();
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
