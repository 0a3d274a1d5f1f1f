//! The gateway's way to the write side, for the websocket ops `send` and `read`: a command is
//! the same HTTP request a REST client would make (so the same auth, rules, limits, error
//! codes and `Idempotency-Key`), handed to a command router. In `--role all` the router is in
//! this process; otherwise the request goes over NATS request-reply to the queue group that
//! every command instance serves ([`serve`]), so any of them answers and none is addressed.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

use crate::error::ApiError;

/// How long a command over NATS may take before the gateway answers `unavailable`.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);
/// The queue group command instances serve.
const QUEUE_GROUP: &str = "natter-command";

/// One command as an HTTP request under `/api/v1`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub token: String,
    pub idempotency_key: Option<String>,
    pub body: Value,
}

impl Call {
    /// `POST /rooms/{room_id}/messages` with the send's fields as the client gave them (the
    /// write side checks them with its own rules and codes).
    pub fn send_message(
        token: &str,
        room_id: Uuid,
        fields: Value,
        idempotency_key: String,
    ) -> Call {
        Call {
            method: "POST".into(),
            path: format!("/rooms/{room_id}/messages"),
            token: token.to_string(),
            idempotency_key: Some(idempotency_key),
            body: fields,
        }
    }

    /// `POST /rooms/{room_id}/read` with `up_to_position` as the client gave it.
    pub fn mark_read(
        token: &str,
        room_id: Uuid,
        up_to_position: Value,
        idempotency_key: Option<String>,
    ) -> Call {
        Call {
            method: "POST".into(),
            path: format!("/rooms/{room_id}/read"),
            token: token.to_string(),
            idempotency_key,
            body: serde_json::json!({ "up_to_position": up_to_position }),
        }
    }
}

/// What the command router answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

/// A command's outcome as the gateway answers it.
pub enum Outcome<'a> {
    /// Done: the `position` of its event, and the `message` a send made.
    Done {
        position: &'a Value,
        message: Option<&'a Value>,
    },
    /// Refused, with the contract's code and message.
    Refused { code: &'a str, message: &'a str },
}

impl Answer {
    /// The answer read as the command's outcome.
    pub fn outcome(&self) -> Outcome<'_> {
        if (200..300).contains(&self.status) {
            Outcome::Done {
                position: &self.body["position"],
                message: self.body.get("message"),
            }
        } else {
            let error = &self.body["error"];
            Outcome::Refused {
                code: error["code"].as_str().unwrap_or("unavailable"),
                message: error["message"].as_str().unwrap_or("the command failed"),
            }
        }
    }
}

/// Where the gateway's commands go.
#[derive(Clone)]
pub enum CommandPort {
    /// The command router of this process.
    Local(Router),
    /// Command instances behind `subject`.
    Remote {
        nats: async_nats::Client,
        subject: String,
    },
}

/// The subject command instances serve under `prefix` (outside the event stream).
pub fn subject(prefix: &str) -> String {
    format!("{prefix}.rpc.commands")
}

impl CommandPort {
    pub async fn call(&self, call: Call) -> Answer {
        match self {
            CommandPort::Local(router) => answer(router, call).await,
            CommandPort::Remote { nats, subject } => {
                let payload = serde_json::to_vec(&call).expect("calls serialize");
                let reply = tokio::time::timeout(
                    REMOTE_TIMEOUT,
                    nats.request(subject.clone(), payload.into()),
                )
                .await;
                match reply {
                    Ok(Ok(message)) => serde_json::from_slice(&message.payload)
                        .unwrap_or_else(|e| unavailable(format!("a malformed answer: {e}"))),
                    Ok(Err(e)) => unavailable(format!("no command instance answered: {e}")),
                    Err(_) => unavailable("no command instance answered in time".to_string()),
                }
            }
        }
    }
}

fn unavailable(why: String) -> Answer {
    tracing::warn!(why, "a websocket command could not reach the write side");
    let e = ApiError::unavailable(anyhow::anyhow!(why));
    Answer {
        status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
        body: serde_json::json!({ "error": { "code": e.code, "message": e.message } }),
        retry_after: None,
    }
}

/// Runs `call` through `router`, as its HTTP request.
pub async fn answer(router: &Router, call: Call) -> Answer {
    let Ok(method) = Method::from_bytes(call.method.as_bytes()) else {
        return unavailable(format!("not a method: {}", call.method));
    };
    let mut request = Request::builder()
        .method(method)
        .uri(format!("/api/v1{}", call.path))
        .header("authorization", format!("Bearer {}", call.token))
        .header("content-type", "application/json");
    if let Some(key) = &call.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let Ok(request) = request.body(Body::from(call.body.to_string())) else {
        return unavailable("an unbuildable request".to_string());
    };
    let Ok(response) = router.clone().oneshot(request).await;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = match response.into_body().collect().await {
        Ok(bytes) => serde_json::from_slice(&bytes.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    Answer {
        status,
        body,
        retry_after,
    }
}

/// Serves commands from gateways: every request on `subject` (in the command instances'
/// queue group) runs through `router` and is answered. Runs until aborted.
pub async fn serve(
    nats: async_nats::Client,
    subject: String,
    router: Router,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut requests = nats
        .queue_subscribe(subject, QUEUE_GROUP.to_string())
        .await?;
    Ok(tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply.clone() else {
                continue;
            };
            let (nats, router) = (nats.clone(), router.clone());
            tokio::spawn(async move {
                let answer = match serde_json::from_slice::<Call>(&request.payload) {
                    Ok(call) => answer(&router, call).await,
                    Err(e) => unavailable(format!("a malformed call: {e}")),
                };
                let payload = serde_json::to_vec(&answer).expect("answers serialize");
                if let Err(e) = nats.publish(reply, payload.into()).await {
                    tracing::warn!(error = %e, "answering a websocket command failed");
                }
            });
        }
    }))
}
