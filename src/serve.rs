//! `natter serve`: starts the configured roles ([`Node`]) on one HTTP port until a signal.

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::{Config, Role};
use crate::node::Node;

/// Serves until SIGTERM or Ctrl-C.
pub async fn serve(config: Config, role: Role) -> anyhow::Result<()> {
    let addr = config.http_addr;
    let node = Node::start(config, role.into()).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    node.serve(listener, shutdown_signal()).await
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
