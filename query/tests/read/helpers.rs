//! A whole natter (command, projector, query) on the real servers, with a stream, prefix and
//! database of its own, called without sockets.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use natter_command::{CommandConfig, CommandService};
use natter_edge::JwtKeys;
use natter_edge::commands::CommandPort;
use natter_events::{EventStore, LiveTail};
use natter_projector::{ProjectionStatus, Projector, ProjectorConfig};
use natter_query::{QueryConfig, QueryService};
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
    pub command: Router,
    /// The command side as a client calls it.
    pub api: Api,
    pub query: Router,
    pub pool: PgPool,
    pub store: EventStore,
    pub projector_config: ProjectorConfig,
    /// This "process"'s live tail (the projectors started here read it once caught up).
    tail: LiveTail,
    isolation_prefix: String,
    _bridge: AbortOnDrop,
    _command: CommandService,
    _query: QueryService,
    projectors: Vec<JoinHandle<()>>,
    extra: Vec<QueryService>,
    _cleanup: Cleanup,
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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

impl Stack {
    /// Everything running, one projector included.
    pub async fn spawn() -> Stack {
        let mut stack = Self::without_projector(Duration::from_secs(5)).await;
        stack.start_projector();
        stack
    }

    pub async fn without_projector(wait: Duration) -> Stack {
        Self::assemble(wait, None).await
    }

    /// Everything running, with messages rate limited (`"5/10s"`) as `NATTER_SEND_RATE_LIMIT`
    /// does.
    pub async fn with_send_rate(spec: &str) -> Stack {
        let mut stack = Self::assemble(Duration::from_secs(5), Some(spec.parse().unwrap())).await;
        stack.start_projector();
        stack
    }

    async fn assemble(
        wait: Duration,
        send_rate: Option<natter_command::ratelimit::RateSpec>,
    ) -> Stack {
        init_logs();
        let isolation = Isolation::new();
        let cleanup = Cleanup {
            isolation: isolation.clone(),
        };
        let store = isolation.open_store().await;
        // One live tail for this "process", as `natter serve` shares it.
        let tail = LiveTail::start(&store).await.unwrap();
        let pool = natter_readmodel::db::prepare(&isolation.database_url)
            .await
            .unwrap();
        let keys = Arc::new(JwtKeys::new(SECRET, Duration::from_secs(3600)));
        let command = CommandService::start(
            store.clone(),
            &tail,
            keys.clone(),
            CommandConfig {
                send_rate,
                admins: vec!["root".into()],
                ..CommandConfig::default()
            },
        )
        .await
        .unwrap();
        let nats = async_nats::connect(nats_url()).await.unwrap();
        // The command side also serves gateways elsewhere (`second_gateway`) over NATS.
        let bridge = natter_edge::commands::serve(
            nats.clone(),
            natter_edge::commands::subject(&isolation.prefix),
            command.app(),
        )
        .await
        .unwrap();
        let query = QueryService::start(
            pool.clone(),
            store.clone(),
            &tail,
            nats,
            CommandPort::Local(command.app()),
            keys,
            QueryConfig {
                min_position_wait: wait,
            },
        )
        .await
        .unwrap();
        Stack {
            tail: tail.clone(),
            api: Api::app(command.app()),
            command: command.app(),
            query: query.app(),
            pool,
            store,
            projector_config: ProjectorConfig {
                database_url: isolation.database_url.clone(),
                batch_size: 500,
            },
            _command: command,
            _query: query,
            projectors: Vec::new(),
            isolation_prefix: isolation.prefix.clone(),
            _bridge: AbortOnDrop(bridge),
            extra: Vec::new(),
            _cleanup: cleanup,
        }
    }

    /// Serves the query app (REST and websocket) on a local port.
    pub async fn serve_query(&self) -> std::net::SocketAddr {
        serve(self.query.clone()).await
    }

    /// Starts another query/gateway instance on the same stream and database, served on a
    /// local port (like a second process behind a load balancer).
    pub async fn second_gateway(&mut self) -> std::net::SocketAddr {
        let nats = async_nats::connect(nats_url()).await.unwrap();
        let keys = Arc::new(JwtKeys::new(SECRET, Duration::from_secs(3600)));
        // A process of its own: its own live tail.
        let tail = LiveTail::start(&self.store).await.unwrap();
        let query = QueryService::start(
            self.pool.clone(),
            self.store.clone(),
            &tail,
            nats.clone(),
            // No write side in this "process": its websocket commands go over NATS.
            CommandPort::Remote {
                nats,
                subject: natter_edge::commands::subject(&self.isolation_prefix),
            },
            keys,
            QueryConfig::default(),
        )
        .await
        .unwrap();
        let addr = serve(query.app()).await;
        self.extra.push(query);
        addr
    }

    /// Starts a projector instance (it stands by while another holds the lock).
    pub fn start_projector(&mut self) -> (usize, Arc<ProjectionStatus>) {
        let projector = Projector {
            pool: self.pool.clone(),
            store: self.store.clone(),
            status: Arc::new(ProjectionStatus::default()),
            config: self.projector_config.clone(),
            // As in `natter serve --role all`: the process's tail, once caught up.
            tail: Some(self.tail.clone()),
        };
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
        let mut out = String::new();
        for (table, order) in [
            ("users", "id"),
            ("rooms", "id"),
            ("members", "room_id, user_id"),
            ("invites", "id"),
            ("messages", "position"),
            ("reactions", "message_id, emoji, user_id"),
            ("mentions", "user_id, message_id"),
            ("projection_checkpoints", "projection"),
        ] {
            let sql = format!(
                "SELECT COALESCE(json_agg(t ORDER BY {order})::text, '[]') FROM (SELECT * FROM {table}) t"
            );
            let (rows,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(&self.pool)
                .await
                .unwrap();
            // `updated_at` of the checkpoint is wall-clock time, not a projection of the log.
            let rows: Value = serde_json::from_str(&rows).unwrap();
            let rows: Vec<Value> = rows
                .as_array()
                .unwrap()
                .iter()
                .cloned()
                .map(|mut r| {
                    r.as_object_mut().unwrap().remove("updated_at");
                    r
                })
                .collect();
            out.push_str(&format!(
                "{table}: {}\n",
                serde_json::to_string(&rows).unwrap()
            ));
        }
        out
    }
}

/// Asserts two dumps are equal, naming only the rows that differ.
#[track_caller]
pub fn assert_same_models(left: &str, right: &str, what: &str) {
    if left == right {
        return;
    }
    let mut report = String::new();
    for (l, r) in left.lines().zip(right.lines()) {
        if l == r {
            continue;
        }
        let (table, l_rows) = l.split_once(": ").unwrap();
        let r_rows = r.split_once(": ").unwrap().1;
        let l_rows: Vec<Value> = serde_json::from_str(l_rows).unwrap();
        let r_rows: Vec<Value> = serde_json::from_str(r_rows).unwrap();
        let only_l: Vec<_> = l_rows
            .iter()
            .filter(|x| !r_rows.contains(x))
            .take(3)
            .collect();
        let only_r: Vec<_> = r_rows
            .iter()
            .filter(|x| !l_rows.contains(x))
            .take(3)
            .collect();
        report.push_str(&format!(
            "{table}: left only {only_l:?}\n{table}: right only {only_r:?}\n"
        ));
    }
    panic!("{what}:\n{report}");
}

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
