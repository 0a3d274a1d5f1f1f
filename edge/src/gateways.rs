//! Asking every websocket gateway at once, over core NATS: who is connected, and closing a
//! user's sockets. A scatter-gather request: the question goes to `{prefix}.rpc.gateways.*`,
//! which every gateway subscribes to (no queue group: all answer), and the answers are
//! collected on one inbox until a short deadline.
//!
//! Chosen over heartbeats (each gateway publishing its registry every few seconds) because an
//! operator asks rarely and wants the answer as of now, a disconnect is a request anyway, and
//! nothing needs to run between questions. The cost: an answer takes the deadline, and a
//! gateway slower than it is left out of the count (`gateways` says how many answered).

use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long answers are collected.
pub const DEADLINE: Duration = Duration::from_millis(300);

/// The subject on which gateways are asked who is connected.
pub fn connections_subject(prefix: &str) -> String {
    format!("{prefix}.rpc.gateways.connections")
}

/// The subject on which gateways are told to close a user's sockets.
pub fn disconnect_subject(prefix: &str) -> String {
    format!("{prefix}.rpc.gateways.disconnect")
}

/// One user's sockets on one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserConnections {
    pub user_id: Uuid,
    pub username: String,
    pub connections: u64,
}

/// Users one gateway lists at most (those with the most sockets), so an answer stays well
/// under NATS's message size limit however many are connected.
pub const MAX_LISTED: usize = 5_000;

/// A gateway's answer to "who is connected".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionsAnswer {
    /// Identifies the gateway (one per process).
    pub gateway: Uuid,
    /// Its open sockets.
    pub total: u64,
    /// Its users, most sockets first, at most [`MAX_LISTED`].
    pub connections: Vec<UserConnections>,
    /// Whether users were left out of `connections`.
    pub truncated: bool,
}

/// Connections over every gateway that answered.
#[derive(Debug, Clone, Default)]
pub struct Connected {
    /// Per user, summed over gateways, most sockets first.
    pub users: Vec<UserConnections>,
    /// Open sockets in all.
    pub total: u64,
    /// Gateways that answered.
    pub gateways: usize,
    /// Whether some gateway left users out.
    pub truncated: bool,
}

/// A gateway's answer to "close this user's sockets".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisconnectAnswer {
    pub gateway: Uuid,
    pub closed: u64,
}

/// The request to close a user's sockets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disconnect {
    pub user_id: Uuid,
}

/// Publishes `payload` to `subject` and collects every answer that arrives within
/// `deadline`, one per gateway (answers that do not decode are logged and left out).
pub async fn gather<T: DeserializeOwned>(
    nats: &async_nats::Client,
    subject: String,
    payload: bytes::Bytes,
    deadline: Duration,
) -> anyhow::Result<Vec<T>> {
    let inbox = nats.new_inbox();
    let mut answers = nats.subscribe(inbox.clone()).await?;
    nats.publish_with_reply(subject, inbox, payload).await?;
    nats.flush().await?;
    let mut out = Vec::new();
    let until = tokio::time::Instant::now() + deadline;
    while let Ok(Some(message)) = tokio::time::timeout_at(until, answers.next()).await {
        match serde_json::from_slice(&message.payload) {
            Ok(answer) => out.push(answer),
            Err(e) => tracing::warn!(error = %e, "a gateway's answer does not decode"),
        }
    }
    Ok(out)
}

/// Every gateway's connections, summed per user.
pub async fn connections(nats: &async_nats::Client, prefix: &str) -> anyhow::Result<Connected> {
    let answers: Vec<ConnectionsAnswer> = gather(
        nats,
        connections_subject(prefix),
        bytes::Bytes::new(),
        DEADLINE,
    )
    .await?;
    let gateways = answers.len();
    let total = answers.iter().map(|a| a.total).sum();
    let truncated = answers.iter().any(|a| a.truncated);
    let mut by_user: std::collections::HashMap<Uuid, UserConnections> = Default::default();
    for user in answers.into_iter().flat_map(|a| a.connections) {
        by_user
            .entry(user.user_id)
            .and_modify(|u| u.connections += user.connections)
            .or_insert(user);
    }
    let mut users: Vec<_> = by_user.into_values().collect();
    users.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.username.cmp(&b.username))
    });
    Ok(Connected {
        users,
        total,
        gateways,
        truncated,
    })
}

/// Closes `user_id`'s sockets on every gateway; returns how many closed and how many
/// gateways answered.
pub async fn disconnect(
    nats: &async_nats::Client,
    prefix: &str,
    user_id: Uuid,
) -> anyhow::Result<(u64, usize)> {
    let request = serde_json::to_vec(&Disconnect { user_id })?;
    let answers: Vec<DisconnectAnswer> =
        gather(nats, disconnect_subject(prefix), request.into(), DEADLINE).await?;
    Ok((answers.iter().map(|a| a.closed).sum(), answers.len()))
}
