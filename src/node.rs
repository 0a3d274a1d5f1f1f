//! The composition root: [`Node::start`] wires the roles a process runs (their shared NATS
//! connection, event store, live tail and read-model pool, the command bridge, presence,
//! the ops endpoints) into one HTTP app and a set of supervised tasks. `natter serve`, the
//! bench (through the binary) and the whole-stack tests all start this, so the tests run
//! the process production runs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use futures::future::select_all;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use natter_command::CommandService;
use natter_edge::JwtKeys;
use natter_edge::commands::{self, CommandPort};
use natter_edge::presence::Presence;
use natter_events::{EventStore, LiveTail};
use natter_gateway::GatewayService;
use natter_projector::{ProjectionStatus, Projector};
use natter_query::QueryService;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

use crate::config::{Config, Role};
use crate::ops::{self, OpsState};

/// The parts of natter one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    /// REST commands (the write side) and the bridge that takes other gateways' sends.
    pub command: bool,
    /// REST queries over the read models, and history.
    pub query: bool,
    /// The websocket gateway.
    pub gateway: bool,
    /// The projector (one active per projection, others stand by).
    pub projector: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        command: true,
        query: true,
        gateway: true,
        projector: true,
    };

    pub fn needs_postgres(self) -> bool {
        self.query || self.projector
    }

    /// Whether something here follows the log live (and so needs the process's live tail).
    fn follows_the_log(self) -> bool {
        self.command || self.query || self.gateway
    }
}

impl From<Role> for Roles {
    fn from(role: Role) -> Roles {
        let none = Roles::default();
        match role {
            Role::All => Roles::ALL,
            Role::Command => Roles {
                command: true,
                ..none
            },
            // As before the gateway was a role of its own: queries and sockets.
            Role::Query => Roles {
                query: true,
                gateway: true,
                ..none
            },
            Role::Gateway => Roles {
                gateway: true,
                ..none
            },
            Role::Projector => Roles {
                projector: true,
                ..none
            },
        }
    }
}

