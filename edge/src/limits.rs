//! Request bodies: refused with `413` as soon as the declared `Content-Length` is over the
//! limit (before any of the body is read), and bounded in time: a body that trickles in
//! fails its read after [`RequestLimits::read_timeout`], which the extractors answer with
//! `408 timeout`, instead of holding a connection and a task forever. (Headers that trickle
//! are bounded by the HTTP server itself; see `natter serve`.)
//!
//! A tower layer rather than an axum middleware: every request passes through it, so it
//! neither boxes a future nor buffers the body; a body that is already there when read never
//! starts a timer.

use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::future::Either;
use http_body::{Frame, SizeHint};

use crate::error::ApiError;

/// How long a request may take to arrive, by default.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits on what a client sends.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest body accepted, in bytes.
    pub body: usize,
    /// How long the body may take to arrive once the handler reads it.
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

/// The error a body's read ends with when it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// The `408` for a body that did not arrive in time.
pub fn timeout() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        "timeout",
        "the request body did not arrive in time",
    )
}

/// Whether `error` (or any error in its sources) is a [`BodyTimedOut`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// The layer applying [`RequestLimits`] to every request of a router.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimitsLayer(pub RequestLimits);

impl<S> tower::Layer<S> for RequestLimitsLayer {
    type Service = LimitRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitRequests {
            inner,
            limits: self.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LimitRequests<S> {
    inner: S,
    limits: RequestLimits,
}

impl<S> tower::Service<Request> for LimitRequests<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let headers = req.headers();
        let declared = match headers.get(header::CONTENT_LENGTH) {
            None => None,
            Some(v) => match v.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(n) => Some(n),
                None => {
                    let refused = ApiError::bad_request("malformed Content-Length");
                    return Either::Left(ready(Ok(refused.into_response())));
                }
            },
        };
        if declared.is_some_and(|n| n > self.limits.body as u64) {
            let refused = ApiError::payload_too_large("the request body is over the limit");
            return Either::Left(ready(Ok(refused.into_response())));
        }
        let has_body =
            declared.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
        let req = if has_body {
            let deadline = self.limits.read_timeout;
            req.map(|body| Body::new(TimedBody::new(body, deadline)))
        } else {
            req
        };
        Either::Right(self.inner.call(req))
    }
}

/// A body whose read fails with [`BodyTimedOut`] once it has waited `deadline` for data.
struct TimedBody {
    inner: Body,
    deadline: Duration,
    /// Started the first time the body is not ready: a body already received costs no timer.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    fn new(inner: Body, deadline: Duration) -> Self {
        TimedBody {
            inner,
            deadline,
            timer: None,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
