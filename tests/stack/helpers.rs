//! A whole natter (command, query, gateway; projectors started by the test) on the real
//! servers, with a stream, prefix and database of its own: the [`Node`] `natter serve` runs,
//! called without sockets.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use natter::{Config, Node, Role, Roles};
use natter_events::EventStore;
use natter_projector::{ProjectionStatus, ProjectorConfig};
use natter_testkit::api::Api;
pub use natter_testkit::api::User;
use natter_testkit::http::{Resp, call};
pub use natter_testkit::ws::Ws;
use natter_testkit::{Cleanup, Isolation, init_logs, nats_url};
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub struct Stack {
    /// The node's HTTP app (commands, queries, the websocket, ops), as it is served.
    pub command: Router,
    /// The command side as a client calls it.
    pub api: Api,
    pub query: Router,
    pub pool: PgPool,
    pub store: EventStore,
    /// What the projectors this test starts use.
    pub projector_config: ProjectorConfig,
    config: Config,
    node: Node,
    projectors: Vec<JoinHandle<()>>,
    extra: Vec<Node>,
    _cleanup: Cleanup,
}

pub async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in &self.projectors {
            p.abort();
        }
    }
}

/// The secret the stack's tokens are signed with (a test may mint its own).
pub const SECRET: &[u8] = b"query-tests-secret-query-tests-secret";

/// The configuration of a node on `isolation`'s stream, prefix and database.
fn config(isolation: &Isolation, wait: Duration, send_rate: &str) -> Config {
    let mut config = Config::defaults().unwrap();
    config.nats_url = nats_url();
    config.database_url = isolation.database_url.clone();
    config.stream = isolation.stream.clone();
    config.subject_prefix = isolation.prefix.clone();
    config.stream_replicas = 1;
    config.jwt_secret = Some(String::from_utf8(SECRET.to_vec()).unwrap());
    config.token_ttl_secs = 3600;
    config.admins = vec!["root".into()];
    config.send_rate_limit = send_rate.into();
    config.query_wait_ms = wait.as_millis() as u64;
    config.projector_batch = 500;
    config
}

impl Stack {
    /// Everything running, one projector included.
    pub async fn spawn() -> Stack {
        let mut stack = Self::without_projector(Duration::from_secs(5)).await;
        stack.start_projector();
        stack
    }

    pub async fn without_projector(wait: Duration) -> Stack {
        Self::assemble(wait, "off").await
    }

    /// Everything running, with messages rate limited (`"5/10s"`) as `NATTER_SEND_RATE_LIMIT`
    /// does.
    pub async fn with_send_rate(spec: &str) -> Stack {
        let mut stack = Self::assemble(Duration::from_secs(5), spec).await;
        stack.start_projector();
        stack
    }

    async fn assemble(wait: Duration, send_rate: &str) -> Stack {
        init_logs();
        let isolation = Isolation::new();
        let cleanup = Cleanup {
            isolation: isolation.clone(),
        };
        let config = config(&isolation, wait, send_rate);
        // `natter serve --role all`, the projector left to the test.
        let roles = Roles {
            projector: false,
            ..Roles::ALL
        };
        let node = Node::start(config.clone(), roles).await.unwrap();
        Stack {
            api: Api::app(node.app()),
            command: node.app(),
            query: node.app(),
            pool: node.pool.clone().unwrap(),
            store: node.store.clone(),
            projector_config: config.projector(),
            config,
            node,
            projectors: Vec::new(),
            extra: Vec::new(),
            _cleanup: cleanup,
        }
    }

    /// Serves the query app (REST and websocket) on a local port.
    pub async fn serve_query(&self) -> std::net::SocketAddr {
        serve(self.query.clone()).await
    }

    /// Starts another query/gateway instance on the same stream and database, served on a
    /// local port (like a second process behind a load balancer): `natter serve --role query`,
    /// whose websocket commands go over NATS to this stack's write side.
    pub async fn second_gateway(&mut self) -> std::net::SocketAddr {
        let node = Node::start(self.config.clone(), Role::Query.into())
            .await
            .unwrap();
        let addr = serve(node.app()).await;
        self.extra.push(node);
        addr
    }

