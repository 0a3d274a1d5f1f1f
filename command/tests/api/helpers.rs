//! `spawn_app`: the write side on the real NATS server with a stream and prefix of its own,
//! called without a socket.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use futures::StreamExt;
use natter_command::{CommandConfig, CommandService};
use natter_edge::JwtKeys;
use natter_events::{EventStore, StoreConfig};
use natter_testkit::{Cleanup, Isolation, init_logs, nats_url};
use serde_json::{Value, json};
use uuid::Uuid;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

pub struct TestApp {
    pub app: Router,
    pub isolation: Isolation,
    _service: CommandService,
    _cleanup: Option<Cleanup>,
}

pub use natter_testkit::http::Resp;

pub fn test_config() -> CommandConfig {
    CommandConfig {
        send_rate: None,
        admins: vec!["root".into()],
        ..CommandConfig::default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(test_config()).await
    }

    pub async fn spawn_with(config: CommandConfig) -> Self {
        let isolation = Isolation::new();
        let mut app = Self::on(&isolation, config).await;
        app._cleanup = Some(Cleanup { isolation });
        app
    }

    /// Another command instance on the same stream (like a second process behind a load
    /// balancer); it cleans nothing up.
    pub async fn on(isolation: &Isolation, config: CommandConfig) -> Self {
        init_logs();
        let client = async_nats::connect(nats_url())
            .await
            .expect("NATS is running");
        let store = EventStore::open(
            client,
            &StoreConfig {
                stream: isolation.stream.clone(),
                prefix: isolation.prefix.clone(),
                replicas: 1,
            },
        )
        .await
        .expect("event store");
        let keys = Arc::new(JwtKeys::new(SECRET, Duration::from_secs(3600)));
        let service = CommandService::start(store, keys, config)
            .await
            .expect("command service");
        TestApp {
            app: service.app(),
            isolation: isolation.clone(),
            _service: service,
            _cleanup: None,
        }
    }

    /// Stops this instance's live view of the log, as if its consumer were stuck.
    pub fn stall_live_view(&self) {
        for (name, task) in &self._service.tasks {
            if *name == "room cache consumer" {
                task.abort();
            }
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        natter_testkit::http::call(&self.app, method, path, token, body, headers).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.raw(
            Method::POST,
            path,
            token,
            body.to_string().into_bytes(),
            &[],
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.raw(Method::DELETE, path, token, Vec::new(), &[]).await
    }

    /// Registers `username` and returns (token, user id).
    pub async fn register(&self, username: &str) -> (String, Uuid) {
        let r = self
            .post(
                "/auth/register",
                None,
                json!({ "username": username, "password": "password123" }),
            )
            .await;
        let body = r.expect(201);
        (
            body["token"].as_str().unwrap().to_string(),
            body["user"]["id"].as_str().unwrap().parse().unwrap(),
        )
    }

    /// Creates a room and returns its id.
    pub async fn create_room(&self, token: &str, body: Value) -> Uuid {
        let r = self.post("/rooms", Some(token), body).await;
        r.expect(201)["room"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Every message in the stream, read with a plain ordered consumer:
    /// (position, subject, headers, payload).
    pub async fn stream_messages(&self) -> Vec<(u64, String, async_nats::HeaderMap, Value)> {
        let client = async_nats::connect(nats_url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(&self.isolation.stream).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        if last == 0 {
            return out;
        }
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        while let Some(m) = messages.next().await {
            let m = m.unwrap();
            let seq = m.info().unwrap().stream_sequence;
            let payload: Value = serde_json::from_slice(&m.payload).unwrap();
            out.push((
                seq,
                m.subject.to_string(),
                m.headers.clone().unwrap_or_default(),
                payload,
            ));
            if seq >= last {
                break;
            }
        }
        out
    }
}
