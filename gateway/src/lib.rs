//! The websocket gateway: `GET /api/v1/ws` streams room events from JetStream to websocket clients,
//! in order, gap-free and resumable, with typing, media signals and presence alongside. It reads
//! the log and never Postgres; its sends go to the write side (`natter_edge::commands`). Its
//! protocol is described in AsyncAPI ([`asyncapi`]).
//!
//! - [`hub`]: the registry of room feeds and connections, fed by the process's live tail.
//! - [`feed`]: one room's fold, window of recent frames and subscribers.
//! - [`replay`]: bringing a subscriber from its `since` up to the live feed.
//! - [`conn`]: one connection's bounded outbox.
//! - [`session`]: one connection: auth, bounded send queue, heartbeats, close codes.
//! - [`ops`]: one connection's client ops (subscribe, send, read, typing, ...).
//! - `sends` (private): the order of a connection's sends to each room.
//! - [`ephemeral`]: typing, signals and presence on core NATS, never stored.
//! - [`protocol`]: the frames.
//! - [`admin`]: answers to operators (connections, disconnects), asked of every gateway.

pub mod admin;
pub mod asyncapi;
pub mod conn;
pub mod ephemeral;
pub mod feed;
pub mod hub;
mod ops;
pub mod protocol;
pub mod replay;
mod sends;
pub mod session;

use std::sync::Arc;

use axum::Router;
use natter_edge::JwtKeys;
use natter_edge::commands::CommandPort;
use natter_edge::presence::Presence;
use natter_events::{EventStore, LiveTail};
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;

/// What every connection of this gateway shares (the state of its one route).
#[derive(Clone)]
pub struct Gateway {
    pub hub: Arc<hub::Hub>,
    pub ephemeral: Arc<ephemeral::Ephemeral>,
    /// Where the `send` and `read` ops go.
    pub commands: CommandPort,
    pub keys: Arc<JwtKeys>,
}

/// A running gateway: its state and its background tasks (aborted when dropped).
pub struct GatewayService {
    pub gateway: Gateway,
    pub tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl GatewayService {
    /// Starts the gateway of this process on its live tail; `commands` is where its
    /// connections' sends go (the write side in this process, or over NATS).
    pub async fn start(
        store: EventStore,
        tail: &LiveTail,
        nats: async_nats::Client,
        commands: CommandPort,
        keys: Arc<JwtKeys>,
    ) -> anyhow::Result<GatewayService> {
        let (hub, hub_task) = hub::Hub::start(store.clone(), tail)?;
        let admin_task = admin::serve(nats.clone(), store.subjects().prefix(), hub.clone()).await?;
        let (ephemeral, ephemeral_task) =
            ephemeral::Ephemeral::start(nats, store.subjects().clone(), hub.clone()).await?;
        let mut tasks = vec![
            ("gateway consumer", hub_task),
            ("gateway ephemeral traffic", ephemeral_task),
            ("gateway admin answers", admin_task),
        ];
        // Revoked tokens and changed passwords close sockets (once per process).
        if let Some(task) = keys.follow_credentials(&store, tail).await? {
            tasks.push(("credential changes", task));
        }
        Ok(GatewayService {
            gateway: Gateway {
                hub,
                ephemeral,
                commands,
                keys,
            },
            tasks,
        })
    }

    /// Who is online across gateways, as this one hears it.
    pub fn presence(&self) -> Arc<Presence> {
        self.gateway.ephemeral.presence.clone()
    }

    /// `GET /api/v1/ws`, without fallbacks.
    pub fn routes(&self) -> Router {
        let (router, _) = api().split_for_parts();
        Router::new()
            .nest("/api/v1", router)
            .with_state(self.gateway.clone())
    }
}

impl Drop for GatewayService {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

fn api() -> OpenApiRouter<Gateway> {
    OpenApiRouter::new().routes(utoipa_axum::routes!(session::upgrade))
}

/// The OpenAPI description of the upgrade route, its path under `/api/v1`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<Gateway>::new()
        .nest("/api/v1", api())
        .into_openapi()
}