/// The process-wide metrics recorder, installed by the first node of the process (later
/// ones, as in the tests, share it; installing runs once even when nodes start at once).
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| format!("installing the metrics recorder: {e}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A running natter process: its roles, their shared parts and their tasks (aborted when
/// the node is dropped).
pub struct Node {
    pub roles: Roles,
    pub config: Config,
    pub nats: async_nats::Client,
    pub store: EventStore,
    /// Present for roles that need Postgres.
    pub pool: Option<PgPool>,
    /// The one live consumer of the log in this process, shared by the room cache, the
    /// gateway, the credential follower and the projector once caught up (and watched by
    /// `/readyz`).
    pub tail: Option<LiveTail>,
    pub command: Option<CommandService>,
    pub query: Option<QueryService>,
    pub gateway: Option<GatewayService>,
    /// Present where this process runs the projector.
    pub projector: Option<Arc<ProjectionStatus>>,
    app: Router,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Node {
    /// Connects, opens the log (and the read models where a role needs them) and starts
    /// `roles`.
    pub async fn start(config: Config, roles: Roles) -> anyhow::Result<Node> {
        let keys = Arc::new(JwtKeys::new(
            &config.jwt_secret()?,
            Duration::from_secs(config.token_ttl_secs),
        ));
        let nats =
            natter_events::connection::connect(&config.nats_url, &client_name(roles)).await?;
        let store = open_store(nats.clone(), &config).await?;
        report_nats_version(&nats);
        let pool = if roles.needs_postgres() {
            let pool = natter_readmodel::db::prepare(&config.database_url).await?;
            report_postgres_version(&pool).await;
            Some(pool)
        } else {
            None
        };
        let metrics = metrics_handle()?;
        let tail = if roles.follows_the_log() {
            Some(LiveTail::start(&store).await?)
        } else {
            None
        };

        let commands_subject = commands::subject(&config.subject_prefix);
        let mut router = Router::new();
        let mut tasks: Vec<(&'static str, JoinHandle<()>)> = Vec::new();
        let mut command = None;
        let mut query = None;
        let mut gateway = None;
        let mut projector = None;
        if let (true, Some(tail)) = (roles.command, &tail) {
            let mut service =
                CommandService::start(store.clone(), tail, keys.clone(), config.command()?).await?;
            router = router.merge(service.routes());
            tasks.append(&mut service.tasks);
            // Gateways elsewhere send their websocket commands here (and in this process, the
            // gateway calls the router directly).
            tasks.push((
                "websocket command bridge",
                commands::serve(nats.clone(), commands_subject.clone(), service.app()).await?,
            ));
            command = Some(service);
        }
        if let (true, Some(tail)) = (roles.gateway, &tail) {
            let port = match &command {
                Some(service) => CommandPort::Local(service.app()),
                None => CommandPort::Remote {
                    nats: nats.clone(),
                    subject: commands_subject.clone(),
                },
            };
            let mut service =
                GatewayService::start(store.clone(), tail, nats.clone(), port, keys.clone())
                    .await?;
            router = router.merge(service.routes());
            tasks.append(&mut service.tasks);
            gateway = Some(service);
        }
        if let (true, Some(pool), Some(tail)) = (roles.query, &pool, &tail) {
            // Who is online: as this process's gateway hears it, or followed on its own.
            let presence = match &gateway {
                Some(gateway) => gateway.presence(),
                None => {
                    let (presence, task) = Presence::follow(nats.clone(), store.subjects()).await?;
                    tasks.push(("presence", task));
                    presence
                }
            };
            let mut service = QueryService::start(
                pool.clone(),
                store.clone(),
                tail,
                presence,
                keys.clone(),
                config.query(),
            )
            .await?;
            router = router.merge(service.routes());
            tasks.append(&mut service.tasks);
            query = Some(service);
        }
        let mut node = Node {
            roles,
            config,
            nats,
            store,
            pool,
            tail,
            command,
            query,
            gateway,
            projector: None,
            app: Router::new(),
            tasks,
        };
        if let (true, Some(instance)) = (roles.projector, node.another_projector()) {
            projector = Some(instance.status.clone());
            node.tasks.push(("projector", tokio::spawn(instance.run())));
        }
        node.projector = projector;
        router = router.merge(crate::web::routes());
        router = router.merge(ops::routes(OpsState {
            nats: node.nats.clone(),
            store: node.store.clone(),
            pool: node.pool.clone(),
            projector: node.projector.clone(),
            applied: node.query.as_ref().map(|q| q.state.watch.clone()),
            metrics,
            live_tail: node.tail.clone(),
        }));
        node.app = natter_edge::finish(router, node.config.request_limits()).layer(
            TraceLayer::new_for_http().make_span_with(
                // The path only: a query string may hold a token (`/ws?token=`), which no log
                // may show.
                |request: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                    )
                },
            ),
        );
        Ok(node)
    }

    /// The whole HTTP app of this process, as it is served.
    pub fn app(&self) -> Router {
        self.app.clone()
    }

    /// A projector of this node's log and read models, not yet running (it stands by while
    /// another holds the projection's lock); `None` where the node has no Postgres.
    pub fn another_projector(&self) -> Option<Projector> {
        self.pool.as_ref().map(|pool| Projector {
            pool: pool.clone(),
            store: self.store.clone(),
            status: Arc::new(ProjectionStatus::default()),
            config: self.config.projector(),
            // Beside a command, query or gateway role, the projector reads the same live
            // tail once caught up.
            tail: self.tail.clone(),
        })
    }

    /// Serves the app on `listener` until `shutdown` resolves (in-flight requests finish),
    /// or fails when one of the node's tasks stops.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        tracing::info!(roles = %client_name(self.roles).trim_start_matches("natter-"), "natter listening on http://{addr}");
        if self.roles.query && self.roles.command {
            tracing::info!("the web chat: http://{addr}/ (two windows make two people)");
        }
        let server = crate::http::serve(
            listener,
            self.app(),
            self.config.request_limits().read_timeout,
            shutdown,
        );
        let tasks = std::mem::take(&mut self.tasks);
        if tasks.is_empty() {
            server.await.context("serving HTTP")?;
        } else {
            let names: Vec<_> = tasks.iter().map(|(n, _)| *n).collect();
            let watch = select_all(tasks.into_iter().map(|(_, t)| t));
            tokio::select! {
                result = server => result.context("serving HTTP")?,
                (_, index, _) = watch => bail!("background task '{}' stopped", names[index]),
            }
        }
        tracing::info!("natter stopped");
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

/// The nats-server release before which [`report_nats_version`] warns.
const NATS_CURRENT: (u64, u64) = (2, 11);

/// `major.minor` of a version such as `2.10.24` or `v2.12.0-beta`.
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Logs the nats-server's version, and warns (once per process) when it is older than 2.11.
fn report_nats_version(nats: &async_nats::Client) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let info = nats.server_info();
    tracing::info!(version = %info.version, server = %info.server_name, "connected to nats-server");
    if major_minor(&info.version).is_some_and(|v| v < NATS_CURRENT) {
        WARNED.call_once(|| {
            tracing::warn!(
                version = %info.version,
                "nats-server {} is older than 2.11, which NATS maintains no longer: natter runs on \
                 it with the JetStream features of 2.9, but it lacks the fixes of later releases \
                 and what natter will use next (atomic batch publish, per-message TTLs); \
                 run a current nats-server in production",
                info.version
            );
        });
    }
}

/// Logs the Postgres server's version.
async fn report_postgres_version(pool: &PgPool) {
    match sqlx::query_scalar::<_, String>("SELECT current_setting('server_version')")
        .fetch_one(pool)
        .await
    {
        Ok(version) => tracing::info!(%version, "connected to Postgres"),
        Err(e) => tracing::warn!(error = %e, "could not read the Postgres server's version"),
    }
}

/// The NATS client name: which roles this process runs (`natter-all`, `natter-query`, ...).
fn client_name(roles: Roles) -> String {
    if roles == Roles::ALL {
        return "natter-all".into();
    }
    let mut name = String::from("natter");
    for (on, role) in [
        (roles.command, "command"),
        (roles.query, "query"),
        (roles.gateway, "gateway"),
        (roles.projector, "projector"),
    ] {
        if on {
            name.push('-');
            name.push_str(role);
        }
    }
    name
}

/// Opens the event stream, retrying while JetStream cannot answer yet (a cluster still
/// electing its leaders, a server starting); a stream that is not an event log fails at once.
async fn open_store(nats: async_nats::Client, config: &Config) -> anyhow::Result<EventStore> {
    let mut attempt = 1u32;
    loop {
        match EventStore::open(nats.clone(), &config.store()).await {
            Ok(store) => return Ok(store),
            Err(e)
                if e.downcast_ref::<natter_events::store::NotAnEventLog>()
                    .is_some() =>
            {
                return Err(e);
            }
            Err(e) if attempt < 120 => {
                tracing::warn!(
                    attempt,
                    error = format!("{e:#}"),
                    "JetStream cannot open the event stream yet; retrying"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_versions_compare_by_major_and_minor() {
        assert_eq!(major_minor("2.9.10"), Some((2, 9)));
        assert_eq!(major_minor("v2.12.0-beta.1"), Some((2, 12)));
        assert_eq!(major_minor("garbage"), None);
        assert!(major_minor("2.9.10").unwrap() < NATS_CURRENT);
        assert!(major_minor("2.10.26").unwrap() < NATS_CURRENT);
        assert!(major_minor("2.11.0").unwrap() >= NATS_CURRENT);
        assert!(major_minor("2.15.1").unwrap() >= NATS_CURRENT);
    }
}
