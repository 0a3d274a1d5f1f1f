//! This gateway's answers to operators' questions asked of every gateway at once (see
//! `natter_edge::gateways`): who is connected here, and closing a user's sockets here.

use std::sync::Arc;

use futures::StreamExt;
use natter_edge::gateways::{
    ConnectionsAnswer, Disconnect, DisconnectAnswer, MAX_LISTED, connections_subject,
    disconnect_subject,
};
use uuid::Uuid;

use crate::hub::Hub;

/// Answers on both subjects until aborted (or the NATS client is gone).
pub async fn serve(
    nats: async_nats::Client,
    prefix: &str,
    hub: Arc<Hub>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let gateway = Uuid::new_v4();
    let mut questions = futures::stream::select(
        nats.subscribe(connections_subject(prefix)).await?,
        nats.subscribe(disconnect_subject(prefix)).await?,
    );
    let disconnect = disconnect_subject(prefix);
    Ok(tokio::spawn(async move {
        while let Some(question) = questions.next().await {
            let Some(reply) = question.reply else {
                continue;
            };
            let answer = if question.subject.as_str() == disconnect {
                match serde_json::from_slice::<Disconnect>(&question.payload) {
                    Ok(request) => serde_json::to_vec(&DisconnectAnswer {
                        gateway,
                        closed: hub.disconnect(request.user_id),
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "a disconnect request does not decode");
                        continue;
                    }
                }
            } else {
                let (total, connections, truncated) = hub.connections(MAX_LISTED);
                serde_json::to_vec(&ConnectionsAnswer {
                    gateway,
                    total,
                    connections,
                    truncated,
                })
            };
            match answer {
                Ok(body) => {
                    if let Err(e) = nats.publish(reply, body.into()).await {
                        tracing::warn!(error = %e, "answering an operator's question");
                    }
                }
                Err(e) => tracing::error!(error = %e, "encoding an answer"),
            }
        }
    }))
}
