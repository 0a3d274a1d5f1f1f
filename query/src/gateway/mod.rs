//! The websocket gateway: `GET /api/v1/ws` streams room events from JetStream to websocket clients,
//! in order, gap-free and resumable, with typing, media signals and presence alongside.
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

use natter_edge::commands::CommandPort;
use natter_events::{EventStore, LiveTail};
use tokio::task::JoinHandle;

use crate::QueryState;

#[derive(Clone)]
pub struct Gateway {
    pub hub: Arc<hub::Hub>,
    pub ephemeral: Arc<ephemeral::Ephemeral>,
    /// Where the `send` and `read` ops go.
    pub commands: CommandPort,
}

impl Gateway {
    pub async fn start(
        store: EventStore,
        tail: &LiveTail,
        nats: async_nats::Client,
        commands: CommandPort,
    ) -> anyhow::Result<(Gateway, Vec<(&'static str, JoinHandle<()>)>)> {
        let (hub, hub_task) = hub::Hub::start(store.clone(), tail)?;
        let admin_task = admin::serve(nats.clone(), store.subjects().prefix(), hub.clone()).await?;
        let (ephemeral, ephemeral_task) =
            ephemeral::Ephemeral::start(nats, store.subjects().clone(), hub.clone()).await?;
        Ok((
            Gateway {
                hub,
                ephemeral,
                commands,
            },
            vec![
                ("gateway consumer", hub_task),
                ("gateway ephemeral traffic", ephemeral_task),
                ("gateway admin answers", admin_task),
            ],
        ))
    }
}

pub fn router() -> utoipa_axum::router::OpenApiRouter<QueryState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(session::upgrade))
}