    /// Starts another node running `roles` on the same stream and database (like another
    /// process); its HTTP app, called without a socket.
    pub async fn another_node(&mut self, roles: Roles) -> Router {
        let node = Node::start(self.config.clone(), roles).await.unwrap();
        let app = node.app();
        self.extra.push(node);
        app
    }

    /// Starts a projector instance (it stands by while another holds the lock).
    pub fn start_projector(&mut self) -> (usize, Arc<ProjectionStatus>) {
        let mut projector = self.node.another_projector().expect("a node with Postgres");
        projector.config = self.projector_config.clone();
        let status = projector.status.clone();
        self.projectors.push(tokio::spawn(projector.run()));
        (self.projectors.len() - 1, status)
    }

    /// Kills projector `i` as a crash would: mid-batch, no goodbye.
    pub fn kill_projector(&mut self, i: usize) {
        self.projectors[i].abort();
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.api.post(path, Some(token), body).await
    }

    /// A GET whose body is not JSON (NDJSON): status and the parsed lines.
    pub async fn get_lines(&self, path: &str, token: &str) -> (u16, Vec<Value>) {
        let (status, headers, text) =
            natter_testkit::http::get_text(&self.query, path, Some(token)).await;
        if status == 200 {
            assert_eq!(headers["content-type"], "application/x-ndjson");
            (
                200,
                text.lines()
                    .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
                    .collect(),
            )
        } else {
            (
                status.as_u16(),
                vec![serde_json::from_str(&text).expect("a JSON error")],
            )
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        call(&self.query, Method::GET, path, token, Vec::new(), &[]).await
    }

    /// A query that waits for `position` first.
    pub async fn get_at(&self, path: &str, token: &str, position: u64) -> Resp {
        let sep = if path.contains('?') { '&' } else { '?' };
        self.get(&format!("{path}{sep}min_position={position}"), Some(token))
            .await
    }

    pub async fn register(&self, name: &str) -> User {
        self.api.register(name).await
    }

    pub async fn create_room(&self, token: &str, body: Value) -> Uuid {
        self.api.create_room(token, body).await
    }

    /// Sends a message and returns its position.
    pub async fn send(&self, token: &str, room: Uuid, text: &str) -> u64 {
        self.api.send(token, room, text).await
    }

    pub async fn head(&self) -> u64 {
        self.store.head().await.unwrap()
    }

    /// Waits until the read models have applied the whole log.
    pub async fn caught_up(&self) -> u64 {
        let head = self.head().await;
        for _ in 0..300 {
            let (p,): (i64,) =
                sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM projection_checkpoints")
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            if p as u64 >= head {
                return head;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the projection did not catch up to {head}");
    }

    /// Rebuilds the read models from the log, as `natter rebuild` does.
    pub async fn rebuild(&self) -> anyhow::Result<natter_projector::rebuild::Summary> {
        natter_projector::rebuild::rebuild(
            &self.pool,
            &self.store,
            &self.projector_config,
            |_, _| {},
        )
        .await
    }

    /// Once caught up, a rebuild from the log leaves the read models as they were.
    pub async fn assert_rebuild_gives_the_same(&self) {
        self.caught_up().await;
        let before = self.dump().await;
        self.rebuild().await.unwrap();
        assert_same_models(&before, &self.dump().await, "after a rebuild");
    }

    /// Every read-model table, in a canonical order, as text: equal dumps, equal models.
    pub async fn dump(&self) -> String {
        natter_testkit::readmodels::dump(&self.pool).await
    }
}

pub use natter_testkit::readmodels::assert_same_models;

/// Positions of every event of `room` in the log, in order.
pub async fn room_positions(store: &EventStore, room: Uuid) -> Vec<u64> {
    let filter = store.subjects().room_events(room);
    let head = store.head().await.unwrap();
    let mut out = Vec::new();
    let mut next = store.next_position(&filter, 1).await.unwrap();
    while let Some(p) = next {
        out.push(p);
        if p >= head {
            break;
        }
        next = store.next_position(&filter, p + 1).await.unwrap();
    }
    out
}
