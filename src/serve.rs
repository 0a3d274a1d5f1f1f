//! `natter serve`: starts the configured roles on one HTTP port and supervises their tasks.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use futures::future::select_all;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use natter_command::CommandService;
use natter_edge::JwtKeys;
use natter_edge::commands::{self, CommandPort};
use natter_events::{EventStore, LiveTail};
use natter_projector::{ProjectionStatus, Projector};
use natter_query::QueryService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

use crate::config::{Config, Role};
use crate::ops::{self, OpsState};

/// Serves until SIGTERM or Ctrl-C.
pub async fn serve(config: Config, role: Role) -> anyhow::Result<()> {
    run(config, role, shutdown_signal()).await
}

/// The process-wide metrics recorder (installed once, whatever runs in this process).
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Runs `role` in this process until `shutdown` resolves.
pub async fn run(
    config: Config,
    role: Role,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let keys = Arc::new(JwtKeys::new(
        &config.jwt_secret()?,
        Duration::from_secs(config.token_ttl_secs),
    ));
    let nats = natter_events::connection::connect(
        &config.nats_url,
        &format!("natter-{role:?}").to_lowercase(),
    )
    .await?;
    let store = open_store(nats.clone(), &config).await?;
    let pool = if role.needs_postgres() {
        Some(natter_readmodel::db::prepare(&config.database_url).await?)
    } else {
        None
    };

    let metrics = metrics_handle()?;

    // The one live consumer of the log in this process, shared by the room cache and the
    // gateway (and watched by `/readyz`).
    let tail = if role.runs_command() || role.runs_query() {
        Some(LiveTail::start(&store).await?)
    } else {
        None
    };

    let commands_subject = commands::subject(&config.subject_prefix);
    let mut router = Router::new();
    let mut tasks: Vec<(&'static str, JoinHandle<()>)> = Vec::new();
    let mut command = None;
    let mut query = None;
    let mut projector_status = None;
    if let (true, Some(tail)) = (role.runs_command(), &tail) {
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
    if let (true, Some(pool), Some(tail)) = (role.runs_query(), &pool, &tail) {
        let port = match &command {
            Some(service) => CommandPort::Local(service.app()),
            None => CommandPort::Remote {
                nats: nats.clone(),
                subject: commands_subject.clone(),
            },
        };
        let mut service = QueryService::start(
            pool.clone(),
            store.clone(),
            tail,
            nats.clone(),
            port,
            keys.clone(),
            config.query(),
        )
        .await?;
        router = router.merge(service.routes());
        tasks.append(&mut service.tasks);
        query = Some(service);
    }
    if let (true, Some(pool)) = (role.runs_projector(), &pool) {
        let projector = Projector {
            pool: pool.clone(),
            store: store.clone(),
            status: Arc::new(ProjectionStatus::default()),
            config: config.projector(),
            // Beside a command or query role, the projector reads the same live tail.
            tail: tail.clone(),
        };
        projector_status = Some(projector.status.clone());
        tasks.push(("projector", tokio::spawn(projector.run())));
    }
    router = router.merge(crate::web::routes());
    router = router.merge(ops::routes(OpsState {
        nats,
        store,
        pool,
        projector: projector_status,
        applied: query.as_ref().map(|q| q.state.watch.clone()),
        metrics,
        live_tail: tail,
    }));
    let app = natter_edge::finish(router, config.request_limits()).layer(
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

    let listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding {}", config.http_addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(role = ?role, "natter listening on http://{addr}");
    let server = crate::http::serve(
        listener,
        app,
        config.request_limits().read_timeout,
        shutdown,
    );

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
    drop((command, query));
    tracing::info!("natter stopped");
    Ok(())
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

/// Resolves on Ctrl-C or SIGTERM; in-flight requests then finish before the server stops.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
