//! Read-your-writes: how far the read models have applied the log, as seen by this instance,
//! kept current by the projector's NOTIFY on every batch commit (and a slow poll in case a
//! notification is missed), and the middleware that makes every query wait for its
//! `min_position` and answer with `X-Natter-Position`.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use natter_edge::ApiError;
use natter_readmodel::{NOTIFY_CHANNEL, checkpoint};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const POSITION_HEADER: &str = "x-natter-position";
const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a query may run (after its `min_position` wait) before it answers `503`.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The applied position, shared by the handlers of one instance.
#[derive(Clone)]
pub struct ProjectionWatch {
    rx: watch::Receiver<u64>,
    /// How long a query waits for its `min_position`.
    pub wait_limit: Duration,
}

impl ProjectionWatch {
    /// Starts following the checkpoint; the task runs until aborted.
    pub async fn start(
        pool: PgPool,
        wait_limit: Duration,
    ) -> anyhow::Result<(Self, JoinHandle<()>)> {
        let initial = read_checkpoint(&pool).await?;
        let (tx, rx) = watch::channel(initial);
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = follow(&pool, &tx).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "following the projection checkpoint failed; retrying"
                    );
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
        });
        Ok((ProjectionWatch { rx, wait_limit }, task))
    }

    pub fn current(&self) -> u64 {
        *self.rx.borrow()
    }

    /// Waits until the read models have applied `min`, up to the wait limit.
    pub async fn wait_for(&self, min: u64) -> Result<u64, ApiError> {
        let mut rx = self.rx.clone();
        match tokio::time::timeout(self.wait_limit, rx.wait_for(|p| *p >= min)).await {
            Ok(Ok(p)) => Ok(*p),
            _ => Err(ApiError::stale(format!(
                "the read models have not reached position {min} within {} ms (they are at {})",
                self.wait_limit.as_millis(),
                self.current()
            ))),
        }
    }
}

async fn read_checkpoint(pool: &PgPool) -> anyhow::Result<u64> {
    Ok(checkpoint::read(pool).await?)
}

async fn follow(pool: &PgPool, tx: &watch::Sender<u64>) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    let advance = |p: u64| {
        tx.send_if_modified(|current| {
            let moved = p > *current;
            if moved {
                *current = p;
            }
            moved
        });
    };
    // Anything committed before LISTEN took effect.
    advance(read_checkpoint(pool).await?);
    loop {
        match tokio::time::timeout(POLL_EVERY, listener.recv()).await {
            Ok(notification) => {
                if let Ok(p) = notification?.payload().parse() {
                    advance(p);
                }
            }
            Err(_) => advance(read_checkpoint(pool).await?),
        }
    }
}

/// Waits for `min_position` (400 when malformed, 504 `stale` when not reached in time) and
/// puts `X-Natter-Position` on every response: the position the read models had applied
/// before the query ran, so the answer reflects at least that much of the log.
pub async fn middleware(
    State((watch, store)): State<(ProjectionWatch, natter_events::EventStore)>,
    req: Request,
    next: Next,
) -> Response {
    let min = Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .ok()
        .and_then(|Query(q)| q.get("min_position").cloned());
    let waited = match min.map(|m| m.parse::<u64>()) {
        None => Ok(watch.current()),
        Some(Ok(min)) => match beyond_the_log(&watch, &store, min).await {
            Ok(min) => watch.wait_for(min).await,
            Err(e) => Err(e),
        },
        Some(Err(_)) => Err(ApiError::bad_request(
            "min_position must be a non-negative integer",
        )),
    };
    let (mut response, position) = match waited {
        Ok(position) => {
            let position = watch.current().max(position);
            // Reads take milliseconds. One that takes seconds is stuck on a connection to a
            // Postgres that stopped answering (a partition, a frozen host): answer 503 rather
            // than hang. (Reaching for a connection is bounded by the pool's acquire timeout.)
            let response = match tokio::time::timeout(QUERY_TIMEOUT, next.run(req)).await {
                Ok(r) => r,
                Err(_) => ApiError::unavailable(anyhow::anyhow!(
                    "a read did not answer within {} ms",
                    QUERY_TIMEOUT.as_millis()
                ))
                .into_response(),
            };
            (response, position)
        }
        Err(e) => (e.into_response(), watch.current()),
    };
    response
        .headers_mut()
        .insert(POSITION_HEADER, HeaderValue::from(position));
    response
}

/// A `min_position` the log has not reached cannot come from any command's answer: `422`, at
/// once, rather than a wait that can only end in `504`. (The log's head is read only when the
/// read models have not reached `min` already.)
async fn beyond_the_log(
    watch: &ProjectionWatch,
    store: &natter_events::EventStore,
    min: u64,
) -> Result<u64, ApiError> {
    if min <= watch.current() {
        return Ok(min);
    }
    let head = store.head().await.map_err(ApiError::unavailable)?;
    if min > head {
        return Err(ApiError::validation(format!(
            "min_position {min} is beyond the end of the log ({head})"
        )));
    }
    Ok(min)
}

/// Describes what [`middleware`] adds to a query in the OpenAPI description: the
/// `min_position` parameter, the `504 stale` answer and the `X-Natter-Position` header.
pub fn describe(op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{HeaderBuilder, RefOr};
    let integer = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .build()
    };
    op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(
        ParameterBuilder::new()
            .name("min_position")
            .parameter_in(ParameterIn::Query)
            .description(Some(
                "Wait until the read models have applied this position (a command's \
                 `position`): read your own writes.",
            ))
            .schema(Some(integer()))
            .build(),
    ));
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.headers.insert(
                POSITION_HEADER.to_string(),
                RefOr::T(
                    HeaderBuilder::new()
                        .schema(Some(integer()))
                        .description(Some("The position the read models had applied."))
                        .build(),
                ),
            );
        }
    }
    op.responses.responses.insert(
        "504".into(),
        natter_edge::openapi::error_response("`min_position` was not reached within the wait"),
    );
}
