//! natter's read side: REST queries over the Postgres read models, with read-your-writes
//! (`min_position`, `X-Natter-Position`), and the history and audit read from JetStream. The
//! websocket gateway is a crate of its own (`natter-gateway`); the queries take from it only
//! who is online (`natter_edge::presence`).
//!
//! - [`rooms`]: room listing and search, one room, members, my rooms with unread counts.
//! - [`messages`]: message pages (the main timeline or a thread), single messages, mentions.
//! - [`search`]: full-text search over the caller's rooms.
//! - [`users`]: `/me` and public profiles.
//! - [`admin`]: operators' queries: stats, connections over every gateway, API tokens.
//! - [`history`]: history and audit from JetStream (room events, admin events, state at a point).
//! - [`position`]: the applied position and the `min_position` middleware.
//! - [`rows`]: read-model rows and their JSON shapes.

pub mod admin;
pub mod history;
pub mod messages;
pub mod position;
pub mod rooms;
pub mod rows;
pub mod search;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::middleware::from_fn_with_state;
use natter_edge::JwtKeys;
use natter_edge::presence::Presence;
use natter_events::{EventStore, LiveTail};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;

use crate::position::ProjectionWatch;

/// The read side's settings.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// How long a query waits for its `min_position` before answering `504 stale`.
    pub min_position_wait: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            min_position_wait: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct QueryState {
    pub pool: PgPool,
    pub store: EventStore,
    pub keys: Arc<JwtKeys>,
    pub watch: ProjectionWatch,
    /// Who is online, for members' `online`.
    pub presence: Arc<Presence>,
}

impl FromRef<QueryState> for Arc<JwtKeys> {
    fn from_ref(state: &QueryState) -> Self {
        state.keys.clone()
    }
}

impl FromRef<QueryState> for ProjectionWatch {
    fn from_ref(state: &QueryState) -> Self {
        state.watch.clone()
    }
}

/// The queries over the read models (they take `min_position`).
fn read_model_api() -> OpenApiRouter<QueryState> {
    rooms::router()
        .merge(messages::router())
        .merge(search::router())
        .merge(users::router())
        .merge(admin::router())
}

/// What reads the log itself: the history.
fn log_api() -> OpenApiRouter<QueryState> {
    history::router()
}

/// The OpenAPI description of the query routes, their paths under `/api/v1`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let nest = |api| {
        OpenApiRouter::<QueryState>::new()
            .nest("/api/v1", api)
            .into_openapi()
    };
    let mut api = nest(read_model_api());
    for (_, _, op) in natter_edge::openapi::operations(&mut api) {
        position::describe(op);
    }
    api.merge(nest(log_api()));
    api
}

/// A running read side.
pub struct QueryService {
    pub state: QueryState,
    pub tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl QueryService {
    /// Starts the read side; `presence` is the gateway's in this process, or one following
    /// the gateways' announcements.
    pub async fn start(
        pool: PgPool,
        store: EventStore,
        tail: &LiveTail,
        presence: Arc<Presence>,
        keys: Arc<JwtKeys>,
        config: QueryConfig,
    ) -> anyhow::Result<Self> {
        let (watch, task) = ProjectionWatch::start(pool.clone(), config.min_position_wait).await?;
        let mut tasks = vec![("projection position watch", task)];
        if let Some(task) = keys.follow_credentials(&store, tail).await? {
            tasks.push(("credential changes", task));
        }
        Ok(QueryService {
            state: QueryState {
                pool,
                store,
                keys,
                watch,
                presence,
            },
            tasks,
        })
    }

    /// The query routes under `/api/v1`, without fallbacks.
    pub fn routes(&self) -> Router {
        let (read_models, _) = read_model_api().split_for_parts();
        let (log, _) = log_api().split_for_parts();
        Router::new()
            .nest(
                "/api/v1",
                read_models
                    .route_layer(from_fn_with_state(
                        (self.state.watch.clone(), self.state.store.clone()),
                        position::middleware,
                    ))
                    .merge(log),
            )
            .with_state(self.state.clone())
    }

    pub fn app(&self) -> Router {
        natter_edge::finish(self.routes(), natter_edge::RequestLimits::default())
    }
}

impl Drop for QueryService {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}
