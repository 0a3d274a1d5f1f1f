//! natter's read side: REST queries over the Postgres read models, with read-your-writes
//! (`min_position`, `X-Natter-Position`). Queries read only Postgres.
//!
//! - [`rooms`]: room listing and search, one room, members, my rooms with unread counts.
//! - [`messages`]: message pages and single messages.
//! - [`users`]: `/me` and public profiles.
//! - [`position`]: the applied position and the `min_position` middleware.
//! - [`rows`]: read-model rows and their JSON shapes.

pub mod messages;
pub mod position;
pub mod rooms;
pub mod rows;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::middleware::from_fn_with_state;
use natter_edge::JwtKeys;
use sqlx::PgPool;
use tokio::task::JoinHandle;

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
    pub keys: Arc<JwtKeys>,
    pub watch: ProjectionWatch,
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

/// A running read side.
pub struct QueryService {
    pub state: QueryState,
    pub tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl QueryService {
    pub async fn start(
        pool: PgPool,
        keys: Arc<JwtKeys>,
        config: QueryConfig,
    ) -> anyhow::Result<Self> {
        let (watch, task) = ProjectionWatch::start(pool.clone(), config.min_position_wait).await?;
        Ok(QueryService {
            state: QueryState { pool, keys, watch },
            tasks: vec![("projection position watch", task)],
        })
    }

    /// The query routes under `/api/v1`, without fallbacks.
    pub fn routes(&self) -> Router {
        Router::new()
            .nest(
                "/api/v1",
                rooms::router()
                    .merge(messages::router())
                    .merge(users::router())
                    .route_layer(from_fn_with_state(
                        self.state.watch.clone(),
                        position::middleware,
                    )),
            )
            .with_state(self.state.clone())
    }

    pub fn app(&self) -> Router {
        natter_edge::finish(self.routes(), natter_edge::DEFAULT_BODY_LIMIT)
    }
}

impl Drop for QueryService {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}
